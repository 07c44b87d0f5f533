"""The Flask app: HTTP in, ``Engine`` calls, HTTP out — no question answering happens here.

The answer contract (``qa.contract``) checks questions, history and top_k, for
the CLI and the MCP server too; this layer only checks that the body is strict
JSON (no NaN, no duplicate keys, no lone surrogates) holding an object.

Around that: the access rules of security.py (token, trusted Host names), a
per-client rate limit on /api/ask, and an optional watcher that reloads the
index when it is rebuilt (reloading.py).
"""

from __future__ import annotations

import json
import math
import time
from typing import Any

from flask import Flask, Response, jsonify, render_template, request
from flask_limiter import Limiter
from flask_limiter.errors import RateLimitExceeded
from flask_limiter.util import get_remote_address
from limits import parse_many

from qa.contract import AskRequest
from qa.engine import Engine
from qa.library import Library, Upload

from . import errors
from .errors import ApiError
from .openapi import spec
from .reloading import IndexWatcher
from .security import SECURITY_HEADERS, bearer_matches, host_name, is_loopback

UPLOAD_FIELDS = frozenset({"file", "replace"})
_YES, _NO = ("true", "1", "yes", "on"), ("false", "0", "no", "off", "")
DEFAULT_RATE_LIMIT = "120/minute;20/second"
_OFF = ("", "0", "off", "none")


class BadSetting(ValueError):
    """A server setting that cannot be used (reported as a usage error)."""


def rate_limit_setting(value: str | None) -> str | None:
    """A rate limit such as "60/minute" or "120/minute;20/second", checked; None for "0"/"off"."""
    if value is None or value.strip().lower() in _OFF:
        return None
    try:
        items = parse_many(value)
    except ValueError:
        items = []
    if not items or any(item.amount < 1 for item in items):
        raise BadSetting(f"rate limit {value!r} is not like '60/minute' or '120/minute;20/second' "
                         "(or 'off')")
    return value.strip()


def create_app(engine: Engine | None, *, token: str | None = None, rate_limit: str | None = None,
               trusted_hosts_only: bool = True, watcher: IndexWatcher | None = None,
               library: Library | None = None) -> Flask:
    """Build the app around an already loaded engine (None: every API call answers 503).

    token: required as ``Authorization: Bearer`` on every /api/* call. rate_limit: per
    client address on /api/ask (None: no limit). trusted_hosts_only: without a token,
    answer only requests addressed to a loopback name. watcher: polled on API calls.
    library: the engine's documents, for /api/documents (None: listed, never changed).
    """
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = errors.MAX_BODY_BYTES
    app.json.sort_keys = False  # keep the engine's key order: question, answer, ...
    app.json.ensure_ascii = False
    app.url_map.merge_slashes = False  # "//etc/passwd" is a 404, not a redirect to "/etc/passwd"
    errors.register(app)
    check_host = trusted_hosts_only and not token

    def loaded() -> Engine:
        if engine is None:
            raise ApiError(503, "no_index", "no index loaded; build one with: qa index SOURCES")
        return engine

    def documents() -> Library:
        nonlocal library
        eng = loaded()
        if library is None:  # listed, never changed (made on first use: the index may be broken)
            library = Library(eng, read_only=True)
        return library

    @app.before_request
    def _access() -> None:
        if check_host and not is_loopback(host_name(request.host)):
            raise ApiError(400, "untrusted_host", "this server answers only requests addressed to "
                           "localhost, 127.0.0.1 or [::1] (start it with --token to allow others)")
        if request.path.startswith("/api/"):
            if token is not None and not bearer_matches(request.headers.get("Authorization"), token):
                raise ApiError(401, "unauthorized", "this server needs an access token: "
                               "send Authorization: Bearer TOKEN")
            if watcher is not None:
                watcher.poll()

    limiter = None
    if rate_limit:
        limiter = Limiter(get_remote_address, app=app, storage_uri="memory://", strategy="moving-window",
                          headers_enabled=False)

        @app.errorhandler(RateLimitExceeded)
        def _too_many(exc: RateLimitExceeded) -> Response:
            response = errors.error_response(
                429, "rate_limited", f"too many questions from this address (limit: {exc.description}); "
                "wait and try again")
            response.headers["Retry-After"] = str(_retry_after(limiter))
            return response

    @app.after_request
    def _headers(response: Response) -> Response:
        response.headers.update(SECURITY_HEADERS)
        if request.path.startswith("/api/"):
            response.headers["Cache-Control"] = "no-store"
        if response.status_code == 401:
            response.headers["WWW-Authenticate"] = 'Bearer realm="qa"'
        return response

    @app.get("/")
    def index() -> str:
        return render_template("index.html")

    @app.get("/openapi.json")
    def openapi() -> Response:
        return jsonify(spec())

    @app.get("/api/health")
    def health() -> Response:
        return jsonify(loaded().health())

    def ask() -> Response:
        eng = loaded()
        return jsonify(eng.answer(AskRequest.from_json(json_object()))[0])

    # The limit is checked inside the view (after _access): a request without the token never counts.
    app.add_url_rule("/api/ask", "ask", limiter.limit(rate_limit)(ask) if limiter else ask, methods=["POST"])

    @app.get("/api/sources/<path:source>")
    def source(source: str) -> Response:
        text = loaded().source_text(source)
        if text is None:
            raise ApiError(404, "unknown_source", f"no indexed document is called {source!r}")
        return jsonify({"source": source, "text": text})

    @app.get("/api/documents")
    def list_documents() -> Response:
        lib = documents()
        return jsonify({**lib.status(), "documents": lib.documents()})

    @app.post("/api/documents")
    def upload() -> tuple[Response, int, dict[str, str]]:
        lib = documents()
        if request.mimetype != "multipart/form-data":
            raise ApiError(415, "unsupported_media_type",
                           "send the files as multipart/form-data in the form field 'file'")
        request.max_content_length = errors.MAX_UPLOAD_BYTES
        form, files = request.form, request.files  # over the limit: 413 before the body is parsed
        # A part without a name (werkzeug gives it the key None) is unknown too.
        unknown = sorted(name or "(a part without a name)"
                         for name in (set(form) | set(files)) - UPLOAD_FIELDS)
        if unknown:
            raise ApiError(400, "invalid_upload", f"unknown form field(s): {', '.join(unknown)}; "
                           "send the files in 'file' and, to replace files of the same name, replace=true")
        if "file" in form:
            raise ApiError(400, "invalid_upload", "the field 'file' must hold files, not text")
        replace = form.get("replace", "").strip().lower()
        if replace not in _YES + _NO:
            raise ApiError(400, "invalid_upload", "replace must be true or false")
        job = lib.add([Upload(f.filename or "", f.stream) for f in files.getlist("file")],
                      replace=replace in _YES)
        return jsonify({"job": job.id}), 202, {"Location": f"/api/jobs/{job.id}"}

    @app.get("/api/jobs/<job_id>")
    def job(job_id: str) -> Response:
        return jsonify(documents().job(job_id).as_dict())

    @app.delete("/api/documents/<path:source>")
    def delete_document(source: str) -> tuple[Response, int, dict[str, str]]:
        job = documents().remove(source)
        return jsonify({"job": job.id}), 202, {"Location": f"/api/jobs/{job.id}"}

    return app


def _retry_after(limiter: Limiter) -> int:
    """Whole seconds until the limit that was hit lets this client in again (at least 1)."""
    try:
        current = limiter.current_limit
        reset = current.reset_at if current else time.time() + 1
    except Exception:  # the storage could not say: a second is a safe guess
        reset = time.time() + 1
    return max(1, math.ceil(reset - time.time()))


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """An object hook: {"question": "a", "question": "b"} is refused, not read as "b"."""
    body: dict[str, Any] = {}
    for key, value in pairs:
        if key in body:
            raise ApiError(400, "malformed_json", f"the key {key!r} appears twice in one object")
        body[key] = value
    return body


def _has_lone_surrogate(value: object) -> bool:
    r"""Whether any string in the parsed JSON holds half a UTF-16 pair ("\ud800" alone).

    Such a string is not text: it cannot be encoded as UTF-8 (so the answer could not be
    sent back). Walked with a stack, not recursion: the body may be nested deeply.
    """
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return True
        elif isinstance(item, dict):
            stack.extend(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def json_object() -> dict[str, Any]:
    """The request body as a JSON object, or the 415/413/400 that explains why not."""
    if not request.is_json:
        raise ApiError(415, "unsupported_media_type",
                       "send the body as JSON with Content-Type: application/json")
    raw = request.get_data(cache=False)  # over MAX_CONTENT_LENGTH: 413 from Werkzeug
    try:
        text = raw.decode("utf-8")  # JSON on the wire is UTF-8 (RFC 8259), nothing else is guessed
    except UnicodeDecodeError:
        raise ApiError(400, "malformed_json", "the request body is not valid UTF-8") from None
    try:
        body = json.loads(text, parse_constant=_reject_constant, object_pairs_hook=_no_duplicates)
    except (ValueError, RecursionError):
        raise ApiError(400, "malformed_json", "the request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_request", "the request body must be a JSON object")
    if _has_lone_surrogate(body):
        raise ApiError(400, "malformed_json", "the request body escapes half a UTF-16 surrogate pair "
                       "(\\ud800-\\udfff alone), which is not a character")
    return body
