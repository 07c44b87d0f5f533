"""Find documents under the given sources and extract their text.

For plain text and Markdown the stored text is exactly what
``open(path, encoding="utf-8").read()`` returns, so citation offsets can be
checked against the file itself. HTML keeps only visible text; PDF keeps the
text layer with the offset at which every page starts.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

TEXT_SUFFIXES = {".txt", ".md", ".markdown"}
HTML_SUFFIXES = {".html", ".htm"}
PDF_SUFFIXES = {".pdf"}
SUPPORTED = TEXT_SUFFIXES | HTML_SUFFIXES | PDF_SUFFIXES

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
    """Walk folders recursively; skip unsupported files with a one-line note."""
    found: dict[str, SourceFile] = {}
    for root in sources:
        if not root.exists():
            report(f"skipped {root}: no such file or folder")
            continue
        if root.is_file():
            candidates = [(root, root.name)]
        else:
            candidates = [
                (p, p.relative_to(root).as_posix()) for p in _walk(root, report)
            ]
        for path, name in candidates:
            if path.suffix.lower() not in SUPPORTED:
                report(f"skipped {path}: unsupported file type")
                continue
            found.setdefault(name, SourceFile(path, name))
    return [found[k] for k in sorted(found)]


def _walk(root: Path, report: Reporter) -> Iterator[Path]:
    """Files below root in a stable order; hidden entries and symlink loops are skipped."""
    seen: set[tuple[int, int]] = set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True, onerror=None):
        try:
            st = os.stat(dirpath)
        except OSError as exc:
            report(f"skipped {dirpath}: {exc.strerror}")
            dirnames[:] = []
            continue
        key = (st.st_dev, st.st_ino)
        if key in seen:
            report(f"skipped {dirpath}: symlink loop")
            dirnames[:] = []
            continue
        seen.add(key)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if not name.startswith("."):
                yield Path(dirpath) / name


def read_document(item: SourceFile) -> Document:
    """Extract the text of one file; raises ValueError or OSError with a short reason."""
    raw = item.path.read_bytes()
    digest = hashlib.sha256(raw).hexdigest()
    suffix = item.path.suffix.lower()
    pages: list[int] = []
    if suffix in TEXT_SUFFIXES:
        if b"\x00" in raw:
            raise ValueError("binary content")
        # Same decoding and newline handling as open(path, encoding="utf-8").read().
        with open(item.path, encoding="utf-8") as fh:
            text = fh.read()
    elif suffix in HTML_SUFFIXES:
        text = html_to_text(raw)
    else:
        text, pages = pdf_to_text(item.path)
    if not text.strip():
        raise ValueError("no text")
    return Document(item.source, text, digest, pages)


def html_to_text(raw: bytes) -> str:
    """Visible text of an HTML page, one block per paragraph."""
    from bs4 import BeautifulSoup, Comment, NavigableString, Tag

    soup = BeautifulSoup(raw, "html.parser")
    parts: list[str] = []

    def walk(node: Tag) -> None:
        for child in node.children:
            if isinstance(child, Comment):
                continue
            if isinstance(child, NavigableString):
                parts.append(str(child))
            elif isinstance(child, Tag):
                name = child.name.lower()
                if name in _INVISIBLE:
                    continue
                block = name in _BLOCKS
                if block:
                    parts.append("\n\n")
                walk(child)
                if block:
                    parts.append("\n\n")

    walk(soup)
    blocks = ["".join(b.split("\n")).strip() for b in "".join(parts).split("\n\n")]
    return "\n\n".join(" ".join(b.split()) for b in blocks if b.strip())


def pdf_to_text(path: Path) -> tuple[str, list[int]]:
    """Text layer of a PDF and the offset where each page starts."""
    from pypdf import PdfReader

    reader = PdfReader(str(path))
    texts: list[str] = []
    pages: list[int] = []
    offset = 0
    for page in reader.pages:
        page_text = (page.extract_text() or "").strip()
        pages.append(offset)
        texts.append(page_text)
        offset += len(page_text) + 2
    return "\n\n".join(texts), pages
