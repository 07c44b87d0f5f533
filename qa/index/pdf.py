"""PDF text and where every character of it is printed, from one source: PDFium.

The stored text of a PDF is its pages' text layers joined by blank lines. Each stored
character comes with its box on the page, so a citation's offsets give the rectangles
to highlight on the page as printed (``qa.pages``). Boxes are PDFium's loose character
boxes (the font's full height, so a highlighted line is one even band), in points from
the top-left corner of the page as it is shown (its crop box, turned by its /Rotate):
the same coordinates the rendered image has, at 72 points per inch.

PDFium is not thread-safe: every call into it, here and in ``qa.pages``, holds ``LOCK``.
"""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

LOCK = threading.RLock()
# The most text one PDF may give (a deflated content stream can unpack to 1000 times its
# size): its boxes take 16 bytes a character while it is indexed.
MAX_PDF_CHARS = 8_000_000
MAX_PDF_PAGES = 20_000


@dataclass
class PdfText:
    """A PDF's stored text, where each page starts in it, each character's box, page sizes."""

    text: str
    pages: list[int]
    boxes: np.ndarray  # (len(text), 4) float32: left, top, right, bottom; NaN: not printed
    sizes: list[list[float]] = field(default_factory=list)  # [width, height] of each page, points


def _pdfium():
    import pypdfium2 as pdfium
    import pypdfium2.raw as raw

    return pdfium, raw


@contextmanager
def opened(source: Path | bytes) -> Iterator[object]:
    """A PDFium document (from a path or bytes), closed on exit; ValueError says why it cannot be
    opened. The caller holds LOCK."""
    pdfium, _ = _pdfium()
    try:
        document = pdfium.PdfDocument(source if isinstance(source, bytes) else str(source))
    except pdfium.PdfiumError as exc:
        message = str(exc)
        if "password" in message.lower():
            raise ValueError("encrypted, needs a password") from None
        reason = message.replace("Failed to load document ", "").strip("(). ")
        raise ValueError(reason or "not a PDF") from None
    try:
        yield document
    finally:
        document.close()


def page_frame(page) -> tuple[float, float, float, float, int]:
    """The page as shown: its visible box (crop box within the media box) and its rotation."""
    left, bottom, right, top = page.get_cropbox()
    m_left, m_bottom, m_right, m_top = page.get_mediabox()
    left, bottom = max(left, m_left), max(bottom, m_bottom)
    right, top = max(min(right, m_right), left), max(min(top, m_top), bottom)
    return left, bottom, right, top, page.get_rotation() % 360


def shown_size(frame: tuple[float, float, float, float, int]) -> tuple[float, float]:
    """Width and height of the page as shown, in points."""
    left, bottom, right, top, rotation = frame
    w, h = right - left, top - bottom
    return (h, w) if rotation in (90, 270) else (w, h)


def to_shown(boxes: np.ndarray, frame: tuple[float, float, float, float, int]) -> np.ndarray:
    """PDF user-space boxes (left, top, right, bottom; y up) as boxes on the page as shown
    (y down from its top-left corner)."""
    left, bottom, right, top, rotation = frame
    x0, y_top, x1, y_bottom = boxes.T
    if rotation == 90:
        out = (y_bottom - bottom, x0 - left, y_top - bottom, x1 - left)
    elif rotation == 180:
        out = (right - x1, y_bottom - bottom, right - x0, y_top - bottom)
    elif rotation == 270:
        out = (top - y_top, right - x1, top - y_bottom, right - x0)
    else:
        out = (x0 - left, top - y_top, x1 - left, top - y_bottom)
    return np.stack(out, axis=1).astype(np.float32)


def _page_chars(raw, page) -> tuple[list[str], np.ndarray]:
    """A page's characters (its text layer, lines ending in "\\n") and their boxes as shown."""
    textpage = page.get_textpage()
    try:
        count = max(raw.FPDFText_CountChars(textpage), 0)
        codes = _codes(raw, textpage, count)
        boxes = np.full((count, 4), np.nan, np.float64)
        rect = raw.FS_RECTF()
        loose, generated = raw.FPDFText_GetLooseCharBox, raw.FPDFText_IsGenerated
        for i, code in enumerate(codes):
            # Only white space is ever generated (between words, at the ends of lines).
            if (code > 0x20 or not generated(textpage, i)) and loose(textpage, i, rect):
                boxes[i] = (rect.left, rect.top, rect.right, rect.bottom)
    finally:
        textpage.close()
    kept = np.array([c != 0x0D for c in codes], bool)  # PDFium ends lines in "\r\n"; "\n" is kept
    shown = to_shown(boxes[kept], page_frame(page)) if count else np.zeros((0, 4), np.float32)
    return [_char(c) for c in codes if c != 0x0D], shown


def _codes(raw, textpage, count: int) -> list[int]:
    """The code point of each of the page's characters: its text in one call when that text
    has one UTF-16 unit per character (as it nearly always has), else one call each."""
    if not count:
        return []
    buffer = (ctypes.c_ushort * (count + 1))()
    written = raw.FPDFText_GetText(textpage, 0, count, buffer)
    units = list(buffer[: max(written - 1, 0)])
    if len(units) == count and not any(0xD800 <= u <= 0xDFFF for u in units):
        return units
    return [raw.FPDFText_GetUnicode(textpage, i) for i in range(count)]


def _char(code: int) -> str:
    """One character of the text layer, safe to store as UTF-8 on one position."""
    if code == 0x02:  # PDFium's mark for a hyphen that breaks a word at the end of a line
        return "-"
    if code == 0x0A or code == 0x09:
        return chr(code)
    if code < 0x20 or code == 0x7F or 0xD800 <= code <= 0xDFFF or code > 0x10FFFF:
        return "\ufffd" if code >= 0xD800 else " "
    return chr(code)


def pdf_to_text(source: Path | bytes) -> PdfText:
    """Text layer of a PDF (a path or its bytes), with each character's box and each page's
    start; ValueError for an encrypted, damaged or oversized one."""
    _, raw = _pdfium()
    texts: list[str] = []
    parts: list[np.ndarray] = []
    pages: list[int] = []
    sizes: list[list[float]] = []
    offset = 0
    with LOCK, opened(source) as document:
        count = len(document)
        if count > MAX_PDF_PAGES:
            raise ValueError(f"more than {MAX_PDF_PAGES:,} pages")
        for number in range(count):
            page = document[number]
            try:
                chars, boxes = _page_chars(raw, page)
                sizes.append([round(float(x), 2) for x in shown_size(page_frame(page))])
            finally:
                page.close()
            first, last = _strip(chars)
            pages.append(offset)
            texts.append("".join(chars[first:last]))
            parts.append(boxes[first:last])
            offset += last - first + 2
            if offset > MAX_PDF_CHARS:
                raise ValueError(f"more than {MAX_PDF_CHARS:,} characters of text")
    gap = np.full((2, 4), np.nan, np.float32)
    joined = [x for i, part in enumerate(parts) for x in ((gap, part) if i else (part,))]
    boxes = np.concatenate(joined).astype(np.float32) if joined else np.zeros((0, 4), np.float32)
    text = "\n\n".join(texts)
    assert len(boxes) == len(text)
    return PdfText(text, pages, boxes, sizes)


def _strip(chars: list[str]) -> tuple[int, int]:
    """The range of chars left once the page's leading and trailing whitespace is cut."""
    first, last = 0, len(chars)
    while first < last and chars[first].isspace():
        first += 1
    while last > first and chars[last - 1].isspace():
        last -= 1
    return first, last


def save_boxes(path: Path, boxes: list[np.ndarray | None]) -> list[int | None]:
    """Documents' character boxes one after another in one .npy file (written only when some
    document has boxes); the row where each document's boxes start (None: it has none)."""
    at: list[int | None] = []
    parts, rows = [], 0
    for b in boxes:
        if b is None:
            at.append(None)
            continue
        at.append(rows)
        parts.append(np.asarray(b, np.float32).reshape(-1, 4))
        rows += len(parts[-1])
    if parts:
        np.save(path, np.concatenate(parts))
    return at
