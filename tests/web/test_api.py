"""The JSON API through Flask's test client, on a real index of the seeds."""

from __future__ import annotations

import json
import re

import pytest
from web_support import SECURITY_HEADERS, SEED_FILE, SEEDS, assert_error, check_response, check_schema

from qa.engine import Engine
from web.app import create_app
from web.openapi import spec as openapi_spec

DELEGATION = "Who led the U.S. delegation?"


@pytest.fixture(scope="module")
def spec(app) -> dict:
    response = app.test_client().get("/openapi.json")
    assert response.status_code == 200
    return response.get_json()


def ask(client, payload: object, **kw):
    return client.post("/api/ask", json=payload, **kw)


def check_quotes(result: dict, seed_text: str) -> None:
    """Every citation and passage is exactly the seed file's text at its offsets."""
    for c in result["citations"]:
        assert c["source"] == SEED_FILE.name
        assert seed_text[c["start"]:c["end"]] == c["quote"]
    for p in result["passages"]:
        assert p["source"] == SEED_FILE.name
        assert seed_text[p["start"]:p["end"]] == p["text"]


# ---- the OpenAPI document ----


def test_openapi_document_describes_every_route(app, spec):
    assert spec["openapi"].startswith("3.0.")
    assert spec == json.loads(json.dumps(openapi_spec()))
    for name, schema in spec["components"]["schemas"].items():
        jsonschema_meta_check(name, schema)
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
        assert path in spec["paths"], f"{rule.rule} is not documented"
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            assert method.lower() in spec["paths"][path], f"{method} {rule.rule} is not documented"


def jsonschema_meta_check(name: str, schema: dict) -> None:
    import jsonschema

    jsonschema.Draft4Validator.check_schema(schema)
    assert schema.get("additionalProperties") is False, f"{name} should list all its fields"


def test_request_examples_match_the_request_schema(spec):
    check_schema(spec, "AskRequest", {"question": "q"})
    check_schema(spec, "AskRequest", {"question": "q", "top_k": 3, "history": [
        {"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]})
    check_schema(spec, "AskRequest", {"question": "q", "history": [
        {"role": "user", "content": "a"}, {"role": "assistant", "content": "b", "short_answer": "c"},
        {"role": "user", "content": "d"}, {"role": "assistant", "content": "e", "short_answer": None}]})
    with pytest.raises(Exception, match="Additional properties"):
        check_schema(spec, "AskRequest", {"question": "q", "extra": 1})


# ---- successful calls ----


def test_health(client, spec, engine):
    response = client.get("/api/health")
    assert response.status_code == 200
    assert response.get_json() == engine.health() == {
        "status": "ok", "documents": 1, "chunks": engine.health()["chunks"], "model": "all-MiniLM-L6-v2",
        "reader": "span"}
    check_response(spec, "/api/health", "get", 200, response.content_type, response.get_json())


def test_ask_answers_with_exact_quotes(client, spec, engine, seed_text):
    response = ask(client, {"question": DELEGATION})
    assert response.status_code == 200
    result = response.get_json()
    check_response(spec, "/api/ask", "post", 200, response.content_type, result)
    assert result["question"] == DELEGATION
    assert result["answerable"] is True
    assert result["answer"].startswith("Sonata Coulter, U.S. deputy assistant secretary")
    assert result["citations"][0]["n"] == 1 and result["citations"][0]["quote"] == result["answer"]
    check_quotes(result, seed_text)
    direct = engine.ask(DELEGATION)
    result.pop("took_ms"), direct.pop("took_ms")
    assert result == direct  # the API returns exactly the engine's answer
    assert list(response.get_json()) == list(engine.ask(DELEGATION))  # in the engine's key order


def test_follow_up_uses_history(client, spec, seed_text):
    first = ask(client, {"question": DELEGATION}).get_json()
    history = [{"role": "user", "content": DELEGATION}, {"role": "assistant", "content": first["answer"]}]
    response = ask(client, {"question": "What is her title?", "history": history})
    assert response.status_code == 200
    result = response.get_json()
    check_response(spec, "/api/ask", "post", 200, response.content_type, result)
    assert result["answerable"] is True
    assert "deputy assistant secretary" in result["answer"].lower()
    check_quotes(result, seed_text)


def test_the_answer_shows_the_conversations_subject_and_the_query(client, spec):
    """A client that sends only what it showed (no ``source``) still keeps the subject: the
    document its last answer quoted, which the answer names with the query it searched."""
    first = ask(client, {"question": DELEGATION}).get_json()
    assert first["subject"] == {"names": [], "sources": [SEED_FILE.name]}
    history = [{"role": "user", "content": DELEGATION}, {"role": "assistant", "content": first["answer"]},
               {"role": "user", "content": "Where did they meet?"},
               {"role": "assistant", "content": "Nothing here.", "source": "not/indexed.txt"}]
    response = ask(client, {"question": "What is her title?", "history": history})
    result = response.get_json()
    check_response(spec, "/api/ask", "post", 200, response.content_type, result)
    assert result["subject"]["sources"] == [SEED_FILE.name]
    assert result["query"] != result["question"] and DELEGATION in result["query"]


def test_off_topic_question_abstains_but_lists_passages(client, spec, seed_text):
    response = ask(client, {"question": "How tall is Mount Everest?"})
    result = response.get_json()
    assert response.status_code == 200
    check_response(spec, "/api/ask", "post", 200, response.content_type, result)
    assert result["answerable"] is False and result["answer"] == "" and result["citations"] == []
    assert result["passages"]
    check_quotes(result, seed_text)


@pytest.mark.parametrize("top_k", [1, 2, 20])
def test_top_k_limits_passages(client, spec, top_k):
    response = ask(client, {"question": DELEGATION, "top_k": top_k})
    assert response.status_code == 200
    check_response(spec, "/api/ask", "post", 200, response.content_type, response.get_json())
    assert 1 <= len(response.get_json()["passages"]) <= top_k


def test_ask_within_a_document(client, spec):
    response = ask(client, {"question": DELEGATION, "sources": [SEED_FILE.name]})
    assert response.status_code == 200
    check_response(spec, "/api/ask", "post", 200, response.content_type, response.get_json())
    assert response.get_json()["scope"] == [SEED_FILE.name]
    for sources in (["../" + SEED_FILE.name], ["nope.txt"], [""], "x", [None]):
        response = ask(client, {"question": DELEGATION, "sources": sources})
        assert response.status_code == 400, sources
        assert response.get_json()["error"]["code"] == "invalid_request"


def test_search_returns_the_passages_ask_would_list(client, spec, engine, seed_text):
    response = client.post("/api/search", json={"query": DELEGATION, "top_k": 3})
    assert response.status_code == 200
    body = response.get_json()
    check_response(spec, "/api/search", "post", 200, response.content_type, body)
    assert body == {"passages": engine.ask(DELEGATION, top_k=3)["passages"]}
    assert all(p["text"] == seed_text[p["start"] : p["end"]] for p in body["passages"])


@pytest.mark.parametrize(("body", "message"), [
    ({"query": "  "}, "query is empty"),
    ({"question": DELEGATION}, "unknown field 'question'"),
    ({}, "missing field 'query'"),
    ({"query": DELEGATION, "top_k": 0}, "top_k must be a whole number from 1 to 20"),
])
def test_search_refuses_what_the_mcp_tool_refuses(client, body, message):
    response = client.post("/api/search", json=body)
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "invalid_request"
    assert message in response.get_json()["error"]["message"]


def test_source_is_the_whole_document(client, spec, seed_text):
    response = client.get(f"/api/sources/{SEED_FILE.name}")
    assert response.status_code == 200
    body = response.get_json()
    check_response(spec, "/api/sources/{source}", "get", 200, response.content_type, body)
    assert body == {"source": SEED_FILE.name, "text": seed_text}


def test_page_and_assets(client):
    page = client.get("/")
    assert page.status_code == 200 and page.mimetype == "text/html"
    html = page.get_data(as_text=True)
    assert '<script src="/static/app.js" defer></script>' in html
    assert html.count("<script") == 1  # no inline script
    assert not re.search(r"\son[a-z]+\s*=", html)  # no inline event handlers (onclick=...)
    assert "http://" not in html and "https://" not in html  # no external resources
    for path, mimetype in (("/static/app.js", "text/javascript"), ("/static/app.css", "text/css")):
        response = client.get(path)
        assert response.status_code == 200 and response.mimetype == mimetype
        response.close()


def test_openapi_served_as_json(client, spec):
    response = client.get("/openapi.json")
    check_response(spec, "/openapi.json", "get", 200, response.content_type, response.get_json())


# ---- errors ----

BAD_ASKS = [
    pytest.param(b"{", "malformed_json", id="malformed-json"),
    pytest.param(b"\xff\xfe{}", "malformed_json", id="not-utf8"),
    pytest.param(b"[" * 20000 + b"]" * 20000, "malformed_json", id="nested-too-deep"),
    pytest.param(b"[]", "invalid_request", id="array-body"),
    pytest.param(b'"Who?"', "invalid_request", id="string-body"),
    pytest.param(b"null", "invalid_request", id="null-body"),
    pytest.param(b"{}", "invalid_request", id="missing-question"),
    pytest.param({"question": ""}, "invalid_request", id="empty-question"),
    pytest.param({"question": "   \n"}, "invalid_request", id="blank-question"),
    pytest.param({"question": "x" * 2001}, "invalid_request", id="over-long-question"),
    pytest.param({"question": "who\u0000"}, "invalid_request", id="nul-in-question"),
    pytest.param({"question": 42}, "invalid_request", id="question-not-string"),
    pytest.param({"question": ["Who?"]}, "invalid_request", id="question-list"),
    pytest.param({"question": "Who?", "history": "hi"}, "invalid_request", id="history-not-list"),
    pytest.param({"question": "Who?", "history": [{"role": "user", "content": "x"}] * 21},
                 "invalid_request", id="history-too-long"),
    pytest.param({"question": "Who?", "history": [{"role": "system", "content": "x"}]},
                 "invalid_request", id="history-bad-role"),
    pytest.param({"question": "Who?", "history": [{"role": "user", "content": 1}]},
                 "invalid_request", id="history-content-not-string"),
    pytest.param({"question": "Who?", "history": [{"role": "user", "content": "x", "x": 1}]},
                 "invalid_request", id="history-extra-key"),
    pytest.param({"question": "Who?", "history": ["x"]}, "invalid_request", id="history-turn-not-object"),
    pytest.param({"question": "Who?", "history": [{"role": "assistant", "content": "x", "short_answer": 1}]},
                 "invalid_request", id="history-short-answer-not-string"),
    pytest.param({"question": "Who?", "history": [{"role": "assistant", "content": "x", "source": 7}]},
                 "invalid_request", id="history-source-not-string"),
    pytest.param({"question": "Who?", "history": [{"role": "assistant", "content": "x",
                                                   "source": "s" * 1001}]},
                 "invalid_request", id="history-source-too-long"),
    pytest.param({"question": "Who?", "top_k": 0}, "invalid_request", id="top-k-zero"),
    pytest.param({"question": "Who?", "top_k": 21}, "invalid_request", id="top-k-too-big"),
    pytest.param({"question": "Who?", "top_k": "5"}, "invalid_request", id="top-k-string"),
    pytest.param({"question": "Who?", "top_k": True}, "invalid_request", id="top-k-bool"),
    pytest.param({"question": "Who?", "top_k": 2.5}, "invalid_request", id="top-k-float"),
    pytest.param({"question": "Who?", "debug": True}, "invalid_request", id="unknown-key"),
]


@pytest.mark.parametrize(("body", "code"), BAD_ASKS)
def test_ask_rejects_bad_requests_with_400(client, spec, body, code):
    data = body if isinstance(body, bytes) else json.dumps(body)
    response = client.post("/api/ask", data=data, content_type="application/json")
    assert_error(response.status_code, response.get_json(), 400, code)
    check_response(spec, "/api/ask", "post", 400, response.content_type, response.get_json())


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded",
                                          "multipart/form-data; boundary=x"])
def test_ask_needs_a_json_content_type(client, spec, content_type):
    headers = {"Content-Type": content_type} if content_type else {}
    response = client.post("/api/ask", data=json.dumps({"question": DELEGATION}), headers=headers)
    assert_error(response.status_code, response.get_json(), 415, "unsupported_media_type")
    check_response(spec, "/api/ask", "post", 415, response.content_type, response.get_json())


def test_body_over_64_kib_is_413(client, spec):
    body = json.dumps({"question": "Who?", "history": [{"role": "user", "content": "x" * 70000}]})
    assert len(body) > 64 * 1024
    response = client.post("/api/ask", data=body, content_type="application/json")
    assert_error(response.status_code, response.get_json(), 413, "payload_too_large")
    check_response(spec, "/api/ask", "post", 413, response.content_type, response.get_json())


def test_body_just_under_the_limit_is_read(client):
    # 64 KiB is the limit on the body; the engine then judges the history it carries.
    content = "x" * 8000
    body = json.dumps({"question": "Who?", "history": [{"role": "user", "content": content}] * 7})
    assert len(body) < 64 * 1024
    assert client.post("/api/ask", data=body, content_type="application/json").status_code == 200


@pytest.mark.parametrize("path", ["/nope", "/api", "/api/nope", "/api/ask/more", "/static/nope.js",
                                  "/api/health/", "/index.html"])
def test_unknown_paths_are_json_404(client, path):
    response = client.get(path)
    assert_error(response.status_code, response.get_json(), 404, "not_found")


@pytest.mark.parametrize(("method", "path", "spec_path"), [
    ("GET", "/api/ask", "/api/ask"),
    ("PUT", "/api/ask", "/api/ask"),
    ("POST", "/api/health", "/api/health"),
    ("DELETE", f"/api/sources/{SEED_FILE.name}", "/api/sources/{source}"),
    ("POST", f"/api/sources/{SEED_FILE.name}", "/api/sources/{source}"),
    ("POST", "/", "/"),
    ("POST", "/openapi.json", "/openapi.json"),
])
def test_wrong_method_is_json_405(client, spec, method, path, spec_path):
    response = client.open(path, method=method)
    assert_error(response.status_code, response.get_json(), 405, "method_not_allowed")
    assert response.headers["Allow"]
    documented = next(iter(spec["paths"][spec_path]))  # the operation that exists on this path
    check_response(spec, spec_path, documented, 405, response.content_type, response.get_json())


TRAVERSALS = [
    "no-such-file.txt",
    f"../seeds/{SEED_FILE.name}",
    f"seeds/{SEED_FILE.name}",
    "../pyproject.toml",
    "../../../../etc/passwd",
    "..%2F..%2F..%2Fetc%2Fpasswd",
    "%2Fetc%2Fpasswd",
    "%2e%2e/%2e%2e/etc/passwd",
    "/etc/passwd",
    str(SEED_FILE),
    str(SEED_FILE).lstrip("/"),
    "pyproject.toml",
    "web/app.py",
    f"{SEED_FILE.name}/",
    f"./{SEED_FILE.name}",
    f"{SEED_FILE.name}%00",
]


@pytest.mark.parametrize("source", TRAVERSALS)
def test_sources_serve_only_indexed_documents(client, spec, source):
    response = client.get(f"/api/sources/{source}")
    assert_error(response.status_code, response.get_json(), 404)
    assert "root:" not in response.get_data(as_text=True)
    if response.get_json()["error"]["code"] == "unknown_source":
        check_response(spec, "/api/sources/{source}", "get", 404, response.content_type,
                       response.get_json())


def test_seed_really_exists_under_the_traversal_names():
    assert (SEEDS / SEED_FILE.name).is_file()  # so the 404s above are not for want of a file


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/api/health"), ("POST", "/api/ask"), ("GET", f"/api/sources/{SEED_FILE.name}")])
def test_no_index_is_503(spec, method, path):
    client = create_app(None).test_client()
    response = client.open(path, method=method, json={"question": DELEGATION})
    assert_error(response.status_code, response.get_json(), 503, "no_index")
    spec_path = "/api/sources/{source}" if "sources" in path else path
    check_response(spec, spec_path, method, 503, response.content_type, response.get_json())
    assert client.get("/").status_code == 200  # the page still loads and shows the error


def test_a_bug_is_a_json_500_without_details(seed_index, spec, caplog):
    broken = Engine(seed_index)
    broken.data = None  # a real engine in a broken state: every call raises AttributeError
    app = create_app(broken)
    client = app.test_client()
    for method, path, spec_path in (("GET", "/api/health", "/api/health"),
                                    ("POST", "/api/ask", "/api/ask")):
        response = client.open(path, method=method, json={"question": DELEGATION})
        assert_error(response.status_code, response.get_json(), 500, "internal_error")
        text = response.get_data(as_text=True)
        assert "Traceback" not in text and "AttributeError" not in text
        check_response(spec, spec_path, method, 500, response.content_type, response.get_json())
        for name in SECURITY_HEADERS:
            assert name in response.headers
    assert "AttributeError" in caplog.text  # but the log has it


@pytest.mark.parametrize(("method", "path", "body"), [
    ("GET", "/", None),
    ("GET", "/api/health", None),
    ("GET", "/openapi.json", None),
    ("GET", "/static/app.js", None),
    ("GET", "/static/app.css", None),
    ("POST", "/api/ask", {"question": DELEGATION}),
    ("POST", "/api/ask", {"question": ""}),
    ("GET", "/nope", None),
    ("DELETE", "/api/ask", None),
    ("GET", f"/api/sources/{SEED_FILE.name}", None),
    ("GET", "/api/sources/nope", None),
])
def test_security_headers_on_every_response(client, method, path, body):
    response = client.open(path, method=method, json=body)
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "'unsafe-inline'" not in csp
    assert "frame-ancestors 'none'" in csp and "object-src 'none'" in csp
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    response.close()
