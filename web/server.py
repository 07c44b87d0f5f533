"""``qa serve``: the app under waitress, loaded once, stopped cleanly by Ctrl-C or SIGTERM."""

from __future__ import annotations

import argparse
import signal
import sys

import waitress

from qa.engine import Engine

from .app import create_app

# Waitress itself turns away bodies past this (plain text); up to it the app answers JSON 413.
WAITRESS_MAX_BODY = 1024 * 1024


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


def serve(args: argparse.Namespace) -> int:
    """Load the engine (QAError propagates to the CLI), then serve until stopped; exit code 0."""
    engine = Engine(args.index, args.model, args.threshold)
    server = waitress.create_server(
        create_app(engine), host=args.host, port=args.port, threads=args.threads,
        max_request_body_size=WAITRESS_MAX_BODY, ident="qa",
    )
    previous = signal.signal(signal.SIGTERM, _stop)
    try:
        for host, port in listening(server):
            print(f"Serving on {url(host, port)}", flush=True)
        server.run()  # returns after KeyboardInterrupt / SystemExit, having stopped its threads
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        server.close()
    print("stopped", file=sys.stderr, flush=True)
    return 0
