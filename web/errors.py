"""Every error leaves the app as JSON ``{"error": {"code", "message"}}``, never an HTML page.

Clients (the chat page, scripts) branch on ``code`` and show ``message``;
a traceback or Werkzeug's HTML error page would be useless to both.
"""

from __future__ import annotations

from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException

from qa.engine import InvalidRequest

MAX_BODY_BYTES = 64 * 1024

# Short machine-readable codes and messages a person can act on, by HTTP status.
CODES: dict[int, tuple[str, str]] = {
    400: ("bad_request", "the request could not be understood"),
    401: ("unauthorized", "this server needs an access token: send Authorization: Bearer TOKEN"),
    404: ("not_found", "nothing here; GET /openapi.json lists the endpoints"),
    405: ("method_not_allowed", "this method is not allowed here"),
    413: ("payload_too_large", f"the request body is larger than {MAX_BODY_BYTES // 1024} KiB"),
    415: ("unsupported_media_type", "send the body as JSON with Content-Type: application/json"),
    429: ("rate_limited", "too many requests from this address; wait and try again"),
    431: ("headers_too_large", "the request headers are too large"),
    500: ("internal_error", "internal error; the server log has the details"),
    501: ("not_implemented", "this server does not support that"),
    503: ("no_index", "no index loaded; build one with: qa index SOURCES"),
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
