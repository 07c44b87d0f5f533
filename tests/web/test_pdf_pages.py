"""The cited PDF page, as printed: highlight rectangles that cover exactly the cited characters
(checked against where reportlab drew them, and on the rendered pixels), the page over real
HTTP, `qa ask --show-page`, and hostile PDFs (each a clear error or a page, never a 500)."""

from __future__ import annotations

import io
import json
import shutil
import time
from pathlib import Path

import jsonschema
import numpy as np
import pytest
from pdf_support import (
    LEFT,
    PAGE1_END,
    PAGE2,
    RIGHT,
    RIGHT_X,
    SIZE,
    Line,
    busy_pdf,
    expected_rect,
    make_columns_pdf,
    make_pdf,
    malformed_pdf,
)
from PIL import Image
from web_support import make_index, start_server

import qa.pages
from qa.cli import main
from qa.contract import ANSWER_SCHEMA
from qa.engine import Engine
from qa.errors import PageUnavailable
from web.app import create_app

COUNCIL = "How many members does the island council have?"


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Line]]:
    """An index of the two-column PDF, a text file and the hostile PDFs that can be indexed."""
    root = tmp_path_factory.mktemp("pdfs") / "docs"
    root.mkdir()
    lines = make_columns_pdf(root / "columns.pdf")
    (root / "notes.txt").write_text("The notes say the museum opens at ten.\n", encoding="utf-8")
    make_pdf(root / "locked.pdf", ["A locked page about the treasury."], password="hunter2")
    (root / "truncated.pdf").write_bytes((root / "columns.pdf").read_bytes()[:900])
    (root / "fake.pdf").write_bytes(b"%PDF-1.4\nnot really a pdf")
    # Thousands of pages (blank but the first and the last: only they cost embedding).
    make_pdf(root / "register.pdf", ["The long harbour register starts here.", *[""] * 2998,
                                     "The long harbour register ends here."])
    make_pdf(root / "poster.pdf", ["The giant poster shows the whole coast."], pagesize=(14400, 14400))
    absurd = (root / "poster.pdf").read_bytes().replace(b"14400 14400", b"99999999 99999999")
    (root / "absurd.pdf").write_bytes(absurd)  # a page of 1,400 km a side
    (root / "repaired.pdf").write_bytes(malformed_pdf())
    busy_pdf(root / "busy.pdf")
    make_pdf(root / "changed.pdf", ["This file is changed after it was indexed."])
    index = make_index([root], root.parent / "index")
    make_pdf(root / "changed.pdf", ["Now it says something else entirely."])
    return index, lines


@pytest.fixture(scope="module")
def pdf_engine(built) -> Engine:
    return Engine(built[0])


def offsets(text: str, span: str) -> tuple[int, int]:
    start = text.index(span)
    assert text.count(span) == 1, span
    return start, start + len(span)


def assert_covers(rect: list[float], line: Line, first: int, last: int) -> None:
    """A rectangle spans exactly characters first:last of a drawn line, at its height."""
    left, right = expected_rect(line, first, last)
    assert rect[0] == pytest.approx(left, abs=0.6) and rect[2] == pytest.approx(right, abs=0.6), \
        (rect, left, right, line.text[first:last])
    assert rect[1] < line.baseline - 0.6 * SIZE and line.baseline < rect[3] < line.baseline + 0.4 * SIZE
    assert rect[3] - rect[1] < 1.5 * SIZE


def test_rectangles_cover_exactly_the_cited_characters(pdf_engine, built):
    lines = built[1]
    doc = pdf_engine.data.document("columns.pdf")
    assert doc.pages == [0, doc.text.index(PAGE2[0])]
    for line in lines:  # every drawn line, whole: one rectangle on its page
        start, end = offsets(doc.text, line.text)
        (boxes,) = qa.pages.highlight(doc, start, end)
        assert boxes["page"] == line.page and (boxes["width"], boxes["height"]) == (595.28, 841.89)
        (rect,) = boxes["rects"]
        assert_covers(rect, line, 0, len(line.text))

    right = [line for line in lines if line.text in RIGHT]
    start, end = offsets(doc.text, "nine members")  # a few characters inside a line
    (rect,) = qa.pages.highlight(doc, start, end)[0]["rects"]
    assert_covers(rect, right[0], RIGHT[0].index("nine"), RIGHT[0].index("."))

    # A sentence over two lines of the right column: two rectangles, none in the left column.
    start, end = offsets(doc.text, RIGHT[1] + "\n" + RIGHT[2])
    rects = qa.pages.highlight(doc, start, end)[0]["rects"]
    assert len(rects) == 2 and all(r[0] >= RIGHT_X - 0.5 for r in rects)
    assert_covers(rects[0], right[1], 0, len(RIGHT[1]))
    assert_covers(rects[1], right[2], 0, len(RIGHT[2]))

    # A span over the page break: a group of rectangles on each page.
    start, end = offsets(doc.text, PAGE1_END[4:] + "\n\n" + PAGE2[0][:9])
    first, second = qa.pages.highlight(doc, start, end)
    assert (first["page"], second["page"]) == (1, 2)
    assert_covers(first["rects"][0], lines[-3], 4, len(PAGE1_END))
    assert_covers(second["rects"][0], lines[-2], 0, 9)
    assert qa.pages.highlight(doc, start, start) == []
    assert qa.pages.highlight(pdf_engine.data.document("notes.txt"), 0, 5) == []
    assert LEFT[0] in doc.text


def test_pdf_citations_carry_their_page_and_rectangles(pdf_engine):
    answer = pdf_engine.ask(COUNCIL)
    jsonschema.validate(json.loads(json.dumps(answer)), ANSWER_SCHEMA)
    cite, short = answer["citations"][0], answer["short_answer"]
    assert cite["source"] == "columns.pdf" and cite["page"] == 1 and "nine members" in cite["quote"]
    doc = pdf_engine.data.document("columns.pdf")
    assert cite["boxes"] == qa.pages.highlight(doc, cite["start"], cite["end"])
    assert all(r[0] >= RIGHT_X - 0.5 for b in cite["boxes"] for r in b["rects"])
    if short is not None:
        (inner,) = short["boxes"][0]["rects"]
        outer = cite["boxes"][0]["rects"][0]
        assert outer[0] - 0.01 <= inner[0] < inner[2] <= outer[2] + 0.01
    notes = pdf_engine.ask("When does the museum open?")
    assert notes["citations"][0]["source"] == "notes.txt" and "boxes" not in notes["citations"][0]


def _share(image: Image.Image, box: tuple[float, float, float, float], test) -> float:
    """The share of pixels in box (pixels) whose colour passes test."""
    crop = image.crop(tuple(round(v) for v in box)).convert("RGB")
    pixels = np.asarray(crop).reshape(-1, 3).astype(int).tolist()
    return sum(1 for p in pixels if test(p)) / max(len(pixels), 1)


def test_rendered_page_shows_the_highlight_over_the_cited_words(pdf_engine, built):
    doc = pdf_engine.data.document("columns.pdf")
    start, end = offsets(doc.text, RIGHT[0])
    s_start, s_end = offsets(doc.text, "nine")
    png = pdf_engine.page_image("columns.pdf", 1, 1000, cited=(start, end), short=(s_start, s_end))
    image = Image.open(io.BytesIO(png))
    assert image.width == 1000
    scale = 1000 / 595.28
    rect = qa.pages.highlight(doc, start, end)[0]["rects"][0]
    short = qa.pages.highlight(doc, s_start, s_end)[0]["rects"][0]
    yellow = lambda p: p[0] > 230 and p[1] > 210 and p[2] < 190 and p[1] - p[2] > 50  # noqa: E731
    orange = lambda p: p[0] > 220 and 140 < p[1] < 200 and p[2] < 130  # noqa: E731
    before = (rect[0] * scale, rect[1] * scale, short[0] * scale - 2, rect[3] * scale)
    assert _share(image, before, yellow) > 0.5  # the cited line is yellow around its letters
    assert _share(image, tuple(v * scale for v in short), orange) > 0.5  # the short answer, stronger
    left = qa.pages.highlight(doc, *offsets(doc.text, LEFT[0]))[0]["rects"][0]
    assert _share(image, tuple(v * scale for v in left), lambda p: p[0] - p[2] > 30) == 0  # nothing else
    plain = Image.open(io.BytesIO(pdf_engine.page_image("columns.pdf", 1, 1000))).convert("RGB")
    assert _share(plain, tuple(v * scale for v in rect), lambda p: max(p) < 100) > 0.05  # text there


def test_cli_writes_the_highlighted_page(pdf_engine, built, tmp_path, capsys):
    out = tmp_path / "page.png"
    code = main(["ask", COUNCIL, "--index", str(built[0]), "--show-page", str(out)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert f"wrote page 1 of columns.pdf to {out}" in captured.err
    assert Image.open(out).size[0] == 1000
    code = main(["ask", "When does the museum open?", "--index", str(built[0]), "--show-page", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and err == [f"qa: error: --show-page: notes.txt is not a PDF; nothing written to {out}"]


def test_rendering_is_bounded_in_time(pdf_engine, monkeypatch):
    monkeypatch.setattr(qa.pages, "RENDER_SECONDS", 0.0)
    with pytest.raises(PageUnavailable, match="took more than"):
        pdf_engine.page_image("busy.pdf", 1, 2000)


def test_the_page_route_keeps_the_token_rules(pdf_engine):
    client = create_app(pdf_engine, token="t" * 20).test_client()
    assert client.get("/api/sources/columns.pdf/pages/1.png").status_code == 401
    ok = client.get("/api/sources/columns.pdf/pages/1.png", headers={"Authorization": "Bearer " + "t" * 20})
    assert ok.status_code == 200 and ok.mimetype == "image/png"


PAGES = [  # path, expected status, error code (None: a PNG)
    ("columns.pdf/pages/1.png", 200, None),
    ("columns.pdf/pages/2.png?width=100", 200, None),
    ("columns.pdf/pages/3.png", 404, "unknown_page"),
    ("columns.pdf/pages/0.png", 404, "unknown_page"),
    ("columns.pdf/pages/1.png?width=abc", 400, "invalid_request"),
    ("columns.pdf/pages/1.png?width=99", 400, "invalid_request"),
    ("columns.pdf/pages/1.png?width=100000", 400, "invalid_request"),
    ("notes.txt/pages/1.png", 404, "no_pages"),
    ("missing.pdf/pages/1.png", 404, "unknown_source"),
    ("locked.pdf/pages/1.png", 404, "unknown_source"),  # encrypted: never indexed
    ("fake.pdf/pages/1.png", 404, "unknown_source"),
    ("register.pdf/pages/3000.png", 200, None),  # thousands of pages
    ("register.pdf/pages/3001.png", 404, "unknown_page"),
    ("poster.pdf/pages/1.png?width=2000", 200, None),  # 5 m a side
    ("absurd.pdf/pages/1.png?width=2000", 200, None),  # 1,400 km a side
    ("repaired.pdf/pages/1.png", 200, None),  # malformed, repaired by PDFium
    ("busy.pdf/pages/1.png", 200, None),  # 60,000 shapes
    ("changed.pdf/pages/1.png", 409, "source_changed"),
    ("%2e%2e/%2e%2e/etc/passwd/pages/1.png", 404, None),
]


@pytest.mark.timeout(180)
def test_pages_and_hostile_pdfs_over_http(built, tmp_path):
    index = built[0]
    server = start_server(index, tmp_path / "server.log")
    try:
        for path, status, code in PAGES:
            started = time.perf_counter()
            got, headers, body = server.get("/api/sources/" + path)
            headers = {k.lower(): v for k, v in headers.items()}
            took = time.perf_counter() - started
            assert got == status, (path, got, body[:300])
            assert took < 5, (path, took)
            if status == 200:
                image = Image.open(io.BytesIO(body))
                assert image.format == "PNG" and image.width <= 2000
                assert image.width * image.height <= qa.pages.MAX_PIXELS * 1.01
                assert headers["cache-control"] == "private, no-cache" and headers["etag"]
            else:
                error = json.loads(body)["error"]
                assert code is None or error["code"] == code, (path, error)
                assert headers["cache-control"] == "no-store"
        tag = {k.lower(): v for k, v in server.get("/api/sources/columns.pdf/pages/1.png")[1].items()}["etag"]
        again = server.get("/api/sources/columns.pdf/pages/1.png", headers={"If-None-Match": tag})
        assert again[0] == 304 and again[2] == b""
        truncated = server.get("/api/sources/truncated.pdf/pages/1.png")
        assert truncated[0] in (200, 404), truncated  # PDFium may repair it; never a 500
        assert "Traceback" not in (tmp_path / "server.log").read_text(errors="replace")
    finally:
        server.stop()
    shutil.rmtree(tmp_path, ignore_errors=True)


def test_boxes_survive_an_update_and_a_merge(built, pdf_engine, tmp_path):
    from qa.index.build import build_index
    from qa.index.embedding import Embedder

    index = tmp_path / "index"
    shutil.copytree(built[0], index, symlinks=True)
    docs = tmp_path / "docs"
    docs.mkdir()
    shutil.copy(built[0].parent / "docs" / "columns.pdf", docs / "columns.pdf")
    (docs / "new.txt").write_text("A new note about the ferry.\n", encoding="utf-8")
    report = build_index([docs], index, Embedder(), report=lambda _: None, optimize=True)
    assert report.segments == 1 and report.unchanged == 1
    before = pdf_engine.data.document("columns.pdf")
    after = Engine(index).data.document("columns.pdf")
    assert after.text == before.text and after.pages == before.pages and after.page_sizes == before.page_sizes
    assert np.array_equal(after.boxes, before.boxes, equal_nan=True)


def test_a_pdf_travels_whole_through_a_ray_build_row(pdf_engine):
    from qa.index.build import Part
    from qa.index.ray_build import as_row, from_row

    doc = pdf_engine.data.document("columns.pdf")
    part = Part(doc, np.zeros((0, 2), np.int64), np.zeros((0, 4), np.int64))
    back = from_row(as_row(0, part)).document
    assert (back.text, back.pages, back.page_sizes) == (doc.text, doc.pages, doc.page_sizes)
    assert np.array_equal(back.boxes, doc.boxes, equal_nan=True)
    assert from_row(as_row(0, Part(pdf_engine.data.document("notes.txt"), part.sentences, part.chunks))
                 ).document.boxes is None
