"""The dense (FAISS) index of a segment, and several segments' vectors and indexes seen as
one, by global row ids.

A segment is never rewritten: when a later segment replaces or deletes one of its
documents, that document's rows stay on disk and are only left out here. Global ids
number the live rows of all segments in order, so retrieval and reading work on one
index whatever the number of segments.
"""

from __future__ import annotations

import os

import faiss
import numpy as np

EXACT_LIMIT = 50_000  # chunks; above this the dense index is approximate (see dense_index)
MIN_APPROXIMATE = 2_000  # a segment smaller than this is searched exactly in any index


def _ids(key: object, length: int) -> np.ndarray:
    if isinstance(key, slice):
        return np.arange(length)[key]
    key = np.asarray(key)
    return np.flatnonzero(key) if key.dtype == bool else key.astype(np.int64)


class Rows:
    """Rows of several segments' arrays as one array of their live rows.

    ``parts`` pairs each segment's array with the local row of each of its live rows
    (None: every row is live).
    """

    def __init__(self, parts: list[tuple[np.ndarray, np.ndarray | None]], dimension: int) -> None:
        self.parts = parts
        self.dimension = dimension
        sizes = [len(a) if live is None else len(live) for a, live in parts]
        self.offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        self.dtype = parts[0][0].dtype if parts else np.dtype(np.float32)

    def __len__(self) -> int:
        return int(self.offsets[-1])

    @property
    def shape(self) -> tuple[int, int]:
        return len(self), self.dimension

    def __array__(self, dtype: object = None, copy: object = None) -> np.ndarray:
        out = self[:]
        return out if dtype is None else out.astype(dtype)

    def __getitem__(self, key: object) -> np.ndarray:
        if len(self.parts) == 1 and self.parts[0][1] is None:  # one segment, nothing deleted
            return self.parts[0][0][key]
        if isinstance(key, (int, np.integer)):
            return self[[key]][0]
        ids = _ids(key, len(self))
        out = np.empty((len(ids), self.dimension), self.dtype)
        owner = np.searchsorted(self.offsets, ids, side="right") - 1
        for s in np.unique(owner).tolist():
            mask = owner == s
            array, live = self.parts[s]
            local = ids[mask] - self.offsets[s]
            out[mask] = array[local if live is None else live[local]]
        return out


class Dense:
    """Nearest live chunks over every segment's FAISS index, merged by score.

    ``parts`` pairs each segment's index with the global id of each of its rows (-1:
    deleted). The segments with nothing deleted are searched as one ``faiss.IndexShards``,
    which asks each of them in a thread of its own and merges their k best in C++; a
    segment with deleted rows is searched on its own, a selector hiding those rows. Each
    segment gives its own k best live rows, so the merged k best are the same as one
    index's over the same rows.
    """

    def __init__(self, parts: list[tuple[faiss.Index, np.ndarray]]) -> None:
        whole, self.apart = [], []
        self.ntotal = 0
        for index, ids in parts:
            live = np.flatnonzero(ids >= 0)
            self.ntotal += len(live)
            if not len(live):
                continue
            if len(live) == index.ntotal:
                whole.append((index, ids))
                continue
            selector = faiss.IDSelectorBatch(live.astype(np.int64))
            params = (faiss.SearchParametersIVF(sel=selector, nprobe=index.nprobe)
                      if hasattr(index, "nprobe") else faiss.SearchParameters(sel=selector))
            params._selector = selector  # keep it alive as long as the parameters
            self.apart.append((index, ids, params, len(live)))
        self.shards: faiss.Index | None = whole[0][0] if len(whole) == 1 else None
        if len(whole) > 1:
            self.shards = faiss.IndexShards(whole[0][0].d, True, True)  # threaded, ids run on
            for index, _ in whole:
                self.shards.add_shard(index)
            self._held = [index for index, _ in whole]  # IndexShards does not own its shards
        self.shard_ids = np.concatenate([ids for _, ids in whole]) if whole else np.zeros(0, np.int64)

    def search(self, vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(scores, global ids) of the k nearest live chunks, best first, for one query row."""
        found = []
        if self.shards is not None:
            s, rows = self.shards.search(vectors, min(k, len(self.shard_ids)))
            keep = rows[0] >= 0
            found.append((s[0][keep], self.shard_ids[rows[0][keep]]))
        for index, ids, params, live in self.apart:
            s, rows = index.search(vectors, min(k, live), params=params)
            keep = rows[0] >= 0
            found.append((s[0][keep], ids[rows[0][keep]]))
        if not found:
            return np.zeros((1, 0), np.float32), np.zeros((1, 0), np.int64)
        s, g = np.concatenate([f[0] for f in found]), np.concatenate([f[1] for f in found])
        order = np.lexsort((g, -s))[:k]
        return s[order][None, :], g[order][None, :]


def dense_index(vectors: np.ndarray, index_chunks: int | None = None) -> tuple[faiss.Index, dict]:
    """The FAISS index for this many vectors, and a description for the manifest.

    Up to EXACT_LIMIT chunks an exact inner-product search is fast enough (a few ms).
    Above it, an inverted file over k-means cells with 8-bit scalar quantisation keeps
    search in milliseconds and memory at a quarter, at a recall@10 against exact
    search measured by bench/scale.py. The choice goes by the size of the whole index
    the vectors are a segment of (``index_chunks``): ten exact segments of a large index
    would cost ten times one approximate index; a segment under MIN_APPROXIMATE chunks
    stays exact.
    """
    n, dim = (vectors.shape[0], vectors.shape[1]) if vectors.ndim == 2 else (0, 0)
    if max(n, index_chunks or 0) <= EXACT_LIMIT or n < MIN_APPROXIMATE:
        index = faiss.IndexFlatIP(dim)
        if n:
            index.add(vectors)
        return index, {"type": "flat", "exact": True}
    cells = min(int(4 * np.sqrt(n)), n // 39)  # FAISS wants 39 training points a cell
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
    # A thirtieth-second of the cells (at least 4): a segment of a tenth of the index
    # probes a tenth of the cells one index would, for the same share of its vectors.
    probes = max(4, -(-cells // 32))
    index.nprobe = probes
    return index, {"type": f"ivf{cells},sq8", "exact": False, "nprobe": probes}
