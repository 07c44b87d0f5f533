"""What the blueprints serve from: the engine and the library the app was built around."""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app

from qa.engine import Engine
from qa.library import Library

from .errors import ApiError


@dataclass
class Served:
    engine: Engine | None  # None: no index could be loaded; every API call answers 503
    library: Library | None  # None: listed, never changed (made on first use)


def served() -> Served:
    return current_app.extensions["qa"]


def engine() -> Engine:
    """The loaded engine, or the 503 that says how to build an index."""
    loaded = served().engine
    if loaded is None:
        raise ApiError(503, "no_index", "no index loaded; build one with: qa index SOURCES")
    return loaded


def library() -> Library:
    """The engine's documents (made read-only on first use when the app was given none:
    the index may be broken until then)."""
    state = served()
    loaded = engine()
    if state.library is None:
        state.library = Library(loaded, read_only=True)
    return state.library
