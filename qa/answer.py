"""The reader: pick the sentence that answers the question from retrieved passages.

Every candidate sentence is scored from features that need no training data
about the corpus: its cosine similarity to the question (sentence vectors are
stored at index time), how much of the question's rarer vocabulary it
contains, and how well its passage was retrieved. A logistic model maps the
best sentence's features to a calibrated probability that it answers the
question; below the abstention threshold the reader says the sources don't
say. Sentences elsewhere that say the same thing become corroborating
citations instead of repeated quotes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .retrieval import Passage
from .store import IndexData, tokenize

# Sentence ranking weights: cosine(question, sentence), weighted share of the
# question's words found in the sentence, cosine(question, passage), passage fusion rank.
RANK_WEIGHTS = np.array([1.0, 0.6, 0.5, 0.1])
# Confidence: logistic model over [best sentence score, margin to runner-up, 1].
CONFIDENCE_WEIGHTS = np.array([8.0, 4.0, -6.0])
DEFAULT_THRESHOLD = 0.3
CORROBORATION_COSINE = 0.75  # sentences this close to the answer say the same thing
READ_PASSAGES = 5  # passages the reader looks into


@dataclass
class Candidate:
    sentence: int
    passage_rank: int
    features: np.ndarray
    score: float = 0.0


@dataclass
class Reading:
    """The reader's verdict: the answer sentence, its support, and how sure it is."""

    answer: int | None  # sentence id, or None when abstaining
    confidence: float
    corroborating: list[int] = field(default_factory=list)
    candidates: list[Candidate] = field(default_factory=list)


def idf_weights(data: IndexData, terms: list[str]) -> dict[str, float]:
    """Inverse document frequency of stemmed terms over the chunks (0 for unknown terms)."""
    if data.lexical is None:
        return {}
    vocab = data.lexical.vocab_dict
    indptr = data.lexical.scores["indptr"]
    n = max(data.chunk_count, 1)
    out = {}
    for t in terms:
        i = vocab.get(t)
        if i is None:
            out[t] = 0.0
            continue
        df = float(indptr[i + 1] - indptr[i])
        out[t] = math.log(1.0 + (n - df + 0.5) / (df + 0.5))
    return out


def candidates(data: IndexData, query_vector: np.ndarray, query_text: str,
               passages: list[Passage]) -> list[Candidate]:
    """Every sentence of the passages read, with its features."""
    terms = sorted(set(tokenize([query_text])[0]))
    idf = idf_weights(data, terms)
    total = sum(idf.values()) or 1.0
    out: list[Candidate] = []
    seen: set[int] = set()
    spans = data.spans
    for rank, p in enumerate(passages[:READ_PASSAGES]):
        first, last = int(spans["chunk_first"][p.chunk]), int(spans["chunk_last"][p.chunk])
        ids = [s for s in range(first, last) if s not in seen]
        if not ids:
            continue
        seen.update(ids)
        cos = data.sentence_vectors[ids] @ query_vector
        words = tokenize([data.sentence_text(s) for s in ids])
        for s, c, w in zip(ids, cos.tolist(), words):
            present = set(w)
            overlap = sum(idf[t] for t in terms if t in present) / total
            out.append(Candidate(s, rank, np.array([c, overlap, p.dense, 1.0 / (rank + 1)])))
    for c in out:
        c.score = float(c.features @ RANK_WEIGHTS)
    out.sort(key=lambda c: -c.score)
    return out


def confidence_of(cands: list[Candidate]) -> float:
    """Calibrated probability that the best candidate answers the question."""
    if not cands:
        return 0.0
    best = cands[0].score
    margin = best - cands[1].score if len(cands) > 1 else 0.0
    z = float(np.array([best, margin, 1.0]) @ CONFIDENCE_WEIGHTS)
    return 1.0 / (1.0 + math.exp(-z))


def read(data: IndexData, query_vector: np.ndarray, query_text: str,
         passages: list[Passage], threshold: float = DEFAULT_THRESHOLD) -> Reading:
    """Choose the answer sentence, or abstain when confidence is below threshold."""
    cands = candidates(data, query_vector, query_text, passages)
    confidence = confidence_of(cands)
    if not cands or confidence < threshold:
        return Reading(None, confidence, candidates=cands)
    best = cands[0].sentence
    return Reading(best, confidence, corroborating(data, best, cands), cands)


def corroborating(data: IndexData, best: int, cands: list[Candidate]) -> list[int]:
    """Other candidate sentences that say what the answer says, in rank order."""
    vec = data.sentence_vectors[best]
    out = []
    for c in cands[1:]:
        if float(data.sentence_vectors[c.sentence] @ vec) >= CORROBORATION_COSINE:
            out.append(c.sentence)
    return out
