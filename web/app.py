"""The Flask app: HTTP in, ``Engine`` and ``Library`` calls, HTTP out; no question answering here.

The routes live in two blueprints: questions (api.py) and documents (documents.py).
Around them, this module sets the access rules of security.py (token, trusted Host
names), a per-client rate limit on /api/ask and /api/search, and an optional watcher
that reloads the index when it is rebuilt (reloading.py).
"""

from __future__ import annotations

import math
import time

from flask import Flask, Response, jsonify, render_template, request
from flask_limiter import Limiter
from flask_limiter.errors import RateLimitExceeded
from flask_limiter.util import get_remote_address
from limits import parse_many

from qa.engine import Engine
from qa.library import Library

from . import errors
from .api import api
from .context import Served
from .documents import documents
from .errors import ApiError
from .openapi import spec
from .pages import pages
from .reloading import IndexWatcher
from .security import SECURITY_HEADERS, bearer_matches, host_name, is_loopback

DEFAULT_RATE_LIMIT = "120/minute;20/second"
_OFF = ("", "0", "off", "none")
LIMITED = ("api.ask", "api.search")  # the routes that cost a question's work


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
    client address on /api/ask and /api/search (None: no limit). trusted_hosts_only:
    without a token, answer only requests addressed to a loopback name. watcher: polled
    on API calls. library: the engine's documents, for /api/documents (None: listed,
    never changed).
    """
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = errors.MAX_BODY_BYTES
    app.json.sort_keys = False  # keep the engine's key order: question, answer, ...
    app.json.ensure_ascii = False
    app.url_map.merge_slashes = False  # "//etc/passwd" is a 404, not a redirect to "/etc/passwd"
    app.extensions["qa"] = Served(engine, library)
    errors.register(app)
    check_host = trusted_hosts_only and not token

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

    @app.after_request
    def _headers(response: Response) -> Response:
        response.headers.update(SECURITY_HEADERS)
        if request.path.startswith("/api/"):
            response.headers.setdefault("Cache-Control", "no-store")  # pages.py: page images are kept
        if response.status_code == 401:
            response.headers["WWW-Authenticate"] = 'Bearer realm="qa"'
        return response

    app.add_url_rule("/", "index", lambda: render_template("index.html"))
    app.add_url_rule("/openapi.json", "openapi", lambda: jsonify(spec()))
    app.register_blueprint(api)
    app.register_blueprint(documents)
    app.register_blueprint(pages)
    if rate_limit:
        _limit(app, rate_limit)
    return app


def _limit(app: Flask, rate_limit: str) -> None:
    """The rate limit on the question routes, per client address. Checked inside the view
    (after the access rules): a request without the token never counts."""
    limiter = Limiter(get_remote_address, app=app, storage_uri="memory://", strategy="moving-window",
                      headers_enabled=False)
    for endpoint in LIMITED:
        app.view_functions[endpoint] = limiter.limit(rate_limit)(app.view_functions[endpoint])

    @app.errorhandler(RateLimitExceeded)
    def _too_many(exc: RateLimitExceeded) -> Response:
        response = errors.error_response(
            429, "rate_limited", f"too many questions from this address (limit: {exc.description}); "
            "wait and try again")
        response.headers["Retry-After"] = str(_retry_after(limiter))
        return response


def _retry_after(limiter: Limiter) -> int:
    """Whole seconds until the limit that was hit lets this client in again (at least 1)."""
    try:
        current = limiter.current_limit
        reset = current.reset_at if current else time.time() + 1
    except Exception:  # the storage could not say: a second is a safe guess
        reset = time.time() + 1
    return max(1, math.ceil(reset - time.time()))
