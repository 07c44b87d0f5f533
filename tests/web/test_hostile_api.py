"""Hostile requests: every one is answered with a JSON 4xx (never a 500, never a traceback).

Through Flask's test client on the real seeds index; the waitress-level limits
(bodies and headers too large, malformed request lines) over a real server.
"""

from __future__ import annotations

import json
import urllib.parse

import pytest
from web_support import (
    SECURITY_HEADERS,
    SEED_FILE,
    assert_error,
    check_response,
    expect_raw_json_error,
    http,
    raw_exchange,
    request_head,
)

from web.errors import MAX_BODY_BYTES

DELEGATION = "Who led the U.S. delegation?"


@pytest.fixture(scope="module")
def spec(app) -> dict:
    return app.test_client().get("/openapi.json").get_json()


def post(client, body: bytes | str, content_type: str | None = "application/json", **headers):
    if content_type:
        headers["Content-Type"] = content_type
    return client.post("/api/ask", data=body, headers=headers)


def expect_json_error(response, spec: dict, status: int, code: str | None = None,
                      path: str = "/api/ask", method: str = "post") -> dict:
    """A JSON error with the expected status, documented in /openapi.json, with security headers."""
    body = response.get_json(silent=True)
    assert_error(response.status_code, body, status, code)
    assert response.mimetype == "application/json"
    check_response(spec, path, method, status, response.content_type, body)
    for name in SECURITY_HEADERS:
        assert name in response.headers, name
    return body


def nested(opening: bytes, closing: bytes, depth: int, inner: bytes = b"1") -> bytes:
    return opening * depth + inner + closing * depth


# ---- structure: size, depth, shape ----

DEEP = [
    pytest.param(nested(b"[", b"]", 100_000), 413, "payload_too_large", id="100k-nested-arrays"),
    pytest.param(nested(b'{"a":', b"}", 100_000), 413, "payload_too_large", id="100k-nested-objects"),
    pytest.param(nested(b"[", b"]", 30_000), 400, "malformed_json", id="30k-nested-arrays-under-64k"),
    pytest.param(nested(b'{"a":', b"}", 10_000), 400, "malformed_json", id="10k-nested-objects-under-64k"),
    pytest.param(b'{"question": ' + nested(b"[", b"]", 30_000) + b"}", 400, "malformed_json",
                 id="question-nested-30k-deep"),
    pytest.param(b'{"question": "Who?", "history": [{"role": "user", "content": '
                 + nested(b"[", b"]", 200) + b"}]}", 400, "invalid_request", id="history-content-nested"),
    pytest.param(b'{"question": "Who?", "top_k": ' + nested(b'{"a":', b"}", 200) + b"}", 400,
                 "invalid_request", id="top-k-nested"),
]


@pytest.mark.parametrize(("body", "status", "code"), DEEP)
def test_deep_or_huge_json_is_4xx(client, spec, body, status, code):
    expect_json_error(post(client, body), spec, status, code)


@pytest.mark.parametrize("turns", [21, 500, 2000])
def test_a_history_of_thousands_of_turns_is_refused(client, spec, turns):
    history = [{"role": "user" if i % 2 == 0 else "assistant", "content": "x"} for i in range(turns)]
    body = json.dumps({"question": DELEGATION, "history": history}, separators=(",", ":"))
    assert len(body) < MAX_BODY_BYTES
    message = expect_json_error(post(client, body), spec, 400, "invalid_request")["error"]["message"]
    assert f"{turns} turns" in message


def test_a_history_past_the_body_limit_is_413(client, spec):
    history = [{"role": "user", "content": "x"}] * 5000
    body = json.dumps({"question": DELEGATION, "history": history})
    assert len(body) > MAX_BODY_BYTES
    expect_json_error(post(client, body), spec, 413, "payload_too_large")


# ---- wrong types where strings (or numbers) belong ----

WRONG_TYPES = [
    {"question": None}, {"question": 1}, {"question": 1.5}, {"question": True}, {"question": {}},
    {"question": {"text": DELEGATION}}, {"question": [DELEGATION]}, {"question": -0.0},
    {"question": DELEGATION, "history": {}}, {"question": DELEGATION, "history": 7},
    {"question": DELEGATION, "history": [None]}, {"question": DELEGATION, "history": [[]]},
    {"question": DELEGATION, "history": [{"role": None, "content": "x"}]},
    {"question": DELEGATION, "history": [{"role": 1, "content": "x"}]},
    {"question": DELEGATION, "history": [{"role": "user", "content": None}]},
    {"question": DELEGATION, "history": [{"role": "user", "content": {"$ne": ""}}]},
    {"question": DELEGATION, "history": [{"role": ["user"], "content": "x"}]},
    {"question": DELEGATION, "top_k": "3"}, {"question": DELEGATION, "top_k": [3]},
    {"question": DELEGATION, "top_k": {}}, {"question": DELEGATION, "top_k": 3.0},
    {"question": DELEGATION, "top_k": -1}, {"question": DELEGATION, "top_k": 10**30},
    {"question": DELEGATION, "top_k": False},
    {"question": DELEGATION, "__proto__": {"admin": True}}, {"Question": DELEGATION},
]


@pytest.mark.parametrize("payload", WRONG_TYPES, ids=lambda p: json.dumps(p)[:60])
def test_wrong_types_are_400(client, spec, payload):
    expect_json_error(post(client, json.dumps(payload)), spec, 400, "invalid_request")


# ---- things that are not JSON, or not the JSON this API reads ----

NOT_JSON = [
    pytest.param(b"", id="empty"),
    pytest.param(b"   ", id="blank"),
    pytest.param(b'{"question": NaN}', id="NaN"),
    pytest.param(b'{"question": "Who?", "top_k": Infinity}', id="Infinity"),
    pytest.param(b'{"question": "Who?", "top_k": -Infinity}', id="minus-Infinity"),
    pytest.param(b'{"question": "Who?", "top_k": 5, "top_k": 1}', id="duplicate-top-k"),
    pytest.param(b'{"question": "Who?", "question": "Where?"}', id="duplicate-question"),
    pytest.param(b'{"question": "Who?", "history": [{"role": "user", "role": "assistant", "content": "x"}]}',
                 id="duplicate-in-nested-object"),
    pytest.param(b'{"question": "Who?", "top_k": ' + b"9" * 5000 + b"}", id="5000-digit-number"),
    pytest.param(b'{"question": "\\ud800 who?"}', id="lone-high-surrogate-escape"),
    pytest.param(b'{"question": "who? \\udc00"}', id="lone-low-surrogate-escape"),
    pytest.param(b'{"question": "Who?", "history": [{"role": "user", "content": "\\udfff"}]}',
                 id="lone-surrogate-in-history"),
    pytest.param(b'{"question": "\xed\xa0\x80 who?"}', id="utf8-encoded-surrogate"),
    pytest.param(b'{"question": "\xff\xfe who?"}', id="invalid-utf8-bytes"),
    pytest.param(b'{"question": "\xc0\xaf who?"}', id="overlong-utf8"),
    pytest.param(b'{"question": "who\xe2\x80"}', id="truncated-utf8"),
    pytest.param('{"question": "Who?"}'.encode("utf-16"), id="utf16-with-bom"),
    pytest.param('{"question": "Who?"}'.encode("utf-32-le"), id="utf32"),
    pytest.param(b'\xef\xbb\xbf{"question": "Who?"}', id="utf8-bom"),
    pytest.param(b'{"question": "who\x00"}', id="raw-nul-in-string"),
    pytest.param(b'{"question": "who\x01\x1b[31m"}', id="raw-control-chars-in-string"),
    pytest.param(b'{"question": "Who?"} trailing', id="trailing-garbage"),
    pytest.param(b'{"question": "Who?"}{"question": "Where?"}', id="two-objects"),
    pytest.param(b"{'question': 'Who?'}", id="single-quotes"),
    pytest.param(b'{"question": "Who?",}', id="trailing-comma"),
    pytest.param(b'{"question": "Who?" /* comment */}', id="comment"),
    pytest.param(b"\x00" * 1000, id="nul-bytes"),
    pytest.param(bytes(range(256)), id="every-byte"),
]


@pytest.mark.parametrize("body", NOT_JSON)
def test_bodies_that_are_not_strict_json_are_400(client, spec, body):
    expect_json_error(post(client, body), spec, 400, "malformed_json")


@pytest.mark.parametrize("question", ["\u0000", "who\u0000 led", "\u2028\u3000 \t\n\x1c\x85", ""])
def test_nul_and_blank_questions_are_400(client, spec, question):
    expect_json_error(post(client, json.dumps({"question": question})), spec, 400, "invalid_request")


@pytest.mark.parametrize("question", [
    "who\u0001\u0002\u001b[31m led the U.S. delegation?",  # escaped control characters: still text
    "Who led the U.S. delegation?\r\nX-Injected: 1",
    "<script>alert(1)</script> Who led the U.S. delegation?",
    "Who led the U.S. delegation? " + "\U0001F600" * 100,
    "\u202eWho led the U.S. delegation?",
    "Robert'); DROP TABLE documents;-- who led?",
    "../../../../etc/passwd",
])
def test_odd_but_valid_questions_are_answered_as_json(client, spec, question):
    response = post(client, json.dumps({"question": question}))
    assert response.status_code == 200
    result = response.get_json()
    check_response(spec, "/api/ask", "post", 200, response.content_type, result)
    assert result["question"] == question.strip()
    assert "X-Injected" not in response.headers


# ---- content types ----

@pytest.mark.parametrize("content_type", [
    None, "", "text/plain", "text/json", "application/jsonx", "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=x", "application/xml", "application/javascript", "*/*",
    "application/octet-stream",
])
def test_wrong_content_types_are_415(client, spec, content_type):
    response = post(client, json.dumps({"question": DELEGATION}), content_type)
    expect_json_error(response, spec, 415, "unsupported_media_type")


@pytest.mark.parametrize("content_type", ["application/json; charset=utf-8", "APPLICATION/JSON",
                                          "application/problem+json"])
def test_json_content_types_are_read(client, content_type):
    response = post(client, json.dumps({"question": DELEGATION}), content_type)
    assert response.status_code == 200, response.get_json()


def test_json_in_another_charset_is_refused_not_guessed(client, spec):
    body = json.dumps({"question": DELEGATION}).encode("utf-16")
    response = post(client, body, "application/json; charset=utf-16")
    expect_json_error(response, spec, 400, "malformed_json")


# ---- methods and paths ----

@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE", "TRACE", "PROPFIND", "CONNECT"])
def test_other_methods_are_json_405(client, spec, method):
    response = client.open("/api/ask", method=method, json={"question": DELEGATION})
    expect_json_error(response, spec, 405, "method_not_allowed")


@pytest.mark.parametrize("path", [
    "/api/sources/" + "a" * 10_000,
    "/api/sources/%00",
    "/api/sources/" + "%2e%2e%2f" * 50 + "etc/passwd",
    "/api/sources/%ff%fe",
    "/api/sources/\u202e.txt",
    "/api/sources/" + SEED_FILE.name + "%0d%0aX-Injected:%201",
])
def test_odd_source_names_are_json_404(client, spec, path):
    response = client.get(path)
    expect_json_error(response, spec, 404, None, "/api/sources/{source}", "get")
    assert "X-Injected" not in response.headers


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8000", "127.0.0.1.evil.example",
                                  "localhost.evil.example", "10.0.0.1", "[::2]:80", "0.0.0.0:80"])
def test_requests_for_other_host_names_are_refused_without_a_token(client, spec, host):
    """DNS rebinding: a page on evil.example resolving to 127.0.0.1 must not read the API."""
    for path, method in (("/api/health", "get"), ("/api/ask", "post")):
        response = client.open(path, method=method, headers={"Host": host}, json={"question": DELEGATION})
        expect_json_error(response, spec, 400, "untrusted_host", path, method)


@pytest.mark.parametrize("host", ["localhost", "localhost:8000", "127.0.0.1:8000", "127.1.2.3",
                                  "[::1]:8000", "LOCALHOST", "app.localhost:80"])
def test_loopback_host_names_are_answered(client, host):
    assert client.get("/api/health", headers={"Host": host}).status_code == 200


# ---- the same limits over a real server: waitress's own errors are JSON too ----


@pytest.mark.parametrize("length", [MAX_BODY_BYTES + 1, MAX_BODY_BYTES + 2, 10 * 2**20, 2**62])
def test_declared_oversized_body_is_json_413_before_it_is_sent(server, length):
    """A Content-Length over 64 KiB is refused at once: the client need not send the body."""
    head = request_head(server, "POST", "/api/ask", {"Content-Type": "application/json",
                                                      "Content-Length": str(length)})
    expect_raw_json_error(*raw_exchange(server, head), 413, "payload_too_large")


def test_body_at_the_limit_is_read_over_http(server):
    payload = json.dumps({"question": DELEGATION, "history": [{"role": "user", "content": "x"}]})
    body = payload[:-1] + " " * (MAX_BODY_BYTES - len(payload)) + "}"
    assert len(body) == MAX_BODY_BYTES
    head = request_head(server, "POST", "/api/ask", {"Content-Type": "application/json",
                                                      "Content-Length": str(len(body)),
                                                      "Connection": "close"})
    status, _, raw = raw_exchange(server, head + body.encode())
    assert status == 200, raw
    assert json.loads(raw)["answerable"] is True


def test_chunked_body_over_the_limit_is_json_413(server):
    head = request_head(server, "POST", "/api/ask", {"Content-Type": "application/json",
                                                      "Transfer-Encoding": "chunked"})
    piece = b"[" * 8192
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(piece), piece) for _ in range(MAX_BODY_BYTES // len(piece) + 1))
    expect_raw_json_error(*raw_exchange(server, head + chunks), 413, "payload_too_large")


def test_huge_json_over_urllib_is_json_413(server):
    status, headers, raw = http(server.url + "/api/ask", method="POST", data=nested(b"[", b"]", 50_000),
                                headers={"Content-Type": "application/json"})
    assert status == 413 and json.loads(raw)["error"]["code"] == "payload_too_large"
    for name in SECURITY_HEADERS:
        assert name in headers


def test_oversized_headers_are_json_431(server):
    head = request_head(server, "GET", "/api/health", {"X-Big": "a" * 300_000})
    expect_raw_json_error(*raw_exchange(server, head), 431, "headers_too_large")


@pytest.mark.parametrize("data", [
    b"GARBAGE\r\n\r\n",
    b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\nBad Header\r\n\r\n",
    b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: -1\r\n\r\n",
    b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nxx",
    b"POST /api/ask HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
])
def test_malformed_http_is_json_400(server, data):
    expect_raw_json_error(*raw_exchange(server, data), 400, "bad_request")


def test_other_host_names_are_refused_over_http(server):
    head = request_head(server, "GET", "/api/health", {})
    head = head.replace(f"Host: {urllib.parse.urlsplit(server.url).netloc}".encode(), b"Host: evil.example")
    expect_raw_json_error(*raw_exchange(server, head), 400, "untrusted_host")


def test_server_still_answers_after_the_abuse(server):
    status, _, body = server.post_json("/api/ask", {"question": DELEGATION})
    assert status == 200 and json.loads(body)["answerable"] is True
    log = server.log.read_text(errors="replace")
    assert "Traceback" not in log, log[-3000:]
