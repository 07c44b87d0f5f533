"""Every error leaves the app as JSON ``{"error": {"code", "message"}}``, never an HTML page.

Clients (the chat page, scripts) branch on ``code`` and show ``message``;
a traceback or Werkzeug's HTML error page would be useless to both.
"""

from __future__ import annotations

from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException

from qa.errors import InvalidRequest
from qa.library import MAX_FILE_BYTES, Refused

MAX_BODY_BYTES = 64 * 1024  # JSON requests
MAX_UPLOAD_BYTES = MAX_FILE_BYTES + (1 << 20)  # POST /api/documents: the largest file plus the form around it

# Short machine-readable codes and messages a person can act on, by HTTP status.
CODES: dict[int, tuple[str, str]] = {
    400: ("bad_request", "the request could not be understood"),
    401: ("unauthorized", "this server needs an access token: send Authorization: Bearer TOKEN"),
    404: ("not_found", "nothing here; GET /openapi.json lists the endpoints"),
    405: ("method_not_allowed", "this method is not allowed here"),
    413: ("payload_too_large", f"the request body is too large (at most {MAX_BODY_BYTES // 1024} KiB of "
          f"JSON, or {MAX_UPLOAD_BYTES >> 20} MiB of uploaded files)"),
    422: ("unreadable", "the file could not be read"),
    415: ("unsupported_media_type", "send the body as JSON with Content-Type: application/json"),
    429: ("rate_limited", "too many requests from this address; wait and try again"),
    431: ("headers_too_large", "the request headers are too large"),
    500: ("internal_error", "internal error; the server log has the details"),
    501: ("not_implemented", "this server does not support that"),
    503: ("no_index", "no index loaded; build one with: qa index SOURCES"),
}


# The statuses of the changes a Library refuses, by its code.
REFUSED: dict[str, int] = {
    "invalid_upload": 400, "read_only": 403, "not_uploaded": 403, "unknown_source": 404,
    "unknown_job": 404, "uploads_unavailable": 409, "exists": 409, "too_large": 413,
    "unsupported_type": 415, "unreadable": 422,
}


class ApiError(Exception):
    """An error the API reports on purpose, with its status, code and message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def error_response(status: int, code: str, message: str) -> Response:
    response = jsonify({"error": {"code": code, "message": message}})
    response.status_code = status
    return response


def register(app: Flask) -> None:
    """Install the JSON error handlers on the app."""

    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError) -> Response:
        return error_response(exc.status, exc.code, exc.message)

    @app.errorhandler(Refused)
    def _refused(exc: Refused) -> Response:
        return error_response(REFUSED.get(exc.code, 400), exc.code, str(exc))

    @app.errorhandler(InvalidRequest)
    def _invalid(exc: InvalidRequest) -> Response:
        return error_response(400, "invalid_request", str(exc))

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException) -> Response:
        status = exc.code or 500
        code, message = CODES.get(status, ("http_error", exc.name))
        if status == 405 and getattr(exc, "valid_methods", None):
            usable = [m for m in exc.valid_methods if m not in ("HEAD", "OPTIONS")]
            message = f"{request.method} is not allowed on {request.path}; use {', '.join(usable)}"
            response = error_response(status, code, message)
            response.headers["Allow"] = ", ".join(exc.valid_methods)
            return response
        if status == 404:
            message = f"no such endpoint: {request.path}; GET /openapi.json lists the endpoints"
        return error_response(status, code, message)

    @app.errorhandler(Exception)
    def _bug(exc: Exception) -> Response:
        app.logger.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(500, "internal_error", "internal error; the server log has the details")
