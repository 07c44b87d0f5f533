"""What every reader shares: the interface, its request and verdict, and candidate sentences.

Both readers start from the same candidates: every sentence of the best passages,
scored from evidence the retriever already computed (its cosine similarity to the
question, the share of the question's rarer words it holds, its neighbours'
similarity, how well its passage ranked). The sentence reader answers with the best
of them; the span reader reads windows around them. Sentences elsewhere that say
what the answer says become corroborating citations instead of repeated quotes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from ..index.store import IndexData
from ..index.words import tokenize
from ..retriever.hybrid import Passage

READ_PASSAGES = 5  # passages the reader looks into
# Candidate weights: cosine, word overlap, passage score minus the best passage's,
# 1 / (passage rank + 1), length / 200 characters, best neighbour's cosine.
SENTENCE_WEIGHTS = np.array([1.0, 0.6, 1.0, 0.2, 0.1, 0.2])
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


@dataclass(frozen=True)
class ReadRequest:
    """What a reader reads: the passages retrieved for ``question`` (the question as read,
    for a follow-up), and how to answer.

    ``avoid``: earlier answers' quotes, repeated only when nothing else answers (and, with
    ``only_new``, when the user asked for more, only for a short answer not given yet).
    ``banned``: what a follow-up refers to (the last short answer; when asking for more,
    every short answer given), which is never part of its own short answer.
    ``preferred``: the documents (positions) the conversation's subject was answered from,
    which a reader prefers among answers it finds about as good.
    """

    data: IndexData
    passages: list[Passage]
    question: str
    threshold: float
    avoid: tuple[str, ...] = ()
    banned: tuple[str, ...] = ()
    only_new: bool = False
    preferred: frozenset[int] = frozenset()


class Reader(Protocol):
    """A reader: passages in, a Reading out. The engine holds one; each is an equal."""

    name: str
    default_threshold: float  # abstain below this confidence
    sure_level: float  # at or above this confidence an answer is marked sure

    def referent(self, question: str, answer: str) -> str:
        """The short answer ``question`` got from ``answer``: what a follow-up refers to
        ("" when this reader gives no short answers)."""
        ...

    def read(self, request: ReadRequest) -> Reading:
        """The answer in the passages, or an abstention below the request's threshold."""
        ...


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
    """The candidates with their scores (the weighted evidence), best first."""
    ids = np.array([c.sentence for c in cands], np.int64)
    lengths = data.sentence_lengths(ids)
    for c, length in zip(cands, lengths.tolist()):
        c.features[4] = length / 200.0
        c.score = float(c.features @ SENTENCE_WEIGHTS)
    return sorted(cands, key=lambda c: -c.score)


def repeats(data: IndexData, sentence: int, earlier: tuple[str, ...]) -> bool:
    """The sentence was quoted in one of the earlier answers."""
    text = data.sentence_text(sentence).strip()
    return any(text and text in quote for quote in earlier)


def corroborating(data: IndexData, cands: list[Candidate], short: str = "") -> list[int]:
    """Other candidate sentences that state the answer themselves, in rank order: each holds
    the short answer (most of its words, by weight) and is about what the answer sentence is
    about, or says much of what the answer sentence says. A heading or a fragment never does
    ("Zephyr" shares every word it has with "The Zephyr project was launched by ...", and
    states nothing)."""
    sentences = np.array([c.sentence for c in cands], np.int64)
    if len(sentences) < 2:
        return []
    owner, words = data.sentence_words(sentences)
    weight = data.term_weights[words]
    total = np.bincount(owner, weight, len(sentences))
    in_answer = np.isin(words, words[owner == 0])
    shared = np.bincount(owner[in_answer], weight[in_answer], len(sentences))
    smaller = np.minimum(total, total[0])
    about = (smaller > 0) & (shared >= CORROBORATION_SHARE * smaller)
    says = (total[0] > 0) & (shared >= CORROBORATION_SHARE * total[0])
    vocab = data.lexical.vocab_dict
    short_terms = np.array(sorted({vocab[w] for w in tokenize([short])[0] if w in vocab}), np.int64)
    short_weight = data.term_weights[short_terms]
    held = np.isin(words, short_terms)
    holds = np.bincount(owner[held], weight[held], len(sentences)) >= HOLDS_SHORT * max(
        float(short_weight.sum()), 1e-12) if len(short_terms) else np.zeros(len(sentences), bool)
    whole = np.array([_states_something(data.sentence_text(int(s))) for s in sentences])
    agree = whole & ((holds & about) | says)
    return sentences[1:][agree[1:]].tolist()


_WORDS = re.compile(r"\w+")
MIN_STATEMENT_WORDS = 5
HOLDS_SHORT = 0.5  # share of the short answer's word weight a sentence must hold to state it


def _states_something(text: str) -> bool:
    """A sentence, not a heading or a fragment: enough words, ending as sentences end."""
    text = text.strip().rstrip("\"'”’)]")
    return len(_WORDS.findall(text)) >= MIN_STATEMENT_WORDS and text.endswith((".", "!", "?", ":", ";"))
