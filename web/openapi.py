"""The OpenAPI 3.0 description of the API, kept next to the code it describes.

The web tests validate real responses against these schemas, so a change to
the answer JSON that is not made here too fails the build.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import metadata

from qa import contract
from qa.library import MAX_FILES

from .errors import MAX_BODY_BYTES, MAX_UPLOAD_BYTES


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(name: str, description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": _ref(name)}}}


def _obj(properties: dict, required: list[str] | None = None, **extra) -> dict:
    return {"type": "object", "properties": properties,
            "required": list(properties) if required is None else required,
            "additionalProperties": False, **extra}


def _openapi(schema: object) -> object:
    """A schema of the answer contract in OpenAPI 3.0's dialect: its references to the
    components, and "type": [T, "null"] or "anyOf": [X, null] as "nullable"."""
    if isinstance(schema, list):
        return [_openapi(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _openapi(v) for k, v in schema.items()}
    if isinstance(out.get("$ref"), str):
        out["$ref"] = out["$ref"].replace("#/$defs/", "#/components/schemas/")
    kinds = out.get("type")
    if isinstance(kinds, list) and "null" in kinds:
        (out["type"],) = [k for k in kinds if k != "null"]
        out["nullable"] = True
    options = out.get("anyOf")
    if isinstance(options, list) and {"type": "null"} in options:
        del out["anyOf"]
        out["allOf"] = [o for o in options if o != {"type": "null"}]
        out["nullable"] = True
    return out


# The answer contract's schemas, then the API's own.
SCHEMAS: dict[str, dict] = {name: _openapi(schema) for name, schema in contract.SCHEMAS.items()} | {
    "Health": _obj({
        "status": {"type": "string", "enum": ["ok"]},
        "documents": {"type": "integer", "minimum": 0},
        "chunks": {"type": "integer", "minimum": 0},
        "model": {"type": "string"},
        "reader": {"type": "string", "enum": ["span", "sentence"]},
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
    "DocumentList": _obj({
        "documents": {"type": "array", "items": _ref("Document")},
        "uploads": {"type": "boolean", "description": "whether files can be added and removed here"},
        "read_only": {"type": "boolean", "description": "started with --read-only"},
        "folder": {"type": "string", "nullable": True,
                   "description": "where uploads go: the folder's absolute path, ending in a separator"},
        "reason": {"type": "string", "nullable": True, "description": "why uploads are off, if they are"},
        "formats": {"type": "array", "items": {"type": "string"}, "description": "accepted file suffixes"},
        "max_bytes": {"type": "integer", "description": "the largest file accepted"},
        "max_files": {"type": "integer", "description": "the most files in one upload"},
    }),
    "Document": _obj({
        "source": {"type": "string", "description": "the name citations give"},
        "bytes": {"type": "integer", "minimum": 0, "nullable": True, "description": "file size when indexed"},
        "chunks": {"type": "integer", "minimum": 0, "description": "passages it was cut into"},
        "indexed_at": {"type": "string", "nullable": True,
                       "description": "UTC time this content was indexed (ISO 8601)"},
        "uploaded": {"type": "boolean",
                     "description": "added through this server; only these can be deleted"},
    }),
    "Upload": _obj({
        "file": {"type": "array", "minItems": 1, "maxItems": MAX_FILES,
                 "items": {"type": "string", "format": "binary"},
                 "description": "the files; the name is reduced to a plain base name"},
        "replace": {"type": "string", "enum": ["true", "false"], "default": "false",
                    "description": "replace uploaded files of the same name (else 409)"},
    }, required=["file"]),
    "JobStarted": _obj({"job": {"type": "string", "description": "GET /api/jobs/{job} follows it"}}),
    "Job": _obj({
        "id": {"type": "string"},
        "action": {"type": "string", "enum": ["add", "delete"]},
        "files": {"type": "array", "items": {"type": "string"}},
        "state": {"type": "string", "enum": ["queued", "running", "done", "failed"]},
        "progress": _obj({k: {"type": "integer", "minimum": 0} for k in (
            "documents_done", "documents_total", "chunks_done", "chunks_total")}),
        "messages": {"type": "array", "items": {"type": "string"},
                     "description": "one line per skipped file, as qa index prints it"},
        "summary": {"type": "string", "nullable": True,
                    "description": "what the build did, once done, as the server log says it"},
        "message": {"type": "string", "nullable": True,
                    "description": "what the job did, for a person, once finished: 'Added notes.txt: "
                                   "2 passages', 'Replaced notes.txt: 1 passage', 'Removed notes.txt'"},
        "error": {"type": "string", "nullable": True, "description": "why it failed"},
    }),
}

_ERRORS = {
    "400": "malformed JSON (also NaN, Infinity, a key twice, a lone surrogate), missing or invalid "
           "question, history or top_k, or unknown fields; or the Host is not trusted",
    "401": "this server needs a token: send Authorization: Bearer TOKEN",
    "403": "this server is read-only, or the document was not uploaded here",
    "404": "no such endpoint, document or job",
    "405": "method not allowed",
    "409": "a file of that name exists (send replace=true), or this index cannot take uploads",
    "413": f"body larger than {MAX_BODY_BYTES // 1024} KiB (uploads: {MAX_UPLOAD_BYTES >> 20} MiB), "
           "or a file over the size limit",
    "415": "body is not application/json (uploads: not multipart/form-data, or a file type not accepted)",
    "422": "a file that cannot be read (broken, encrypted, no text): nothing was written",
    "429": "too many questions from this client address; retry after Retry-After seconds",
    "500": "a bug: reported without details, logged by the server",
    "503": "no index loaded",
}

# Response headers worth describing, by status.
_HEADERS = {
    "401": {"WWW-Authenticate": {"description": "Bearer realm=\"qa\"", "schema": {"type": "string"}}},
    "429": {"Retry-After": {"description": "seconds until this client may ask again",
                            "schema": {"type": "integer", "minimum": 1}}},
}


def _errors(*statuses: str) -> dict:
    out = {}
    for s in statuses:
        out[s] = _json("Error", _ERRORS[s])
        if s in _HEADERS:
            out[s]["headers"] = _HEADERS[s]
    return out


# The token is optional: a server started without --token needs none (hence the empty {}).
_API_SECURITY = [{}, {"bearerToken": []}]

def _question(summary: str, operation: str, request: str, result: str, description: str) -> dict:
    """A rate-limited POST route that takes a contract request as JSON."""
    return {"post": {
        "summary": summary,
        "operationId": operation,
        "requestBody": {"required": True, "content": {"application/json": {"schema": _ref(request)}}},
        "responses": {"200": _json(result, description),
                      **_errors("400", "401", "405", "413", "415", "429", "500", "503")},
        "security": _API_SECURITY,
    }}


def _page_route() -> dict:
    """GET a PDF page as printed (web/pages.py)."""
    return {"get": {
        "summary": "One page of an indexed PDF, as printed, as a PNG",
        "description": "The page only: a citation's `boxes` (points from the page's top-left corner) "
                       "say where to draw its highlight. Sent with an ETag and `Cache-Control: private, "
                       "no-cache`; with If-None-Match of that ETag the answer is 304. Only indexed PDFs "
                       "whose file still has the indexed content are shown (409 once it changed).",
        "operationId": "sourcePage",
        "parameters": [
            {"name": "source", "in": "path", "required": True, "schema": {"type": "string"}},
            {"name": "page", "in": "path", "required": True, "schema": {"type": "integer", "minimum": 1}},
            {"name": "width", "in": "query", "required": False,
             "schema": {"type": "integer", "minimum": 100, "maximum": 2000, "default": 1000},
             "description": "pixels across (a very tall page comes narrower: at most 6 million pixels)"},
        ],
        "responses": {"200": {"description": "the page",
                              "content": {"image/png": {"schema": {"type": "string", "format": "binary"}}}},
                      "304": {"description": "the page the client already holds (If-None-Match)"},
                      **_errors("400", "401", "404", "405", "409", "422", "500", "503")},
        "security": _API_SECURITY,
    }}


def _paths() -> dict:
    return {
        "/api/ask": _question("Answer a question with quotes from the indexed documents", "ask",
                              "AskRequest", "Answer",
                              "the answer, or an abstention with the closest passages"),
        "/api/search": _question("The passages that best match a query, without answering", "search",
                                 "SearchRequest", "SearchResult", "the best passages, best first"),
        "/api/health": {"get": {
            "summary": "Whether an index is loaded, and its size",
            "operationId": "health",
            "responses": {"200": _json("Health", "the index is loaded"),
                          **_errors("400", "401", "405", "500", "503")},
            "security": _API_SECURITY,
        }},
        "/api/sources/{source}": {"get": {
            "summary": "The full text of one indexed document",
            "description": "source is the name a citation gives; it may contain '/' (sent as-is). "
                           "Only indexed documents are served, never other files.",
            "operationId": "source",
            "parameters": [{"name": "source", "in": "path", "required": True,
                            "schema": {"type": "string"}}],
            "responses": {"200": _json("Source", "the document's text"),
                          **_errors("400", "401", "404", "405", "500", "503")},
            "security": _API_SECURITY,
        }},
        "/api/sources/{source}/pages/{page}.png": _page_route(),
        "/api/documents": {
            "get": {
                "summary": "Every indexed document, and whether files can be added here",
                "operationId": "listDocuments",
                "responses": {"200": _json("DocumentList", "the documents of the index"),
                              **_errors("400", "401", "405", "500", "503")},
                "security": _API_SECURITY,
            },
            "post": {
                "summary": "Add files to the corpus and index them in the background",
                "description": "Every file is checked (name, type, size, readable text) before it is "
                               "written; one refused file refuses the request. The files go into the "
                               "uploads folder and one job at a time indexes them; questions are answered "
                               "from the last published index meanwhile.",
                "operationId": "uploadDocuments",
                "requestBody": {"required": True,
                                "content": {"multipart/form-data": {"schema": _ref("Upload")}}},
                "responses": {"202": {**_json("JobStarted", "the job that indexes the files"),
                                      "headers": {"Location": {"schema": {"type": "string"}}}},
                              **_errors("400", "401", "403", "405", "409", "413", "415", "422", "500",
                                        "503")},
                "security": _API_SECURITY,
            },
        },
        "/api/documents/{source}": {"delete": {
            "summary": "Remove an uploaded document from disk and from the index",
            "description": "Only documents uploaded through this server can be removed (403 otherwise).",
            "operationId": "deleteDocument",
            "parameters": [{"name": "source", "in": "path", "required": True,
                            "schema": {"type": "string"}}],
            "responses": {"202": {**_json("JobStarted", "the job that re-indexes without it"),
                                  "headers": {"Location": {"schema": {"type": "string"}}}},
                          **_errors("400", "401", "403", "404", "405", "409", "500", "503")},
            "security": _API_SECURITY,
        }},
        "/api/jobs/{job_id}": {"get": {
            "summary": "The state and progress of an indexing job",
            "operationId": "job",
            "parameters": [{"name": "job_id", "in": "path", "required": True, "schema": {"type": "string"}}],
            "responses": {"200": _json("Job", "the job"),
                          **_errors("400", "401", "404", "405", "500", "503")},
            "security": _API_SECURITY,
        }},
        "/openapi.json": {"get": {
            "summary": "This document",
            "operationId": "openapi",
            "responses": {"200": {"description": "OpenAPI 3.0 document",
                                  "content": {"application/json": {"schema": {"type": "object"}}}},
                          **_errors("400", "405")},
        }},
        "/": {"get": {
            "summary": "The chat page",
            "operationId": "page",
            "responses": {"200": {"description": "HTML page",
                                  "content": {"text/html": {"schema": {"type": "string"}}}},
                          **_errors("400", "405")},
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
                                'Every error is {"error": {"code", "message"}}, also the 400, 413 '
                                "and 431 the HTTP server itself answers for a malformed request line, "
                                "a body or headers over its limits, on any path. Started with a "
                                "token, the server wants it on every /api/ call; without one, it "
                                "answers only requests addressed to localhost, 127.0.0.1 or [::1]. "
                                "/api/ask and /api/search are rate-limited per client address "
                                "(qa serve --rate-limit)."},
        "paths": _paths(),
        "components": {"schemas": SCHEMAS, "securitySchemes": {"bearerToken": {
            "type": "http", "scheme": "bearer",
            "description": "the token qa serve was started with (--token or QA_TOKEN)"}}},
    }
