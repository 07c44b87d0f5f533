"""Opening an engine from options: one factory for the CLI, the web server and the MCP server.

The first time the default index is needed it is built from the bundled seeds, so
``qa ask`` works on a fresh clone; any other index must have been built already.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .engine import Engine
from .index import store

DEFAULT_INDEX = Path("index")


def _say(line: str) -> None:
    print(line, file=sys.stderr)


@dataclass(frozen=True)
class EngineOptions:
    """Which index to answer from, and how (the flags ``qa ask``, ``serve`` and ``mcp`` share)."""

    index: Path = DEFAULT_INDEX
    model: str | None = None  # None: the model the index was built with
    threshold: float | None = None  # None: the reader's own
    reader: str = "span"
    reader_dir: Path | None = None  # None: the reader shipped with qa
    brief: bool = False  # one question, then the process ends (`qa ask`): load fast, not run fast


def default_sources() -> list[Path]:
    """The bundled seeds: ./seeds when present, else the copy beside the package."""
    here = Path("seeds")
    if here.is_dir():
        return [here]
    return [Path(__file__).resolve().parent.parent / "seeds"]


def ensure_index(index_dir: Path, model: str | None, report: Callable[[str], None] = _say) -> None:
    """Build the default index from the seeds the first time it is needed."""
    if store.exists(index_dir) or index_dir != DEFAULT_INDEX:
        return
    from .index.build import build_index
    from .index.embedding import Embedder

    sources = default_sources()
    report(f"no index yet: building {index_dir} from {', '.join(map(str, sources))} ...")
    report(build_index(sources, index_dir, Embedder(model), report=report).summary())


def open_engine(options: EngineOptions, report: Callable[[str], None] = _say) -> Engine:
    """The engine these options describe (the default index built first if missing);
    QAError says why it cannot be opened."""
    ensure_index(options.index, options.model, report)
    return Engine(options.index, options.model, options.threshold, options.reader, options.reader_dir,
                  report=report, brief=options.brief)
