"""``qa serve`` as a real process: real HTTP, real sockets, a clean stop on SIGTERM/Ctrl-C."""

from __future__ import annotations

import http.client as httpclient
import json
import signal
import subprocess
import sys
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

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

DELEGATION = "Who led the U.S. delegation?"


@pytest.fixture(scope="module")
def spec(server: Server) -> dict:
    status, _, body = server.get("/openapi.json")
    assert status == 200
    return json.loads(body)


def raw_request(server: Server, method: str, path: str, body: bytes = b"",
                headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    """Send the path exactly as given (urllib would normalise '..' and '//')."""
    url = urllib.parse.urlsplit(server.url)
    conn = httpclient.HTTPConnection(url.hostname, url.port, timeout=60)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, dict(response.headers), response.read()
    finally:
        conn.close()


def test_health_ask_and_source_over_http(server, spec, seed_text):
    status, headers, body = server.get("/api/health")
    assert status == 200
    check_response(spec, "/api/health", "get", status, headers["Content-Type"], json.loads(body))
    assert json.loads(body)["documents"] == 1

    status, headers, body = server.post_json("/api/ask", {"question": DELEGATION})
    result = json.loads(body)
    assert status == 200
    check_response(spec, "/api/ask", "post", status, headers["Content-Type"], result)
    assert result["answer"].startswith("Sonata Coulter, U.S. deputy assistant secretary")
    for c in result["citations"]:
        assert seed_text[c["start"]:c["end"]] == c["quote"]

    history = [{"role": "user", "content": DELEGATION}, {"role": "assistant", "content": result["answer"]}]
    status, _, body = server.post_json("/api/ask", {"question": "What is her title?", "history": history})
    assert status == 200 and json.loads(body)["answerable"] is True

    status, _, body = server.post_json("/api/ask", {"question": "How tall is Mount Everest?"})
    off = json.loads(body)
    assert status == 200 and off["answerable"] is False and off["answer"] == "" and off["passages"]

    status, headers, body = server.get(f"/api/sources/{SEED_FILE.name}")
    assert status == 200 and json.loads(body) == {"source": SEED_FILE.name, "text": seed_text}


def test_page_and_static_files(server):
    status, headers, body = server.get("/")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert b"/static/app.js" in body and b"/static/app.css" in body
    for path in ("/static/app.js", "/static/app.css"):
        assert server.get(path)[0] == 200


@pytest.mark.parametrize(("method", "path", "body", "headers", "status", "code"), [
    ("POST", "/api/ask", b"{", {"Content-Type": "application/json"}, 400, "malformed_json"),
    ("POST", "/api/ask", b'{"question": ""}', {"Content-Type": "application/json"}, 400, "invalid_request"),
    ("POST", "/api/ask", b'{"question": "x", "k": 1}', {"Content-Type": "application/json"}, 400,
     "invalid_request"),
    ("POST", "/api/ask", b'{"question": "Who?"}', {"Content-Type": "text/plain"}, 415,
     "unsupported_media_type"),
    ("POST", "/api/ask", b'{"question": "' + b"x" * 100_000 + b'"}', {"Content-Type": "application/json"},
     413, "payload_too_large"),
    ("GET", "/api/ask", b"", {}, 405, "method_not_allowed"),
    ("GET", "/nope", b"", {}, 404, "not_found"),
    ("GET", "/api/sources/nope.txt", b"", {}, 404, "unknown_source"),
    ("GET", "/api/sources/../../../etc/passwd", b"", {}, 404, None),
    ("GET", "/api/sources/..%2F..%2F..%2Fetc%2Fpasswd", b"", {}, 404, None),
    ("GET", "/api/sources/%2Fetc%2Fpasswd", b"", {}, 404, None),
    ("GET", "/api/sources//etc/passwd", b"", {}, 404, None),
    ("GET", "/api/sources/" + str(SEED_FILE), b"", {}, 404, None),
    ("GET", "/api/sources/../seeds/" + SEED_FILE.name, b"", {}, 404, None),
    ("GET", "/static/../web/app.py", b"", {}, 404, None),
    ("GET", "/static/..%2Fapp.py", b"", {}, 404, None),
])
def test_errors_over_http_are_json(server, method, path, body, headers, status, code):
    got, response_headers, raw = raw_request(server, method, path, body, headers)
    assert_error(got, json.loads(raw), status, code)
    assert response_headers["Content-Type"] == "application/json"
    assert b"root:" not in raw and b"import" not in raw
    for name in SECURITY_HEADERS:
        assert name in response_headers


def test_security_headers_over_http(server):
    for path in ("/", "/api/health", "/static/app.js", "/openapi.json", "/nope"):
        _, headers, _ = server.get(path)
        assert "script-src 'self'" in headers["Content-Security-Policy"]
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["Referrer-Policy"] == "no-referrer"


def test_concurrent_requests_all_succeed(server, seed_text):
    questions = [DELEGATION, "How tall is Mount Everest?", "Where did the consultations take place?",
                 "What did Russia offer the United States?"] * 6

    def one(question: str) -> dict:
        status, _, body = server.post_json("/api/ask", {"question": question})
        assert status == 200
        return json.loads(body)

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(one, questions))
    for question, result in zip(questions, results):
        assert result["question"] == question
        for p in result["passages"]:
            assert seed_text[p["start"]:p["end"]] == p["text"]


def test_loopback_scripts_are_not_rate_limited_by_default(seed_index, tmp_path):
    """A local script asking 300 questions in a burst gets 300 answers, not 429s."""
    srv = start_server(seed_index, tmp_path / "server.log", rate_limit=None)
    questions = [DELEGATION, "When did Russia send troops into Ukraine?", "How tall is Mount Everest?"] * 100
    try:
        with ThreadPoolExecutor(4) as pool:
            statuses = list(pool.map(lambda q: srv.post_json("/api/ask", {"question": q})[0], questions))
    finally:
        srv.stop()
    assert statuses == [200] * 300


def test_ctrl_c_stops_a_server_that_inherited_sigint_ignored(seed_index, tmp_path):
    """A background job of a script (or a child of a test runner) starts with SIGINT ignored;
    without its own handler Python would keep ignoring it, and Ctrl-C would not stop it."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        srv = start_server(seed_index, tmp_path / "server.log", threads=2)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert srv.get("/api/health")[0] == 200
    assert srv.stop(signal.SIGINT, timeout=20) == 0
    assert "stopped" in srv.log.read_text(errors="replace")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_stops_cleanly(seed_index, tmp_path, sig):
    srv = start_server(seed_index, tmp_path / "server.log", threads=2)
    assert srv.get("/api/health")[0] == 200
    assert srv.stop(sig) == 0
    log = srv.log.read_text(errors="replace")
    assert "Traceback" not in log, log
    with pytest.raises(OSError):
        http(srv.url + "/api/health", timeout=5)


def test_missing_index_is_one_line_and_exit_1(tmp_path):
    missing = tmp_path / "no-index"
    proc = subprocess.run(
        [sys.executable, "-m", "qa.cli", "serve", "--index", str(missing), "--port", "0"],
        cwd=ROOT, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 1
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("qa: error: no index at"), proc.stderr
    assert not Path(missing).exists() or not any(Path(missing).iterdir())
