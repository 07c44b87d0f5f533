"""The sentence reader: pick the sentence that answers the question from retrieved passages.

Every sentence of the best passages is scored from evidence the retriever
already computed: its cosine similarity to the question, the share of the
question's rarer words it contains, its neighbours' similarity (an answer
often names its subject one sentence earlier), and how well its passage
ranked. A logistic model turns the best sentence's evidence into a
calibrated probability that it answers the question; below the abstention
threshold the reader says the sources don't say. Sentences elsewhere that
say the same thing become corroborating citations instead of repeated quotes.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from .retrieval import Passage
from .store import IndexData

READ_PASSAGES = 5  # passages the reader looks into
# Sentence weights: cosine, word overlap, passage score minus the best passage's,
# 1 / (passage rank + 1), length / 200 characters, best neighbour's cosine.
SENTENCE_WEIGHTS = np.array([1.0, 0.6, 1.0, 0.2, 0.1, 0.2])
# Confidence: logistic model over [best sentence score, 1], fitted on the SQuAD 2.0
# dev subset with `qa eval ../shared/data/squad2-dev-3articles.json --fit` (README).
CONFIDENCE_WEIGHTS = np.array([0.9218, -1.6311])
# Abstain below this confidence (a sentence score of about 0.63): midway between the
# most confident off-topic question (0.245) and the least confident answerable one
# (0.277) of eval/seeds-offtopic.json; it answers 99.8% of answerable SQuAD questions.
DEFAULT_THRESHOLD = 0.26
# A sentence corroborates the answer when the words they share carry at least this share
# of the smaller one's word weight (IDF): the same claim in other words, as the ministry
# statement and the wire story in the seeds do. Sentence vectors are no help here: they
# are pooled in context, so neighbouring sentences look alike whatever they say.
CORROBORATION_SHARE = 0.3


@dataclass
class Candidate:
    sentence: int
    chunk: int  # the retrieved chunk it was read in
    features: np.ndarray
    score: float


@dataclass
class Reading:
    """The reader's verdict: the answer sentence, its support, and how sure it is."""

    best: int | None  # the best sentence, answered or not
    answer: int | None  # the answer sentence, or None when abstaining
    confidence: float
    evidence: np.ndarray | None = None  # the confidence model's inputs, for fitting
    corroborating: list[int] = field(default_factory=list)
    short: tuple[int, int] | None = None  # the short answer: characters of the best sentence's document
    through: int | None = None  # the answer's last sentence, when the short answer runs on past ``answer``
    # The windows a span reader read, in reading order, as (document, start, end) character
    # ranges, and which of them gave ``best``: where ``qa eval`` looks for lost answers.
    windows: tuple[tuple[int, int, int], ...] = ()
    chosen: int = -1


def candidates(passages: list[Passage]) -> list[Candidate]:
    """Every sentence of the passages read, scored, best first."""
    out: list[Candidate] = []
    seen: set[int] = set()
    top = passages[0].score if passages else 0.0
    for rank, p in enumerate(passages[:READ_PASSAGES]):
        cos = p.sentence_cosine
        for j, sentence in enumerate(p.sentences.tolist()):
            if sentence in seen:
                continue
            seen.add(sentence)
            neighbours = [cos[k] for k in (j - 1, j + 1) if 0 <= k < len(cos)]
            features = np.array([
                cos[j], p.sentence_overlap[j], p.score - top, 1.0 / (rank + 1),
                0.0, max(neighbours, default=0.0),
            ])
            out.append(Candidate(sentence, p.chunk, features, 0.0))
    return out


def score(data: IndexData, cands: list[Candidate]) -> list[Candidate]:
    ids = np.array([c.sentence for c in cands], np.int64)
    lengths = data.spans["sent_end"][ids] - data.spans["sent_start"][ids]  # the candidates' only
    for c, length in zip(cands, lengths.tolist()):
        c.features[4] = length / 200.0
        c.score = float(c.features @ SENTENCE_WEIGHTS)
    return sorted(cands, key=lambda c: -c.score)


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

    def referent(self, question: str, answer: str) -> str:
        """No short answers here, so nothing a follow-up can be read against."""
        return ""

    def read(self, data: IndexData, passages: list[Passage], query: str, threshold: float,
             avoid: tuple[str, ...] = (), banned: tuple[str, ...] = (), only_new: bool = False) -> Reading:
        reading = read(data, passages, threshold)  # no short answers: ``banned`` has no use here
        if reading.answer is None or not repeats(data, reading.answer, avoid):
            return reading
        other = read(data, passages, threshold, lambda s: not repeats(data, s, avoid))
        return other if other.answer is not None or only_new else reading


def repeats(data: IndexData, sentence: int, earlier: tuple[str, ...]) -> bool:
    """The sentence was quoted in one of the earlier answers."""
    text = data.sentence_text(sentence).strip()
    return any(text and text in quote for quote in earlier)


def read(data: IndexData, passages: list[Passage], threshold: float,
         allowed: Callable[[int], bool] = lambda sentence: True) -> Reading:
    """Choose the answer sentence among those allowed, or abstain below threshold."""
    cands = [c for c in score(data, candidates(passages)) if allowed(c.sentence)]
    if not cands:
        return Reading(None, None, 0.0)
    evidence = evidence_of(cands)
    confidence = confidence_of(evidence)
    best = cands[0].sentence
    if confidence < threshold:
        return Reading(best, None, confidence, evidence)
    return Reading(best, best, confidence, evidence, corroborating(data, cands))


def corroborating(data: IndexData, cands: list[Candidate]) -> list[int]:
    """Other candidate sentences that say what the answer says, in rank order."""
    sentences = np.array([c.sentence for c in cands], np.int64)
    if len(sentences) < 2:
        return []
    owner, words = data.sentence_words(sentences)
    weight = data.term_weights[words]
    total = np.bincount(owner, weight, len(sentences))
    in_answer = np.isin(words, words[owner == 0])
    shared = np.bincount(owner[in_answer], weight[in_answer], len(sentences))
    smaller = np.minimum(total, total[0])
    agree = (smaller > 0) & (shared >= CORROBORATION_SHARE * smaller)
    return sentences[1:][agree[1:]].tolist()
