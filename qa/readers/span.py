"""The trained span reader, served with ONNX Runtime.

The model (``qa train-reader``) reads a question with a window of sentences
and gives the short answer's start and end, and whether the window answers at
all. ``reader.json`` holds the logistic calibration fitted on held-out
articles, which turns (answerable logit, span log-probability) into the
chance that the short answer is right: that is the confidence.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from .. import runtime
from ..errors import QAError
from ..index.store import IndexData
from . import abstention
from .base import Candidate, Reading, ReadRequest, candidates, corroborating, repeats, score
from .kinds import asked_kind, is_kind, whole_expression
from .windows import (
    Batch,
    Window,
    best_span,
    clip_question,
    encode,
    load_tokenizer,
    make_window,
    window_around,
)

MODEL = "reader.onnx"
CONFIG = "reader.json"
TOKENIZER = "tokenizer.json"
DEFAULT_READER_DIR = Path(__file__).parent.parent / "models" / "reader"
WINDOWS = 2  # windows read per question, around the best distinct candidate sentences
# When none of those is this confident, two more windows are read (around the next best
# candidates): SQuAD dev F1 0.666 -> 0.673 and answered 0.884 -> 0.907, COVID-QA contains
# 0.472 -> 0.484, for 2.4 ms more at p50 (docs/quality.md).
MORE_WINDOWS = 2
DEEPER = 0.5
# Abstain below this chance that the short answer is right: the reader then answers as many
# answerable questions of the SQuAD 2.0 dev subset as the reader before it did (0.943), and
# abstains on 0.281 of its unanswerable ones instead of 0.149 (docs/quality.md).
DEFAULT_THRESHOLD = 0.09
# Answers at or above this confidence were right 9 times in 10 (0.938) on the 4 SQuAD 2.0 articles
# held out from the reader's training, half of whose questions they do not answer (`qa eval`
# records; docs/quality.md); 5% of their answers reach it.
SURE_LEVEL = 0.8
# A follow-up repeats the last answer's sentence only when no other window reaches this share
# of its confidence (and the threshold): the same sentence may well hold the new answer.
AVOID_RATIO = 0.5
# Which window answers: the one with the highest answerable logit times CHOOSE_ANSWERABLE
# plus its span's log-probability, plus CHOOSE_FIRST for the window around the retriever's
# best sentence, less CHOOSE_RANK per place in reading order. The confidence weighs the
# logit about as much as the span (its calibration); as a choice between windows the logit
# tells more. Chosen on the 8 SQuAD articles held out of training: the chosen window holds
# the answer for 1,467 of 1,679 questions, against 1,451 when choosing by confidence plus
# 0.1 for the first window (docs/quality.md).
CHOOSE_ANSWERABLE = 3.0
CHOOSE_FIRST = 2.0
CHOOSE_RANK = 0.5
# A follow-up takes the answer from a document of the conversation's subject
# (ReadRequest.preferred) when one there is at least this sure relative to the best.
SUBJECT_RATIO = 0.3


class ReaderUnavailable(QAError):
    """The reader's files are missing or damaged."""


class OnnxReaderModel:
    """An ONNX Runtime session over reader.onnx: inputs in, three logit arrays out.

    One thread per run: a question's windows run side by side, each on a thread of its
    own (two windows of ~115 word pieces: 12.5 ms, against 16.7 ms one after the other
    on two threads each; the logits are the same).
    """

    def __init__(self, path: Path, threads: int = 1, prepack: bool = True) -> None:
        path = Path(path)
        if not path.is_file():
            raise ReaderUnavailable(f"reader model {path} is missing")
        # Its optimised copy, kept in the cache under a name for this file's path, loads in a
        # third of the time (runtime.py); a question and a sentence in word pieces check it.
        where = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:8]
        ids = [101, 2040, 2003, 2009, 1029, 102, 2009, 2003, 1037, 3231, 1012, 102]
        probe = {"input_ids": np.array([ids], np.int64), "attention_mask": np.ones((1, len(ids)), np.int64),
                 "token_type_ids": np.array([[0] * 6 + [1] * 6], np.int64)}
        try:
            self.session = runtime.session(path, runtime.cache_dir(), f"reader-{where}", threads,
                                           prepack=prepack, probe=probe)
        except Exception as exc:  # onnxruntime raises its own untyped errors for a bad file
            raise ReaderUnavailable(f"reader model {path} cannot be loaded ({_first_line(exc)})") from None
        names = sorted(i.name for i in self.session.get_inputs())
        if names != ["attention_mask", "input_ids", "token_type_ids"]:
            raise ReaderUnavailable(f"reader model {path} takes other inputs ({', '.join(names)})")

    def run(self, inputs: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        start, end, answerable = self.session.run(None, inputs)
        return start, end, answerable


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__


def fit_calibration(features: np.ndarray, right: np.ndarray) -> list[float]:
    """Logistic regression of "the short answer is right" on the reader's two outputs:
    weights then bias."""
    from sklearn.linear_model import LogisticRegression

    if len(set(right.tolist())) < 2:  # a model too young to be right, or never wrong: a constant
        rate = min(max(float(np.mean(right)) if len(right) else 0.0, 0.01), 0.99)
        return [0.0, 0.0, round(math.log(rate / (1 - rate)), 6)]
    model = LogisticRegression(C=1.0, max_iter=5000).fit(features, right)
    return [*(round(float(w), 6) for w in model.coef_[0]), round(float(model.intercept_[0]), 6)]


def calibrated(weights: list[float], answerable_logit: float, span_log_prob: float) -> float:
    z = weights[0] * answerable_logit + weights[1] * span_log_prob + weights[2]
    return 1.0 / (1.0 + math.exp(-max(min(z, 50.0), -50.0)))


def read_config(folder: Path) -> dict:
    path = Path(folder) / CONFIG
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
        weights = config["calibration"]
        if len(weights) != 3 or not all(isinstance(w, (int, float)) for w in weights):
            raise ValueError("calibration must be three numbers")
        learned = config.get("abstention", {}).get("weights", [])
        if learned and (len(learned) != len(abstention.FEATURES) + 1
                        or not all(isinstance(w, (int, float)) for w in learned)):
            raise ValueError(f"abstention weights must be {len(abstention.FEATURES) + 1} numbers")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ReaderUnavailable(f"reader settings {path} are missing or damaged ({exc})") from None
    return config


@dataclass(frozen=True)
class _Read:
    window: Window
    first: int  # index id of the window's first sentence
    confidence: float
    evidence: tuple[float, float]
    short: tuple[int, int] | None  # in the document
    sentence: int  # index id of the sentence the short answer starts in
    through: int  # index id of the sentence it ends in (the same one, mostly)


class SpanReader:
    """Reads windows around the sentence reader's best candidates with the trained model:
    the window likeliest to hold a right short answer gives the answer and its sentence."""

    name = "span"
    default_threshold = DEFAULT_THRESHOLD
    sure_level = SURE_LEVEL

    def __init__(self, folder: Path = DEFAULT_READER_DIR, prepack: bool = True) -> None:
        folder = Path(folder)
        self.config = read_config(folder)
        self.calibration = [float(w) for w in self.config["calibration"]]
        # Whether to answer, learned from real unanswerable questions (abstention.py); absent:
        # the calibration above decides.
        learned = self.config.get("abstention", {})
        self.abstention_weights = [float(w) for w in learned.get("weights", [])]
        self.default_threshold = float(learned.get("threshold", DEFAULT_THRESHOLD))
        self.sure_level = float(learned.get("sure", SURE_LEVEL))
        tokenizer = folder / TOKENIZER
        try:
            self.tokenizer = load_tokenizer(folder)
        except Exception as exc:  # tokenizers raises untyped errors for a bad file
            raise ReaderUnavailable(f"reader tokenizer {tokenizer} is missing or damaged "
                                    f"({_first_line(exc)})") from None
        self.model = OnnxReaderModel(folder / MODEL, prepack=prepack)
        self._lock = threading.Lock()  # the Rust tokenizer must not be shared between threads

    def windows(self, data: IndexData, cands: list[Candidate],
                count: int = WINDOWS) -> list[tuple[Window, int]]:
        """Windows (with their first sentence's id) around the best candidates, each new one
        around a candidate no earlier window holds."""
        out: list[tuple[Window, int]] = []
        covered: set[int] = set()
        for c in cands:
            if len(out) == count:
                break
            if c.sentence in covered:
                continue
            sentences = data.chunk_sentences(c.chunk)
            first = sentences.start
            spans = data.sentence_offsets(first, sentences.stop)
            lo, hi = window_around(spans, c.sentence - first)
            doc = data.chunk_span(c.chunk)[0]
            out.append((make_window(doc.text, spans, lo, hi), first + lo))
            covered.update(range(first + lo, first + hi))
        return out

    def _run(self, pairs: list[tuple[str, Window]]) -> list[tuple[Batch, Future]]:
        """The model run on each (question, window), side by side, one run each."""
        with self._lock:
            batches = [encode(self.tokenizer, [(question, w.text)]) for question, w in pairs]
        return [(batch, _threads().submit(self.model.run, batch.inputs)) for batch in batches]

    def _read(self, runs: list[tuple[Batch, Future]], windows: list[tuple[Window, int]],
              banned: tuple[str, ...] = (), kind: str | None = None) -> list[_Read]:
        """Each window's short answer and confidence, from its run; the short answer never
        touches a mention of ``banned``, is of the ``kind`` asked whenever one is among the
        likeliest spans (kinds.py: "what did they discuss" never gets a bare name), is never
        punctuation alone, and holds the whole date it cuts into."""
        reads = []
        for (window, first), (batch, run) in zip(windows, runs):
            start, end, answerable = run.result()
            text = window.text
            fits = partial(_fits, kind, text)
            span = best_span(start[0], end[0], batch.offsets[0], batch.in_window[0], window.sentences,
                             _mentions(text, banned), fits)
            if span and not any(c.isalnum() for c in text[span.start:span.end]):
                span = None  # punctuation alone answers nothing, even with no other span near it
            log_prob = span.log_prob if span else -1e9
            logit = float(answerable[0])
            a, b = whole_expression(kind, text, span.start, span.end) if span else (0, 0)
            reads.append(_Read(
                window, first, calibrated(self.calibration, logit, log_prob), (logit, log_prob),
                (window.start + a, window.start + b) if span else None,
                first + (span.sentence if span else 0), first + (span.through if span else 0)))
        return reads

    def read_windows(self, question: str, windows: list[tuple[Window, int]],
                     banned: tuple[str, ...] = (), kind: str | None = None) -> list[_Read]:
        """Each window (with its first sentence's id) read by the model, side by side: its
        short answer, confidence and evidence. ``question`` is already clipped."""
        return self._read(self._run([(question, w) for w, _ in windows]), windows, banned, kind)

    def referent(self, question: str, answer: str) -> str:
        """The short answer ``question`` gets from ``answer`` read whole: what a follow-up
        refers to."""
        whole = _whole(answer)
        with self._lock:
            question = clip_question(self.tokenizer, question)
        read = self.read_windows(question, [(whole, 0)])[0]
        return answer[read.short[0]:read.short[1]] if read.short else ""

    def read(self, request: ReadRequest) -> Reading:
        data, threshold, avoid, banned = request.data, request.threshold, request.avoid, request.banned
        cands = score(data, candidates(request.passages))
        if not cands:
            return Reading(None, None, 0.0)
        windows = self.windows(data, cands, WINDOWS + MORE_WINDOWS)
        with self._lock:
            question = clip_question(self.tokenizer, request.question)
        opening, more = windows[:WINDOWS], windows[WINDOWS:]
        kind = asked_kind(request.question)
        reads = self.read_windows(question, opening, banned, kind)
        if more and max(r.confidence for r in reads) < DEEPER:  # not convinced: read further
            reads += self.read_windows(question, more, banned, kind)
        read_order = reads
        if request.only_new:  # asked for more: a sentence quoted already, only for a new short answer
            # (short answers never touch those given: ``banned``). The answerable head says
            # whether a window answers, perhaps with what was given already: the confidence,
            # which weighs the span too, chooses instead.
            reads = sorted((r for r in reads if r.short is not None or not repeats(data, r.sentence, avoid)),
                           key=lambda r: -r.confidence)
            if not reads:  # nothing read but what was said already
                return Reading(None, None, 0.0)
        else:
            reads = [r for _, r in sorted(enumerate(reads), key=lambda pair: -window_choice(*pair))]
        best = reads[0]
        if request.preferred and data.sentence_document(best.first) not in request.preferred:
            floor = max(threshold, SUBJECT_RATIO * best.confidence)
            best = next((r for r in reads if r.confidence >= floor and r.short is not None
                         and data.sentence_document(r.first) in request.preferred), best)
        if avoid and repeats(data, best.sentence, avoid):  # a follow-up: another answer if one answers
            floor = max(threshold, AVOID_RATIO * best.confidence)
            best = next((r for r in reads if r.confidence >= floor and r.short is not None
                         and not repeats(data, r.sentence, avoid)), best)
        evidence = abstention.features(
            data, request.question, best.window.text, *best.evidence,
            [r.evidence[0] for r in read_order if r is not best], request.passages[0].score,
            best.short[1] - best.short[0] if best.short else 0)
        confidence = (abstention.probability(self.abstention_weights, evidence)
                      if self.abstention_weights else best.confidence)
        seen = {"windows": tuple((data.sentence_document(r.first), r.window.start,
                                  r.window.start + len(r.window.text)) for r in read_order),
                "chosen": next(i for i, r in enumerate(read_order) if r is best)}
        if confidence < threshold or best.short is None:
            return Reading(best.sentence, None, confidence, evidence, short=best.short, **seen)
        quoted = range(best.sentence + 1, best.through + 1)  # already in the answer's quote
        ordered = sorted((c for c in cands if c.sentence not in quoted),
                         key=lambda c: c.sentence != best.sentence)
        if ordered[0].sentence != best.sentence:  # the answer sentence lies beside the candidates
            ordered.insert(0, Candidate(best.sentence, -1, np.zeros(0), 0.0))
        short = data.sentence_span(best.sentence)[0].text[best.short[0]:best.short[1]]
        return Reading(best.sentence, best.sentence, confidence, evidence,
                       corroborating(data, ordered, short), best.short, best.through, **seen)


def window_choice(place: int, read: _Read) -> float:
    """How strongly a window, read ``place``-th, claims to hold the answer."""
    logit, log_prob = read.evidence
    return CHOOSE_ANSWERABLE * logit + log_prob + CHOOSE_FIRST * (place == 0) - CHOOSE_RANK * place



def _fits(kind: str | None, text: str, start: int, end: int) -> bool:
    """Whether ``text[start:end]`` can answer a question of this kind: a word or a number of
    the kind asked, never punctuation alone."""
    said = text[start:end]
    return any(c.isalnum() for c in said) and is_kind(kind, said)


def _whole(text: str) -> Window:
    """A text read as one window of one sentence."""
    return Window(text, 0, ((0, len(text)),))


def _mentions(text: str, phrases: tuple[str, ...]) -> tuple[tuple[int, int], ...]:
    """Where any of ``phrases`` occurs in ``text`` (case-insensitively), as character ranges."""
    lowered, out = text.lower(), []
    for phrase in (p.lower() for p in phrases if p.strip()):
        at = lowered.find(phrase)
        while at >= 0:
            out.append((at, at + len(phrase)))
            at = lowered.find(phrase, at + 1)
    return tuple(out)


_THREADS: ThreadPoolExecutor | None = None


def _threads() -> ThreadPoolExecutor:
    """The threads that run the reader model, shared by every question in this process."""
    global _THREADS
    if _THREADS is None:
        _THREADS = ThreadPoolExecutor(max_workers=max(WINDOWS, os.cpu_count() or 1),
                                      thread_name_prefix="qa-reader")
    return _THREADS


def _forget_threads() -> None:
    """A forked child has none of its parent's threads: start a pool afresh when needed."""
    global _THREADS
    _THREADS = None


os.register_at_fork(after_in_child=_forget_threads)
