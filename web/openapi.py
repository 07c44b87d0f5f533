"""The OpenAPI 3.0 description of the API, kept next to the code it describes.

The web tests validate real responses against these schemas, so a change to
the answer JSON that is not made here too fails the build.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import metadata

from qa.conversation import MAX_CHARS, MAX_TURNS
from qa.engine import MAX_TOP_K

from .errors import MAX_BODY_BYTES


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(name: str, description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": _ref(name)}}}


def _obj(properties: dict, required: list[str] | None = None, **extra) -> dict:
    return {"type": "object", "properties": properties,
            "required": list(properties) if required is None else required,
            "additionalProperties": False, **extra}


_OFFSET = {"type": "integer", "minimum": 0}
_PAGE = {"type": "integer", "minimum": 1, "description": "PDF page the span starts on (PDFs only)"}

SCHEMAS: dict[str, dict] = {
    "AskRequest": _obj({
        "question": {"type": "string", "minLength": 1, "maxLength": MAX_CHARS,
                     "description": "the question; must not be blank or contain NUL"},
        "history": {"type": "array", "maxItems": MAX_TURNS, "items": _ref("Turn"),
                    "description": "earlier turns, oldest first, for follow-up questions"},
        "top_k": {"type": "integer", "minimum": 1, "maximum": MAX_TOP_K, "default": 5,
                  "description": "how many passages to return"},
    }, required=["question"]),
    "Turn": _obj({
        "role": {"type": "string", "enum": ["user", "assistant"]},
        "content": {"type": "string", "maxLength": MAX_CHARS * 4},
    }),
    "Citation": _obj({
        "n": {"type": "integer", "minimum": 1, "description": "marker number, [n] in the answer"},
        "source": {"type": "string", "description": "indexed document the quote is from"},
        "start": _OFFSET,
        "end": _OFFSET,
        "quote": {"type": "string", "description": "exactly text[start:end] of the source"},
        "page": _PAGE,
        "corroborates": {"type": "integer", "minimum": 1,
                         "description": "present when this quote supports citation n"},
    }, required=["n", "source", "start", "end", "quote"]),
    "Passage": _obj({
        "source": {"type": "string"},
        "start": _OFFSET,
        "end": _OFFSET,
        "text": {"type": "string", "description": "exactly text[start:end] of the source"},
        "score": {"type": "number"},
        "page": _PAGE,
    }, required=["source", "start", "end", "text", "score"]),
    "Answer": _obj({
        "question": {"type": "string"},
        "answer": {"type": "string", "description": "a quote from the sources; empty when abstaining"},
        "answerable": {"type": "boolean", "description": "false: the sources don't say"},
        "confidence": {"type": "number", "minimum": 0, "maximum": 1},
        "citations": {"type": "array", "items": _ref("Citation")},
        "passages": {"type": "array", "items": _ref("Passage"),
                     "description": "the closest passages, also when abstaining"},
        "took_ms": {"type": "number", "minimum": 0},
    }),
    "Health": _obj({
        "status": {"type": "string", "enum": ["ok"]},
        "documents": {"type": "integer", "minimum": 0},
        "chunks": {"type": "integer", "minimum": 0},
        "model": {"type": "string"},
    }),
    "Source": _obj({
        "source": {"type": "string"},
        "text": {"type": "string", "description": "the whole stored text; citation offsets index it"},
    }),
    "Error": _obj({
        "error": _obj({
            "code": {"type": "string", "description": "machine-readable, e.g. invalid_request"},
            "message": {"type": "string", "description": "what went wrong, for a person"},
        }),
    }),
}

_ERRORS = {
    "400": "malformed JSON, missing or invalid question, history or top_k, or unknown fields",
    "404": "no such endpoint or document",
    "405": "method not allowed",
    "413": f"body larger than {MAX_BODY_BYTES // 1024} KiB",
    "415": "body is not application/json",
    "500": "a bug: reported without details, logged by the server",
    "503": "no index loaded",
}


def _errors(*statuses: str) -> dict:
    return {s: _json("Error", _ERRORS[s]) for s in statuses}


def _paths() -> dict:
    return {
        "/api/ask": {"post": {
            "summary": "Answer a question with quotes from the indexed documents",
            "operationId": "ask",
            "requestBody": {"required": True,
                            "content": {"application/json": {"schema": _ref("AskRequest")}}},
            "responses": {"200": _json("Answer", "the answer, or an abstention with the closest passages"),
                          **_errors("400", "405", "413", "415", "500", "503")},
        }},
        "/api/health": {"get": {
            "summary": "Whether an index is loaded, and its size",
            "operationId": "health",
            "responses": {"200": _json("Health", "the index is loaded"), **_errors("405", "500", "503")},
        }},
        "/api/sources/{source}": {"get": {
            "summary": "The full text of one indexed document",
            "description": "source is the name a citation gives; it may contain '/' (sent as-is). "
                           "Only indexed documents are served, never other files.",
            "operationId": "source",
            "parameters": [{"name": "source", "in": "path", "required": True,
                            "schema": {"type": "string"}}],
            "responses": {"200": _json("Source", "the document's text"),
                          **_errors("404", "405", "500", "503")},
        }},
        "/openapi.json": {"get": {
            "summary": "This document",
            "operationId": "openapi",
            "responses": {"200": {"description": "OpenAPI 3.0 document",
                                  "content": {"application/json": {"schema": {"type": "object"}}}},
                          **_errors("405")},
        }},
        "/": {"get": {
            "summary": "The chat page",
            "operationId": "page",
            "responses": {"200": {"description": "HTML page",
                                  "content": {"text/html": {"schema": {"type": "string"}}}},
                          **_errors("405")},
        }},
    }


def _version() -> str:
    try:
        return metadata.version("qa-docs")
    except metadata.PackageNotFoundError:
        return "0.0.0"


@lru_cache(maxsize=1)
def spec() -> dict:
    """The OpenAPI document (built once; treat it as read-only)."""
    return {
        "openapi": "3.0.3",
        "info": {"title": "qa: cited answers from your documents", "version": _version(),
                 "description": "Extractive question answering: every answer is a quote, "
                                "with the document and character offsets it came from. "
                                'Every error is {"error": {"code", "message"}}.'},
        "paths": _paths(),
        "components": {"schemas": SCHEMAS},
    }
