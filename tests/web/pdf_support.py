"""A real PDF for the page tests: two columns on page 1, a sentence that runs onto page 2,
and where reportlab drew every line (to compare the highlight rectangles with)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

FONT, SIZE = "Helvetica", 11
LEFT_X, RIGHT_X = 72, 320
PAGE_HEIGHT = 841.89  # A4

# (column x, baseline y from the bottom) -> line, page 1; each column holds whole sentences.
LEFT = [
    "The harbour of Varnholm was dredged",
    "in 1904 by the engineer Ilse Brandt.",
    "Its pier is three hundred metres long.",
]
RIGHT = [
    "The island council has nine members.",
    "They are elected for four years and",
    "meet every Tuesday in the old school.",
]
PAGE1_END = "The ferry timetable changes in the spring and"
PAGE2 = ["continues unchanged through the summer.", "The lighthouse stands on the northern cliff."]


@dataclass
class Line:
    page: int
    x: float
    baseline: float  # from the top of the page, as the boxes are given
    text: str


def make_columns_pdf(path: Path) -> list[Line]:
    """Write the PDF; every line drawn, with where it was drawn."""
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas

    c = canvas.Canvas(str(path), pagesize=A4)
    c.setFont(FONT, SIZE)
    lines: list[Line] = []
    for x, column in ((LEFT_X, LEFT), (RIGHT_X, RIGHT)):  # column by column, as typesetters write
        for k, text in enumerate(column):
            c.drawString(x, 760 - 16 * k, text)
            lines.append(Line(1, x, PAGE_HEIGHT - (760 - 16 * k), text))
    c.drawString(LEFT_X, 100, PAGE1_END)
    lines.append(Line(1, LEFT_X, PAGE_HEIGHT - 100, PAGE1_END))
    c.showPage()
    c.setFont(FONT, SIZE)
    y = 760.0
    for text in PAGE2:
        c.drawString(LEFT_X, y, text)
        lines.append(Line(2, LEFT_X, PAGE_HEIGHT - y, text))
        y -= 16
    c.showPage()
    c.save()
    return lines


def expected_rect(line: Line, first: int, last: int) -> tuple[float, float]:
    """Left and right (points) of characters first:last of a drawn line, by reportlab's metrics."""
    from reportlab.pdfbase.pdfmetrics import stringWidth

    return (line.x + stringWidth(line.text[:first], FONT, SIZE),
            line.x + stringWidth(line.text[:last], FONT, SIZE))


# ---- hostile PDFs ----

def make_pdf(path: Path, pages: list[str], pagesize: tuple[float, float] = (595.28, 841.89),
             password: str | None = None) -> None:
    """One line of text on each page."""
    from reportlab.pdfgen import canvas

    c = canvas.Canvas(str(path), pagesize=pagesize, encrypt=password)
    for text in pages:
        c.setFont(FONT, SIZE)
        if text:
            c.drawString(20, pagesize[1] - 40, text)
        c.showPage()
    c.save()


def malformed_pdf() -> bytes:
    """No cross-reference table, a wrong stream length, garbage after the text: PDFium repairs it."""
    return (b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n"
            b"2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj\n"
            b"3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 612 792]/Contents 4 0 R"
            b"/Resources<</Font<</F1<</Type/Font/Subtype/Type1/BaseFont/Helvetica>>>>>>>>endobj\n"
            b"4 0 obj<</Length 9999>>stream\n"
            b"BT /F1 12 Tf 72 712 Td (The repaired file mentions the salt road.) Tj ET\n"
            b"q q q 1 0 0 1 0 0 cm {{{ ))) ]]] >> BT Tj Tj ET Q\nendstream endobj\n"
            b"trailer<</Root 1 0 R>>\n%%EOF\n")


def busy_pdf(path: Path, shapes: int = 60_000) -> None:
    """A page of many tiny shapes (slow to draw) under one line of text."""
    from reportlab.pdfgen import canvas

    c = canvas.Canvas(str(path), pagesize=(595.28, 841.89))
    c.setFont(FONT, SIZE)
    c.drawString(72, 800, "The busy page lists every buoy in the bay.")
    for i in range(shapes):
        c.rect(20 + (i * 7) % 550, 20 + (i * 13) % 700, 3, 3, stroke=1, fill=1)
    c.showPage()
    c.save()
