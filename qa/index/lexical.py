"""BM25 over the segments of an index, with collection-wide statistics.

Each segment stores the term counts of its chunks (``Postings``). At load time the
segments' vocabularies are united and document frequencies summed over the live
chunks only, so a chunk's score does not depend on how the corpus happens to be
split into segments, nor on documents that later segments replaced. Scoring is
Lucene's BM25 (k1 = 1.5, b = 0.75) exactly as bm25s computes it (without the constant
k1 + 1 factor); bm25s itself bakes its
statistics into one index at build time, which segments cannot share.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .sparse import Compressed

K1 = 1.5
B = 0.75


@dataclass
class Postings:
    """One segment's term counts: chunks x its own vocabulary, and each chunk's length."""

    vocab: list[str]
    counts: Compressed  # CSC (chunks, len(vocab)): how often each word occurs in each chunk
    lengths: np.ndarray  # (chunks,) words per chunk

    @classmethod
    def build(cls, tokens: list[list[str]]) -> Postings:
        import scipy.sparse as sp

        vocab: dict[str, int] = {}
        rows, cols = [], []
        for i, words in enumerate(tokens):
            for w in words:
                cols.append(vocab.setdefault(w, len(vocab)))
                rows.append(i)
        counts = sp.csc_matrix((np.ones(len(rows), np.float32), (rows, cols)),
                               shape=(len(tokens), max(len(vocab), 1)))
        counts.sum_duplicates()
        lengths = np.array([len(t) for t in tokens], np.float32)
        return cls(list(vocab), Compressed.from_scipy(counts), lengths)

    def save(self, folder: Path) -> list[Path]:
        self.counts.save(folder / "terms.npz")
        np.save(folder / "lengths.npy", self.lengths)
        (folder / "vocab.json").write_text(json.dumps(self.vocab, ensure_ascii=False), encoding="utf-8")
        return [folder / "terms.npz", folder / "lengths.npy", folder / "vocab.json"]

    @classmethod
    def load(cls, folder: Path) -> Postings:
        vocab = json.loads((folder / "vocab.json").read_text(encoding="utf-8"))
        if not isinstance(vocab, list):
            raise ValueError("vocab.json is not a list")
        return cls(vocab, Compressed.load(folder / "terms.npz", "csc"), np.load(folder / "lengths.npy"))


class Lexical:
    """BM25 over several segments' postings as one collection of live chunks.

    ``parts`` pairs each segment's postings with the global chunk id of each of its
    rows (-1: a chunk of a deleted or replaced document, never scored or counted).
    """

    def __init__(self, parts: list[tuple[Postings, np.ndarray]], chunks: int) -> None:
        self.chunks = chunks
        self.vocab_dict: dict[str, int] = {}
        self._parts = []
        for postings, ids in parts:
            to_global = np.array([self.vocab_dict.setdefault(w, len(self.vocab_dict))
                                  for w in postings.vocab], np.int64)
            self._parts.append((postings, ids, to_global))
        size = len(self.vocab_dict)
        self.document_frequencies = np.zeros(size, np.float64)
        total_length = 0.0
        self._locals = []  # per part: global term id -> local column (-1: not in this segment)
        for postings, ids, to_global in self._parts:
            live = ids >= 0
            if postings.vocab:  # per word, the live chunks that hold it
                counts = postings.counts
                present = (counts.data > 0) & live[counts.indices]
                held = np.bincount(counts.lines(), present, counts.shape[1])
                np.add.at(self.document_frequencies, to_global, held)
            total_length += float(postings.lengths[live].sum())
            local = np.full(size, -1, np.int64)
            local[to_global] = np.arange(len(to_global))
            self._locals.append(local)
        n = max(chunks, 1)
        self.average_length = total_length / n if chunks else 1.0
        df = self.document_frequencies
        self.idf = np.log1p((n - df + 0.5) / (df + 0.5))
        # Per segment and row: BM25's length normalisation, k1 (1 - b + b |d| / avgdl).
        self._norms = [(K1 * (1 - B + B * postings.lengths / self.average_length)).astype(np.float32)
                       for postings, _, _ in self._parts]
        # Where each segment's rows land: (first global id, None, None) when all are live
        # (their ids run on from the first), else (0, live local rows, their global ids).
        self._places = [(int(ids[0]) if len(ids) else 0, None, None) if (ids >= 0).all()
                        else (0, np.flatnonzero(ids >= 0), ids[ids >= 0]) for _, ids, _ in self._parts]

    def to_global(self, part: int) -> np.ndarray:
        """Part ``part``'s vocabulary ids in the united vocabulary."""
        return self._parts[part][2]

    def get_scores_from_ids(self, terms: np.ndarray) -> np.ndarray:
        """BM25 of every live chunk (by global id) for these global vocabulary ids.

        Per segment, the words' postings are gathered in one go and summed with one
        bincount (in float64, in word order: the same sums however the corpus is split).
        """
        scores = np.zeros(self.chunks, np.float32)
        weights = self.idf[terms].astype(np.float32)
        for (postings, _, _), local, norm, (first, live, targets) in zip(
                self._parts, self._locals, self._norms, self._places):
            columns = local[terms]
            keep = np.flatnonzero(columns >= 0)
            if not len(keep):
                continue
            pointer, columns = postings.counts.indptr, columns[keep]
            bounds = list(zip(pointer[columns].tolist(), pointer[columns + 1].tolist()))
            rows = np.concatenate([postings.counts.indices[a:b] for a, b in bounds])
            tf = np.concatenate([postings.counts.data[a:b] for a, b in bounds])
            share = np.repeat(weights[keep], [b - a for a, b in bounds]) * tf / (tf + norm[rows])
            sums = np.bincount(rows, share, len(norm))
            if live is None:
                scores[first:first + len(norm)] = sums
            else:
                scores[targets] = sums[live]
        return scores
