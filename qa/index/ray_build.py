"""Indexing on Ray: read, chunk, embed and write the new or changed documents of a build on
a cluster.

Ray is optional (``pip install 'qa-docs[ray]'``) and only ``qa index --ray`` imports this
module. ``build_index`` still finds the files, reuses unchanged documents, checks, merges
and publishes on the driver; `RaySegments` is its ``write_segments`` step, a Ray Data
pipeline:

    the files to (re)index → map: read and chunk (Ray tasks)
      → map_batches: embed a batch of documents and write it as a segment into the index
        folder (a pool of actors that each load the model once; one GPU each when the
        cluster has GPUs) → each segment's manifest entry back to the driver

The index folder must be storage that every node sees at the same path (NFS, a shared
volume). Without GPUs both steps ask for the same resources (one CPU), so Ray Data fuses
them and the actors read and chunk too; with GPUs, reading and chunking stay CPU tasks.
Ray Data restarts an actor that dies and retries its batch (actor pools default to
``max_restarts=-1`` and ``max_task_retries=-1``); a segment a killed attempt left half
written is named by no manifest and removed. Anything that still fails raises before the
driver publishes, so the previous build stays.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from ..errors import QAError
from .build import Part, Progress, Skip, Written, embed_chunked, read_part, reason, set_chunks, write_parts
from .chunking import ChunkSettings, chunk_text
from .embedding import Embedder
from .sources import Document, SourceFile

MISSING = "Ray is not installed: pip install 'qa-docs[ray]'"
FILES_PER_TASK = 16  # at most this many files per read-and-chunk task
SEGMENTS_PER_WORKER = 4  # a worker writes about this many segments of a build
DOCUMENTS_PER_SEGMENT = (8, 512)  # the fewest and most documents in a segment a worker writes


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
    # Offline, no telemetry: Ray Data's usage collector would also query a Prometheus on
    # localhost:9090 from a background thread when joining a cluster, and could print the
    # failure's traceback among the command's own lines.
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_DATA_USAGE_DISABLED", "1")
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
class RaySegments:
    """build_index's ``write_segments`` on the Ray cluster this process is connected to."""

    workers: int | None = None  # embedding actors (default: the cluster's GPUs, else its CPUs)
    documents_per_segment: int | None = None  # default: see DOCUMENTS_PER_SEGMENT

    def __call__(self, items: list[SourceFile], index_dir: Path, embedder: Embedder, settings: ChunkSettings,
                 skip: Skip, tracker: Progress, progress: bool, index_chunks: int) -> list[Written]:
        if not items:
            return []
        ray = require_ray()
        from ray.data import ActorPoolStrategy, DataContext

        gpus = int(ray.cluster_resources().get("GPU", 0))
        workers = self.workers or max(1, gpus or int(ray.cluster_resources().get("CPU", 1)))
        low, high = DOCUMENTS_PER_SEGMENT
        per_segment = self.documents_per_segment or min(
            high, max(low, math.ceil(len(items) / (SEGMENTS_PER_WORKER * workers))))
        per_task = max(1, min(FILES_PER_TASK, len(items) // (2 * workers), per_segment))
        rows = [{"i": i, "path": str(item.path), "source": item.source} for i, item in enumerate(items)]
        dataset = (
            ray.data.from_items(rows, override_num_blocks=math.ceil(len(items) / per_task))
            .map(read_and_chunk, fn_kwargs={"model": embedder.name, "settings": settings.as_dict()})
            .map_batches(WriteSegment, fn_constructor_kwargs={
                             "model": embedder.name, "index_dir": str(Path(index_dir).resolve()),
                             "index_chunks": index_chunks},
                         batch_size=per_segment, batch_format="pyarrow",
                         compute=ActorPoolStrategy(size=workers), num_gpus=1 if gpus else None)
        )
        written: dict[int, Written] = {}  # by the first item of each segment: the order of a local build
        back: set[int] = set()  # the items whose row came back
        bar = tqdm(total=len(items), unit="doc", desc=f"indexing on Ray ({workers} workers)",
                   disable=not progress)
        try:
            with _quiet_ray_data(DataContext.get_current()), bar:
                for batch in dataset.iter_batches(batch_format="pyarrow", batch_size=None):
                    for row in batch.to_pylist():
                        if row["skipped"]:
                            skip(items[row["i"]], row["skipped"])
                        if row["segment"]:
                            segment = json.loads(row["segment"])
                            written[row["i"]] = Written(segment["entry"], segment["documents"])
                        tracker.chunks_total += row["chunks"]
                        tracker.chunks_done += row["chunks"]
                        tracker.documents_done += 1
                        back.add(row["i"])
                        bar.update(1)
        except Exception as exc:  # what Ray gave up on fails the build: nothing is published
            raise QAError(f"indexing on Ray failed: {_cause(exc)}") from exc
        if len(back) != len(items):  # never publish a build with documents missing
            raise QAError(f"indexing on Ray failed: {len(items) - len(back)} of {len(items)} documents "
                          "did not come back")
        return [written[i] for i in sorted(written)]


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
        with warnings.catch_warnings():  # fewer documents than workers is no fault of the user's
            warnings.filterwarnings("ignore", message="The minimum number of concurrent actors")
            yield
    finally:
        context.enable_progress_bars, context.print_on_execution_start = saved
        for handler in consoles:
            handler.removeFilter(_console_note)


def _console_note(record: logging.LogRecord) -> bool:
    """False for what Ray Data says on the console that is no warning for our users."""
    return record.levelno >= logging.WARNING and not record.getMessage().startswith("Progress bars disabled")


def read_and_chunk(row: dict[str, Any], model: str, settings: dict[str, int]) -> dict[str, Any]:
    """Ray task: one file read and chunked, or the reason it was skipped."""
    item = SourceFile(Path(row["path"]), row["source"])
    try:
        part = read_part(item)
    except (OSError, ValueError) as exc:
        return as_row(row["i"], None, reason(exc))
    count = _embedder(model).count_tokens
    sentences, chunks = chunk_text(part.document.text, count, ChunkSettings(**settings))
    set_chunks(part, sentences, chunks)
    return as_row(row["i"], part)


class WriteSegment:
    """Ray actor: loads the model once (on its GPU, if Ray gave it one), then embeds each
    batch of chunked documents and writes it into the index folder as one segment."""

    def __init__(self, model: str, index_dir: str, index_chunks: int) -> None:
        import ray

        self.embedder = _embedder(model, "cuda" if ray.get_gpu_ids() else "cpu")
        self.index_dir = Path(index_dir)
        self.index_chunks = index_chunks

    def __call__(self, batch: Any) -> Any:
        import pyarrow as pa
        import ray

        rows = batch.to_pylist()
        parts = [from_row(row) for row in rows]
        chunked = [p for p in parts if p is not None]
        out = [{"i": row["i"], "skipped": row["skipped"], "chunks": 0 if p is None else len(p.chunks),
                "segment": ""} for row, p in zip(rows, parts)]
        if chunked:
            embed_chunked(chunked, self.embedder, False, Progress())
            size = self.index_chunks + sum(len(p.chunks) for p in chunked)
            entry = write_parts(self.index_dir, chunked, self.embedder.dimension, size)
            entry["node"] = ray.get_runtime_context().get_node_id()  # which machine wrote it
            first = next(o for o, p in zip(out, parts) if p is not None)
            first["segment"] = json.dumps({"entry": entry, "documents": {
                p.document.source: p.document.sha256 for p in chunked}})
        schema = pa.schema([("i", pa.int64()), ("skipped", pa.string()), ("chunks", pa.int64()),
                            ("segment", pa.large_string())])
        return pa.Table.from_pylist(out, schema=schema)


@lru_cache(maxsize=2)
def _embedder(model: str, device: str = "cpu") -> Embedder:
    """One loaded model per worker process (Ray reuses processes across tasks)."""
    return Embedder(model, device=device)


def as_row(i: int, part: Part | None, skipped: str = "") -> dict[str, Any]:
    """A read and chunked file as a row for Ray Data (or the reason it was skipped); spans
    travel as raw int64 bytes, one column type whatever their length."""
    doc = part.document if part else Document("", "", "")

    def raw(x: np.ndarray | list[int] | None) -> bytes:
        return np.ascontiguousarray(np.zeros(0) if x is None else x, dtype=np.int64).tobytes()

    boxes = b"" if doc.boxes is None else np.ascontiguousarray(doc.boxes, np.float32).tobytes()
    return {"i": i, "skipped": skipped, "source": doc.source, "text": doc.text, "sha256": doc.sha256,
            "pages": raw(doc.pages), "sentences": raw(part.sentences if part else None),
            "chunks": raw(part.chunks if part else None), "pdf": doc.boxes is not None,
            "boxes": boxes, "page_sizes": json.dumps(doc.page_sizes)}


def from_row(row: dict[str, Any]) -> Part | None:
    """The chunked document a row carries, or None for a skipped file."""
    if row["skipped"]:
        return None
    pages = np.frombuffer(row["pages"], np.int64).tolist()
    boxes = np.frombuffer(row["boxes"], np.float32).reshape(-1, 4).copy() if row["pdf"] else None
    sizes = json.loads(row["page_sizes"])
    document = Document(row["source"], row["text"], row["sha256"], pages, boxes, sizes)
    return Part(document,
                np.frombuffer(row["sentences"], np.int64).reshape(-1, 2).copy(),
                np.frombuffer(row["chunks"], np.int64).reshape(-1, 4).copy())


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
