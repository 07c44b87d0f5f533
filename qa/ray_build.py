"""Indexing on Ray: read, chunk and embed the new or changed documents of a build on a cluster.

Ray is optional (``pip install 'qa-docs[ray]'``) and only ``qa index --ray`` imports this
module. ``build_index`` still finds the files, reuses unchanged documents and publishes the
build on the driver; `RayEmbed` is its ``embed_parts`` step, a Ray Data pipeline:

    the files to (re)index → map: read and chunk (Ray tasks)
      → map_batches: embed chunks and their sentences (a pool of actors that each load
        the model once; one GPU each when the cluster has GPUs) → back to the driver

Without GPUs both steps ask for the same resources (one CPU), so Ray Data fuses them and
the actors read and chunk too; with GPUs, reading and chunking stay CPU tasks.
Ray Data restarts an actor that dies and retries its batch (actor pools default to
``max_restarts=-1`` and ``max_task_retries=-1``); anything that still fails raises before
the driver publishes, so the previous build stays.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from .chunking import ChunkSettings, chunk_text
from .embedding import Embedder
from .errors import QAError
from .indexing import Progress, Skip, _Part, _reason, embed_chunked, read_part, set_chunks
from .sources import Document, SourceFile

MISSING = "Ray is not installed: pip install 'qa-docs[ray]'"
FILES_PER_TASK = 16  # at most this many files per read-and-chunk task
DOCUMENTS_PER_BATCH = 8  # documents per call of an embedding actor


class RayMissing(QAError):
    """``--ray`` was asked for, but Ray is not installed."""


def require_ray() -> Any:
    """The ray module with Ray Data, or RayMissing with the line that says how to install it."""
    try:
        import ray
        import ray.data
    except ImportError:
        raise RayMissing(MISSING) from None
    return ray


@contextmanager
def ray_session(address: str | None = None) -> Iterator[None]:
    """Ray for one build: a local Ray started here (address None), or the running cluster at
    ``address`` ("auto", "ray://host:port"). A Ray this starts or connects to is shut down at
    the end; one already initialised in this process is used as it is and left running."""
    ray = require_ray()
    if ray.is_initialized():
        yield
        return
    # Quiet: only errors from Ray's own logger (what fails raises anyway), and the workers'
    # output stays in Ray's log files.
    quiet: dict[str, Any] = {"logging_level": logging.ERROR, "log_to_driver": False}
    try:
        if address is None:
            ray.init(address="local", include_dashboard=False, **quiet)
        else:
            ray.init(address=address, **quiet)
    except (ConnectionError, ValueError, RuntimeError) as exc:
        doing = f"connect to Ray at {address}" if address else "start Ray"
        raise QAError(f"cannot {doing}: {_line(exc)}") from None
    try:
        yield
    finally:
        ray.shutdown()


@dataclass
class RayEmbed:
    """build_index's ``embed_parts`` on the Ray cluster this process is connected to."""

    workers: int | None = None  # embedding actors (default: the cluster's GPUs, else its CPUs)
    documents_per_batch: int = DOCUMENTS_PER_BATCH

    def __call__(self, items: list[SourceFile], embedder: Embedder, settings: ChunkSettings, skip: Skip,
                 tracker: Progress, progress: bool) -> list[_Part | None]:
        if not items:
            return []
        ray = require_ray()
        from ray.data import ActorPoolStrategy, DataContext

        gpus = int(ray.cluster_resources().get("GPU", 0))
        workers = self.workers or max(1, gpus or int(ray.cluster_resources().get("CPU", 1)))
        per_task = max(1, min(FILES_PER_TASK, len(items) // (2 * workers)))
        rows = [{"i": i, "path": str(item.path), "source": item.source} for i, item in enumerate(items)]
        dataset = (
            ray.data.from_items(rows, override_num_blocks=math.ceil(len(items) / per_task))
            .map(read_and_chunk, fn_kwargs={"model": embedder.name, "settings": settings.as_dict()})
            .map_batches(EmbedChunks, fn_constructor_kwargs={"model": embedder.name},
                         batch_size=self.documents_per_batch, batch_format="pyarrow",
                         compute=ActorPoolStrategy(size=workers), num_gpus=1 if gpus else None)
        )
        parts: list[_Part | None] = [None] * len(items)
        back: set[int] = set()  # the items whose row came back
        bar = tqdm(total=len(items), unit="doc", desc=f"indexing on Ray ({workers} workers)",
                   disable=not progress)
        try:
            with _quiet_ray_data(DataContext.get_current()), bar:
                for batch in dataset.iter_batches(batch_format="pyarrow", batch_size=None):
                    for row in batch.to_pylist():
                        part = parts[row["i"]] = _part(row, embedder.dimension, embedded=True)
                        if part is None:
                            skip(items[row["i"]], row["skipped"])
                        else:
                            tracker.chunks_total += len(part.chunks)
                            tracker.chunks_done += len(part.chunks)
                        tracker.documents_done += 1
                        back.add(row["i"])
                        bar.update(1)
        except Exception as exc:  # what Ray gave up on fails the build: nothing is published
            raise QAError(f"indexing on Ray failed: {_cause(exc)}") from exc
        if len(back) != len(items):  # never publish a build with documents missing
            raise QAError(f"indexing on Ray failed: {len(items) - len(back)} of {len(items)} documents "
                          "did not come back")
        return parts


@contextmanager
def _quiet_ray_data(context: Any) -> Iterator[None]:
    """No progress bars or notes from Ray Data on the console (its warnings still show)."""
    saved = context.enable_progress_bars, context.print_on_execution_start
    context.enable_progress_bars = context.print_on_execution_start = False
    consoles = [h for h in logging.getLogger("ray.data").handlers
                if isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler)]
    for handler in consoles:
        handler.addFilter(_console_note)
    try:
        yield
    finally:
        context.enable_progress_bars, context.print_on_execution_start = saved
        for handler in consoles:
            handler.removeFilter(_console_note)


def _console_note(record: logging.LogRecord) -> bool:
    """False for what Ray Data says on the console that is no warning for our users."""
    return record.levelno >= logging.WARNING and not record.getMessage().startswith("Progress bars disabled")


def read_and_chunk(row: dict[str, Any], model: str, settings: dict[str, int]) -> dict[str, Any]:
    """Ray task: one file read and chunked, or the reason it was skipped. Arrays travel as
    raw bytes (int64 spans, float32 vectors), one column type whatever their length."""
    item = SourceFile(Path(row["path"]), row["source"])
    try:
        part = read_part(item)
    except (OSError, ValueError) as exc:
        return _row(row["i"], None, _reason(exc))
    count = _embedder(model).count_tokens
    sentences, chunks = chunk_text(part.document.text, count, ChunkSettings(**settings))
    set_chunks(part, sentences, chunks)
    return _row(row["i"], part)


class EmbedChunks:
    """Ray actor: loads the model once, then embeds batches of chunked documents."""

    def __init__(self, model: str) -> None:
        self.embedder = _embedder(model)

    def __call__(self, batch: Any) -> Any:
        import pyarrow as pa

        rows = batch.to_pylist()
        parts = [(row, _part(row, self.embedder.dimension, embedded=False)) for row in rows]
        embed_chunked([p for _, p in parts if p is not None], self.embedder, False, Progress())
        out = [row if part is None else _row(row["i"], part) for row, part in parts]
        return pa.Table.from_pylist(out, schema=_schema())


@lru_cache(maxsize=2)
def _embedder(model: str) -> Embedder:
    """One loaded model per worker process (Ray reuses processes across tasks)."""
    return Embedder(model)


def _row(i: int, part: _Part | None, skipped: str = "") -> dict[str, Any]:
    doc = part.document if part else Document("", "", "")
    empty = np.zeros(0, np.float32)

    def raw(x: np.ndarray | list[int] | None, dtype: type) -> bytes:
        return np.ascontiguousarray(empty if x is None else x, dtype=dtype).tobytes()

    return {
        "i": i, "skipped": skipped, "source": doc.source, "text": doc.text, "sha256": doc.sha256,
        "pages": raw(doc.pages, np.int64),
        "sentences": raw(part.sentences if part else None, np.int64),
        "chunks": raw(part.chunks if part else None, np.int64),
        "sentence_vectors": raw(part.sentence_vectors if part else None, np.float32),
        "chunk_vectors": raw(part.chunk_vectors if part else None, np.float32),
    }


def _schema() -> Any:
    import pyarrow as pa

    return pa.schema([("i", pa.int64()), ("skipped", pa.string()), ("source", pa.string()),
                      ("text", pa.large_string()), ("sha256", pa.string()), ("pages", pa.binary()),
                      ("sentences", pa.binary()), ("chunks", pa.binary()),
                      ("sentence_vectors", pa.large_binary()), ("chunk_vectors", pa.large_binary())])


def _part(row: dict[str, Any], dimension: int, embedded: bool) -> _Part | None:
    """The part a row carries (with its vectors once embedded), or None for a skipped file."""
    if row["skipped"]:
        return None
    pages = np.frombuffer(row["pages"], np.int64).tolist()
    part = _Part(Document(row["source"], row["text"], row["sha256"], pages),
                 np.frombuffer(row["sentences"], np.int64).reshape(-1, 2).copy(),
                 np.frombuffer(row["chunks"], np.int64).reshape(-1, 4).copy())
    if embedded:
        part.sentence_vectors = np.frombuffer(row["sentence_vectors"], np.float32).reshape(-1, dimension)
        part.chunk_vectors = np.frombuffer(row["chunk_vectors"], np.float32).reshape(-1, dimension)
    return part


def _line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0][:300] if lines else type(exc).__name__


def _cause(exc: BaseException) -> str:
    """One line for what went wrong in a worker (Ray wraps the error with its traceback)."""
    seen = set()
    while isinstance(getattr(exc, "cause", None), BaseException) and id(exc) not in seen:
        seen.add(id(exc))
        exc = exc.cause  # type: ignore[attr-defined]
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    if len(lines) == 1:
        return lines[0] if isinstance(exc, QAError) else f"{type(exc).__name__}: {lines[0]}"
    return re.sub(r"^qa\.errors\.\w+: ", "", lines[-1])[:300]  # a traceback's last line
