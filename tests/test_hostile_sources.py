"""Hostile sources for `qa index`: each bad file is one line on stderr and skipped, the rest is
indexed, and the run never ends in a traceback. Everything goes through the real CLI."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import tracemalloc
from pathlib import Path

import pytest

from qa.cli import main
from qa.engine import Engine
from qa.index import sources
from qa.index.sources import SourceFile, find_files, read_document

ROOT = Path(__file__).resolve().parent.parent
BIG = 300 * 1024 * 1024  # a sparse file: no disk used, but reading it would cost 300 MiB

GOOD = {
    "lighthouse.txt": "The lighthouse of Varnholm was built in 1871 by the engineer Ilse Brandt.\n"
                      "It stands 42 metres tall on the northern cliff.\n",
    "ferry.md": "# Ferry\n\nThe ferry to Varnholm leaves every morning at seven from Pier 4.\n",
    "market.html": "<html><body><h1>Market</h1><p>The fish market opens on Saturdays.</p></body></html>",
    "folder.txt/inside.md": "A folder named like a text file is walked as a folder.\n",
    "deep.html": "<div>" * 20000 + "<p>The deepest paragraph mentions the old salt road.</p>"
                 + "</div>" * 20000,
}


def make_pdf(path: Path, text: str, password: str | None = None) -> None:
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas

    c = canvas.Canvas(str(path), pagesize=A4, encrypt=password)
    c.drawString(72, 760, text)
    c.showPage()
    c.save()


def sparse(path: Path, size: int) -> None:
    with open(path, "wb") as fh:
        fh.truncate(size)


def hostile_corpus(root: Path, outside: Path) -> list[tuple[str, str]]:
    """Write the good files and every kind of bad one; returns (path as reported, reason)."""
    root.mkdir()
    outside.mkdir()
    for name, text in GOOD.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text, encoding="utf-8")
    make_pdf(root / "council.pdf", "The island council has nine members.")

    (root / "png.txt").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x01")
    (root / "controls.md").write_bytes(bytes(range(1, 32)) * 200)  # valid UTF-8, no NUL
    (root / "noise.txt").write_bytes(bytes((b * 7 + 3) % 255 + 1 for b in range(20000)))
    (root / "binary.html").write_bytes(os.urandom(4000) + b"\x00")
    (root / "empty.txt").write_bytes(b"")
    (root / "blank.md").write_text("  \n\n\t\n", encoding="utf-8")
    (root / "latin1.txt").write_bytes("café au lait, crème brûlée".encode("latin-1"))
    (root / "utf16.txt").write_bytes("Hello in UTF-16.".encode("utf-16"))
    sparse(root / "huge.txt", BIG)
    sparse(root / "huge.html", 17 * 1024 * 1024)
    os.mkfifo(root / "fifo.txt")
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(root / "socket.md"))
    os.symlink("/dev/zero", root / "zero.txt")
    os.symlink("missing.txt", root / "dangling.txt")
    os.symlink("self.txt", root / "self.txt")
    (root / "sub").mkdir()
    (root / "sub" / "note.txt").write_text("A note in a sub folder about the harbour.\n")
    os.symlink("..", root / "sub" / "up")
    os.symlink(root / "sub", root / "alias")
    (outside / "secret.txt").write_text("The secret password is swordfish.\n")
    os.symlink(outside / "secret.txt", root / "secret.txt")
    os.symlink(outside, root / "elsewhere")
    (root / "fake.pdf").write_bytes(b"%PDF-1.4\nnot really a pdf")
    make_pdf(root / "locked.pdf", "Locked page text.", password="hunter2")
    good_pdf = (root / "council.pdf").read_bytes()
    (root / "truncated.pdf").write_bytes(good_pdf[: len(good_pdf) // 2])
    with open(os.fsencode(root) + b"/caf\xe9.txt", "wb") as fh:
        fh.write(b"A name that is not UTF-8.\n")
    (root / "line\nbreak.txt").write_text("A name with a newline.\n")

    return [
        ("png.txt", "binary content"),
        ("controls.md", "binary content"),
        ("noise.txt", "binary content"),
        ("binary.html", "binary content"),
        ("empty.txt", "empty file"),
        ("blank.md", "no text"),
        ("latin1.txt", "not UTF-8 text (byte 0xe9 at offset 3"),
        ("utf16.txt", "UTF-16 text, not UTF-8"),
        ("huge.txt", "larger than 64 MiB"),
        ("huge.html", "larger than 16 MiB"),
        ("fifo.txt", "not a regular file"),
        ("socket.md", "not a regular file"),
        ("zero.txt", "not a regular file"),
        ("dangling.txt", "broken symlink"),
        ("self.txt", "symlink loop"),
        ("sub/up", "symlink loop"),
        ("alias", f"same folder as {root}/sub"),
        ("secret.txt", f"symlink to a file outside {root}"),
        ("elsewhere", f"symlink to a folder outside {root}"),
        ("fake.pdf", "unreadable PDF"),
        ("locked.pdf", "unreadable PDF (encrypted, needs a password)"),
        ("truncated.pdf", "unreadable PDF"),
        ("caf\\xe9.txt", "file name is not valid UTF-8"),
        ("line\\nbreak.txt", "file name contains control characters"),
    ]


def index(folder: Path, idx: Path, capsys, *extra: str) -> tuple[int, list[str]]:
    code = main(["index", str(folder), *extra, "--index", str(idx)])
    captured = capsys.readouterr()
    assert captured.out == ""
    return code, captured.err.splitlines()


@pytest.mark.timeout(120)
def test_hostile_folder_is_indexed_with_one_line_per_bad_file(tmp_path, embedder, capsys):
    root, idx = tmp_path / "docs", tmp_path / "idx"
    cases = hostile_corpus(root, tmp_path / "outside")
    code, lines = index(root, idx, capsys, str(root / "fifo.txt"))  # (a missing one: tests/test_cli.py)
    assert code == 0, lines

    expected = [(f"{root}/{name}", reason) for name, reason in cases]
    expected += [(f"{root}/fifo.txt", "not a regular file")]
    for path, reason in expected:
        hits = [line for line in lines if line.startswith(f"skipped {path}: ")]
        assert len(hits) == (2 if path.endswith("fifo.txt") else 1), (path, lines)
        assert reason in hits[0], (path, hits)
    summary = lines[-1]
    assert re.fullmatch(r"indexed 7 documents, \d+ passages in [\d.]+ s \(7 new, 0 changed, 0 removed, "
                        r"0 unchanged, \d+ skipped; 1 segment\)", summary), summary
    # Every line is a skip note or the summary: no traceback, no warnings, no stray output.
    assert len(lines) == len(expected) + 1, lines  # + the summary

    engine = Engine(idx)
    assert sorted(d.source for d in engine.data.documents) == [
        "council.pdf", "deep.html", "ferry.md", "folder.txt/inside.md", "lighthouse.txt",
        "market.html", "sub/note.txt"]  # every good file, once
    assert not any("swordfish" in d.text for d in engine.data.documents)  # outside stays out
    answer = engine.ask("Who built the lighthouse of Varnholm?")
    cite = answer["citations"][0]
    assert cite["source"] == "lighthouse.txt"
    with open(root / "lighthouse.txt", encoding="utf-8") as fh:
        assert fh.read()[cite["start"] : cite["end"]] == cite["quote"]
    assert "old salt road" in engine.source_text("deep.html")

    code, again = index(root, idx, capsys)  # a second run: the same notes, nothing re-embedded
    assert code == 0 and "(0 new, 0 changed, 0 removed, 7 unchanged" in again[-1], again
    assert len(again) == len(cases) + 1
    for name, reason in cases:
        assert sum(line.startswith(f"skipped {root}/{name}: {reason}") for line in again) == 1


def test_large_file_is_never_read_into_memory(tmp_path):
    big = tmp_path / "huge.txt"
    sparse(big, BIG)
    notes: list[str] = []
    tracemalloc.start()
    try:
        found = find_files([tmp_path], notes.append)
        with pytest.raises(ValueError, match=r"^larger than 64 MiB$"):
            read_document(SourceFile(big, "huge.txt"))  # as if it had grown after the walk
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert found == [] and notes == [f"skipped {big}: larger than 64 MiB"]
    assert peak < 1024 * 1024  # Python allocated under 1 MiB for a 300 MiB file


def test_size_limit_is_exact_and_holds_while_reading(tmp_path, monkeypatch):
    monkeypatch.setattr(sources, "MAX_BYTES", 100)
    (tmp_path / "limit.txt").write_bytes(b"x" * 99 + b"\n")
    (tmp_path / "over.txt").write_bytes(b"x" * 100 + b"\n")
    notes: list[str] = []
    found = find_files([tmp_path], notes.append)
    assert [f.source for f in found] == ["limit.txt"]
    assert notes == [f"skipped {tmp_path}/over.txt: larger than 100 bytes"]
    assert read_document(found[0]).text == "x" * 99 + "\n"
    with pytest.raises(ValueError, match="larger than 100 bytes"):
        read_document(SourceFile(tmp_path / "over.txt", "over.txt"))
    # A file whose size says 0 but that has more to read (as one that grows while it is
    # read): reading stops past the limit.
    status = Path("/proc/self/status")
    assert status.stat().st_size == 0 and len(status.read_bytes()) > 100
    with pytest.raises(ValueError, match="larger than 100 bytes"):
        read_document(SourceFile(status, "status.txt"))


@pytest.mark.timeout(20)
def test_files_swapped_after_the_walk_do_not_hang_or_escape(tmp_path):
    """read_document checks the opened file itself: a FIFO or a folder that took a found
    file's place is refused at once (a FIFO must not block the build forever)."""
    os.mkfifo(tmp_path / "fifo.txt")
    (tmp_path / "dir.txt").mkdir()
    for name in ("fifo.txt", "dir.txt"):
        with pytest.raises(ValueError, match="not a regular file"):
            read_document(SourceFile(tmp_path / name, name))
    with pytest.raises(OSError):
        read_document(SourceFile(tmp_path / "gone.txt", "gone.txt"))


def test_text_is_exactly_what_open_read_gives(tmp_path):
    """The stored text is the file's text as Python reads it, so quotes can be cut back out."""
    raw = "Line one.\r\nLine two.\rLine three.\n\ufeffBOM inside. Ünïcödé ☃ 𝄞.\n".encode()
    (tmp_path / "mixed.txt").write_bytes(b"\xef\xbb\xbf" + raw)
    doc = read_document(SourceFile(tmp_path / "mixed.txt", "mixed.txt"))
    with open(tmp_path / "mixed.txt", encoding="utf-8") as fh:
        assert doc.text == fh.read()
    assert doc.sha256 == hashlib.sha256((tmp_path / "mixed.txt").read_bytes()).hexdigest()


# A fresh `qa index` process, as a user runs it. It reports its peak memory (maxrss) once the
# model is loaded and again at the end: reading the 300 MiB file would add at least 300 MiB.
MEASURED = textwrap.dedent(
    """
    import json, sys
    from qa.index.embedding import Embedder
    def peak():  # this process's own peak (ru_maxrss also counts the parent's, from before exec)
        with open("/proc/self/status") as fh:
            return next(int(line.split()[1]) for line in fh if line.startswith("VmHWM:"))
    Embedder()
    before = peak()
    from qa.cli import main
    code = main(sys.argv[1:])
    after = peak()
    print(json.dumps({"before_kib": before, "after_kib": after}))
    sys.exit(code)
    """
)


@pytest.mark.timeout(180)
def test_fresh_cli_skips_a_huge_file_in_bounded_memory(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "lighthouse.txt").write_text(GOOD["lighthouse.txt"], encoding="utf-8")
    sparse(docs / "huge.txt", BIG)
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    proc = subprocess.run(
        [sys.executable, "-c", MEASURED, "index", str(docs), "--index", str(tmp_path / "idx")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=170,
    )
    lines = proc.stderr.splitlines()
    assert proc.returncode == 0, proc.stderr
    assert lines[0] == f"skipped {docs}/huge.txt: larger than 64 MiB", lines
    assert len(lines) == 2 and lines[1].startswith("indexed 1 document,"), lines
    memory = json.loads(proc.stdout)
    grew_mib = (memory["after_kib"] - memory["before_kib"]) / 1024
    assert grew_mib < 100, memory  # the 300 MiB file was not read
    assert memory["after_kib"] < 1.5 * 1024 * 1024, memory  # the whole run stayed under 1.5 GiB
    print(f"\nfresh qa index: peak {memory['after_kib'] / 1024:.0f} MiB, "
          f"{grew_mib:.0f} MiB more than with the model just loaded")


NOBODY = 65534


@pytest.fixture()
def shared_tmp():
    """A folder another user can reach (pytest's tmp_path is private to root)."""
    path = Path(tempfile.mkdtemp(prefix="qa-hostile-"))
    path.chmod(0o755)
    if os.geteuid() == 0:
        os.chown(path, NOBODY, NOBODY)
    yield path
    for p in path.rglob("*"):  # a chmod 000 folder must be opened again to be removed
        if p.is_dir() and not p.is_symlink():
            p.chmod(0o755)
    shutil.rmtree(path)


def run_cli_as_nobody(argv: list[str]) -> tuple[int, str]:
    """`qa.cli.main(argv)` in a forked child that gave up root, as a user without rights runs
    it (root reads any file whatever its permission bits). The child computes nothing with the
    model, so forking after the model has run is safe here."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 99
        try:
            os.close(read_end)
            sys.stdout = sys.stderr = os.fdopen(write_end, "w", buffering=1)
            if os.geteuid() == 0:
                os.setgroups([])
                os.setgid(NOBODY)
                os.setuid(NOBODY)
            code = main(argv)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        except BaseException:
            import traceback

            traceback.print_exc()
        finally:
            sys.stderr.flush()
            os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end, encoding="utf-8", errors="replace") as fh:
        output = fh.read()
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), output


@pytest.mark.timeout(60)
def test_unreadable_files_and_folders_are_reported_not_fatal(shared_tmp, embedder):
    docs = shared_tmp / "docs"
    docs.mkdir()
    (docs / "locked.txt").write_text("Nobody may read this.\n")
    (docs / "locked.txt").chmod(0)
    (docs / "private").mkdir()
    (docs / "private" / "inside.txt").write_text("Hidden inside a closed folder.\n")
    (docs / "private").chmod(0)
    code, output = run_cli_as_nobody(["index", str(docs), "--index", str(shared_tmp / "idx")])
    assert output.splitlines() == [
        f"skipped {docs}/private: Permission denied",
        f"skipped {docs}/locked.txt: Permission denied",
        f"qa: error: no readable documents found in {docs} "
        "(supported: .docx .htm .html .markdown .md .pdf .txt)",
    ], output
    assert code == 1


def test_a_long_paragraph_is_split_in_linear_time(embedder):
    import time

    from qa.index.chunking import ChunkSettings, chunk_text

    # One 840 KB paragraph (a file with single line breaks is one paragraph). A splitter
    # whose time grows with the square of the paragraph (pysbd did: 1.4 s for 41 KB, 5.6 s
    # for 83 KB) would take hours; syntok takes about 1 s here.
    text = " ".join(["The market on the island opens in the morning below the cliff."] * 13_000)
    started = time.perf_counter()
    _, chunks = chunk_text(text, embedder.count_tokens, ChunkSettings(limit_tokens=embedder.max_tokens - 2))
    assert time.perf_counter() - started < 30
    assert chunks[0].start == 0 and chunks[-1].end == len(text)


def test_hostile_pdfs_are_read_within_bounds_or_refused_in_one_line(tmp_path, monkeypatch):
    """Thousands of pages, giant and absurd page sizes, a broken file PDFium repairs: read, with a
    box for every character; past the page or text limits: one line. (Pages over HTTP:
    tests/web/test_pdf_pages.py.)"""
    from reportlab.pdfgen import canvas

    from qa.index import pdf

    def write(name: str, pages: list[str], size: tuple[float, float] = (595.28, 841.89)) -> SourceFile:
        c = canvas.Canvas(str(tmp_path / name), pagesize=size)
        for text in pages:
            if text:
                c.drawString(20, size[1] - 40, text)
            c.showPage()
        c.save()
        return SourceFile(tmp_path / name, name)

    many = write("many.pdf", ["The register starts here.", *[""] * 2500, "The register ends here."])
    doc = read_document(many)
    assert len(doc.pages) == 2502 and doc.text.endswith("The register ends here.")
    assert doc.boxes.shape == (len(doc.text), 4) and doc.text.index("ends") >= doc.pages[-1]
    giant = write("giant.pdf", ["A poster five metres wide."], (14400, 14400))
    assert read_document(giant).page_sizes == [[14400.0, 14400.0]]
    absurd = tmp_path / "absurd.pdf"
    absurd.write_bytes((tmp_path / "giant.pdf").read_bytes().replace(b"14400 14400", b"99999999 99999999"))
    assert read_document(SourceFile(absurd, "absurd.pdf")).page_sizes == [[1e8, 1e8]]
    broken = tmp_path / "broken.pdf"
    broken.write_bytes(b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n2 0 obj<</Type/Pages/Kids"
                       b"[3 0 R]/Count 1>>endobj\n3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 612 792]"
                       b"/Contents 4 0 R/Resources<</Font<</F1<</Type/Font/Subtype/Type1/BaseFont/Helvetica"
                       b">>>>>>>>endobj\n4 0 obj<</Length 9999>>stream\nBT /F1 12 Tf 72 712 Td (Repaired.) "
                       b"Tj ET\n{{{ ))) >> Tj\nendstream endobj\ntrailer<</Root 1 0 R>>\n")
    assert read_document(SourceFile(broken, "broken.pdf")).text == "Repaired."

    monkeypatch.setattr(pdf, "MAX_PDF_PAGES", 1000)
    with pytest.raises(ValueError, match=r"^unreadable PDF \(more than 1,000 pages\)$"):
        read_document(many)
    monkeypatch.setattr(pdf, "MAX_PDF_CHARS", 20)
    with pytest.raises(ValueError, match=r"^unreadable PDF \(more than 20 characters of text\)$"):
        read_document(giant)
