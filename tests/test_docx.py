"""Word .docx sources: text in reading order, citations into the stored text, and damaged,
encrypted or oversized files reported in one line and skipped. Files are made with python-docx;
the index is built through the real CLI and answered by the real engine."""

from __future__ import annotations

import contextlib
import io
import random
import struct
import tracemalloc
import zipfile
from pathlib import Path

import pytest

from qa.cli import main
from qa.engine import Engine
from qa.index.sources import SourceFile, read_document

# The stored text of make_guide()'s document: blocks in body order, a table row whose cells
# hold one paragraph each on one line, the cells of a row with a nested table one by one.
GUIDE_TEXT = "\n\n".join([
    "Varnholm harbour handbook",
    "This handbook describes the harbour of Varnholm and its services.",
    "Services",
    "The fuel dock sells diesel from April to October.",
    "The harbour office lends bicycles to visiting sailors.",
    "Role | Name",
    "Harbour master | Petra Lind",
    "Pilot | Jonas Berg",
    "Tides",
    "High water at the pier comes 40 minutes after Bergen.",
    "Spring | 2.1 metres",
    "Neap | 1.3 metres",
    "Visitors pay the mooring fee at the harbour office before noon.",
    "History",
    "The breakwater was finished in 1911 after six years of work.",
])

WORD_MAIN = "application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"
SHEET_MAIN = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"


def make_guide(path: Path) -> None:
    import docx

    doc = docx.Document()
    doc.add_heading("Varnholm harbour handbook", level=1)
    doc.add_paragraph("This handbook describes the harbour of Varnholm and its services.")
    doc.add_heading("Services", level=2)
    doc.add_paragraph("The fuel dock sells diesel from April to October.", style="List Bullet")
    doc.add_paragraph("The harbour office lends bicycles to visiting sailors.", style="List Bullet")
    table = doc.add_table(rows=4, cols=2)
    for row, (role, name) in zip(table.rows, [("Role", "Name"), ("Harbour master", "Petra Lind"),
                                              ("Pilot", "Jonas Berg"), ("", "")]):
        row.cells[0].text, row.cells[1].text = role, name
    table.cell(3, 0).text = "Tides"
    cell = table.cell(3, 1)
    cell.text = "High water at the pier comes 40 minutes after Bergen."
    nested = cell.add_table(rows=2, cols=2)
    for row, values in zip(nested.rows, [("Spring", "2.1 metres"), ("Neap", "1.3 metres")]):
        row.cells[0].text, row.cells[1].text = values
    doc.add_paragraph("Visitors pay the mooring fee at the harbour office before noon.")
    doc.add_heading("History", level=2)
    doc.add_paragraph("The breakwater was finished in 1911 after six years of work.")
    doc.save(str(path))


def rezip(source: bytes, change=None, big: tuple[str, int] | None = None) -> bytes:
    """source's parts in a new archive: change(name, data) rewrites a part; big=(name, n)
    appends n spaces to that part, written 1 MiB at a time (a zip bomb stays small packed)."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(source)) as src, \
            zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as dst:
        for info in src.infolist():
            data = src.read(info)
            if change:
                data = change(info.filename, data)
            with dst.open(info.filename, "w") as part:
                part.write(data)
                if big and info.filename == big[0]:
                    for _ in range(big[1] >> 20):
                        part.write(b" " * (1 << 20))
    return out.getvalue()


def declare_size(archive: bytes, name: str, size: int) -> bytes:
    """The archive with the size its central directory declares for one part changed."""
    raw = bytearray(archive)
    at = 0
    while (at := raw.find(b"PK\x01\x02", at)) != -1:
        length = struct.unpack_from("<H", raw, at + 28)[0]
        if raw[at + 46 : at + 46 + length] == name.encode():
            struct.pack_into("<I", raw, at + 24, size)
        at += 4
    return bytes(raw)


def compound_file(streams: dict[str, bytes]) -> bytes:
    """An OLE Compound File (version 3, 512-byte sectors) holding these streams. Office saves
    a password-protected .docx as one, with EncryptionInfo and EncryptedPackage streams; old
    .doc files are one too. Each stream is a multiple of 512 bytes, at least 4096 (so none
    goes in the mini stream); at most three streams, in one directory sector."""
    end, unused, fat_sector = 0xFFFFFFFE, 0xFFFFFFFF, 0xFFFFFFFD

    def entry(name: str, kind: int, right=unused, child=unused, start=end, size=0) -> bytes:
        encoded = (name + "\0").encode("utf-16-le") if name else b""
        return struct.pack("<64sHBBIII16sIQQIQ", encoded, len(encoded), kind, 1 if name else 0,
                           unused, right, child, bytes(16), 0, 0, 0, start, size)

    names = sorted(streams, key=lambda n: (len(n), n.upper()))  # the order siblings are kept in
    fat = [fat_sector, end]  # sector 0 holds the FAT, sector 1 the directory
    entries = [entry("Root Entry", 5, child=1)]
    data = b""
    for n, name in enumerate(names, start=1):
        body = streams[name]
        assert len(body) >= 4096 and len(body) % 512 == 0
        first = len(fat)
        fat += [*range(first + 1, first + len(body) // 512), end]
        entries.append(entry(name, 2, right=n + 1 if n < len(names) else unused, start=first,
                             size=len(body)))
        data += body
    assert len(entries) <= 4 and len(fat) <= 128
    directory = b"".join(entries).ljust(512, b"\0")
    directory = directory[: 128 * len(entries)] + entry("", 0) * (4 - len(entries))
    header = (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(16)
              + struct.pack("<HHHHH6xIIIIIIIII", 0x3E, 3, 0xFFFE, 9, 6, 0, 1, 1, 0, 4096, end, 0, end, 0)
              + struct.pack("<I", 0) + b"\xff" * 4 * 108)
    fat_bytes = struct.pack(f"<{len(fat)}I", *fat).ljust(512, b"\xff")
    return header + fat_bytes + directory + data


def bad_files(root: Path, good: bytes) -> list[tuple[str, str]]:
    """Write every kind of broken .docx; returns (name, reason reported)."""
    import docx

    rng = random.Random(7)
    (root / "random.docx").write_bytes(bytes(rng.randrange(256) for _ in range(5000)))
    with zipfile.ZipFile(root / "archive.docx", "w") as z:  # a zip renamed .docx
        z.writestr("readme.txt", "Just a zip file.\n")
    (root / "truncated.docx").write_bytes(good[: len(good) // 2])
    (root / "locked.docx").write_bytes(compound_file({
        "EncryptionInfo": rng.randbytes(4096), "EncryptedPackage": rng.randbytes(8192)}))
    (root / "old.docx").write_bytes(compound_file({"WordDocument": rng.randbytes(4096)}))
    (root / "sheet.docx").write_bytes(rezip(
        good, lambda name, data: data.replace(WORD_MAIN.encode(), SHEET_MAIN.encode())))
    (root / "bomb.docx").write_bytes(rezip(good, big=("word/document.xml", 65 << 20)))
    doc = docx.Document()
    doc.add_paragraph("   ")
    doc.save(str(root / "blank.docx"))
    return [
        ("random.docx", "unreadable DOCX (not a zip archive)"),
        ("archive.docx", "unreadable DOCX (a zip archive but not a Word document: "
                         "no [Content_Types].xml)"),
        ("truncated.docx", "unreadable DOCX (damaged or truncated zip archive)"),
        ("locked.docx", "unreadable DOCX (encrypted, needs a password)"),
        ("old.docx", "unreadable DOCX (an old Word .doc or another OLE file, not a .docx; "
                     "save it as .docx)"),
        ("sheet.docx", f"unreadable DOCX (a zip archive but not a Word document: content type "
                       f"{SHEET_MAIN})"),
        ("bomb.docx", "unreadable DOCX (unpacks to more than 64 MiB)"),
        ("blank.docx", "no text"),
    ]


def cli(argv: list[str]) -> tuple[int, list[str]]:
    """qa.cli.main as a user runs it; its exit code and stderr lines (stdout must be empty)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    assert out.getvalue() == ""
    return code, err.getvalue().splitlines()


@pytest.fixture(scope="module")
def built(tmp_path_factory, embedder):
    """A folder with the guide, a text file and every broken .docx, indexed by `qa index`."""
    base = tmp_path_factory.mktemp("docx")
    root, idx = base / "docs", base / "idx"
    root.mkdir()
    make_guide(root / "guide.docx")
    (root / "notes.txt").write_text(
        "The lighthouse of Varnholm was built in 1871 by the engineer Ilse Brandt.\n", encoding="utf-8")
    cases = bad_files(root, (root / "guide.docx").read_bytes())
    code, lines = cli(["index", str(root), "--index", str(idx)])
    return root, idx, cases, code, lines


def test_text_is_in_reading_order(tmp_path):
    make_guide(tmp_path / "guide.docx")
    doc = read_document(SourceFile(tmp_path / "guide.docx", "guide.docx"))
    assert doc.text == GUIDE_TEXT
    assert doc.pages == []


def test_broken_docx_are_reported_and_skipped_and_the_rest_is_indexed(built):
    root, idx, cases, code, lines = built
    assert code == 0, lines
    for name, reason in cases:
        hits = [line for line in lines if line.startswith(f"skipped {root}/{name}: ")]
        assert hits == [f"skipped {root}/{name}: {reason}"], (name, lines)
    assert len(lines) == len(cases) + 1, lines  # one line per bad file, the summary: no traceback
    assert lines[-1].startswith("indexed 2 documents") and "2 new" in lines[-1], lines
    engine = Engine(idx)
    assert sorted(d.source for d in engine.data.documents) == ["guide.docx", "notes.txt"]
    text = engine.source_text("guide.docx")
    assert text == GUIDE_TEXT
    assert "Harbour master | Petra Lind" in text  # only in a table cell
    assert "lends bicycles to visiting sailors" in text  # only in a list item


@pytest.mark.parametrize(("question", "expected", "quoted"), [
    ("Who is the harbour master?", "Petra Lind", "Harbour master | Petra Lind"),
    ("What does the harbour office lend to visiting sailors?", "bicycles",
     "The harbour office lends bicycles to visiting sailors."),
    ("When was the breakwater finished?", "1911",
     "The breakwater was finished in 1911 after six years of work."),
])
def test_answers_quote_the_stored_text_at_their_offsets(built, question, expected, quoted):
    engine = Engine(built[1])
    text = engine.source_text("guide.docx")
    result = engine.ask(question)
    assert result["answerable"] and expected in result["answer"], result
    cite = result["citations"][0]
    assert cite["source"] == "guide.docx" and cite["quote"] == quoted
    short = result["short_answer"]
    assert short["text"] == expected and text[short["start"] : short["end"]] == expected
    for c in result["citations"]:
        if c["source"] == "guide.docx":
            assert text[c["start"] : c["end"]] == c["quote"]
    for p in result["passages"]:
        if p["source"] == "guide.docx":
            assert text[p["start"] : p["end"]] == p["text"]


def test_a_folder_of_only_broken_docx_is_an_error(tmp_path):
    root = tmp_path / "docs"
    root.mkdir()
    make_guide(tmp_path / "guide.docx")
    cases = bad_files(root, (tmp_path / "guide.docx").read_bytes())
    code, lines = cli(["index", str(root), "--index", str(tmp_path / "idx")])
    assert code == 1
    assert lines[:-1] == [f"skipped {root}/{name}: {reason}" for name, reason in sorted(cases)]
    assert lines[-1].startswith(f"qa: error: no readable documents found in {root}")


def test_a_part_that_unpacks_past_its_declared_size_is_never_unpacked(tmp_path):
    """A part that declares 5,000 bytes and inflates to 256 MiB: read whole, as python-docx reads
    parts, zipfile inflates all of it before cutting it to the declared size (565 MiB peak on
    such a file); read 1 MiB at a time, it fails its CRC check in a few MiB."""
    make_guide(tmp_path / "guide.docx")
    good = (tmp_path / "guide.docx").read_bytes()
    lying = declare_size(rezip(good, big=("word/document.xml", 256 << 20)), "word/document.xml", 5000)
    assert len(lying) < 2 << 20
    (tmp_path / "lying.docx").write_bytes(lying)
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match=r"^unreadable DOCX \(BadZipFile: Bad CRC-32"):
            read_document(SourceFile(tmp_path / "lying.docx", "lying.docx"))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 32 << 20, peak / 2**20

