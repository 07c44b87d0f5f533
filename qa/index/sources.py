"""Find documents under the given sources and extract their text.

For plain text and Markdown the stored text is exactly what
``open(path, encoding="utf-8").read()`` returns, so citation offsets can be
checked against the file itself. HTML keeps only visible text; PDF keeps the
text layer with the offset at which every page starts and every character's box
(``pdf.py``); Word (.docx) keeps the text of
the body's paragraphs, headings, list items and tables in reading order.

Sources are untrusted: a file that cannot be used (binary content under a text
extension, empty, larger than ``MAX_BYTES`` (``MAX_HTML_BYTES`` for HTML), not
UTF-8, a FIFO or device, a broken symlink, a symlink leading outside the folder,
an unparseable PDF, a damaged or encrypted .docx or one that unpacks to more than
``MAX_DOCX_UNPACKED`` of formats.py) is reported in one line and skipped. ``read_document``
raises only ``OSError`` or ``ValueError``; a file is read once, never past its
limit, and its hash and text come from the same bytes.
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
import re
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .formats import docx_to_text, html_to_text, size_text
from .pdf import pdf_to_text

TEXT_SUFFIXES = {".txt", ".md", ".markdown"}
HTML_SUFFIXES = {".html", ".htm"}
PDF_SUFFIXES = {".pdf"}
DOCX_SUFFIXES = {".docx"}
SUPPORTED = TEXT_SUFFIXES | HTML_SUFFIXES | PDF_SUFFIXES | DOCX_SUFFIXES

MAX_BYTES = 64 * 1024 * 1024  # larger files are skipped without being read
# HTML is parsed into a tree that takes about 50 times the file's size in memory.
MAX_HTML_BYTES = 16 * 1024 * 1024
SNIFF_BYTES = 64 * 1024  # how much of a file the binary check looks at
BINARY_SHARE = 0.3  # more control or undecodable characters than this: binary content
# Control characters that do not occur in text (tab, newlines, form feed and escape do).
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1a\x1c-\x1f\x7f]")
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")

@dataclass
class Document:
    """One source document: its name relative to the corpus, text and content hash."""

    source: str
    text: str
    sha256: str
    pages: list[int] = field(default_factory=list)  # PDF: offset where each page starts
    # PDF: each character's box on its page (left, top, right, bottom in points from the
    # page's top-left corner; NaN where nothing is printed), and each page's width and height.
    boxes: np.ndarray | None = field(default=None, compare=False, repr=False)
    page_sizes: list[list[float]] = field(default_factory=list)


@dataclass
class SourceFile:
    """A file found on disk and the name it is cited by."""

    path: Path
    source: str


Reporter = Callable[[str], None]


def find_files(sources: list[Path], report: Reporter) -> list[SourceFile]:
    """Walk folders recursively; skip unsupported or unusable files with a one-line note."""
    found: dict[str, SourceFile] = {}
    for root in sources:
        try:
            st = os.stat(root)
        except OSError as exc:
            reason = _os_reason(root, exc)
            if exc.errno == errno.ENOENT and reason != "broken symlink":
                reason = "no such file or folder"
            report(f"skipped {shown(root)}: {reason}")
            continue
        if stat.S_ISDIR(st.st_mode):
            inside = os.path.realpath(root)
            candidates = [(p, p.relative_to(root).as_posix()) for p in _walk(root, report)]
        else:
            inside = None  # a file named on the command line is taken wherever it leads
            candidates = [(root, root.name)]
        for path, name in candidates:
            if path.suffix.lower() not in SUPPORTED:
                report(f"skipped {shown(path)}: unsupported file type")
                continue
            reason = _unusable(path, name, inside, root)
            if reason:
                report(f"skipped {shown(path)}: {reason}")
                continue
            found.setdefault(name, SourceFile(path, name))
    return [found[k] for k in sorted(found)]


def _unusable(path: Path, name: str, inside: str | None, root: Path) -> str | None:
    """Why a found file cannot be indexed (checked with stat, nothing is read), or None."""
    problem = name_problem(name)
    if problem:
        return problem
    try:
        st = os.stat(path)
    except OSError as exc:
        return _os_reason(path, exc)
    if not stat.S_ISREG(st.st_mode):
        return "not a regular file"
    limit = size_limit(path)
    if st.st_size > limit:
        return too_large(limit)
    if inside is not None and not is_within(os.path.realpath(path), inside):
        return f"symlink to a file outside {shown(root)}"
    return None


def _walk(root: Path, report: Reporter) -> Iterator[Path]:
    """Files below root in a stable order; hidden entries, symlink loops, folders seen
    before and symlinks leading outside root are skipped."""
    inside = os.path.realpath(root)
    seen: dict[tuple[int, int], str] = {}

    def unlistable(exc: OSError) -> None:
        report(f"skipped {shown(exc.filename)}: {_os_reason(Path(exc.filename), exc)}")

    for dirpath, dirnames, filenames in os.walk(root, followlinks=True, onerror=unlistable):
        try:
            st = os.stat(dirpath)
        except OSError as exc:
            report(f"skipped {shown(dirpath)}: {_os_reason(Path(dirpath), exc)}")
            dirnames[:] = []
            continue
        key = (st.st_dev, st.st_ino)
        reason = None
        if key in seen:
            first = seen[key]
            loop = is_within(dirpath, first)
            reason = "symlink loop" if loop else f"same folder as {shown(first)}"
        elif not is_within(os.path.realpath(dirpath), inside):
            reason = f"symlink to a folder outside {shown(root)}"
        if reason:
            report(f"skipped {shown(dirpath)}: {reason}")
            dirnames[:] = []
            continue
        seen[key] = dirpath
        # Real folders before symlinks to folders, so a folder is named by its own path.
        dirnames[:] = sorted(
            (d for d in dirnames if not d.startswith(".")),
            key=lambda d: (os.path.islink(os.path.join(dirpath, d)), d),
        )
        for name in sorted(filenames):
            if not name.startswith("."):
                yield Path(dirpath) / name


def is_within(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def _os_reason(path: Path, exc: OSError) -> str:
    if exc.errno == errno.ENOENT and os.path.islink(path):
        return "broken symlink"
    if exc.errno == errno.ELOOP:
        return "symlink loop"
    return exc.strerror or str(exc)


def size_limit(path: Path) -> int:
    """The most bytes a file of this type may have (read at call time: tests lower it)."""
    if path.suffix.lower() in HTML_SUFFIXES:
        return min(MAX_BYTES, MAX_HTML_BYTES)
    return MAX_BYTES


def too_large(limit: int) -> str:
    return f"larger than {size_text(limit)}"


def name_problem(name: str) -> str | None:
    """Why a name cannot be cited (it is stored as UTF-8 and shown on one line), or None."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:  # undecodable bytes, which Python keeps as lone surrogates
        return "file name is not valid UTF-8 (rename it)"
    if any(ch < " " or ch == "\x7f" for ch in name):
        return "file name contains control characters (rename it)"
    return None


def shown(path: object) -> str:
    """A path for a one-line message: control characters and undecodable bytes escaped."""
    out = []
    for ch in str(path):
        if 0xDC80 <= ord(ch) <= 0xDCFF:  # a byte that was not valid UTF-8
            out.append(f"\\x{ord(ch) - 0xDC00:02x}")
        elif ch.isprintable():
            out.append(ch)
        else:
            out.append(repr(ch)[1:-1])
    return "".join(out)


def read_document(item: SourceFile) -> Document:
    """Extract the text of one file; raises ValueError or OSError with a short reason."""
    raw = _read_bounded(item.path, size_limit(item.path))
    digest = hashlib.sha256(raw).hexdigest()
    suffix = item.path.suffix.lower()
    if not raw:
        raise ValueError("empty file")
    if suffix in TEXT_SUFFIXES:
        text = decode_text(raw)
    elif suffix in PDF_SUFFIXES:
        pdf = _extract("PDF", pdf_to_text, raw)
        if not pdf.text.strip():
            raise ValueError("no text")
        return Document(item.source, pdf.text, digest, pdf.pages, pdf.boxes, pdf.sizes)
    elif suffix in HTML_SUFFIXES:
        if not raw.startswith(_UTF16_BOMS) and _looks_binary(raw, utf8=False):
            raise ValueError("binary content")
        text = _extract("HTML", html_to_text, raw)
    else:
        text = _extract("DOCX", docx_to_text, raw)
    if not text.strip():
        raise ValueError("no text")
    return Document(item.source, text, digest)


def _read_bounded(path: Path, limit: int) -> bytes:
    """The bytes of a regular file, refused before anything is read if it is over limit.

    Opened without blocking (a FIFO must not hang the build), checked with fstat on the
    open file (so a file swapped after find_files is still checked), read at most
    limit + 1 bytes (so a file that grows while being read is refused too).
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ValueError("not a regular file")
        if st.st_size > limit:
            raise ValueError(too_large(limit))
        os.set_blocking(fd, True)
        parts: list[bytes] = []
        total, want = 0, st.st_size + 1
        while True:
            block = os.read(fd, max(want - total, 1 << 16))
            if not block:
                break
            parts.append(block)
            total += len(block)
            if total > limit:
                raise ValueError(too_large(limit))
    finally:
        os.close(fd)
    return b"".join(parts)


def decode_text(raw: bytes) -> str:
    """Text of a .txt/.md file exactly as ``open(path, encoding="utf-8").read()`` gives it."""
    if raw.startswith(_UTF16_BOMS):
        raise ValueError("UTF-16 text, not UTF-8 (save it as UTF-8)")
    if _looks_binary(raw, utf8=True):
        raise ValueError("binary content")
    try:
        # Same decoding and newline handling as open(path, encoding="utf-8").read().
        return io.TextIOWrapper(io.BytesIO(raw), encoding="utf-8").read()
    except UnicodeDecodeError as exc:
        raise ValueError(
            f"not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start}; save it as UTF-8)"
        ) from None


def _looks_binary(raw: bytes, utf8: bool) -> bool:
    """NUL bytes anywhere, or mostly control characters (or, for UTF-8 text, bytes that do
    not decode) in the first SNIFF_BYTES."""
    if b"\x00" in raw:
        return True
    sample = raw[:SNIFF_BYTES].decode("utf-8" if utf8 else "latin-1", errors="replace")
    bad = len(_CONTROL.findall(sample)) + (sample.count("\ufffd") if utf8 else 0)
    return bad > BINARY_SHARE * len(sample)


def _extract(kind: str, extract: Callable, raw: bytes):
    """Run a parser on untrusted bytes: whatever it raises becomes one ValueError."""
    try:
        return extract(raw)
    except (OSError, ValueError) as exc:
        raise ValueError(f"unreadable {kind} ({_first_line(exc)})") from None
    except Exception as exc:  # RecursionError, MemoryError, parser errors, ...
        raise ValueError(f"unreadable {kind} ({type(exc).__name__}: {_first_line(exc)})") from None


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0][:200] if lines else type(exc).__name__
