"""SQuAD's official answer normalisation, exact match and token F1."""

from __future__ import annotations

import re
import string
from collections import Counter

_PUNCTUATION = frozenset(string.punctuation)


def normalize(text: str) -> str:
    """Lower case, no punctuation, no articles, single spaces (SQuAD's evaluate-v2.0.py)."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def exact_match(prediction: str, golds: list[str] | tuple[str, ...]) -> float:
    """1.0 when the prediction equals any gold answer after normalisation."""
    return float(any(normalize(prediction) == normalize(g) for g in golds))


def f1(prediction: str, golds: list[str] | tuple[str, ...]) -> float:
    """Best token-overlap F1 against the gold answers."""
    best = 0.0
    predicted = normalize(prediction).split()
    for gold in golds:
        expected = normalize(gold).split()
        if not predicted or not expected:
            best = max(best, float(predicted == expected))
            continue
        common = sum((Counter(predicted) & Counter(expected)).values())
        if common:
            precision, recall = common / len(predicted), common / len(expected)
            best = max(best, 2 * precision * recall / (precision + recall))
    return best
