"""``qa serve``: the app under waitress, loaded once, stopped cleanly by Ctrl-C or SIGTERM.

Before anything is loaded or bound, the access settings are checked (security.py):
a non-loopback host needs a token or ``--insecure``, else the command exits with
code 2. While serving, SIGHUP (and a rebuilt index, noticed on requests) reloads the
index in the background (reloading.py). Errors that waitress answers itself (a body
or headers over its limits, a malformed request line) are JSON like the app's.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import signal
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass

import waitress
from waitress.channel import HTTPChannel
from waitress.parser import HTTPRequestParser
from waitress.task import ErrorTask

from qa.engine import Engine
from qa.library import Library

from .app import DEFAULT_RATE_LIMIT, BadSetting, create_app, rate_limit_setting
from .errors import CODES, MAX_BODY_BYTES, MAX_UPLOAD_BYTES
from .reloading import IndexWatcher
from .security import MIN_TOKEN_CHARS, SECURITY_HEADERS, is_loopback, token_problem

# Waitress refuses bodies of this size or more before reading them (Content-Length) or as
# soon as a chunked body reaches it; just past the app's limit, so both answer the same JSON 413.
WAITRESS_MAX_BODY = MAX_BODY_BYTES + 1
TOKEN_ENV = "QA_TOKEN"


class UsageError(Exception):
    """Settings ``qa serve`` cannot run with (exit code 2)."""


@dataclass
class Settings:
    """How to serve: where, with how many threads, and the access rules."""

    token: str | None
    rate_limit: str | None
    check_host: bool
    host: str = "127.0.0.1"
    port: int = 8000
    threads: int = 8


def _warn(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def settings(args: argparse.Namespace, warn: Callable[[str], None] = _warn) -> Settings:
    """Check the access settings before anything is loaded; UsageError says what to change."""
    token = getattr(args, "token", None)
    if token is None:
        token = os.environ.get(TOKEN_ENV) or None
    if token is not None:
        problem = token_problem(token)
        if problem:
            raise UsageError(f"unusable token: {problem}")
        if len(token) < MIN_TOKEN_CHARS:
            warn(f"qa: warning: the token is shorter than {MIN_TOKEN_CHARS} characters and easy to guess")
    loopback = is_loopback(args.host)
    limit_text = getattr(args, "rate_limit", None)
    if limit_text is None:  # a limit protects a server others can reach; local scripts need none
        limit_text = "off" if loopback and token is None else DEFAULT_RATE_LIMIT
    try:
        limit = rate_limit_setting(limit_text)
    except BadSetting as exc:
        raise UsageError(str(exc)) from None
    insecure = bool(getattr(args, "insecure", False))
    if not loopback and token is None:
        if not insecure:
            raise UsageError(
                f"refusing to serve on {args.host}, which is not a loopback address, without a token: "
                f"pass --token TOKEN (or set {TOKEN_ENV}), or --insecure to let anyone who can reach "
                "it in")
        warn(f"qa: warning: serving on {args.host} without a token (--insecure): anyone who can "
             "reach this address can read the indexed documents")
    return Settings(token=token, rate_limit=limit, check_host=loopback or not insecure, host=args.host,
                    port=getattr(args, "port", 8000), threads=getattr(args, "threads", 8))


class JsonErrorTask(ErrorTask):
    """Waitress's own error responses (413, 431, 400, 500...) as the app's JSON, with its headers."""

    def execute(self) -> None:
        error = self.request.error
        code, message = CODES.get(error.code, ("http_error", error.reason))
        if error.code in (400, 431, 501) and error.body:
            message = f"{message}: {error.body}"
        body = json.dumps({"error": {"code": code, "message": message}}).encode()
        self.status = f"{error.code} {error.reason}"
        self.response_headers.extend([("Content-Type", "application/json"), ("Cache-Control", "no-store"),
                                      *SECURITY_HEADERS.items()])
        self.set_close_on_finish()
        self.content_length = len(body)
        self.write(body)


class UploadLimitParser(HTTPRequestParser):
    """Waitress's request parser with the uploads' body limit on POST /api/documents only.

    Every other request keeps the JSON limit, refused from its Content-Length before
    the body is read; waitress would otherwise buffer up to the largest limit first.
    """

    def parse_header(self, header_plus: bytes) -> None:
        super().parse_header(header_plus)
        if self.command == "POST" and self.path == "/api/documents":
            self.adj = copy.copy(self.adj)
            self.adj.max_request_body_size = MAX_UPLOAD_BYTES + 1


class JsonErrorChannel(HTTPChannel):
    error_task_class = JsonErrorTask
    parser_class = UploadLimitParser


def _json_errors(server: object) -> None:
    """Make every listening socket of the server answer its errors with JsonErrorTask."""
    many = getattr(server, "map", None)
    listeners = [server] if hasattr(server, "channel_class") else []
    if not listeners and many:
        listeners = [s for s in list(many.values()) if hasattr(s, "channel_class")]
    for listener in listeners:
        listener.channel_class = JsonErrorChannel  # type: ignore[attr-defined]


def _stop(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # waitress's loop treats this as "shut down"


def listening(server: object) -> list[tuple[str, int]]:
    """(host, port) of every socket the server listens on (port 0 becomes the real port)."""
    many = getattr(server, "effective_listen", None)
    if many:
        return [(str(h), int(p)) for h, p in many]
    return [(str(server.effective_host), int(server.effective_port))]  # type: ignore[attr-defined]


def url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def serve(engine: Engine, library: Library, config: Settings) -> int:
    """Serve the engine and its documents until stopped; exit code 0. A published change to
    the documents, a rebuilt index and SIGHUP reload the index in the background."""
    watcher = IndexWatcher(engine)
    library.published = lambda: watcher.reload("documents changed")
    app = create_app(engine, token=config.token, rate_limit=config.rate_limit,
                     trusted_hosts_only=config.check_host, watcher=watcher, library=library)
    server = waitress.create_server(
        app, host=config.host, port=config.port, threads=config.threads,
        max_request_body_size=WAITRESS_MAX_BODY, ident="qa",
    )
    _json_errors(server)

    def _hangup(signum: int, frame: object) -> None:
        # Never load in a signal handler: hand it to the watcher's background thread.
        threading.Thread(target=watcher.request, args=("SIGHUP",), daemon=True).start()

    # Ctrl-C stops the server even where the parent left SIGINT ignored (a background job of a
    # script, or a test runner), which would otherwise be inherited and keep Python's handler off.
    previous = {sig: signal.signal(sig, handler) for sig, handler in
                ((signal.SIGTERM, _stop), (signal.SIGHUP, _hangup),
                 (signal.SIGINT, signal.default_int_handler))}
    try:
        for host, port in listening(server):
            print(f"Serving on {url(host, port)}", flush=True)
        server.run()  # returns after KeyboardInterrupt / SystemExit, having stopped its threads
    except KeyboardInterrupt:
        pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        server.close()
    print("stopped", file=sys.stderr, flush=True)
    return 0
