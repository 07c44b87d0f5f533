"""Readers: passages in, the answer out. Each is an equal behind ``base.Reader``, as DrQA
keeps its retriever and reader apart.

``span`` (default) is the trained model that finds the short answer; ``sentence``
is the hand-weighted sentence picker it grew from, kept for comparison and as the
fallback when the model's files cannot be loaded.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from .base import Reader, Reading, ReadRequest
from .sentence import SentenceReader
from .span import DEFAULT_READER_DIR, ReaderUnavailable, SpanReader

READERS = ("span", "sentence")
__all__ = ["READERS", "ReadRequest", "Reader", "Reading", "SentenceReader", "SpanReader", "load_reader"]


def load_reader(name: str = "span", folder: Path | None = None,
                report: Callable[[str], None] = lambda line: None, prepack: bool = True) -> Reader:
    """The named reader; the span reader falls back to the sentence reader, in one line,
    when its files are missing or damaged. ``prepack`` as runtime.session takes it."""
    if name == "sentence":
        return SentenceReader()
    if name != "span":
        raise ValueError(f"unknown reader {name!r} (choose from {', '.join(READERS)})")
    try:
        return SpanReader(folder or DEFAULT_READER_DIR, prepack)
    except ReaderUnavailable as exc:
        report(f"qa: {exc}; answering with the sentence reader (no short answers)")
        return SentenceReader()
