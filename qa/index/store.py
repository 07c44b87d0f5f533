"""The index on disk: immutable segments behind one manifest.

A segment holds the documents, spans, vectors, FAISS index, term counts and
stored text of the documents it was written with, and is never changed again.
The manifest names the live segments and, per segment, the documents that later
segments replaced or deleted (tombstones). An index folder holds a ``current``
link to the folder of the manifest in use; a new manifest is written next to it
and published by replacing the link in one atomic rename, so a reader never sees
a half-written index and a crash at any point leaves the previous one in place.
The manifest records the format, model, chunking and a SHA-256 of every file of
every segment, so a damaged or mismatched index is refused with a message that
says how to rebuild it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import stat
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np

from ..errors import IndexBusy, IndexInvalid, IndexMissing
from .lexical import Lexical, Postings
from .manifest import (
    CURRENT,
    FORMAT_VERSION,
    Manifest,
    SegmentEntry,
    file_digest,
    manifest_checksum,
    read_manifest,
    rebuild_hint,
    verify_files,
)
from .pdf import save_boxes
from .shards import Dense, Rows, dense_index
from .sources import Document
from .sparse import Compressed, stack_rows
from .words import tokenize

# One question is one search: FAISS's OpenMP threads only add overhead there, and the
# server already answers requests on several threads.
faiss.omp_set_num_threads(1)
LOCK = ".lock"
SEGMENT = "seg-"  # segment folders
MANIFEST = "gen-"  # folders of one manifest each; `current` links to the one in use
BOXES = "boxes.npy"  # the PDFs' character boxes (see sources.Document.boxes)
SPAN_FIELDS = (
    "sent_doc", "sent_start", "sent_end",
    "chunk_doc", "chunk_start", "chunk_end", "chunk_first", "chunk_last",
)


@dataclass
class IndexData:
    """Everything retrieval and answering read, held in memory."""

    manifest: Manifest
    documents: list[Document]
    spans: dict[str, np.ndarray]
    chunk_vectors: Rows  # indexed like an array by chunk id
    sentence_vectors: Rows
    dense: Dense
    lexical: Lexical
    sentence_terms: Compressed  # CSR sentences x BM25 vocabulary: which words each holds
    path: Path

    @property
    def chunk_count(self) -> int:
        return len(self.spans["chunk_start"])

    @property
    def sentence_count(self) -> int:
        return len(self.spans["sent_start"])

    def chunk_span(self, i: int) -> tuple[Document, int, int]:
        """Chunk ``i``'s document and its characters there."""
        s = self.spans
        return self.documents[int(s["chunk_doc"][i])], int(s["chunk_start"][i]), int(s["chunk_end"][i])

    def sentence_span(self, i: int) -> tuple[Document, int, int]:
        """Sentence ``i``'s document and its characters there."""
        s = self.spans
        return self.documents[int(s["sent_doc"][i])], int(s["sent_start"][i]), int(s["sent_end"][i])

    def sentence_document(self, i: int) -> int:
        """The position in ``documents`` of sentence ``i``'s document."""
        return int(self.spans["sent_doc"][i])

    def chunk_document(self, i: int) -> int:
        """The position in ``documents`` of chunk ``i``'s document."""
        return int(self.spans["chunk_doc"][i])

    def chunk_sentences(self, i: int) -> range:
        """The ids of chunk ``i``'s sentences, in order."""
        return range(int(self.spans["chunk_first"][i]), int(self.spans["chunk_last"][i]))

    def sentence_offsets(self, first: int, last: int) -> list[tuple[int, int]]:
        """(start, end) of sentences ``first`` to ``last`` (excluded), in their document."""
        s = self.spans
        return list(zip(s["sent_start"][first:last].tolist(), s["sent_end"][first:last].tolist()))

    def chunk_sentence_ranges(self, chunks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Each chunk of ``chunks``: the id of its first sentence, and how many it holds."""
        first = self.spans["chunk_first"][chunks]
        return first, self.spans["chunk_last"][chunks] - first

    def sentence_lengths(self, ids: np.ndarray) -> np.ndarray:
        """Characters of each sentence of ``ids``."""
        return self.spans["sent_end"][ids] - self.spans["sent_start"][ids]

    def chunks_per_document(self) -> np.ndarray:
        """How many chunks each document (in ``documents`` order) was cut into."""
        return np.bincount(self.spans["chunk_doc"], minlength=len(self.documents))

    def documents_within(self, source: str) -> list[int]:
        """Positions in ``documents`` of the document named ``source``, or of every document
        in the folder ``source`` (a prefix of names, "reports" or "reports/")."""
        if source in self._position:
            return [self._position[source]]
        folder = source.rstrip("/") + "/"
        return [i for i, d in enumerate(self.documents) if d.source.startswith(folder)]

    def chunks_of(self, documents: list[int]) -> np.ndarray:
        """The ids of these documents' chunks, in order."""
        return np.flatnonzero(np.isin(self.spans["chunk_doc"], documents))

    def chunk_text(self, i: int) -> str:
        doc, start, end = self.chunk_span(i)
        return doc.text[start:end]

    def sentence_text(self, i: int) -> str:
        doc, start, end = self.sentence_span(i)
        return doc.text[start:end]

    def __post_init__(self) -> None:
        self._by_source = {d.source: d for d in self.documents}
        self._position = {d.source: i for i, d in enumerate(self.documents)}
        # Inverse document frequency (over chunks) of every word in the BM25 vocabulary.
        n = max(self.chunk_count, 1)
        df = self.lexical.document_frequencies
        self.term_weights = np.log1p((n - df + 0.5) / (df + 0.5))
        self.unknown_term_weight = float(np.log1p((n + 0.5) / 0.5))

    def document(self, source: str) -> Document | None:
        return self._by_source.get(source)

    def sentence_words(self, sentences: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The vocabulary ids these sentences hold, as (position in sentences, word id) pairs.

        Gathered straight from the CSR arrays: scipy's row indexing built a new matrix
        per call and cost more than the rest of a question's scoring.
        """
        owner, at = self.sentence_terms.gather(sentences)
        return owner, self.sentence_terms.indices[at]


@contextlib.contextmanager
def build_lock(index_dir: Path) -> Iterator[None]:
    """Only one build of an index at a time; a second one is refused at once."""
    index_dir.mkdir(parents=True, exist_ok=True)
    with open(index_dir / LOCK, "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise IndexBusy(
                f"another 'qa index' is already building {index_dir}; wait for it to finish"
            ) from None
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def exists(index_dir: Path) -> bool:
    return (index_dir / CURRENT / "manifest.json").is_file()


Signature = tuple | None


def build_signature(index_dir: Path) -> Signature:
    """What identifies the published build on disk, cheaply (None: there is none): a new
    build, even of the same size within the same second, gives another signature."""
    current = index_dir / CURRENT
    try:
        link = os.lstat(current)
        target = os.readlink(current) if stat.S_ISLNK(link.st_mode) else ""
        manifest = os.stat(current / "manifest.json")
    except OSError:
        return None
    return (link.st_ino, link.st_mtime_ns, target,
            manifest.st_dev, manifest.st_ino, manifest.st_mtime_ns, manifest.st_size)


def write_segment(index_dir: Path, documents: list[Document], spans: dict[str, np.ndarray],
                  chunk_vectors: np.ndarray, sentence_vectors: np.ndarray, chunk_texts: list[str],
                  sentence_texts: list[str], index_chunks: int | None = None) -> SegmentEntry:
    """Write one immutable segment, synced to disk; its entry for the manifest.

    Nothing refers to it until a manifest naming it is published. ``index_chunks``: the
    size of the index it joins (see dense_index).
    """
    index_dir.mkdir(parents=True, exist_ok=True)
    name = f"{SEGMENT}{uuid.uuid4().hex[:12]}"
    folder = index_dir / name
    folder.mkdir()
    try:
        boxes_at = save_boxes(folder / BOXES, [d.boxes for d in documents])
        with open(folder / "documents.jsonl", "w", encoding="utf-8") as fh:
            for d, at in zip(documents, boxes_at):
                row = {"source": d.source, "sha256": d.sha256, "pages": d.pages, "text": d.text}
                if at is not None:  # a PDF: where its characters' boxes start in boxes.npy
                    row.update(boxes=at, page_sizes=d.page_sizes)
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
        np.savez(folder / "spans.npz", **{k: spans[k] for k in SPAN_FIELDS})
        np.save(folder / "chunk_vectors.npy", chunk_vectors)
        np.save(folder / "sentence_vectors.npy", sentence_vectors.astype(np.float16))
        dense, dense_info = dense_index(chunk_vectors, index_chunks)
        faiss.write_index(dense, str(folder / "dense.faiss"))
        postings = Postings.build(tokenize(chunk_texts))
        postings.save(folder)
        vocab = {w: i for i, w in enumerate(postings.vocab)}
        term_matrix(sentence_texts, vocab).save(folder / "sentence_terms.npz")
        files = sorted(p for p in folder.rglob("*") if p.is_file())
        for p in files:
            _fsync(p)
        _fsync(folder)
        return {"name": name, "sources": [d.source for d in documents], "chunks": len(chunk_texts),
                "dense_index": dense_info, "deleted": [],
                "files": {p.relative_to(folder).as_posix(): file_digest(p) for p in files}}
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise


def publish(index_dir: Path, manifest: Manifest) -> Path:
    """Make this manifest (and the segments it names) the index, in one atomic rename;
    then remove what no manifest in use refers to any more."""
    manifest = Manifest(manifest, format_version=FORMAT_VERSION)
    manifest.pop("checksum", None)
    manifest["checksum"] = manifest_checksum(manifest)
    folder = index_dir / f"{MANIFEST}{uuid.uuid4().hex[:12]}"
    folder.mkdir(parents=True)
    try:
        (folder / "manifest.json").write_text(json.dumps(manifest, indent=1), encoding="utf-8")
        _fsync(folder / "manifest.json")
        _fsync(folder)
        link = index_dir / f".current-{uuid.uuid4().hex[:8]}"
        os.symlink(folder.name, link)
        os.replace(link, index_dir / CURRENT)
        _fsync(index_dir)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    _remove_unused(index_dir, folder.name, {entry["name"] for entry in manifest["segments"]})
    return folder


def remove_unpublished(index_dir: Path) -> None:
    """Segments (and manifests) that the published manifest does not name: what a failed
    or interrupted build wrote. Only a build holding the lock may call this."""
    if not os.path.lexists(index_dir / CURRENT):  # nothing published yet: nothing is in use
        _remove_unused(index_dir, "", set())
        return
    try:
        current = (index_dir / CURRENT).resolve(strict=True)
        named = {entry["name"] for entry in read_manifest(index_dir)["segments"]}
    except (OSError, IndexMissing, IndexInvalid, KeyError, TypeError):
        return  # an unreadable index: leave every folder for a rebuild to judge
    _remove_unused(index_dir, current.name, named)


def _remove_unused(index_dir: Path, manifest: str, segments: set[str]) -> None:
    """Older manifests, segments no manifest names, and earlier formats' builds."""
    for p in index_dir.iterdir():
        stale = (p.name.startswith(MANIFEST) and p.name != manifest) or p.name.startswith(
            (".current-", "build-")) or (p.name.startswith(SEGMENT) and p.name not in segments)
        if stale:
            if p.is_symlink() or p.is_file():
                p.unlink(missing_ok=True)
            else:
                shutil.rmtree(p, ignore_errors=True)


def term_matrix(texts: list[str], vocab: dict[str, int]) -> Compressed:
    """Binary texts x vocabulary matrix (CSR) of the stemmed words each text contains."""
    import scipy.sparse as sp

    rows, cols = [], []
    for i, words in enumerate(tokenize(texts) if texts else []):
        ids = {vocab[w] for w in words if w in vocab}
        rows.extend([i] * len(ids))
        cols.extend(ids)
    data = np.ones(len(rows), dtype=np.float32)
    matrix = sp.csr_matrix((data, (rows, cols)), shape=(len(texts), max(len(vocab), 1)))
    return Compressed.from_scipy(matrix)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def segment_folders(index_dir: Path) -> list[Path]:
    """The folders of the segments the current manifest names, oldest first."""
    return [index_dir / entry["name"] for entry in read_manifest(index_dir)["segments"]]


@dataclass
class Segment:
    """One segment as stored, every row of it (deleted documents included)."""

    entry: SegmentEntry
    documents: list[Document]
    spans: dict[str, np.ndarray]
    chunk_vectors: np.ndarray
    sentence_vectors: np.ndarray
    dense: faiss.Index
    postings: Postings
    sentence_terms: Compressed


def load_segment(index_dir: Path, entry: SegmentEntry) -> Segment:
    folder = index_dir / entry["name"]
    documents = []
    # Memory-mapped: a citation reads the boxes of its own few characters.
    boxes = np.load(folder / BOXES, mmap_mode="r") if BOXES in entry.get("files", {}) else None
    with open(folder / "documents.jsonl", encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            doc = Document(row["source"], row["text"], row["sha256"], row["pages"])
            if "boxes" in row and boxes is not None:
                at = int(row["boxes"])
                doc.boxes, doc.page_sizes = boxes[at : at + len(doc.text)], row["page_sizes"]
            documents.append(doc)
    with np.load(folder / "spans.npz") as npz:
        spans = {k: npz[k] for k in SPAN_FIELDS}
    # Memory-mapped: pages are read on demand and shared between processes. Seen as plain
    # arrays over the mapping (np.memmap's own bookkeeping costs more than a row read).
    chunk_vectors = np.asarray(np.load(folder / "chunk_vectors.npy", mmap_mode="r"))
    sentence_vectors = np.asarray(np.load(folder / "sentence_vectors.npy", mmap_mode="r"))
    dense = faiss.read_index(str(folder / "dense.faiss"))
    if "nprobe" in entry.get("dense_index", {}):
        dense.nprobe = int(entry["dense_index"]["nprobe"])
    return Segment(entry, documents, spans, chunk_vectors, sentence_vectors, dense, Postings.load(folder),
                   Compressed.load(folder / "sentence_terms.npz", "csr"))


def load(index_dir: Path, model_name: str | None = None, dimension: int | None = None,
         verified: Path | None = None) -> IndexData:
    """Load and verify the current index; any damage or mismatch is an IndexInvalid.

    ``verified`` is a manifest folder that verify_files already checked: if it is still
    the current one, its checksums are not computed twice.
    """
    manifest = read_manifest(index_dir)
    folder = (index_dir / CURRENT).resolve()
    if model_name is not None and manifest.get("model") != model_name:
        raise IndexInvalid(
            f"index at {index_dir} was built with model {manifest.get('model')!r}, not "
            f"{model_name!r}; use --model {manifest.get('model')} or {rebuild_hint(index_dir)}"
        )
    if dimension is not None and manifest.get("dimension") != dimension:
        raise IndexInvalid(
            f"index at {index_dir} holds {manifest.get('dimension')}-dimensional vectors, the "
            f"model makes {dimension}; {rebuild_hint(index_dir)}"
        )
    if folder != verified:
        verify_files(index_dir, manifest)
    try:
        segments = [load_segment(index_dir, entry) for entry in manifest["segments"]]
        return combine(manifest, segments, int(manifest["dimension"]), folder)
    except Exception as exc:  # anything unreadable past the checksums is still damage
        hint = rebuild_hint(index_dir)
        raise IndexInvalid(f"index at {index_dir} cannot be read ({exc}); {hint}") from None


def combine(manifest: Manifest, segments: list[Segment], dimension: int, path: Path) -> IndexData:
    """The live documents of these segments as one index, numbered in segment order."""
    documents: list[Document] = []
    cols: dict[str, list[np.ndarray]] = {k: [] for k in SPAN_FIELDS}
    chunk_parts, sentence_parts, dense_parts, lexical_parts, maps = [], [], [], [], []
    base = {"doc": 0, "sent": 0, "chunk": 0}
    for seg in segments:
        dead = set(seg.entry.get("deleted", []))
        live_doc = np.array([d.source not in dead for d in seg.documents], bool)
        s = seg.spans
        doc_map = _numbering(live_doc, base, "doc")
        sent_live, chunk_live = live_doc[s["sent_doc"]], live_doc[s["chunk_doc"]]
        sent_map, chunk_map = _numbering(sent_live, base, "sent"), _numbering(chunk_live, base, "chunk")
        documents += [d for d, alive in zip(seg.documents, live_doc) if alive]
        cols["sent_doc"].append(doc_map[s["sent_doc"][sent_live]])
        cols["sent_start"].append(s["sent_start"][sent_live])
        cols["sent_end"].append(s["sent_end"][sent_live])
        cols["chunk_doc"].append(doc_map[s["chunk_doc"][chunk_live]])
        cols["chunk_start"].append(s["chunk_start"][chunk_live])
        cols["chunk_end"].append(s["chunk_end"][chunk_live])
        cols["chunk_first"].append(sent_map[s["chunk_first"][chunk_live]])
        cols["chunk_last"].append(sent_map[s["chunk_last"][chunk_live] - 1] + 1)  # one past the end
        everything = bool(live_doc.all())
        chunk_parts.append((seg.chunk_vectors, None if everything else np.flatnonzero(chunk_live)))
        sentence_parts.append((seg.sentence_vectors, None if everything else np.flatnonzero(sent_live)))
        dense_parts.append((seg.dense, chunk_map))
        lexical_parts.append((seg.postings, chunk_map))
        maps.append(sent_live)
    spans = {k: (np.concatenate(v) if v else np.zeros(0)).astype(np.int64) for k, v in cols.items()}
    lexical = Lexical(lexical_parts, base["chunk"])
    width = len(lexical.vocab_dict)  # the segments' words renumbered in the united vocabulary
    sentence_terms = stack_rows([seg.sentence_terms.rows(live).renumbered(lexical.to_global(i), width)
                                 for i, (seg, live) in enumerate(zip(segments, maps))], width)
    return IndexData(manifest, documents, spans, Rows(chunk_parts, dimension),
                     Rows(sentence_parts, dimension), Dense(dense_parts), lexical, sentence_terms, path)


def _numbering(live: np.ndarray, base: dict[str, int], kind: str) -> np.ndarray:
    """Global ids of the live rows (in order, after those of earlier segments); -1 for the rest."""
    out = np.full(len(live), -1, np.int64)
    count = int(live.sum())
    out[live] = np.arange(base[kind], base[kind] + count)
    base[kind] += count
    return out
