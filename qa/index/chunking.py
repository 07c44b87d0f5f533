"""Split document text into sentences and pack sentences into chunks.

Sentences come from syntok (a rule-based segmenter that knows abbreviations such
as "U.S." and "Feb." and runs in linear time). Every sentence and chunk is a character span of the
document text, so a quote can always be cut back out of the source. A chunk
never holds more word pieces than the model reads, so nothing is truncated.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import re
from collections.abc import Callable
from dataclasses import dataclass

from syntok import segmenter

_PARAGRAPH_BREAK = re.compile(r"\n[ \t\r\f\v]*\n\s*")
_WORD = re.compile(r"\S+")

TokenCounter = Callable[[list[str]], list[int]]


@dataclass(frozen=True)
class ChunkSettings:
    """How text is cut; stored in the manifest so a rebuild can tell what changed."""

    max_tokens: int = 254  # word pieces per chunk (without [CLS]/[SEP])
    limit_tokens: int = 254  # hard limit: the model's max sequence length minus 2

    def as_dict(self) -> dict[str, int]:
        return {"max_tokens": self.max_tokens, "limit_tokens": self.limit_tokens}


@dataclass(frozen=True)
class Span:
    start: int
    end: int


@dataclass(frozen=True)
class Chunk:
    """A run of whole sentences: its span and the index range of those sentences."""

    start: int
    end: int
    first_sentence: int
    last_sentence: int  # exclusive


def paragraphs(text: str) -> list[Span]:
    """Blank-line separated blocks of text, trimmed of surrounding white space."""
    spans = []
    pos = 0
    for match in _PARAGRAPH_BREAK.finditer(text):
        spans.append(Span(pos, match.start()))
        pos = match.end()
    spans.append(Span(pos, len(text)))
    return [s for s in (_trim(text, s) for s in spans) if s.end > s.start]


def _trim(text: str, span: Span) -> Span:
    start, end = span.start, span.end
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return Span(start, end)


def split_sentences(text: str, span: Span) -> list[Span]:
    """Sentence spans inside one paragraph, aligned exactly to the text.

    syntok finds where each sentence starts (its tokens carry their offsets); a
    sentence runs to the next one's start, less the white space between them, so
    every character of the paragraph belongs to exactly one sentence. A semicolon
    joins clauses of one sentence, so a split after one is undone.
    """
    block = text[span.start : span.end]
    starts = [next(iter(sentence)).offset for para in segmenter.analyze(block) for sentence in para]
    if not starts or starts[0] != 0:
        starts.insert(0, 0)
    ends = [*starts[1:], len(block)]
    out: list[Span] = []
    for a, b in zip(starts, ends):
        sentence = _trim(text, Span(span.start + a, span.start + b))
        if sentence.end <= sentence.start:
            continue
        if out and text[out[-1].end - 1] == ";":  # syntok may end a sentence at a semicolon
            out[-1] = Span(out[-1].start, sentence.end)
        else:
            out.append(sentence)
    return out


def _split_long(text: str, span: Span, tokens: int, limit: int, count: TokenCounter) -> list[Span]:
    """Cut a sentence longer than the model's limit at word boundaries."""
    if tokens <= limit:
        return [span]
    words = [
        Span(span.start + m.start(), span.start + m.end())
        for m in _WORD.finditer(text[span.start : span.end])
    ]
    counts = count([text[w.start : w.end] for w in words])
    pieces: list[Span] = []
    first = 0
    total = 0
    for i, n in enumerate(counts):
        if total + n > limit and i > first:
            pieces.append(Span(words[first].start, words[i - 1].end))
            first, total = i, 0
        if n > limit:  # a single "word" longer than the limit: cut by characters
            pieces.extend(_split_chars(text, words[i], n, limit))
            first, total = i + 1, 0
            continue
        total += n
    if first < len(words):
        pieces.append(Span(words[first].start, words[-1].end))
    return pieces


def _split_chars(text: str, span: Span, tokens: int, limit: int) -> list[Span]:
    """Last resort for a run without spaces: equal character slices under the limit."""
    parts = -(-tokens // limit) * 2
    size = max(1, -(-(span.end - span.start) // parts))
    return [Span(s, min(s + size, span.end)) for s in range(span.start, span.end, size)]


def chunk_text(
    text: str, count: TokenCounter, settings: ChunkSettings
) -> tuple[list[Span], list[Chunk]]:
    """Sentences of the text and chunks built of whole sentences.

    Chunks never cross a blank line; within a paragraph, sentences are packed
    until the next one would exceed ``settings.max_tokens``.
    """
    sentences: list[Span] = []
    chunks: list[Chunk] = []
    for para in paragraphs(text):
        raw = split_sentences(text, para)
        sizes = count([text[s.start : s.end] for s in raw])
        para_sents: list[Span] = []
        para_sizes: list[int] = []
        for s, n in zip(raw, sizes):
            pieces = _split_long(text, s, n, settings.limit_tokens, count)
            para_sents.extend(pieces)
            para_sizes.extend(count([text[p.start : p.end] for p in pieces]) if len(pieces) > 1 else [n])
        base = len(sentences)
        sentences.extend(para_sents)
        first = 0
        total = 0
        for i, n in enumerate(para_sizes):
            if i > first and total + n > settings.max_tokens:
                chunks.append(Chunk(para_sents[first].start, para_sents[i - 1].end, base + first, base + i))
                first, total = i, 0
            total += n
        if para_sents:
            end = base + len(para_sents)
            chunks.append(Chunk(para_sents[first].start, para_sents[-1].end, base + first, end))
    return sentences, chunks


# Chunking many documents in worker processes: syntok is pure Python, and before the
# model starts there is a free core. Workers are forked, so they share the tokenizer.
PARALLEL_MIN_CHARS = 200_000
_WORKER_COUNT: TokenCounter | None = None
_WORKER_SETTINGS: ChunkSettings | None = None


def chunk_many(
    texts: list[str], count: TokenCounter, settings: ChunkSettings
) -> list[tuple[list[Span], list[Chunk]]]:
    """chunk_text for every text, in parallel processes when there is enough text."""
    workers = min(os.cpu_count() or 1, len(texts))
    if workers < 2 or sum(map(len, texts)) < PARALLEL_MIN_CHARS or "fork" not in mp.get_all_start_methods():
        return [chunk_text(t, count, settings) for t in texts]
    global _WORKER_COUNT, _WORKER_SETTINGS
    _WORKER_COUNT, _WORKER_SETTINGS = count, settings
    try:
        with mp.get_context("fork").Pool(workers) as pool:
            return pool.map(_chunk_in_worker, texts, chunksize=max(1, len(texts) // (workers * 8)))
    finally:
        _WORKER_COUNT = _WORKER_SETTINGS = None


def _chunk_in_worker(text: str) -> tuple[list[Span], list[Chunk]]:
    assert _WORKER_COUNT is not None and _WORKER_SETTINGS is not None
    return chunk_text(text, _WORKER_COUNT, _WORKER_SETTINGS)
