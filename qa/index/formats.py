"""Text out of HTML, PDF and Word (.docx) files: bytes in, text out, nothing else trusted.

Each parser gets a file's bytes, already read within its size limit by ``sources``,
and gives the text it stores (PDFs have their own module, ``pdf``: text and boxes). Archives
are checked before they are unpacked: a .docx that would unpack past
``MAX_DOCX_UNPACKED`` or hold too many parts is refused, as is an encrypted one.
"""

from __future__ import annotations

import io
import re
import zipfile

# A .docx is a zip archive: python-docx unpacks every part into memory and parses the XML
# parts into trees of about 11 times their size, so the parts together may unpack to at
# most this much (a deflated part can be 1000 times its packed size: a zip bomb).
MAX_DOCX_UNPACKED = 64 * 1024 * 1024
MAX_DOCX_PARTS = 10_000  # files in the archive (a real .docx has tens)
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # encrypted Office files and old .doc

# Elements whose text a reader never sees.
_INVISIBLE = {"script", "style", "noscript", "template", "head", "title", "svg", "iframe"}
# Elements that start a new block of text (a paragraph break in the output).
_BLOCKS = {
    "p", "div", "section", "article", "main", "header", "footer", "aside", "nav",
    "h1", "h2", "h3", "h4", "h5", "h6", "li", "ul", "ol", "dl", "dt", "dd",
    "table", "tr", "blockquote", "pre", "figure", "figcaption", "form", "br", "hr",
    "td", "th",
}



def size_text(limit: int) -> str:
    """A byte limit as a person reads it: "64 MiB"."""
    return f"{limit >> 20} MiB" if limit % (1 << 20) == 0 else f"{limit} bytes"


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
            raise ValueError(f"unpacks to more than {size_text(MAX_DOCX_UNPACKED)}")
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
