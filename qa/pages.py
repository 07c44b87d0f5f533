"""A cited PDF page as printed: the rectangles a citation covers, and the page as an image.

Rectangles come from the boxes stored with each character when the PDF was indexed
(``qa.index.pdf``), so they cover exactly the characters between a citation's offsets:
one rectangle per line (a new one where the text jumps to another line or across a
column gap), grouped by page, in points from the page's top-left corner.

The page itself is rendered from the indexed file, and only while that file still has
the content that was indexed (its SHA-256 is checked): the image then shows the page the
offsets and boxes were taken from. Rendering is bounded (width, pixels, seconds), so a
giant or hostile page gives a clear error, never a hang or a memory blow-up.
"""

from __future__ import annotations

import bisect
import ctypes
import io
import math
import os
import stat
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .contract import PageBoxes
from .errors import PageUnavailable
from .index.manifest import Manifest
from .index.pdf import LOCK, opened, page_frame, shown_size
from .index.sources import MAX_BYTES, Document

DEFAULT_WIDTH = 1000  # pixels across the rendered page
MIN_WIDTH, MAX_WIDTH = 100, 2000
MAX_PIXELS = 2000 * 3000  # a very tall page is rendered narrower than asked
RENDER_SECONDS = 5.0  # a page that takes longer to draw is refused
CITED = (255, 208, 0, 100)  # RGBA: the cited sentence
SHORT = (255, 120, 0, 150)  # the short answer, marked more strongly


def highlight(doc: Document, start: int, end: int) -> list[PageBoxes]:
    """Where characters ``start:end`` of a PDF are printed, page by page ([] for other formats)."""
    if doc.boxes is None or not doc.pages or end <= start:
        return []
    out: list[PageBoxes] = []
    first = bisect.bisect_right(doc.pages, start)
    last = bisect.bisect_right(doc.pages, end - 1)
    for page in range(first, last + 1):
        a = max(start, doc.pages[page - 1])
        b = min(end, doc.pages[page] if page < len(doc.pages) else len(doc.text))
        rects = line_rects(np.asarray(doc.boxes[a:b], np.float64))
        if rects and page <= len(doc.page_sizes):
            width, height = doc.page_sizes[page - 1]
            out.append(PageBoxes(page=page, width=width, height=height, rects=rects))
    return out


def line_rects(boxes: np.ndarray) -> list[list[float]]:
    """Character boxes (in reading order; NaN rows skipped) merged into one rectangle per line."""
    rects: list[list[float]] = []
    current: list[float] | None = None
    for left, top, right, bottom in boxes[~np.isnan(boxes).any(axis=1)].tolist():
        if current is not None:
            height = min(bottom - top, current[3] - current[1])
            overlap = min(bottom, current[3]) - max(top, current[1])
            gap = left - current[2]
            if overlap >= 0.5 * height and -0.5 * height <= gap <= 1.5 * max(height, 1.0):
                current[:] = [min(current[0], left), min(current[1], top),
                              max(current[2], right), max(current[3], bottom)]
                continue
            rects.append(current)
        current = [left, top, right, bottom]
    if current is not None:
        rects.append(current)
    return [[round(v, 2) for v in r] for r in rects]


def check_width(width: object) -> int:
    """The image width asked for, checked: a whole number of pixels in the allowed range."""
    if width is None:
        return DEFAULT_WIDTH
    if isinstance(width, bool) or not isinstance(width, int) or not MIN_WIDTH <= width <= MAX_WIDTH:
        raise PageUnavailable("invalid_request", f"width must be a whole number of pixels from {MIN_WIDTH} "
                                                 f"to {MAX_WIDTH}")
    return width


def pdf_document(manifest: Manifest, doc: Document | None, source: str, page: int) -> Path:
    """The indexed file of a PDF whose page ``page`` is asked for, or PageUnavailable."""
    if doc is None:
        raise PageUnavailable("unknown_source", f"no indexed document is called {source!r}")
    if doc.boxes is None or not doc.pages:
        raise PageUnavailable("no_pages", f"{source} is not a PDF: it has no pages to show")
    if not 1 <= page <= len(doc.pages):
        raise PageUnavailable("unknown_page", f"{source} has pages 1 to {len(doc.pages)}, not {page}")
    info = manifest.get("document_info", {}).get(source) or {}
    if not info.get("path"):
        raise PageUnavailable("source_changed", f"the file of {source} is not known to this index; "
                                                "re-index it to see its pages")
    return Path(info["path"])


_verified: dict[tuple, str] = {}  # (path, device, inode, size, mtime) -> SHA-256 of that content
_verified_lock = threading.Lock()


def verified_file(path: Path, sha256: str, source: str) -> io.BufferedReader:
    """The indexed file, opened, when it still holds exactly the content that was indexed."""
    changed = PageUnavailable("source_changed", f"{source} has changed or moved since it was indexed; "
                                                "re-index it to see its pages")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        raise changed from None
    fh = open(fd, "rb")  # noqa: SIM115 (returned open to the caller, closed here on failure)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size > MAX_BYTES:
            raise changed
        key = (str(path), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
        with _verified_lock:
            known = _verified.get(key)
        if known is None:
            import hashlib

            digest = hashlib.sha256()
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
            known = digest.hexdigest()
            with _verified_lock:
                if len(_verified) > 256:
                    _verified.clear()
                _verified[key] = known
            fh.seek(0)
        if known != sha256:
            raise changed
        return fh
    except BaseException:
        fh.close()
        raise


Mark = tuple[Sequence[PageBoxes], tuple[int, int, int, int]]


def render_png(fh: io.BufferedReader, page: int, width: int, marks: Sequence[Mark] = ()) -> bytes:
    """Page ``page`` (from 1) of an open PDF as a PNG ``width`` pixels wide (narrower when the
    page is very tall), with ``marks`` (rectangles and a colour) drawn over it."""
    from PIL import Image, ImageDraw

    with LOCK:
        try:
            with opened(fh.read()) as document:
                if not 1 <= page <= len(document):
                    raise PageUnavailable("unknown_page", f"the PDF has no page {page}")
                pdf_page = document[page - 1]
                try:
                    image, scale = _render(pdf_page, width)
                finally:
                    pdf_page.close()
        except ValueError as exc:
            raise PageUnavailable("unreadable", f"the PDF cannot be shown ({exc})") from None
    if marks:
        layer = Image.new("RGBA", image.size, (0, 0, 0, 0))
        draw = ImageDraw.Draw(layer)
        for boxes, colour in marks:
            for group in boxes:
                if group["page"] != page:
                    continue
                for left, top, right, bottom in group["rects"]:
                    draw.rectangle([left * scale - 1, top * scale - 1, right * scale + 1, bottom * scale + 1],
                                   fill=colour)
        image = Image.alpha_composite(image.convert("RGBA"), layer).convert("RGB")
    out = io.BytesIO()
    image.save(out, "PNG", compress_level=3)
    return out.getvalue()


def _render(page, width: int):
    """The page drawn with PDFium, progressively, given up after RENDER_SECONDS; its scale."""
    import pypdfium2.raw as raw
    from PIL import Image

    page_width, page_height = shown_size(page_frame(page))
    if not (page_width >= 1 and page_height >= 1):
        raise ValueError("the page has no size")
    scale = min(width / page_width, math.sqrt(MAX_PIXELS / (page_width * page_height)))
    w, h = max(1, round(page_width * scale)), max(1, round(page_height * scale))
    if w * h > MAX_PIXELS * 1.01:
        raise ValueError("the page is too large to show")
    bitmap = raw.FPDFBitmap_Create(w, h, 0)
    if not bitmap:
        raise ValueError("no memory for the page image")
    try:
        raw.FPDFBitmap_FillRect(bitmap, 0, 0, w, h, 0xFFFFFFFF)
        until = [0.0]
        pause = raw.IFSDK_PAUSE(version=1)
        callback = type(pause.NeedToPauseNow)(lambda _: time.monotonic() >= until[0])
        pause.NeedToPauseNow = callback
        deadline = time.monotonic() + RENDER_SECONDS
        until[0] = time.monotonic() + 0.1
        status = raw.FPDF_RenderPageBitmap_Start(bitmap, page.raw, 0, 0, w, h, 0, raw.FPDF_ANNOT,
                                                 ctypes.byref(pause))
        while status == raw.FPDF_RENDER_TOBECONTINUED:
            if time.monotonic() > deadline:
                raw.FPDF_RenderPage_Close(page.raw)
                raise ValueError(f"drawing the page took more than {RENDER_SECONDS:g} s")
            until[0] = time.monotonic() + 0.1
            status = raw.FPDF_RenderPage_Continue(page.raw, ctypes.byref(pause))
        raw.FPDF_RenderPage_Close(page.raw)
        if status != raw.FPDF_RENDER_DONE:
            raise ValueError("PDFium could not draw the page")
        stride = raw.FPDFBitmap_GetStride(bitmap)
        data = ctypes.string_at(raw.FPDFBitmap_GetBuffer(bitmap), stride * h)
        return Image.frombuffer("RGB", (w, h), data, "raw", "BGRX", stride, 1).copy(), w / page_width
    finally:
        raw.FPDFBitmap_Destroy(bitmap)


def page_png(manifest: Manifest, doc: Document | None, source: str, page: int, width: object = None,
             cited: tuple[int, int] | None = None, short: tuple[int, int] | None = None) -> bytes:
    """Page ``page`` of an indexed PDF as a PNG, with characters ``cited`` and (more strongly)
    ``short`` highlighted when given; PageUnavailable says why it cannot be shown."""
    path = pdf_document(manifest, doc, source, page)
    assert doc is not None
    pixels = check_width(width)
    marks = [(highlight(doc, *span), colour) for span, colour in ((cited, CITED), (short, SHORT)) if span]
    with verified_file(path, doc.sha256, source) as fh:
        return render_png(fh, page, pixels, marks)
