"""How long showing a cited PDF page takes: extracting text and boxes, and drawing a page.

Run from the repository root:

    .venv/bin/python bench/pages.py [--repeat 20]

It writes three PDFs with reportlab into a temporary folder (a page of dense text in two
columns, 40 such pages, a page of 60,000 small shapes) and prints, per case, the median
and the slowest of ``--repeat`` runs: PDFium's text and boxes for the 40 pages (what
``qa index`` does), the highlight rectangles of one sentence, and one page rendered to a
PNG at 1000 and 2000 pixels wide (what GET /api/sources/<doc>/pages/<n>.png does, without
HTTP).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from qa import pages
from qa.index.pdf import pdf_to_text
from qa.index.sources import Document

LINE = "The harbour master records every ship that enters the bay and the cargo it carries."


def dense_pdf(path: Path, count: int) -> None:
    """Pages of two columns of 9-point text, 75 lines each (about 5,000 characters a page)."""
    from reportlab.pdfgen import canvas

    c = canvas.Canvas(str(path), pagesize=(595.28, 841.89))
    for _ in range(count):
        c.setFont("Helvetica", 9)
        for x in (40, 310):
            for k in range(75):
                c.drawString(x, 800 - 10 * k, LINE[:52] if k % 2 else LINE[30:])
        c.showPage()
    c.save()


def busy_pdf(path: Path) -> None:
    from reportlab.pdfgen import canvas

    c = canvas.Canvas(str(path), pagesize=(595.28, 841.89))
    for i in range(60_000):
        c.rect(20 + (i * 7) % 550, 20 + (i * 13) % 700, 3, 3, stroke=1, fill=1)
    c.showPage()
    c.save()


def timed(repeat: int, run) -> str:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        times.append((time.perf_counter() - started) * 1000)
    return f"median {statistics.median(times):8.1f} ms, slowest {max(times):8.1f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        one, forty, busy = Path(folder, "one.pdf"), Path(folder, "forty.pdf"), Path(folder, "busy.pdf")
        dense_pdf(one, 1)
        dense_pdf(forty, 40)
        busy_pdf(busy)
        raw = forty.read_bytes()
        extracted = pdf_to_text(raw)
        doc = Document("forty.pdf", extracted.text, "", extracted.pages, extracted.boxes, extracted.sizes)
        start = extracted.text.index(LINE[30:])
        print(f"text and boxes, 40 pages ({len(extracted.text):,} characters): "
              f"{timed(max(args.repeat // 10, 2), lambda: pdf_to_text(raw))}")
        print(f"highlight rectangles of one sentence: "
              f"{timed(args.repeat, lambda: pages.highlight(doc, start, start + 200))}")
        for name, path in (("dense text page", one), ("60,000 shapes", busy)):
            for width in (1000, 2000):
                def render(path: Path = path, width: int = width) -> None:
                    with open(path, "rb") as fh:
                        pages.render_png(fh, 1, width)
                print(f"render {name}, {width} px wide, to PNG: {timed(args.repeat, render)}")


if __name__ == "__main__":
    main()
