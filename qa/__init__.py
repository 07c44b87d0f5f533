"""Extractive, cited question answering over a folder of documents.

The public API, as the README shows it::

    from qa import Embedder, Engine, build_index

Each name is imported when first used, so ``import qa`` (and the CLI) stays quick and
answering never loads what only indexing or training needs.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

__version__ = "0.1.0"

_WHERE = {
    "Engine": "engine",
    "EngineOptions": "options",
    "open_engine": "options",
    "build_index": "index.build",
    "Embedder": "index.embedding",
    "Library": "library",
    "load_reader": "readers",
    "Answer": "contract",
    "AskRequest": "contract",
    "SearchRequest": "contract",
    "ANSWER_SCHEMA": "contract",
    "QAError": "errors",
    "IndexMissing": "errors",
    "IndexInvalid": "errors",
    "IndexBusy": "errors",
    "NoDocuments": "errors",
    "InvalidRequest": "errors",
}
__all__ = [  # noqa: RUF022 (in the order of _WHERE)
    "__version__", "Engine", "EngineOptions", "open_engine", "build_index", "Embedder", "Library",
    "load_reader", "Answer", "AskRequest", "SearchRequest", "ANSWER_SCHEMA", "QAError", "IndexMissing",
    "IndexInvalid", "IndexBusy", "NoDocuments", "InvalidRequest",
]

if TYPE_CHECKING:
    from .contract import ANSWER_SCHEMA, Answer, AskRequest, SearchRequest
    from .engine import Engine
    from .errors import IndexBusy, IndexInvalid, IndexMissing, InvalidRequest, NoDocuments, QAError
    from .index.build import build_index
    from .index.embedding import Embedder
    from .library import Library
    from .options import EngineOptions, open_engine
    from .readers import load_reader


def __getattr__(name: str) -> object:
    if name not in _WHERE:
        raise AttributeError(f"module 'qa' has no attribute {name!r}")
    value = getattr(import_module(f".{_WHERE[name]}", __name__), name)
    globals()[name] = value
    return value
