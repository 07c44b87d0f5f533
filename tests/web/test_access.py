"""Who gets in: the token, the loopback rule, the rate limit; in-process and over a real server."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
from web_support import (
    ROOT,
    SECURITY_HEADERS,
    SEED_FILE,
    Server,
    assert_error,
    check_response,
    http,
    start_server,
)

from qa.engine import Engine
from web.app import DEFAULT_RATE_LIMIT, BadSetting, create_app, rate_limit_setting
from web.security import bearer_matches, host_name, is_loopback
from web.server import UsageError, settings

TOKEN = "test-token-0123456789abcdef"
DELEGATION = "Who led the U.S. delegation?"


def serve_args(**kw) -> argparse.Namespace:
    defaults = {"host": "127.0.0.1", "token": None, "insecure": False, "rate_limit": DEFAULT_RATE_LIMIT}
    return argparse.Namespace(**{**defaults, **kw})


# ---- the rules, in-process ----

@pytest.mark.parametrize(("host", "loopback"), [
    ("127.0.0.1", True), ("127.8.9.10", True), ("::1", True), ("[::1]", True), ("localhost", True),
    ("LocalHost", True), ("0.0.0.0", False), ("::", False), ("", False), ("192.168.1.10", False),
    ("10.0.0.1", False), ("example.com", False), ("localhost.example.com", False),
])
def test_is_loopback(host, loopback):
    assert is_loopback(host) is loopback


@pytest.mark.parametrize(("header", "name"), [
    ("localhost:8000", "localhost"), ("127.0.0.1", "127.0.0.1"), ("[::1]:8000", "::1"), ("[::1]", "::1"),
    ("Example.COM", "example.com"), ("::1", "::1"),
])
def test_host_name(header, name):
    assert host_name(header) == name


@pytest.mark.parametrize(("header", "ok"), [
    (f"Bearer {TOKEN}", True), (f"bearer {TOKEN}", True), (f"Bearer  {TOKEN} ", True),
    (None, False), ("", False), ("Bearer", False), ("Bearer ", False), (f"Basic {TOKEN}", False),
    (TOKEN, False), (f"Bearer {TOKEN}x", False), (f"Bearer {TOKEN[:-1]}", False),
    (f"Bearer {TOKEN.upper()}", False), ("Bearer \u00e9\u00e9", False),
])
def test_bearer_matches(header, ok):
    assert bearer_matches(header, TOKEN) is ok


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.10", "example.com"])
def test_non_loopback_host_needs_a_token_or_insecure(host, monkeypatch):
    monkeypatch.delenv("QA_TOKEN", raising=False)
    with pytest.raises(UsageError, match="--token"):
        settings(serve_args(host=host))
    warnings: list[str] = []
    config = settings(serve_args(host=host, insecure=True), warn=warnings.append)
    assert config.token is None and config.check_host is False
    assert len(warnings) == 1 and "without a token" in warnings[0]
    config = settings(serve_args(host=host, token=TOKEN), warn=warnings.append)
    assert config.token == TOKEN and len(warnings) == 1


def test_token_from_the_environment(monkeypatch):
    monkeypatch.setenv("QA_TOKEN", TOKEN)
    assert settings(serve_args(host="0.0.0.0")).token == TOKEN
    assert settings(serve_args(token="other-token-0123456789")).token == "other-token-0123456789"
    monkeypatch.setenv("QA_TOKEN", "")
    assert settings(serve_args()).token is None


@pytest.mark.parametrize("token", ["", "has space", "tab\there", "caf\u00e9-token-0123456789"])
def test_unusable_tokens_are_refused(token):
    with pytest.raises(UsageError, match="token"):
        settings(serve_args(token=token))


def test_short_token_is_a_warning():
    warnings: list[str] = []
    assert settings(serve_args(token="short"), warn=warnings.append).token == "short"
    assert len(warnings) == 1 and "easy to guess" in warnings[0]


@pytest.mark.parametrize(("value", "expected"), [
    ("60/minute", "60/minute"), ("120/minute;20/second", "120/minute;20/second"),
    (" 5 per hour ", "5 per hour"),
    ("0", None), ("off", None), ("OFF", None), ("none", None), (None, None),
])
def test_rate_limit_setting(value, expected):
    assert rate_limit_setting(value) == expected


@pytest.mark.parametrize("value", ["fast", "60", "60/fortnight", "0/minute", "-1/minute", "60/minute;x"])
def test_bad_rate_limits_are_refused(value):
    with pytest.raises(BadSetting):
        rate_limit_setting(value)


@pytest.mark.parametrize(("argv", "expected"), [
    ([], None),  # loopback, no token: local scripts are never limited
    (["--host", "::1"], None),
    (["--token", TOKEN], DEFAULT_RATE_LIMIT),
    (["--host", "0.0.0.0", "--insecure"], DEFAULT_RATE_LIMIT),
    (["--host", "0.0.0.0", "--token", TOKEN], DEFAULT_RATE_LIMIT),
    (["--rate-limit", "10/minute"], "10/minute"),
    (["--token", TOKEN, "--rate-limit", "off"], None),
])
def test_default_rate_limit_depends_on_who_can_reach_the_server(argv, expected, monkeypatch):
    from qa.cli import parser

    monkeypatch.delenv("QA_TOKEN", raising=False)
    args = parser().parse_args(["serve", *argv])
    assert settings(args, warn=lambda _: None).rate_limit == expected


# ---- the app with a token, in-process ----

@pytest.fixture(scope="module")
def token_client(engine):
    return create_app(engine, token=TOKEN).test_client()


@pytest.fixture(scope="module")
def spec(app) -> dict:
    return app.test_client().get("/openapi.json").get_json()


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/api/health"), ("POST", "/api/ask"), ("GET", f"/api/sources/{SEED_FILE.name}"),
    ("GET", "/api/nope"), ("GET", "/api/sources/../../etc/passwd"),
])
@pytest.mark.parametrize("header", [None, "Bearer wrong-token", f"Basic {TOKEN}", "Bearer "])
def test_api_without_the_token_is_401(token_client, spec, method, path, header):
    headers = {"Authorization": header} if header else {}
    response = token_client.open(path, method=method, headers=headers, json={"question": DELEGATION})
    body = response.get_json()
    assert_error(response.status_code, body, 401, "unauthorized")
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="qa"'
    assert "Sonata" not in response.get_data(as_text=True)
    for name in SECURITY_HEADERS:
        assert name in response.headers
    if path in spec["paths"]:
        check_response(spec, path, method, 401, response.content_type, body)


def test_api_with_the_token_works_from_any_host_name(token_client):
    auth = {"Authorization": f"Bearer {TOKEN}", "Host": "qa.example.org"}
    assert token_client.get("/api/health", headers=auth).status_code == 200
    response = token_client.post("/api/ask", headers=auth, json={"question": DELEGATION})
    assert response.status_code == 200 and response.get_json()["answerable"] is True


@pytest.mark.parametrize("path", ["/", "/openapi.json", "/static/app.js", "/static/app.css"])
def test_page_and_openapi_need_no_token(token_client, path):
    response = token_client.get(path)
    assert response.status_code == 200
    response.close()


def test_openapi_documents_auth_and_rate_limit(spec):
    scheme = spec["components"]["securitySchemes"]["bearerToken"]
    assert scheme["type"] == "http" and scheme["scheme"] == "bearer"
    for path in ("/api/ask", "/api/health", "/api/sources/{source}"):
        operation = next(iter(spec["paths"][path].values()))
        assert {"bearerToken": []} in operation["security"] and {} in operation["security"]
        assert "WWW-Authenticate" in operation["responses"]["401"]["headers"]
    assert "Retry-After" in spec["paths"]["/api/ask"]["post"]["responses"]["429"]["headers"]


def test_rate_limit_in_process(engine, spec):
    client = create_app(engine, rate_limit="2/minute").test_client()
    for _ in range(2):
        assert client.post("/api/ask", json={"question": DELEGATION}).status_code == 200
    response = client.post("/api/ask", json={"question": DELEGATION})
    body = response.get_json()
    assert_error(response.status_code, body, 429, "rate_limited")
    check_response(spec, "/api/ask", "post", 429, response.content_type, body)
    assert 1 <= int(response.headers["Retry-After"]) <= 61
    for name in SECURITY_HEADERS:
        assert name in response.headers
    assert client.get("/api/health").status_code == 200  # only questions are limited
    other = {"REMOTE_ADDR": "127.0.0.2"}  # per client address: another one is not affected
    assert client.post("/api/ask", json={"question": DELEGATION}, environ_base=other).status_code == 200


def test_rate_limit_off_never_limits(app):
    client = app.test_client()  # the shared app: no limit
    assert all(client.post("/api/ask", json={"question": "x y z"}).status_code == 200 for _ in range(30))


# ---- over real servers ----


def run_serve(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "QA_TOKEN"}
    return subprocess.run([sys.executable, "-m", "qa.cli", "serve", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL, env=env)


@pytest.mark.parametrize("host", ["0.0.0.0", "::"])
def test_serving_beyond_loopback_without_a_token_exits_2_before_binding(seed_index, host):
    started = time.monotonic()
    proc = run_serve("--index", str(seed_index), "--host", host, "--port", "0")
    assert proc.returncode == 2
    assert proc.stdout == ""  # never printed "Serving on"
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"qa: error: refusing to serve on {host}") and "--token" in lines[0]
    assert "--insecure" in lines[0]
    assert time.monotonic() - started < 60


@pytest.mark.parametrize(("args", "words"), [
    (("--rate-limit", "lots"), "rate limit"),
    (("--token", "has space"), "token"),
    (("--token", ""), "token"),
])
def test_bad_serve_settings_exit_2_in_one_line(tmp_path, args, words):
    proc = run_serve("--index", str(tmp_path / "none"), "--port", "0", *args)
    assert proc.returncode == 2 and proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("qa: error:") and words in lines[0], proc.stderr


@pytest.fixture(scope="module")
def token_server(seed_index, tmp_path_factory) -> Iterator[Server]:
    srv = start_server(seed_index, tmp_path_factory.mktemp("token") / "server.log", token=TOKEN,
                       rate_limit="4/minute")
    yield srv
    srv.stop()


def test_token_over_http(token_server, spec):
    url = token_server.url
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": TOKEN}):
        status, response_headers, body = http(url + "/api/health", headers=headers)
        assert_error(status, json.loads(body), 401, "unauthorized")
        lower = {k.lower(): v for k, v in response_headers.items()}  # waitress writes Www-Authenticate
        assert lower["www-authenticate"] == 'Bearer realm="qa"'
        for name in SECURITY_HEADERS:
            assert name.lower() in lower
    status, _, body = http(url + f"/api/sources/{SEED_FILE.name}")
    assert status == 401 and b"Sonata" not in body
    assert token_server.get("/api/health")[0] == 200  # Server.get sends the token
    for path in ("/", "/openapi.json", "/static/app.js"):
        assert http(url + path)[0] == 200


def test_rate_limit_over_http(token_server, spec):
    results = [token_server.post_json("/api/ask", {"question": DELEGATION}) for _ in range(6)]
    statuses = [status for status, _, _ in results]
    assert statuses == [200] * 4 + [429] * 2, statuses
    status, headers, body = results[-1]
    assert_error(status, json.loads(body), 429, "rate_limited")
    check_response(spec, "/api/ask", "post", 429, headers["Content-Type"], json.loads(body))
    assert 1 <= int(headers["Retry-After"]) <= 61
    for name in SECURITY_HEADERS:
        assert name in headers
    # Unauthenticated questions are refused before they count, and don't get the 429 either.
    status, _, _ = http(token_server.url + "/api/ask", method="POST", data=b'{"question": "x"}',
                        headers={"Content-Type": "application/json"})
    assert status == 401
    assert token_server.get("/api/health")[0] == 200


# ---- security headers on every status the app answers ----


def check_security_headers(headers) -> None:
    csp = headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp and "'unsafe-inline'" not in csp
    assert "object-src 'none'" in csp
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "no-referrer"
    assert headers["X-Frame-Options"] == "DENY"


def test_security_headers_on_every_status(engine, seed_index):
    client = create_app(engine, token=TOKEN, rate_limit="3/minute").test_client()
    auth = {"Authorization": f"Bearer {TOKEN}"}
    seen = {}
    for method, path, kw in [
        ("GET", "/", {}),
        ("GET", "/api/health", {"headers": auth}),
        ("POST", "/api/ask", {"headers": auth, "data": b"x" * 70_000, "content_type": "application/json"}),
        ("POST", "/api/ask", {"headers": auth, "data": b"{}", "content_type": "text/plain"}),  # 415
        ("POST", "/api/ask", {"headers": auth, "json": {"question": DELEGATION}}),  # the 3rd: 200
        ("POST", "/api/ask", {"headers": auth, "json": {"question": DELEGATION}}),  # the 4th: 429
        ("GET", "/api/health", {}),  # 401
        ("GET", "/nope", {}),  # 404
        ("DELETE", "/api/health", {"headers": auth}),  # 405
    ]:
        response = client.open(path, method=method, **kw)
        seen[response.status_code] = True
        check_security_headers(response.headers)
        response.close()
    broken = Engine(seed_index)
    broken.data = None  # every call raises: a 500
    response = create_app(broken).test_client().get("/api/health")
    seen[response.status_code] = True
    check_security_headers(response.headers)
    response = create_app(engine).test_client().get("/api/health", headers={"Host": "evil.example"})
    seen[response.status_code] = True  # 400 untrusted_host
    check_security_headers(response.headers)
    assert sorted(seen) == [200, 400, 401, 404, 405, 413, 415, 429, 500]
