"""A PDF citation in the chat page (headless Chromium, a real ``qa serve`` with a token): it opens
on the cited page as printed, the quote highlighted over its words and the short answer marked
more strongly; "Text" and "Page" switch views; other formats, and a PDF whose file changed since
it was indexed, open in the text view."""

from __future__ import annotations

import io
from collections.abc import Iterator

import numpy as np
import pytest
from pdf_support import RIGHT, make_columns_pdf, make_pdf
from PIL import Image
from playwright.sync_api import expect
from test_browser import DESKTOP, ask, browser, shot  # noqa: F401 (browser: a fixture)
from web_support import Server, make_index, start_server

TOKEN = "pdf-page-token-0123456789"
COUNCIL = "How many members does the island council have?"


@pytest.fixture(scope="module")
def pdf_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("browser-pdf") / "docs"
    root.mkdir()
    make_columns_pdf(root / "columns.pdf")
    (root / "notes.txt").write_text("The notes say the museum opens at ten.\n", encoding="utf-8")
    make_pdf(root / "mill.pdf", ["The old mill was rebuilt in 1921 after the flood."])
    index = make_index([root], root.parent / "index")
    make_pdf(root / "mill.pdf", ["The mill page now says something else."])  # changed after indexing
    server = start_server(index, root.parent / "server.log", token=TOKEN)
    yield server
    server.stop()


def _pixels(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)


def test_a_pdf_citation_opens_on_its_page_with_the_quote_highlighted(browser, pdf_server):  # noqa: F811
    context = browser.new_context(viewport=DESKTOP)
    context.add_init_script(f"sessionStorage.setItem('qa-token', {TOKEN!r})")  # the image needs it too
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(pdf_server.url)
    expect(page.locator("#status")).to_contain_text("document")

    reply = ask(page, COUNCIL)
    expect(reply.locator(".answer-text")).to_contain_text(RIGHT[0])
    reply.locator(".answer-text button.cite", has_text="[1]").click()

    panel = page.locator("#source-panel")
    expect(panel.locator("#source-view")).to_be_visible()
    expect(page.locator("#view-page")).to_have_attribute("aria-pressed", "true")
    expect(page.locator("#source-text")).to_be_hidden()
    image = page.locator(".pdf-page img")
    expect(image).to_be_visible()
    page.wait_for_function("document.querySelector('.pdf-page img').naturalWidth > 0")
    marks, short = page.locator(".page-mark:not(.short)"), page.locator(".page-mark.short")
    expect(marks).to_have_count(1)
    expect(short).to_have_count(1)
    expect(marks).to_be_in_viewport()

    # On the screen: the highlight lies over dark letters (the cited words), tinted yellow,
    # and the short answer inside it is orange; the left column has no highlight.
    box = marks.bounding_box()
    inside = _pixels(page.screenshot(clip=box))
    assert (inside.max(axis=2) < 110).mean() > 0.05  # letters under the highlight
    light = inside[inside.min(axis=2) > 110]
    assert ((light[:, 0] > 225) & (light[:, 2] < 200) & (light[:, 1] - light[:, 2] > 40)).mean() > 0.8
    strong = _pixels(page.screenshot(clip=short.bounding_box()))
    assert ((strong[..., 0] > 200) & (strong[..., 1] < 200) & (strong[..., 2] < 140)).mean() > 0.3
    page_box = page.locator(".pdf-page").bounding_box()
    assert box["x"] > page_box["x"] + page_box["width"] * 0.5  # the right column
    shot(page, "pdf-page-laptop.png")

    page.locator("#view-text").click()
    expect(page.locator("#view-text")).to_have_attribute("aria-pressed", "true")
    expect(page.locator(".pdf-page")).to_be_hidden()
    expect(page.locator("#source-text mark.cited")).to_have_text(RIGHT[0])
    expect(page.locator("#source-text mark.cited")).to_be_in_viewport()
    page.locator("#view-page").click()
    expect(page.locator(".page-mark.short")).to_be_in_viewport()

    reply = ask(page, "When does the museum open?")  # not a PDF: text view, no toggle
    reply.locator(".answer-text button.cite", has_text="[1]").click()
    expect(page.locator("#source-title")).to_have_text("notes.txt")
    expect(page.locator("#source-view")).to_be_hidden()
    expect(page.locator("#source-text mark.cited")).to_be_visible()

    reply = ask(page, "When was the old mill rebuilt?")  # its file changed: the text view, and why
    reply.locator(".answer-text button.cite", has_text="[1]").click()
    expect(page.locator("#source-title")).to_have_text("mill.pdf")
    expect(page.locator("#source-meta")).to_contain_text("page view unavailable: mill.pdf has changed")
    expect(page.locator("#source-view")).to_be_hidden()
    expect(page.locator("#source-text mark.cited")).to_contain_text("1921")
    assert errors == []
    context.close()
