"""Hybrid retrieval: dense (FAISS) and lexical (BM25) candidates, fused by score.

Candidates are the union of the nearest chunks by cosine similarity and the
best chunks by BM25. Each is scored by a weighted sum of evidence that needs
no training on the corpus: the chunk's cosine similarity to the question, its
BM25 score relative to the best one, and how well its best single sentence
matches the question, by meaning (sentence vectors stored at index time) and
by the question's rarer words (rare in the corpus, and rare among the candidates:
in a long document every chunk shares its topic words). Looking inside chunks at
sentence level is what lifts this above plain rank fusion (docs/quality.md).

The retriever only ranks chunks; choosing the answer inside them is the
reader's job (``answer``), so either side can be swapped on its own.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..index.lexical import Lexical
from ..index.store import IndexData
from ..index.words import tokenize

DEPTH = 50  # candidates taken from each ranking before fusion
# Passage score weights: chunk cosine, BM25 relative to the best, best sentence cosine,
# best (sentence cosine + half its word overlap), and the best sentence's word overlap and
# (cosine + half of it) with the words weighted by how few candidates hold them
# (``candidate_focus``). Measured on COVID-QA, the SQuAD 2.0 dev subset and eight held-out
# SQuAD 1.1 articles (docs/quality.md).
WEIGHTS = np.array([0.6, 0.25, 0.5, 0.6, 0.6, 0.6])
# A conversation's follow-up leans toward the documents that answered about its subject
# (``qa.subject``): their chunks gain this much, a prior and not a filter, measured on the
# QuAC dev dialogs (docs/conversation.md). PREFERRED_DEPTH of them join the candidates.
PREFERRED_BONUS = 0.3
PREFERRED_DEPTH = 10


@dataclass
class Query:
    """A question as the index sees it: its vector and weighted vocabulary ids."""

    text: str
    vector: np.ndarray
    terms: np.ndarray  # vocabulary ids of the question's stemmed words
    weights: np.ndarray  # their inverse document frequencies
    total_weight: float  # weight of all the question's words, known to the index or not


@dataclass
class Passage:
    """A retrieved chunk with its score and the per-sentence evidence behind it."""

    chunk: int
    score: float
    dense: float  # cosine similarity of chunk and question
    lexical: float  # BM25 score (0 when not among the lexical candidates)
    sentences: np.ndarray  # sentence ids of the chunk
    sentence_cosine: np.ndarray
    sentence_overlap: np.ndarray  # share of the question's word weight in each sentence


def make_query(data: IndexData, text: str, vector: np.ndarray) -> Query:
    """Look up the question's words in the index vocabulary and weight them by IDF.

    Words the corpus never uses keep their (maximal) weight in the total, so a
    question about something absent cannot match fully on one common word.
    """
    vocab = data.lexical.vocab_dict
    words = set(tokenize([text])[0])
    terms = np.array(sorted({vocab[t] for t in words if t in vocab}), dtype=np.int64)
    weights = data.term_weights[terms]
    unknown = (len(words) - len(terms)) * data.unknown_term_weight
    return Query(text, vector, terms, weights, float(weights.sum()) + unknown)


def dense_search(data: IndexData, vector: np.ndarray, depth: int,
                 within: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Nearest chunks by cosine similarity (among the chunks ``within`` only, exactly, when given)."""
    if within is not None:
        return _best(within, data.chunk_vectors[within] @ vector, depth)
    if data.dense.ntotal == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.float32)
    scores, ids = data.dense.search(vector.reshape(1, -1), min(depth, data.dense.ntotal))
    keep = ids[0] >= 0
    return ids[0][keep], scores[0][keep]


def lexical_search(data: IndexData, query: Query, depth: int,
                   within: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Best chunks by BM25 (among the chunks ``within`` only, when given); nothing when no
    question word is indexed.

    Only the postings of the question's words are touched (``qa.index.lexical``).
    """
    if not len(query.terms):
        return np.zeros(0, np.int64), np.zeros(0, np.float32)
    if within is not None:
        ids, scores = _best(within, data.lexical.get_scores_from_ids(query.terms)[within], depth)
        return ids[scores > 0], scores[scores > 0]
    return bm25_top(data.lexical, query.terms, depth)


def _best(ids: np.ndarray, scores: np.ndarray, depth: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``depth`` best of these ids by score, best first (ties: lower id first)."""
    order = np.lexsort((ids, -scores))[:depth]
    return ids[order].astype(np.int64), scores[order]


def bm25_top(lexical: Lexical, terms: np.ndarray, depth: int) -> tuple[np.ndarray, np.ndarray]:
    """The depth best-scoring chunks for these vocabulary ids, best first (ties: lower id
    first), score > 0."""
    scores = lexical.get_scores_from_ids(terms)
    k = min(depth, len(scores))
    top = np.argpartition(-scores, k - 1)[:k]
    top = top[np.lexsort((top, -scores[top]))]
    top = top[scores[top] > 0]
    return top.astype(np.int64), scores[top]


def candidate_focus(terms: np.ndarray, chunks: np.ndarray, term_count: int, chunk_count: int) -> np.ndarray:
    """Per query term, how well it tells the candidate chunks apart: 1 for a term none of
    them holds, near 0 for one all of them hold (an IDF over the candidates). In a long
    paper every chunk of the right one shares its topic words ("CCL3L1", "HIV-1"); the
    question's other words ("mother-to-child transmission") find the passage.

    ``terms`` and ``chunks`` pair each occurrence of a query term (its index) with the
    candidate (its index) it occurs in."""
    pairs = np.sort(terms.astype(np.int64) * chunk_count + chunks)  # each (term, candidate) once:
    held = pairs[np.r_[True, pairs[1:] != pairs[:-1]]] // chunk_count if len(pairs) else pairs  # (np.unique
    # loads numpy.ma, 0.01 s of a start)
    holders = np.bincount(held, minlength=term_count)
    return np.log((chunk_count + 1) / (holders + 0.5)) / np.log((chunk_count + 1) / 0.5)


def retrieve(data: IndexData, query: Query, top_k: int, within: np.ndarray | None = None,
             preferred: np.ndarray | None = None) -> list[Passage]:
    """The top_k chunks, best first (all candidates scored in a few array operations);
    ``within``: the ids of the only chunks that may be retrieved (None: all); ``preferred``:
    chunks that gain PREFERRED_BONUS, their best ones among the candidates."""
    d_ids, _ = dense_search(data, query.vector, DEPTH, within)
    l_ids, l_scores = lexical_search(data, query, DEPTH, within)
    if preferred is not None and len(preferred):
        if within is not None:
            preferred = np.intersect1d(preferred, within)
        p_ids, _ = dense_search(data, query.vector, PREFERRED_DEPTH, preferred)
        pl_ids, pl_scores = lexical_search(data, query, PREFERRED_DEPTH, preferred)
        known = set(l_ids.tolist())
        extra = [i for i, c in enumerate(pl_ids.tolist()) if c not in known]
        d_ids = np.concatenate([d_ids, p_ids])
        l_ids, l_scores = np.concatenate([l_ids, pl_ids[extra]]), np.concatenate([l_scores, pl_scores[extra]])
    cands = np.array(list(dict.fromkeys(d_ids.tolist() + l_ids.tolist())), dtype=np.int64)
    if not len(cands):
        return []
    first, lengths = data.chunk_sentence_ranges(cands)
    starts = np.cumsum(lengths) - lengths  # where each candidate's sentences begin below
    sentences = np.arange(int(lengths.sum())) - np.repeat(starts - first, lengths)
    cosine = data.sentence_vectors[sentences] @ query.vector
    overlap = np.zeros(len(sentences))
    focused = np.zeros(len(sentences))
    if len(query.terms):
        owner, words = data.sentence_words(sentences)
        at = np.minimum(np.searchsorted(query.terms, words), len(query.terms) - 1)
        hit = query.terms[at] == words
        overlap = np.bincount(owner[hit], query.weights[at[hit]], len(sentences)) / query.total_weight
        focus = candidate_focus(at[hit], np.repeat(np.arange(len(cands)), lengths)[owner[hit]],
                                len(query.terms), len(cands))
        weights = query.weights * focus
        focused = (np.bincount(owner[hit], weights[at[hit]], len(sentences))
                   / max(query.total_weight - query.weights.sum() + weights.sum(), 1e-12))
    lexical = np.zeros(len(cands))
    position = {c: i for i, c in enumerate(cands.tolist())}
    for cid, value in zip(l_ids.tolist(), l_scores.tolist()):
        lexical[position[cid]] = value
    chunk_cosine = data.chunk_vectors[cands] @ query.vector
    features = np.stack([
        chunk_cosine,
        lexical / (lexical.max() or 1.0),
        np.maximum.reduceat(cosine, starts),
        np.maximum.reduceat(cosine + 0.5 * overlap, starts),
        np.maximum.reduceat(focused, starts),
        np.maximum.reduceat(cosine + 0.5 * focused, starts),
    ], axis=1)
    scores = np.nan_to_num(features @ WEIGHTS, nan=-np.inf)
    if preferred is not None and len(preferred):
        scores += PREFERRED_BONUS * np.isin(cands, preferred)
    out = []
    for i in np.argsort(-scores, kind="stable")[:top_k].tolist():
        a, b = int(starts[i]), int(starts[i] + lengths[i])
        out.append(Passage(int(cands[i]), float(scores[i]), float(chunk_cosine[i]), float(lexical[i]),
                           sentences[a:b], cosine[a:b], overlap[a:b]))
    return out
