"""The sentence reader: the best candidate sentence is the answer.

A logistic model turns the best candidate's score into a calibrated probability
that it answers the question; below the abstention threshold the reader says the
sources don't say. Cheap, gives no short answer, and the fallback when the span
reader's files cannot be loaded.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from .base import Candidate, Reading, ReadRequest, candidates, corroborating, repeats, score

# Confidence: logistic model over [best sentence score, 1], fitted on the SQuAD 2.0
# dev subset with `qa eval ../shared/data/squad2-dev-3articles.json --fit` (docs/quality.md).
CONFIDENCE_WEIGHTS = np.array([0.9218, -1.6311])
# Abstain below this confidence (a sentence score of about 0.63): midway between the
# most confident off-topic question (0.245) and the least confident answerable one
# (0.277) of eval/seeds-offtopic.json; it answers 99.8% of answerable SQuAD questions.
DEFAULT_THRESHOLD = 0.26
# Answers at or above this confidence were right 9 times in 10 on the 15 SQuAD 2.0 dev articles
# of ../shared/data (half unanswerable): `qa eval ../shared/data/squad2-dev-15articles.json`
# with the reliability table (docs/quality.md). Few answers reach it: the sentence reader is the fallback.
SURE_LEVEL = 0.52


def evidence_of(cands: list[Candidate]) -> np.ndarray:
    """Inputs of the confidence model: the best candidate's score and a bias term."""
    return np.array([cands[0].score, 1.0])


def confidence_of(evidence: np.ndarray) -> float:
    z = float(evidence @ CONFIDENCE_WEIGHTS)
    return 1.0 / (1.0 + math.exp(-max(min(z, 50.0), -50.0)))


class SentenceReader:
    """Reads no further than the sentence: cheap, and the fallback when the span reader is absent."""

    name = "sentence"
    default_threshold = DEFAULT_THRESHOLD
    sure_level = SURE_LEVEL

    def referent(self, question: str, answer: str) -> str:
        """No short answers here, so nothing a follow-up can be read against."""
        return ""

    def read(self, request: ReadRequest) -> Reading:
        data, avoid = request.data, request.avoid
        reading = _read(request)  # no short answers: ``banned`` has no use here
        if reading.answer is None or not repeats(data, reading.answer, avoid):
            return reading
        other = _read(request, lambda s: not repeats(data, s, avoid))
        return other if other.answer is not None or request.only_new else reading


def _read(request: ReadRequest, allowed: Callable[[int], bool] = lambda sentence: True) -> Reading:
    """Choose the answer sentence among those allowed, or abstain below the threshold."""
    data = request.data
    cands = [c for c in score(data, candidates(request.passages)) if allowed(c.sentence)]
    if not cands:
        return Reading(None, None, 0.0)
    evidence = evidence_of(cands)
    confidence = confidence_of(evidence)
    best = cands[0].sentence
    if confidence < request.threshold:
        return Reading(best, None, confidence, evidence)
    return Reading(best, best, confidence, evidence, corroborating(data, cands))
