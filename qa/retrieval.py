"""Hybrid retrieval: dense (FAISS) and lexical (BM25) rankings fused by reciprocal rank.

The retriever only ranks chunks; choosing the answer inside them is the
reader's job (``answer``), so either side can be swapped on its own.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .store import IndexData, tokenize

RRF_K = 60  # the usual constant of reciprocal rank fusion (Cormack et al., 2009)
DEPTH = 50  # candidates taken from each ranking before fusion


@dataclass
class Passage:
    """A retrieved chunk with its fused score and the evidence behind it."""

    chunk: int
    score: float
    dense: float  # cosine similarity of chunk and question
    lexical: float  # BM25 score (0 when no query word matched)


def dense_search(data: IndexData, query: np.ndarray, depth: int) -> tuple[np.ndarray, np.ndarray]:
    """Nearest chunks by cosine similarity."""
    if data.dense.ntotal == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.float32)
    scores, ids = data.dense.search(query.reshape(1, -1), min(depth, data.dense.ntotal))
    keep = ids[0] >= 0
    return ids[0][keep], scores[0][keep]


def lexical_search(data: IndexData, text: str, depth: int) -> tuple[np.ndarray, np.ndarray]:
    """Best chunks by BM25 over stemmed words; nothing when no query word is indexed."""
    if data.lexical is None:
        return np.zeros(0, np.int64), np.zeros(0, np.float32)
    tokens = tokenize([text])
    vocab = data.lexical.vocab_dict
    tokens = [[t for t in tokens[0] if t in vocab]]
    if not tokens[0]:
        return np.zeros(0, np.int64), np.zeros(0, np.float32)
    k = min(depth, data.chunk_count)
    ids, scores = data.lexical.retrieve(tokens, k=k, show_progress=False, n_threads=1)
    keep = scores[0] > 0
    return ids[0][keep].astype(np.int64), scores[0][keep]


def retrieve(data: IndexData, query_vector: np.ndarray, query_text: str, top_k: int) -> list[Passage]:
    """The top_k chunks by reciprocal rank fusion of the dense and lexical rankings."""
    d_ids, d_scores = dense_search(data, query_vector, DEPTH)
    l_ids, l_scores = lexical_search(data, query_text, DEPTH)
    fused: dict[int, float] = {}
    for ids in (d_ids, l_ids):
        for rank, cid in enumerate(ids.tolist()):
            fused[cid] = fused.get(cid, 0.0) + 1.0 / (RRF_K + rank + 1)
    if not fused:
        return []
    dense = dict(zip(d_ids.tolist(), d_scores.tolist()))
    lexical = dict(zip(l_ids.tolist(), l_scores.tolist()))
    ranked = sorted(fused, key=lambda c: -fused[c])[:top_k]
    out = []
    for cid in ranked:
        cos = dense.get(cid)
        if cos is None:
            cos = float(data.chunk_vectors[cid] @ query_vector)
        out.append(Passage(cid, fused[cid], float(cos), float(lexical.get(cid, 0.0))))
    return out
