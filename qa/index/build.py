"""Build or update an index: sources → chunks → vectors → store.

Documents whose content hash is unchanged keep their chunks and vectors from
the previous build; only new or changed ones are embedded again.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
from tqdm import tqdm

from ..errors import IndexInvalid, IndexMissing, NoDocuments
from . import store
from .chunking import Chunk, ChunkSettings, Span, chunk_many
from .embedding import Embedder
from .manifest import DocumentInfo, SegmentEntry, file_sha256, read_manifest, verify_segment
from .sources import SUPPORTED, Document, SourceFile, find_files, read_document, shown


@dataclass
class BuildReport:
    """What a build did, for the one-line summary."""

    documents: int = 0
    chunks: int = 0
    added: int = 0
    changed: int = 0
    removed: int = 0
    unchanged: int = 0
    skipped: list[str] = field(default_factory=list)
    seconds: float = 0.0
    segments: int = 0

    def summary(self) -> str:
        return (
            f"indexed {plural(self.documents, 'document')}, {plural(self.chunks, 'passage')} in "
            f"{self.seconds:.1f} s ({self.added} new, {self.changed} changed, {self.removed} removed, "
            f"{self.unchanged} unchanged, {len(self.skipped)} skipped; {plural(self.segments, 'segment')})"
        )


def plural(n: int, word: str) -> str:
    """"1 passage", "2 passages"."""
    return f"{n} {word}{'' if n == 1 else 's'}"


@dataclass
class Progress:
    """How far a running build is, for whoever watches it from another thread."""

    documents_done: int = 0
    documents_total: int = 0
    chunks_done: int = 0
    chunks_total: int = 0  # chunks to embed: unchanged documents keep their vectors

    def as_dict(self) -> dict[str, int]:
        return dict(vars(self))


@dataclass
class Part:
    """One document's share of the index: its spans (relative) and vectors."""

    document: Document
    sentences: np.ndarray  # (n, 2) start, end
    chunks: np.ndarray  # (m, 4) start, end, first sentence, last sentence (relative)
    sentence_vectors: np.ndarray | None = None
    chunk_vectors: np.ndarray | None = None


Skip = Callable[[SourceFile, str], None]


@dataclass
class Written:
    """A segment a build wrote and has not published yet: its manifest entry, and the
    content hash of each document it holds."""

    entry: SegmentEntry
    documents: dict[str, str]


class WriteSegments(Protocol):
    """The step of a build that reads, chunks and embeds the new or changed files and
    writes them into new segments of ``index_dir`` (not yet published).

    It calls ``skip(item, reason)`` for a file it could not read, counts
    ``tracker.documents_done`` per file and the chunks it embeds, and returns the
    segments it wrote. ``index_chunks`` is the size of the index the segments join, not
    counting their own chunks (see shards.dense_index). Whatever it raises fails the build
    before anything is published. The default runs here (`write_locally`: one segment);
    ``qa.index.ray_build`` runs it on a Ray cluster, whose workers write their own segments.
    """

    def __call__(self, items: list[SourceFile], index_dir: Path, embedder: Embedder, settings: ChunkSettings,
                 skip: Skip, tracker: Progress, progress: bool, index_chunks: int) -> list[Written]: ...


def build_index(
    sources: list[Path],
    index_dir: Path,
    embedder: Embedder,
    settings: ChunkSettings | None = None,
    rebuild: bool = False,
    report: Callable[[str], None] = lambda line: print(line, file=sys.stderr),
    progress: bool | None = None,
    tracker: Progress | None = None,
    write_segments: WriteSegments | None = None,
    optimize: bool = False,
) -> BuildReport:
    """Index the sources into index_dir: new and changed documents go into one new segment,
    and the earlier copies of changed or removed ones are marked deleted; nothing else is
    read, embedded or written again. ``optimize`` merges every segment into one.

    The manifest records the source roots (so a server can add documents to the same
    corpus) and, per document, its file, size and when its content was indexed.
    ``write_segments`` reads, chunks, embeds and writes the new or changed files (default:
    here, in this process); discovery, reuse, checking, merging and publishing always
    happen here.
    """
    started = time.perf_counter()
    tracker = tracker or Progress()
    settings = settings or ChunkSettings(limit_tokens=embedder.max_tokens - 2)
    if progress is None:
        progress = sys.stderr.isatty()
    result = BuildReport()
    with store.build_lock(index_dir):
        previous = None if rebuild else _previous(index_dir, embedder, settings, report)
        old_docs: dict[str, str] = previous["documents"] if previous else {}
        old_info = previous.get("document_info", {}) if previous else {}
        files = find_files(sources, report)
        tracker.documents_total = len(files)

        def skip(item: SourceFile, reason: str) -> None:
            report(f"skipped {shown(item.path)}: {reason}")
            result.skipped.append(item.source)

        live: dict[str, str] = {}  # source -> content hash of every document the index will hold
        todo: list[SourceFile] = []  # new or changed files
        for item in files:
            try:
                digest = _unchanged(item, old_docs)
            except (OSError, ValueError) as exc:
                skip(item, reason(exc))
            else:
                if digest is None:
                    todo.append(item)
                    continue
                live[item.source] = digest
                result.unchanged += 1
            tracker.documents_done += 1
        kept = [] if previous is None else _mark_deleted(previous["segments"], set(old_docs) - set(live))
        try:
            written = (write_segments or write_locally)(todo, index_dir, embedder, settings, skip, tracker,
                                                        progress, sum(map(_live_chunks, kept)))
            for w in written:
                try:
                    verify_segment(index_dir, w.entry)
                except IndexInvalid as exc:  # the published index is fine: say so, not "rebuild it"
                    damage = str(exc).split(";")[0]
                    raise IndexInvalid(f"a segment this build wrote did not check out ({damage}); "
                                       "nothing was published and the index is as it was: run the build "
                                       "again") from None
                live.update(w.documents)
            new = {source for w in written for source in w.documents}
            result.added = len(new - set(old_docs))
            result.changed = len(new) - result.added
            if not live:
                raise NoDocuments(
                    "no readable documents found in " + ", ".join(str(s) for s in sources)
                    + f" (supported: {' '.join(sorted(SUPPORTED))})"
                )
            info = {item.source: _info(item.path, None if item.source in new else old_info.get(item.source))
                    for item in files if item.source in live}
            result.removed = len(set(old_docs) - set(live))
            replaced = {s for s in old_docs if s not in live or s in new}
            segments = [] if previous is None else _mark_deleted(previous["segments"], replaced)
            segments += [w.entry for w in written]
            size = sum(map(_live_chunks, segments))
            segments = _merge(index_dir, segments, embedder.dimension, size, everything=optimize)
            store.publish(index_dir, {
                "model": embedder.name,
                "dimension": embedder.dimension,
                "chunking": settings.as_dict(),
                "sources": [os.path.abspath(s) for s in sources],
                "documents": live,
                "document_info": info,
                "segments": segments,
            })
        except BaseException:  # what this build wrote (here or on workers) and did not publish goes
            store.remove_unpublished(index_dir)
            raise
    result.documents = len(live)
    result.chunks = sum(_live_chunks(e) for e in segments)
    result.segments = len(segments)
    result.seconds = time.perf_counter() - started
    return result


MERGE_FACTOR = 10  # this many segments of one size tier are merged into one (as Lucene's default)


def _tier(chunks: int) -> int:
    """Size tier: segments within a factor of MERGE_FACTOR of each other share one."""
    return int(math.log(max(chunks, 1), MERGE_FACTOR))


def _live_chunks(entry: SegmentEntry) -> int:
    dead = set(entry["deleted"])
    return sum(n for source, n in entry["sources"].items() if source not in dead)


def _mark_deleted(segments: list[dict], gone: set[str]) -> list[dict]:
    """Segments with these documents marked deleted; segments left with none, dropped."""
    out = []
    for entry in segments:
        dead = sorted(set(entry["deleted"]) | (gone & set(entry["sources"])))
        if len(dead) < len(entry["sources"]):
            out.append(dict(entry, deleted=dead))
    return out


def _merge(index_dir: Path, segments: list[dict], dimension: int, size: int,
           everything: bool) -> list[dict]:
    """Size-tiered merging: while MERGE_FACTOR segments share a tier, they become one (and
    ``everything``: all segments become one, without deleted rows)."""
    if everything:
        if len(segments) > 1 or any(e["deleted"] for e in segments):
            return [_merged(index_dir, segments, dimension, size)]
        return segments
    while True:
        tiers: dict[int, list[dict]] = {}
        for entry in segments:
            tiers.setdefault(_tier(_live_chunks(entry)), []).append(entry)
        full = next((group for group in tiers.values() if len(group) >= MERGE_FACTOR), None)
        if full is None:
            return segments
        group = sorted(full, key=_live_chunks)[:MERGE_FACTOR]
        names = {e["name"] for e in group}
        segments = [e for e in segments if e["name"] not in names] + [_merged(index_dir, group, dimension,
                                                                              size)]


def _merged(index_dir: Path, group: list[SegmentEntry], dimension: int, size: int) -> SegmentEntry:
    """One new segment holding the live documents of these, their vectors reused."""
    view = store.combine({}, [store.load_segment(index_dir, e) for e in group], dimension, index_dir)
    return write_parts(index_dir, list(split_parts(view).values()), dimension, size)


def write_parts(index_dir: Path, parts: list[Part], dimension: int, size: int) -> SegmentEntry:
    """One segment of these parts, for an index of ``size`` live chunks in all; its entry."""
    spans, chunk_vectors, sentence_vectors = _assemble(parts, dimension)
    docs = [p.document for p in parts]
    entry = store.write_segment(
        index_dir, docs, spans, chunk_vectors, sentence_vectors,
        _texts(docs, spans["chunk_doc"], spans["chunk_start"], spans["chunk_end"]),
        _texts(docs, spans["sent_doc"], spans["sent_start"], spans["sent_end"]), size)
    entry["sources"] = {p.document.source: len(p.chunks) for p in parts}
    return entry


def _previous(index_dir: Path, embedder: Embedder, settings: ChunkSettings, report) -> dict | None:
    """The earlier manifest if its segments can be kept; otherwise None (a full rebuild).

    Only the manifest is read: an update costs what the changed documents cost, however
    large the index. Its segments' files must all be there at their recorded sizes.
    """
    try:
        manifest = read_manifest(index_dir)
        if manifest.get("model") != embedder.name or manifest.get("dimension") != embedder.dimension:
            raise IndexInvalid(f"index at {index_dir} was built with model {manifest.get('model')!r}")
        for entry in manifest["segments"]:
            for name, digest in entry["files"].items():
                path = index_dir / entry["name"] / name
                if not path.is_file() or path.stat().st_size != digest["bytes"]:
                    raise IndexInvalid(f"index file {path} is missing or damaged")
    except IndexMissing:
        return None
    except (IndexInvalid, KeyError, TypeError, OSError) as exc:
        report(f"rebuilding from scratch: {str(exc).split(';')[0]}")
        return None
    if manifest.get("chunking") != settings.as_dict():
        report("rebuilding from scratch: chunking settings changed")
        return None
    return manifest


def split_parts(data: store.IndexData) -> dict[str, Part]:
    """Cut an index back into per-document parts (rows are grouped by document)."""
    s, n = data.spans, len(data.documents)
    sent_bounds = np.searchsorted(s["sent_doc"], np.arange(n + 1))
    chunk_bounds = np.searchsorted(s["chunk_doc"], np.arange(n + 1))
    parts = {}
    for i, doc in enumerate(data.documents):
        a, b = sent_bounds[i], sent_bounds[i + 1]
        c, d = chunk_bounds[i], chunk_bounds[i + 1]
        chunks = np.stack([s["chunk_start"][c:d], s["chunk_end"][c:d],
                           s["chunk_first"][c:d] - a, s["chunk_last"][c:d] - a], axis=1)
        parts[doc.source] = Part(
            doc, np.stack([s["sent_start"][a:b], s["sent_end"][a:b]], axis=1), chunks,
            data.sentence_vectors[a:b], data.chunk_vectors[c:d],
        )
    return parts


def _unchanged(item: SourceFile, old: dict[str, str]) -> str | None:
    """The file's content hash if the index holds this very content (it stays in its
    segment), else None; raises OSError if the file cannot be read."""
    before = old.get(item.source)
    if before is not None:
        digest = file_sha256(item.path)
        if digest == before:
            return digest
    return None


def reason(exc: OSError | ValueError) -> str:
    """Why a file was skipped, for the one-line note."""
    return exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)


def read_part(item: SourceFile) -> Part:
    """A file's document, not chunked yet; raises OSError or ValueError (see read_document)."""
    return Part(read_document(item), np.zeros((0, 2), np.int64), np.zeros((0, 4), np.int64))


def write_locally(items: list[SourceFile], index_dir: Path, embedder: Embedder, settings: ChunkSettings,
                  skip: Skip, tracker: Progress, progress: bool, index_chunks: int) -> list[Written]:
    """The default WriteSegments: read the files one by one, chunk and embed them all
    here, and write them as one segment."""
    parts: list[Part] = []
    for item in items:
        try:
            parts.append(read_part(item))
        except (OSError, ValueError) as exc:
            skip(item, reason(exc))
        tracker.documents_done += 1
    if not parts:
        return []
    _chunk_and_embed(parts, embedder, settings, progress, tracker)
    size = index_chunks + sum(len(p.chunks) for p in parts)
    entry = write_parts(index_dir, parts, embedder.dimension, size)
    return [Written(entry, {p.document.source: p.document.sha256 for p in parts})]


def _info(path: Path, old: DocumentInfo | None) -> DocumentInfo:
    """Where a document's file is, its size, and when this content was first indexed
    (``old``: what the manifest said of it, when unchanged)."""
    when = (old.get("indexed_at") if isinstance(old, dict) else None) or time.strftime(
        "%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    try:
        size = os.stat(path).st_size
    except OSError:
        size = 0
    return {"path": os.path.abspath(path), "bytes": size, "indexed_at": when}


def _chunk_and_embed(parts: list[Part], embedder: Embedder, settings: ChunkSettings, progress: bool,
                     tracker: Progress) -> None:
    chunked = chunk_many([p.document.text for p in parts], embedder.count_tokens, settings)
    for part, (sentences, chunks) in zip(parts, chunked):
        set_chunks(part, sentences, chunks)
    embed_chunked(parts, embedder, progress, tracker)


def set_chunks(part: Part, sentences: list[Span], chunks: list[Chunk]) -> None:
    """Store a document's sentence and chunk spans (as chunk_text gives them) in its part."""
    part.sentences = np.array([(s.start, s.end) for s in sentences], np.int64).reshape(-1, 2)
    part.chunks = np.array(
        [(c.start, c.end, c.first_sentence, c.last_sentence) for c in chunks], np.int64
    ).reshape(-1, 4)


def embed_chunked(parts: list[Part], embedder: Embedder, progress: bool, tracker: Progress) -> None:
    """Vectors for the chunks and sentences of chunked parts, stored in each part."""
    chunk_texts = [p.document.text[a:b] for p in parts for a, b, _, _ in p.chunks]
    # Sentence spans relative to their chunk: sentence vectors come from the chunk's pass.
    spans = [[(int(p.sentences[k][0] - a), int(p.sentences[k][1] - a)) for k in range(f, last)]
             for p in parts for a, _, f, last in p.chunks]
    tracker.chunks_total = len(chunk_texts)
    c_vec, s_vec = _encode(embedder, chunk_texts, spans, progress, tracker)
    i = j = 0
    for part in parts:
        part.sentence_vectors = s_vec[i : i + len(part.sentences)]
        part.chunk_vectors = c_vec[j : j + len(part.chunks)]
        i += len(part.sentences)
        j += len(part.chunks)


def _encode(embedder: Embedder, texts: list[str], spans: list[list[tuple[int, int]]],
            progress: bool, tracker: Progress) -> tuple[np.ndarray, np.ndarray]:
    """Chunk vectors and their sentences' vectors, all in one call (the embedder batches
    the whole build by length), with a progress bar on a terminal."""
    with tqdm(total=len(texts), unit="chunk", desc="embedding", disable=not progress) as bar:

        def done(n: int) -> None:
            tracker.chunks_done += n
            bar.update(n)

        chunks, sentences = embedder.encode_with_spans(texts, spans, done=done)
    if not sentences:
        return chunks, np.zeros((0, embedder.dimension), np.float32)
    return chunks, np.concatenate(sentences).reshape(-1, embedder.dimension)


def _assemble(parts: list[Part], dim: int):
    """Concatenate per-document parts into global arrays, rows grouped by document."""
    cols: dict[str, list[np.ndarray]] = {k: [] for k in store.SPAN_FIELDS}
    offset = 0
    for i, p in enumerate(parts):
        n, m = len(p.sentences), len(p.chunks)
        cols["sent_doc"].append(np.full(n, i, np.int64))
        cols["sent_start"].append(p.sentences[:, 0])
        cols["sent_end"].append(p.sentences[:, 1])
        cols["chunk_doc"].append(np.full(m, i, np.int64))
        cols["chunk_start"].append(p.chunks[:, 0])
        cols["chunk_end"].append(p.chunks[:, 1])
        cols["chunk_first"].append(p.chunks[:, 2] + offset)
        cols["chunk_last"].append(p.chunks[:, 3] + offset)
        offset += n
    spans = {k: np.concatenate(v).astype(np.int64) for k, v in cols.items()}
    chunk_vectors = np.concatenate([p.chunk_vectors for p in parts]).reshape(-1, dim)
    sentence_vectors = np.concatenate([p.sentence_vectors for p in parts]).reshape(-1, dim)
    return spans, chunk_vectors.astype(np.float32), sentence_vectors


def _texts(docs: list[Document], doc: np.ndarray, start: np.ndarray, end: np.ndarray) -> list[str]:
    return [docs[d].text[a:b] for d, a, b in zip(doc.tolist(), start.tolist(), end.tolist())]
