"""What the span reader reads: a question with a window of whole sentences.

Training (``qa.training.train``) and serving (``qa.readers.span``) cut windows,
tokenise them and decode answer spans with these same functions, so the
model is always read the way it was trained.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

WINDOW_CHARS = 500  # a window grows by whole sentences up to this many characters
MAX_TOKENS = 192  # question + window word pieces, with [CLS] and two [SEP]
MAX_QUESTION_TOKENS = 48
MAX_ANSWER_TOKENS = 30  # longest short answer, in word pieces
# A span of the kind the question asks for (kinds.py) wins over the likeliest span when it is
# among the likeliest KIND_CANDIDATES: short answers of the wrong kind, SQuAD dev 2 of 205 -> 1,
# QuAC's later turns 3 of 77 -> 0 (with a margin of 3.0 in log-probability; docs/quality.md).
KIND_CANDIDATES = 50
MAX_ANSWER_SENTENCES = 3  # a short answer may run on into the next sentences, this many in all


@dataclass(frozen=True)
class Window:
    """Consecutive sentences ``[first, last)`` of one text, as character spans of it."""

    text: str  # the window's own text: source[start:end]
    start: int  # offset of the window in its source text
    sentences: tuple[tuple[int, int], ...]  # sentence spans relative to ``text``


def window_around(spans: list[tuple[int, int]], center: int, budget: int = WINDOW_CHARS) -> tuple[int, int]:
    """Sentence range ``[lo, hi)`` around ``center``, grown alternately after and before.

    The centre sentence is always in, however long; neighbours join while the
    window stays within ``budget`` characters.
    """
    lo, hi = center, center + 1
    grew = True
    while grew:
        grew = False
        if hi < len(spans) and spans[hi][1] - spans[lo][0] <= budget:
            hi += 1
            grew = True
        if lo > 0 and spans[hi - 1][1] - spans[lo - 1][0] <= budget:
            lo -= 1
            grew = True
    return lo, hi


def make_window(text: str, spans: list[tuple[int, int]], lo: int, hi: int) -> Window:
    """The window of sentences ``spans[lo:hi]`` of ``text``."""
    start, end = spans[lo][0], spans[hi - 1][1]
    return Window(text[start:end], start, tuple((a - start, b - start) for a, b in spans[lo:hi]))


def load_tokenizer(model_dir: str | Path) -> Tokenizer:
    """The model's own word-piece tokenizer, truncating the window (never the question)."""
    tokenizer = Tokenizer.from_file(str(Path(model_dir) / "tokenizer.json"))
    tokenizer.no_padding()
    tokenizer.enable_truncation(MAX_TOKENS, strategy="only_second")
    return tokenizer


def clip_question(tokenizer: Tokenizer, question: str) -> str:
    """The question cut to MAX_QUESTION_TOKENS word pieces, so a window always fits."""
    encoding = tokenizer.encode(question)
    offsets = [o for o, s in zip(encoding.offsets, encoding.sequence_ids) if s == 0]
    if len(offsets) <= MAX_QUESTION_TOKENS:
        return question
    return question[: offsets[MAX_QUESTION_TOKENS - 1][1]]


@dataclass
class Batch:
    """Model inputs for one question's windows, padded, with each token's place in the window."""

    inputs: dict[str, np.ndarray]  # input_ids, attention_mask, token_type_ids (int64)
    offsets: np.ndarray  # (windows, tokens, 2) character offsets in the window text
    in_window: np.ndarray  # (windows, tokens) bool: the token is window text


def encode(tokenizer: Tokenizer, pairs: list[tuple[str, str]]) -> Batch:
    """Tokenise (question, window text) pairs into one padded batch."""
    encodings = tokenizer.encode_batch(pairs)
    n, width = len(encodings), max(len(e.ids) for e in encodings)
    ids = np.zeros((n, width), np.int64)
    types = np.zeros((n, width), np.int64)
    mask = np.zeros((n, width), np.int64)
    offsets = np.zeros((n, width, 2), np.int64)
    in_window = np.zeros((n, width), bool)
    for i, e in enumerate(encodings):
        length = len(e.ids)
        ids[i, :length] = e.ids
        types[i, :length] = e.type_ids
        mask[i, :length] = 1
        offsets[i, :length] = e.offsets
        in_window[i, :length] = [s == 1 for s in e.sequence_ids]
    inputs = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
    return Batch(inputs, offsets, in_window)


def token_sentences(offsets: np.ndarray, in_window: np.ndarray,
                    sentences: tuple[tuple[int, int], ...]) -> np.ndarray:
    """Sentence number of each token of one window (-1 outside the window text)."""
    ends = np.array([b for _, b in sentences])
    out = np.searchsorted(ends, offsets[:, 0], side="right")
    return np.where(in_window, np.minimum(out, len(sentences) - 1), -1)


@dataclass(frozen=True)
class Span:
    start: int  # characters in the window text
    end: int
    sentence: int  # the window sentence it starts in
    log_prob: float  # log P(start) + log P(end) over the window's tokens
    last: int = -1  # the window sentence it ends in (-1: the one it starts in)

    @property
    def through(self) -> int:
        return self.sentence if self.last < 0 else self.last


def log_softmax(x: np.ndarray) -> np.ndarray:
    top = x.max()
    return x - top - np.log(np.exp(x - top).sum())


def best_span(start_logits: np.ndarray, end_logits: np.ndarray, offsets: np.ndarray,
              in_window: np.ndarray, sentences: tuple[tuple[int, int], ...],
              banned: tuple[tuple[int, int], ...] = (),
              fits: Callable[[int, int], bool] | None = None) -> Span | None:
    """The likeliest answer span of one window: start <= end, within MAX_ANSWER_TOKENS word
    pieces and MAX_ANSWER_SENTENCES consecutive sentences, touching no ``banned``
    character range of the window text. Probabilities are over the window's tokens only.
    ``fits(start, end)``: whether a span is of the kind asked; the likeliest one that is,
    when one is among the KIND_CANDIDATES likeliest."""
    tokens = np.flatnonzero(in_window)
    inside = np.zeros(len(tokens), bool)
    for a, b in banned:
        inside |= (offsets[tokens, 0] < b) & (offsets[tokens, 1] > a)
    before = np.cumsum(inside)[~inside]  # banned tokens before each one a span may use
    tokens = tokens[~inside]  # the probabilities are over the tokens a span may use
    if len(tokens) == 0:
        return None
    starts = log_softmax(start_logits[tokens])
    ends = log_softmax(end_logits[tokens])
    sentence = token_sentences(offsets, in_window, sentences)[tokens]
    scores = starts[:, None] + ends[None, :]
    i, j = np.indices(scores.shape)
    allowed = ((j >= i) & (j - i < MAX_ANSWER_TOKENS) & (before[None, :] == before[:, None])
               & (sentence[None, :] - sentence[:, None] < MAX_ANSWER_SENTENCES))
    scores = np.where(allowed, scores, -np.inf)
    a, b = np.unravel_index(int(np.argmax(scores)), scores.shape)
    if fits is not None and not fits(int(offsets[tokens[a], 0]), int(offsets[tokens[b], 1])):
        flat = scores.ravel()
        near = np.argpartition(-flat, min(KIND_CANDIDATES, flat.size - 1))[:KIND_CANDIDATES]
        near = near[np.isfinite(flat[near])]
        for k in near[np.argsort(-flat[near], kind="stable")]:
            i, j = np.unravel_index(int(k), scores.shape)
            if fits(int(offsets[tokens[i], 0]), int(offsets[tokens[j], 1])):
                a, b = i, j
                break
    return Span(int(offsets[tokens[a], 0]), int(offsets[tokens[b], 1]), int(sentence[a]),
                float(scores[a, b]), int(sentence[b]))
