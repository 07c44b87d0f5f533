"""The Flask app: HTTP in, ``Engine`` calls, HTTP out — no question answering happens here.

The engine validates questions, history and top_k itself; this layer only
checks that the body is a JSON object with known keys, so the CLI and the
API can never disagree about what a valid request is.
"""

from __future__ import annotations

import json
from typing import Any

from flask import Flask, Response, jsonify, render_template, request

from qa.engine import Engine

from . import errors
from .errors import ApiError
from .openapi import spec

ASK_KEYS = frozenset({"question", "history", "top_k"})

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
        "frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
}


def create_app(engine: Engine | None) -> Flask:
    """Build the app around an already loaded engine (None: every API call answers 503)."""
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = errors.MAX_BODY_BYTES
    app.json.sort_keys = False  # keep the engine's key order: question, answer, ...
    app.json.ensure_ascii = False
    app.url_map.merge_slashes = False  # "//etc/passwd" is a 404, not a redirect to "/etc/passwd"
    errors.register(app)

    def loaded() -> Engine:
        if engine is None:
            raise ApiError(503, "no_index", "no index loaded; build one with: qa index SOURCES")
        return engine

    @app.after_request
    def _headers(response: Response) -> Response:
        response.headers.update(SECURITY_HEADERS)
        if request.path.startswith("/api/"):
            response.headers["Cache-Control"] = "no-store"
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

    @app.post("/api/ask")
    def ask() -> Response:
        eng = loaded()
        body = json_object()
        unknown = sorted(set(body) - ASK_KEYS)
        if unknown:
            raise ApiError(400, "invalid_request", f"unknown field(s): {', '.join(unknown)}; "
                           f"send only {', '.join(sorted(ASK_KEYS))}")
        if "question" not in body:
            raise ApiError(400, "invalid_request", "question is required")
        return jsonify(eng.ask(body["question"], body.get("history"), body.get("top_k")))

    @app.get("/api/sources/<path:source>")
    def source(source: str) -> Response:
        text = loaded().source_text(source)
        if text is None:
            raise ApiError(404, "unknown_source", f"no indexed document is called {source!r}")
        return jsonify({"source": source, "text": text})

    return app


def json_object() -> dict[str, Any]:
    """The request body as a JSON object, or the 415/413/400 that explains why not."""
    if not request.is_json:
        raise ApiError(415, "unsupported_media_type",
                       "send the body as JSON with Content-Type: application/json")
    raw = request.get_data(cache=False)  # over MAX_CONTENT_LENGTH: 413 from Werkzeug
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        raise ApiError(400, "malformed_json", "the request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_request", "the request body must be a JSON object")
    return body
