"""The index on disk: documents, spans, vectors, FAISS and BM25, behind one manifest.

An index folder holds a ``current`` link to one complete build. A build is
written into a fresh folder next to it and published by replacing the link
in one atomic rename, so a reader never sees a half-written index and a
crash mid-build leaves the previous one in place. The manifest records the
format, model, chunking and a SHA-256 of every file, so a damaged or
mismatched index is refused with a message that says how to rebuild it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import re
import shutil
import stat
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import bm25s
import faiss
import numpy as np
import scipy.sparse as sp
from bm25s.stopwords import STOPWORDS_EN_PLUS

from .errors import IndexBusy, IndexInvalid, IndexMissing
from .sources import Document

FORMAT_VERSION = 2
# One question is one search: FAISS's OpenMP threads only add overhead there, and the
# server already answers requests on several threads.
faiss.omp_set_num_threads(1)
EXACT_LIMIT = 50_000  # chunks; above this the dense index is approximate (see dense_index)
CURRENT = "current"
LOCK = ".lock"
SPAN_FIELDS = (
    "sent_doc", "sent_start", "sent_end",
    "chunk_doc", "chunk_start", "chunk_end", "chunk_first", "chunk_last",
)


@dataclass
class IndexData:
    """Everything retrieval and answering read, held in memory."""

    manifest: dict
    documents: list[Document]
    spans: dict[str, np.ndarray]
    chunk_vectors: np.ndarray
    sentence_vectors: np.ndarray
    dense: faiss.Index
    lexical: bm25s.BM25 | None
    sentence_terms: sp.csr_matrix  # sentences x BM25 vocabulary: which words each holds
    path: Path

    @property
    def chunk_count(self) -> int:
        return len(self.spans["chunk_start"])

    def chunk_text(self, i: int) -> str:
        doc = self.documents[int(self.spans["chunk_doc"][i])]
        return doc.text[int(self.spans["chunk_start"][i]) : int(self.spans["chunk_end"][i])]

    def sentence_text(self, i: int) -> str:
        doc = self.documents[int(self.spans["sent_doc"][i])]
        return doc.text[int(self.spans["sent_start"][i]) : int(self.spans["sent_end"][i])]

    def __post_init__(self) -> None:
        self._by_source = {d.source: d for d in self.documents}
        # Inverse document frequency (over chunks) of every word in the BM25 vocabulary.
        n = max(self.chunk_count, 1)
        df = np.diff(self.lexical.scores["indptr"]).astype(np.float64) if self.lexical else np.zeros(0)
        self.term_weights = np.log1p((n - df + 0.5) / (df + 0.5))
        self.unknown_term_weight = float(np.log1p((n + 0.5) / 0.5))

    def document(self, source: str) -> Document | None:
        return self._by_source.get(source)

    def sentence_words(self, sentences: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The vocabulary ids these sentences hold, as (position in sentences, word id) pairs.

        Gathered straight from the CSR arrays: scipy's row indexing builds a new matrix
        per call and cost more than the rest of a question's scoring.
        """
        m = self.sentence_terms
        starts, ends = m.indptr[sentences], m.indptr[np.asarray(sentences) + 1]
        lengths = ends - starts
        owner = np.repeat(np.arange(len(lengths)), lengths)
        at = np.arange(int(lengths.sum())) + np.repeat(starts - (np.cumsum(lengths) - lengths), lengths)
        return owner, m.indices[at]


def rebuild_hint(index_dir: Path) -> str:
    return f"rebuild it with: qa index SOURCES --index {index_dir} --rebuild"


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


def save(
    index_dir: Path,
    manifest: dict,
    documents: list[Document],
    spans: dict[str, np.ndarray],
    chunk_vectors: np.ndarray,
    sentence_vectors: np.ndarray,
    chunk_texts: list[str],
    sentence_texts: list[str],
) -> Path:
    """Write a complete build aside, then publish it atomically."""
    index_dir.mkdir(parents=True, exist_ok=True)
    build = index_dir / f"build-{uuid.uuid4().hex[:12]}"
    build.mkdir()
    try:
        with open(build / "documents.jsonl", "w", encoding="utf-8") as fh:
            for d in documents:
                row = {"source": d.source, "sha256": d.sha256, "pages": d.pages, "text": d.text}
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
        np.savez(build / "spans.npz", **{k: spans[k] for k in SPAN_FIELDS})
        np.save(build / "chunk_vectors.npy", chunk_vectors)
        np.save(build / "sentence_vectors.npy", sentence_vectors.astype(np.float16))
        dense, dense_info = dense_index(chunk_vectors)
        faiss.write_index(dense, str(build / "dense.faiss"))
        vocab: dict[str, int] = {}
        if chunk_texts:
            lexical = bm25s.BM25()
            lexical.index(tokenize(chunk_texts), show_progress=False)
            lexical.save(str(build / "bm25"))
            vocab = lexical.vocab_dict
        sp.save_npz(build / "sentence_terms.npz", term_matrix(sentence_texts, vocab))
        files = sorted(p for p in build.rglob("*") if p.is_file())
        manifest = dict(manifest, format_version=FORMAT_VERSION, dense_index=dense_info, files={
            p.relative_to(build).as_posix(): _file_digest(p) for p in files
        })
        manifest["checksum"] = manifest_checksum(manifest)
        (build / "manifest.json").write_text(json.dumps(manifest, indent=1), encoding="utf-8")
        for p in [*files, build / "manifest.json"]:
            _fsync(p)
        link = index_dir / f".current-{uuid.uuid4().hex[:8]}"
        os.symlink(build.name, link)
        os.replace(link, index_dir / CURRENT)
        _fsync(index_dir)
    except BaseException:
        shutil.rmtree(build, ignore_errors=True)
        raise
    _remove_old_builds(index_dir, keep=build.name)
    return build


def _remove_old_builds(index_dir: Path, keep: str) -> None:
    for p in index_dir.iterdir():
        if p.name.startswith(("build-", ".current-")) and p.name != keep:
            if p.is_symlink() or p.is_file():
                p.unlink(missing_ok=True)
            else:
                shutil.rmtree(p, ignore_errors=True)


def term_matrix(texts: list[str], vocab: dict[str, int]) -> sp.csr_matrix:
    """Binary texts x vocabulary matrix of the stemmed words each text contains."""
    rows, cols = [], []
    for i, words in enumerate(tokenize(texts) if texts else []):
        ids = {vocab[w] for w in words if w in vocab}
        rows.extend([i] * len(ids))
        cols.extend(ids)
    data = np.ones(len(rows), dtype=np.float32)
    return sp.csr_matrix((data, (rows, cols)), shape=(len(texts), max(len(vocab), 1)))


def dense_index(vectors: np.ndarray) -> tuple[faiss.Index, dict]:
    """The FAISS index for this many vectors, and a description for the manifest.

    Up to EXACT_LIMIT chunks an exact inner-product search is fast enough (a few ms).
    Above it, an inverted file over k-means cells with 8-bit scalar quantisation keeps
    search in milliseconds and memory at a quarter, at a recall@10 against exact
    search measured by bench/scale.py.
    """
    n, dim = (vectors.shape[0], vectors.shape[1]) if vectors.ndim == 2 else (0, 0)
    if n <= EXACT_LIMIT:
        index = faiss.IndexFlatIP(dim)
        if n:
            index.add(vectors)
        return index, {"type": "flat", "exact": True}
    cells = int(4 * np.sqrt(n))
    quantizer = faiss.IndexFlatIP(dim)
    index = faiss.IndexIVFScalarQuantizer(
        quantizer, dim, cells, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT
    )
    sample = vectors[np.random.default_rng(0).choice(n, min(n, 64 * cells), replace=False)]
    faiss.omp_set_num_threads(os.cpu_count() or 1)  # building is one big batch job
    try:
        index.train(sample)
        index.add(vectors)
    finally:
        faiss.omp_set_num_threads(1)
    probes = max(16, cells // 32)
    index.nprobe = probes
    return index, {"type": f"ivf{cells},sq8", "exact": False, "nprobe": probes}


# NLTK's English stop words (as bundled with bm25s) plus question words it lacks: a
# question's "how many" must not count as words the corpus should contain.
STOPWORDS = sorted(set(STOPWORDS_EN_PLUS) | {"many", "much", "whose", "could", "would"})


_WORD = re.compile(r"(?u)\b\w\w+\b")  # the word pattern bm25s and scikit-learn use
_STOP = frozenset(STOPWORDS)


def tokenize(texts: list[str]) -> list[list[str]]:
    """Lower-cased, stemmed words without English stop words (BM25's vocabulary)."""
    stem = _stemmer().stemWords
    return [stem([w for w in _WORD.findall(t.lower()) if w not in _STOP]) for t in texts]


@lru_cache(maxsize=1)
def _stemmer():
    import Stemmer

    return Stemmer.Stemmer("english")


def _file_digest(path: Path) -> dict:
    """SHA-256 and size, read in blocks; a FIFO or device is refused, never waited on."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(errno.EINVAL, "not a regular file", str(path))
    h = hashlib.sha256()
    size = 0
    with open(fd, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
            size += len(block)
    return {"sha256": h.hexdigest(), "bytes": size}


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_manifest(index_dir: Path) -> dict:
    """The manifest of the current build, checked for format."""
    path = index_dir / CURRENT / "manifest.json"
    if not path.is_file():
        raise IndexMissing(f"no index at {index_dir}; build one with: qa index SOURCES --index {index_dir}")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise IndexInvalid(f"index manifest {path} is damaged ({exc}); {rebuild_hint(index_dir)}") from None
    if not isinstance(manifest, dict) or manifest.get("format_version") != FORMAT_VERSION:
        found = manifest.get("format_version") if isinstance(manifest, dict) else None
        raise IndexInvalid(
            f"index manifest {path} has format {found!r}, this version reads format "
            f"{FORMAT_VERSION}; {rebuild_hint(index_dir)}"
        )
    if manifest.get("checksum") != manifest_checksum(manifest):
        raise IndexInvalid(f"index manifest {path} is damaged (checksum mismatch); {rebuild_hint(index_dir)}")
    return manifest


def manifest_checksum(manifest: dict) -> str:
    """SHA-256 of the manifest's content without its own checksum field."""
    body = {k: v for k, v in manifest.items() if k != "checksum"}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode("utf-8")).hexdigest()


def verify_files(index_dir: Path, manifest: dict) -> Path:
    """Every file the manifest lists is present with its recorded checksum; the build checked."""
    build = (index_dir / CURRENT).resolve()
    for name, expected in manifest.get("files", {}).items():
        path = build / name
        try:
            intact = path.is_file() and _file_digest(path) == expected
        except OSError:
            intact = False
        if not intact:
            raise IndexInvalid(f"index file {path} is missing or damaged; {rebuild_hint(index_dir)}")
    return build


def load(index_dir: Path, model_name: str | None = None, dimension: int | None = None,
         verified: Path | None = None) -> IndexData:
    """Load and verify the current build; any damage or mismatch is an IndexInvalid.

    ``verified`` is a build that verify_files already checked: if it is still the
    current one, its checksums are not computed twice.
    """
    manifest = read_manifest(index_dir)
    build = (index_dir / CURRENT).resolve()
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
    if build != verified:
        verify_files(index_dir, manifest)
    try:
        documents = []
        with open(build / "documents.jsonl", encoding="utf-8") as fh:
            for line in fh:
                row = json.loads(line)
                documents.append(Document(row["source"], row["text"], row["sha256"], row["pages"]))
        with np.load(build / "spans.npz") as npz:
            spans = {k: npz[k] for k in SPAN_FIELDS}
        # Memory-mapped: pages are read on demand and shared between processes.
        chunk_vectors = np.load(build / "chunk_vectors.npy", mmap_mode="r")
        sentence_vectors = np.load(build / "sentence_vectors.npy", mmap_mode="r")
        dense = faiss.read_index(str(build / "dense.faiss"))
        if "nprobe" in manifest.get("dense_index", {}):
            dense.nprobe = int(manifest["dense_index"]["nprobe"])
        lexical = bm25s.BM25.load(str(build / "bm25")) if (build / "bm25").is_dir() else None
        sentence_terms = sp.load_npz(build / "sentence_terms.npz").tocsr()
    except Exception as exc:  # anything unreadable past the checksums is still damage
        hint = rebuild_hint(index_dir)
        raise IndexInvalid(f"index at {index_dir} cannot be read ({exc}); {hint}") from None
    return IndexData(manifest, documents, spans, chunk_vectors, sentence_vectors, dense, lexical,
                     sentence_terms, build)


def file_sha256(path: Path) -> str:
    """Content hash of a source file, read in blocks (never the whole file at once)."""
    return _file_digest(path)["sha256"]
