"""Readers are swappable behind one interface, as DrQA keeps its retriever and reader apart.

``span`` (default) is the trained model that finds the short answer; ``sentence``
is the hand-weighted sentence picker it grew from, kept for comparison and as the
fallback when the model's files cannot be loaded.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from .answer import Reading, SentenceReader
from .retrieval import Passage
from .span_reader import DEFAULT_READER_DIR, ReaderUnavailable, SpanReader
from .store import IndexData

READERS = ("span", "sentence")


class Reader(Protocol):
    name: str
    default_threshold: float

    def referent(self, question: str, answer: str) -> str:
        """The short answer ``question`` got from ``answer``: what a follow-up refers to
        ("" when this reader gives no short answers)."""
        ...

    def read(self, data: IndexData, passages: list[Passage], query: str, threshold: float,
             avoid: tuple[str, ...] = (), banned: tuple[str, ...] = (), only_new: bool = False) -> Reading:
        """The answer in the passages, or an abstention below threshold; an answer quoted in
        ``avoid`` (the last one, for a follow-up) only when nothing else answers, and with
        ``only_new`` (the user asked for more) only for a short answer not given yet.
        ``banned``: for a follow-up, what it refers to (the last short answer; when asking
        for more, every short answer given), which is never part of its own short answer."""
        ...


def load_reader(name: str = "span", folder: Path | None = None,
                report: Callable[[str], None] = lambda line: None) -> Reader:
    """The named reader; the span reader falls back to the sentence reader, in one line,
    when its files are missing or damaged."""
    if name == "sentence":
        return SentenceReader()
    if name != "span":
        raise ValueError(f"unknown reader {name!r} (choose from {', '.join(READERS)})")
    try:
        return SpanReader(folder or DEFAULT_READER_DIR)
    except ReaderUnavailable as exc:
        report(f"qa: {exc}; answering with the sentence reader (no short answers)")
        return SentenceReader()
