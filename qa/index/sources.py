"""Find documents under the given sources and extract their text.

For plain text and Markdown the stored text is exactly what
``open(path, encoding="utf-8").read()`` returns, so citation offsets can be
checked against the file itself. HTML keeps only visible text; PDF keeps the
text layer with the offset at which every page starts; Word (.docx) keeps the text of
the body's paragraphs, headings, list items and tables in reading order.

Sources are untrusted: a file that cannot be used (binary content under a text
extension, empty, larger than ``MAX_BYTES`` (``MAX_HTML_BYTES`` for HTML), not
UTF-8, a FIFO or device, a broken symlink, a symlink leading outside the folder,
an unparseable PDF, a damaged or encrypted .docx or one that unpacks to more than
``MAX_DOCX_UNPACKED``) is reported in one line and skipped. ``read_document``
raises only ``OSError`` or ``ValueError``; a file is read once, never past its
limit, and its hash and text come from the same bytes.
"""

from __future__ import annotations

import errno
import hashlib
import io
import logging
import os
import re
import stat
import warnings
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

TEXT_SUFFIXES = {".txt", ".md", ".markdown"}
HTML_SUFFIXES = {".html", ".htm"}
PDF_SUFFIXES = {".pdf"}
DOCX_SUFFIXES = {".docx"}
SUPPORTED = TEXT_SUFFIXES | HTML_SUFFIXES | PDF_SUFFIXES | DOCX_SUFFIXES

MAX_BYTES = 64 * 1024 * 1024  # larger files are skipped without being read
# HTML is parsed into a tree that takes about 50 times the file's size in memory.
MAX_HTML_BYTES = 16 * 1024 * 1024
# A .docx is a zip archive: python-docx unpacks every part into memory and parses the XML
# parts into trees of about 11 times their size, so the parts together may unpack to at
# most this much (a deflated part can be 1000 times its packed size: a zip bomb).
MAX_DOCX_UNPACKED = 64 * 1024 * 1024
MAX_DOCX_PARTS = 10_000  # files in the archive (a real .docx has tens)
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # encrypted Office files and old .doc
SNIFF_BYTES = 64 * 1024  # how much of a file the binary check looks at
BINARY_SHARE = 0.3  # more control or undecodable characters than this: binary content
# Control characters that do not occur in text (tab, newlines, form feed and escape do).
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1a\x1c-\x1f\x7f]")
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")

# Elements whose text a reader never sees.
_INVISIBLE = {"script", "style", "noscript", "template", "head", "title", "svg", "iframe"}
# Elements that start a new block of text (a paragraph break in the output).
_BLOCKS = {
    "p", "div", "section", "article", "main", "header", "footer", "aside", "nav",
    "h1", "h2", "h3", "h4", "h5", "h6", "li", "ul", "ol", "dl", "dt", "dd",
    "table", "tr", "blockquote", "pre", "figure", "figcaption", "form", "br", "hr",
    "td", "th",
}


@dataclass
class Document:
    """One source document: its name relative to the corpus, text and content hash."""

    source: str
    text: str
    sha256: str
    pages: list[int] = field(default_factory=list)  # PDF: offset where each page starts


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
    return f"larger than {_size(limit)}"


def _size(limit: int) -> str:
    return f"{limit >> 20} MiB" if limit % (1 << 20) == 0 else f"{limit} bytes"


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
    pages: list[int] = []
    if not raw:
        raise ValueError("empty file")
    if suffix in TEXT_SUFFIXES:
        text = decode_text(raw)
    elif suffix in HTML_SUFFIXES:
        if not raw.startswith(_UTF16_BOMS) and _looks_binary(raw, utf8=False):
            raise ValueError("binary content")
        text = _extract("HTML", html_to_text, raw)
    elif suffix in DOCX_SUFFIXES:
        text = _extract("DOCX", docx_to_text, raw)
    else:
        text, pages = _extract("PDF", pdf_to_text, raw)
    if not text.strip():
        raise ValueError("no text")
    return Document(item.source, text, digest, pages)


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


def html_to_text(raw: bytes) -> str:
    """Visible text of an HTML page, one block per paragraph (any nesting depth)."""
    from bs4 import BeautifulSoup, Comment, NavigableString, Tag

    soup = BeautifulSoup(raw, "html.parser")
    parts: list[str] = []
    # Depth-first walk with an explicit stack: deeply nested pages must not hit the
    # recursion limit. A str on the stack is output (a block's closing break).
    stack: list[object] = list(reversed(list(soup.children)))
    while stack:
        node = stack.pop()
        if isinstance(node, str) and not isinstance(node, NavigableString):
            parts.append(node)
        elif isinstance(node, Comment):
            continue
        elif isinstance(node, NavigableString):
            parts.append(str(node))
        elif isinstance(node, Tag):
            name = node.name.lower()
            if name in _INVISIBLE:
                continue
            if name in _BLOCKS:
                parts.append("\n\n")
                stack.append("\n\n")
            stack.extend(reversed(list(node.children)))
    blocks = ["".join(b.split("\n")).strip() for b in "".join(parts).split("\n\n")]
    return "\n\n".join(" ".join(b.split()) for b in blocks if b.strip())


def pdf_to_text(source: Path | bytes) -> tuple[str, list[int]]:
    """Text layer of a PDF (a path or its bytes) and the offset where each page starts."""
    from pypdf import PdfReader

    stream = io.BytesIO(source) if isinstance(source, bytes) else str(source)
    quiet = logging.getLogger("pypdf")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # pypdf logs repairs of broken files; not our one line
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            reader = PdfReader(stream)
            if reader.is_encrypted and not reader.decrypt(""):
                raise ValueError("encrypted, needs a password")
            texts: list[str] = []
            pages: list[int] = []
            offset = 0
            for page in reader.pages:
                page_text = (page.extract_text() or "").strip()
                pages.append(offset)
                texts.append(page_text)
                offset += len(page_text) + 2
    finally:
        quiet.setLevel(level)
    return "\n\n".join(texts), pages


_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
_P, _TBL, _TR, _TC, _R = (_W + t for t in ("p", "tbl", "tr", "tc", "r"))
# Content controls and custom XML that wrap paragraphs, tables, rows or cells.
_DOCX_WRAPPERS = {_W + t for t in ("sdt", "sdtContent", "customXml")}
# Elements inside a paragraph whose runs are shown (deleted text, w:del, is not).
_DOCX_INLINE = {_W + t for t in ("hyperlink", "ins", "moveTo", "smartTag", "sdt", "sdtContent",
                                 "fldSimple", "customXml", "dir", "bdo")}


def docx_to_text(raw: bytes) -> str:
    """Text of a Word .docx: the body's paragraphs (headings and list items included) and
    tables in reading order, one block per paragraph. A table row whose cells each hold at
    most one paragraph is one block, its cells joined by " | "; other rows give one block per
    paragraph of each cell, nested tables included. Headers, footers, footnotes, comments and
    text boxes are left out."""
    if raw.startswith(_OLE_MAGIC):  # a Compound File: what Office writes when it encrypts
        if "EncryptedPackage".encode("utf-16-le") in raw:
            raise ValueError("encrypted, needs a password")
        raise ValueError("an old Word .doc or another OLE file, not a .docx; save it as .docx")
    import docx

    try:
        document = docx.Document(_docx_package(raw))
    except ValueError as exc:  # "file '<stream>' is not a Word file, content type is '...'"
        kind = re.search(r"content type is '([^']*)'", str(exc))
        if kind is None:
            raise
        raise ValueError(f"a zip archive but not a Word document: content type {kind.group(1)}") from None
    blocks = _docx_blocks(document.element.body)
    return "\n\n".join(b for b in (" ".join(b.split()) for b in blocks) if b)


def _docx_package(raw: bytes) -> io.BytesIO:
    """The archive's parts, unpacked and checked, in a new archive for python-docx.

    Parts that together declare more than MAX_DOCX_UNPACKED are refused unread. zipfile never
    returns more of a part than its declared size, but reading a part whole (as python-docx
    does) inflates all of its data in one call before cutting it to that size: a part that
    declares 5 KB and inflates to gigabytes would fill the memory. Here each part is read
    1 MiB at a time, and a part whose data does not match its size fails its CRC check.
    """
    if raw.count(b"PK\x01\x02") > MAX_DOCX_PARTS:  # central directory entries, before parsing them
        raise ValueError(f"more than {MAX_DOCX_PARTS} files in the zip archive")
    try:
        archive = zipfile.ZipFile(io.BytesIO(raw))
    except zipfile.BadZipFile:
        if raw.startswith(b"PK\x03\x04"):
            raise ValueError("damaged or truncated zip archive") from None
        raise ValueError("not a zip archive") from None
    out = io.BytesIO()
    with archive, zipfile.ZipFile(out, "w") as copy:
        # The last entry of a name is the one zipfile reads.
        parts = {i.filename: i for i in archive.infolist() if not i.is_dir()}
        if "[Content_Types].xml" not in parts:
            raise ValueError("a zip archive but not a Word document: no [Content_Types].xml")
        if sum(i.file_size for i in parts.values()) > MAX_DOCX_UNPACKED:
            raise ValueError(f"unpacks to more than {_size(MAX_DOCX_UNPACKED)}")
        for info in parts.values():
            if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                raise ValueError(f"compression method {info.compress_type} in the zip archive")
            with archive.open(info) as part, copy.open(info.filename, "w") as dest:
                while block := part.read(1 << 20):
                    dest.write(block)
    out.seek(0)
    return out


def _docx_blocks(body) -> list[str]:
    """Paragraph texts and table rows in document order (explicit stack: no recursion)."""
    blocks: list[str] = []
    stack = list(reversed(_docx_children(body, (_P, _TBL))))
    while stack:
        element = stack.pop()
        if element.tag == _P:
            blocks.append(_docx_paragraph(element))
        elif element.tag == _TBL:
            stack.extend(reversed(_docx_children(element, (_TR,))))
        else:  # a row
            cells = [_docx_children(tc, (_P, _TBL)) for tc in _docx_children(element, (_TC,))]
            texts = [[_docx_paragraph(p) for p in cell if p.tag == _P] for cell in cells]
            simple = all(
                len(t) == len(c) and sum(bool(x.strip()) for x in t) <= 1 for c, t in zip(cells, texts)
            )
            if simple:
                blocks.append(" | ".join(" ".join(" ".join(t).split()) for t in texts if "".join(t).strip()))
            else:
                stack.extend(reversed([x for cell in cells for x in cell]))
    return blocks


def _docx_children(element, tags: tuple[str, ...]) -> list:
    """The children of an element with one of these tags, looking through content controls."""
    found = []
    stack = list(reversed(element))
    while stack:
        child = stack.pop()
        if child.tag in tags:
            found.append(child)
        elif child.tag in _DOCX_WRAPPERS:
            stack.extend(reversed(child))
    return found


def _docx_paragraph(p) -> str:
    """A paragraph's shown text: its runs, also inside links, insertions and fields."""
    parts: list[str] = []
    stack = list(reversed(p))
    while stack:
        element = stack.pop()
        if element.tag == _R:
            parts.append(element.text)  # python-docx's run text: w:t, tabs and breaks
        elif element.tag in _DOCX_INLINE:
            stack.extend(reversed(element))
    return "".join(parts)
