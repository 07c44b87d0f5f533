"""Whether the span reader's answer is right: a logistic model over the evidence of one
question, fitted on real unanswerable questions.

The model's own answerable head and span probability say how well a window answers;
questions written to look answerable (SQuAD 2.0's) fool them by asking about something
the passage does not say: a name, a number or a negation the window lacks. The evidence
adds what tells those apart: how much of the question's weight (IDF) the chosen window
never mentions, whether the question negates, how sure the best other window is, and
how well retrieval matched. Fitted with ``qa eval DATASET --fit`` on SQuAD 2.0 dev
articles kept apart from every evaluation set; the weights live in ``reader.json``.
"""

from __future__ import annotations

import math
import re

import numpy as np

from ..index.store import IndexData
from ..index.words import tokenize

FEATURES = ("answerable_logit", "span_log_prob", "best_other_logit", "retrieval_score",
            "unmatched_question_weight", "negated", "short_answer_chars", "largest_unmatched_word",
            "unmatched_names")
_NAME = re.compile(r"[\w'’-]+")  # a question's words; capitalised ones past the first are names
_NEGATION = re.compile(r"\b(not|never|no|none|nor|cannot|without)\b|n['’]t\b", re.IGNORECASE)


def features(data: IndexData, question: str, window_text: str, logit: float, log_prob: float,
             other_logits: list[float], retrieval_score: float, short_chars: int) -> np.ndarray:
    """The evidence for one answer, in the order of FEATURES."""
    vocab = data.lexical.vocab_dict
    asked = set(tokenize([question])[0])
    seen = set(tokenize([window_text])[0])
    weight = {w: float(data.term_weights[vocab[w]]) if w in vocab else data.unknown_term_weight
              for w in asked}
    total = sum(weight.values())
    missing = [v for w, v in weight.items() if w not in seen]
    names = [w for w in _NAME.findall(question)[1:] if w[:1].isupper() or w[:1].isdigit()]
    unnamed = sum(1 for w in names if w.lower() not in window_text.lower())
    return np.array([
        logit, max(log_prob, -30.0), max(other_logits, default=logit - 10.0), retrieval_score,
        sum(missing) / total if total else 0.0, float(bool(_NEGATION.search(question))),
        math.log1p(short_chars), max(missing, default=0.0) / total if total else 0.0, min(unnamed, 3),
    ])


def probability(weights: list[float], evidence: np.ndarray) -> float:
    """The chance that the answer is right: weights over FEATURES, then the bias."""
    z = float(np.dot(weights[:-1], evidence)) + weights[-1]
    return 1.0 / (1.0 + math.exp(-max(min(z, 50.0), -50.0)))


def fit(evidence: np.ndarray, right: np.ndarray) -> list[float]:
    """Logistic regression of "the answer is right" on the evidence: weights, then bias."""
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=1.0, max_iter=10000).fit(evidence, right)
    return [*(round(float(w), 6) for w in model.coef_[0]), round(float(model.intercept_[0]), 6)]
