"""The question routes: health, ask, search and the stored text of a source.

Requests are checked by the answer contract (``qa.contract``), as the CLI's and the MCP
server's are; here only the body is read, as strict JSON (no NaN, no duplicate keys, no
lone surrogates) holding an object.
"""

from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, Response, jsonify, request

from qa.contract import AskRequest, SearchRequest

from . import context
from .errors import ApiError

api = Blueprint("api", __name__)


@api.get("/api/health")
def health() -> Response:
    return jsonify(context.engine().health())


@api.post("/api/ask")
def ask() -> Response:
    engine = context.engine()
    return jsonify(engine.answer(AskRequest.from_json(json_object()))[0])


@api.post("/api/search")
def search() -> Response:
    engine = context.engine()
    return jsonify({"passages": engine.find(SearchRequest.from_json(json_object()))})


@api.get("/api/sources/<path:source>")
def source(source: str) -> Response:
    text = context.engine().source_text(source)
    if text is None:
        raise ApiError(404, "unknown_source", f"no indexed document is called {source!r}")
    return jsonify({"source": source, "text": text})


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
