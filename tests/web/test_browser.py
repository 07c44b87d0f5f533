"""The chat page in headless Chromium against a real ``qa serve`` process.

Screenshots go to test-artifacts/ so a person can look at the page on a
laptop-sized and a phone-sized screen.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright
from web_support import ARTIFACTS, SEED_FILE, Server, make_index, start_server

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
DESKTOP = {"width": 1366, "height": 850}
PHONE = {"width": 390, "height": 844}
LAPTOP = {"width": 1280, "height": 900}
DELEGATION = "Who led the U.S. delegation?"
EVEREST = "How tall is Mount Everest?"

expect.set_options(timeout=30_000)

@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


class Watch:
    """What the page did that it should not: script errors, console errors, dialogs."""

    def __init__(self, page: Page) -> None:
        self.errors: list[str] = []
        self.dialogs: list[str] = []
        self.accept = False  # dialogs are dismissed unless a test expects to confirm one
        self.asks: list[dict] = []
        page.on("pageerror", lambda exc: self.errors.append(f"pageerror: {exc}"))
        page.on("console", lambda msg: msg.type == "error" and self.errors.append(f"console: {msg.text}"))
        page.on("dialog", self._dialog)
        page.on("request", self._request)

    def _dialog(self, dialog) -> None:
        self.dialogs.append(dialog.message)
        if self.accept:
            dialog.accept()
        else:
            dialog.dismiss()

    def _request(self, request) -> None:
        if request.url.endswith("/api/ask") and request.method == "POST":
            self.asks.append(json.loads(request.post_data or "null"))


def open_page(browser: Browser, server: Server, viewport: dict, **options) -> tuple[Page, Watch]:
    context = browser.new_context(viewport=viewport, permissions=["clipboard-read", "clipboard-write"],
                                  **options)
    page = context.new_page()
    watch = Watch(page)
    page.goto(server.url)
    expect(page.locator("#status")).to_contain_text("document")
    return page, watch


def ask(page: Page, question: str):
    """Type the question, press Enter, wait for the reply; the reply's <li>."""
    before = page.locator(".turn.assistant").count()
    page.locator("#question").fill(question)
    page.locator("#question").press("Enter")
    expect(page.locator(".turn.assistant")).to_have_count(before + 1)
    expect(page.locator(".pending")).to_have_count(0)
    expect(page.locator("#send")).to_be_enabled()
    return page.locator(".turn.assistant").nth(before)


def api_answer(server: Server, question: str, history: list | None = None) -> dict:
    status, _, body = server.post_json("/api/ask", {"question": question, "history": history or []})
    assert status == 200
    return json.loads(body)


def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name))


def expect_highlight(page: Page, text: str) -> None:
    """The source panel shows one <mark> with exactly this text, scrolled into view."""
    mark = page.locator("#source-panel mark.cited")
    expect(mark).to_have_count(1)
    assert mark.text_content() == text
    expect(mark).to_be_in_viewport()


def test_conversation_on_a_laptop(browser, server, seed_text):
    page, watch = open_page(browser, server, DESKTOP)
    expect(page.locator("#intro")).to_be_visible()

    first = api_answer(server, DELEGATION)
    reply = ask(page, DELEGATION)
    expect(reply.locator(".answer-text")).to_contain_text("Sonata Coulter, U.S. deputy assistant secretary")
    marker = reply.locator(".answer-text button.cite", has_text="[1]")
    expect(marker).to_be_visible()
    expect(reply.locator(".confidence")).to_contain_text("confidence")
    short = reply.locator(".answer-text strong.short-answer")  # the short answer, highlighted
    expect(short).to_have_count(1)
    expect(short).to_have_text(first["short_answer"]["text"])
    assert first["short_answer"]["text"] in first["answer"]

    marker.click()
    expect(page.locator("#source-panel")).to_be_visible()
    expect(page.locator("#source-title")).to_have_text(SEED_FILE.name)
    expect_highlight(page, first["citations"][0]["quote"])
    expect(page.locator("#source-text mark.cited strong.short-answer")).to_have_text(
        first["short_answer"]["text"])
    assert page.locator("#source-text").text_content() == seed_text  # the whole document
    shot(page, "desktop-source.png")

    follow = ask(page, "What is her title?")
    expect(follow.locator(".answer-text")).to_contain_text("deputy assistant secretary")
    expect(follow.locator(".follow-up")).to_have_text(  # how it was read, in plain sight
        "Read as a follow-up: refers back ('her'): the last question added; "
        f"read as \"What is {first['short_answer']['text']}'s title?\"")
    expect(reply.locator(".follow-up")).to_have_count(0)
    assert watch.asks[-1]["history"] == [{"role": "user", "content": DELEGATION},
                                         {"role": "assistant", "content": first["answer"],
                                          "short_answer": first["short_answer"]["text"],
                                          "source": first["citations"][0]["source"]}]

    off = ask(page, EVEREST)
    expect(off.locator(".abstain-text")).to_have_text("The sources don't say.")
    expect(off.locator(".follow-up")).to_have_count(0)  # a new topic is read as asked
    expect(off.locator(".answer-text")).to_have_count(0)
    passages = off.locator("button.passage")
    expected = api_answer(server, EVEREST)["passages"]
    expect(passages).to_have_count(len(expected))
    passages.first.click()
    expect_highlight(page, expected[0]["text"])
    if len(expected) > 3:  # the farther passages are folded away but open the same way
        off.locator("details.passages-more > summary").click()
        passages.last.click()
        expect_highlight(page, expected[-1]["text"])
    assert len(watch.asks[-1]["history"]) == 4

    page.locator("#close-source").click()
    expect(page.locator("#source-panel")).to_be_hidden()
    shot(page, "desktop-thread.png")

    page.get_by_role("button", name="New conversation").click()
    expect(page.locator("#thread > li")).to_have_count(0)
    expect(page.locator("#intro")).to_be_visible()
    ask(page, DELEGATION)
    assert watch.asks[-1]["history"] == []  # a fresh start sends no history
    assert watch.errors == [] and watch.dialogs == []


# The ministry statement and the wire story both report the offer (tests/test_engine.py).
CORROBORATED = "What did Russia offer to restore between the two countries?"


def test_corroborating_citations_are_marked(browser, server):
    question = CORROBORATED
    result = api_answer(server, question)
    also = [c for c in result["citations"] if "corroborates" in c]
    assert also, "the engine marks the second report of the offer as corroborating"
    page, watch = open_page(browser, server, DESKTOP)
    reply = ask(page, question)
    rows = reply.locator("button.citation")
    expect(rows).to_have_count(len(result["citations"]))
    row = rows.nth(also[0]["n"] - 1)
    expect(row.locator(".badge")).to_have_text("also says so")
    expect(row.locator(".citation-quote")).to_have_text(also[0]["quote"])
    row.click()
    expect_highlight(page, also[0]["quote"])
    expect(page.locator("#source-meta")).to_contain_text("also says so")
    assert watch.errors == []


def test_busy_state_keys_copy_and_errors(browser, server):
    page, watch = open_page(browser, server, DESKTOP)
    box = page.locator("#question")

    box.fill("first line")
    box.press("Shift+Enter")
    box.press_sequentially("second line")
    assert box.input_value() == "first line\nsecond line"
    expect(page.locator("#thread > li")).to_have_count(0)  # Shift+Enter did not send

    held = []
    # Hold the real request for a moment to see the waiting state.
    page.route("**/api/ask", lambda route: held.append(route))
    box.fill(DELEGATION)
    box.press("Enter")
    expect(page.locator(".pending")).to_be_visible()
    expect(page.locator("#send")).to_be_disabled()
    box.fill("another question")
    box.press("Enter")  # ignored while waiting
    expect(page.locator("#thread > li")).to_have_count(2)
    assert len(held) == 1
    held[0].continue_()  # on to the real server
    page.unroute("**/api/ask")
    reply = page.locator(".turn.assistant").last
    expect(reply.locator(".answer-text")).to_contain_text("Sonata Coulter")
    expect(page.locator("#send")).to_be_enabled()

    result = api_answer(server, DELEGATION)
    reply.get_by_role("button", name="Copy the answer and its sources").click()
    expect(reply.locator(".copy")).to_have_text("Copied")
    copied = page.evaluate("navigator.clipboard.readText()")
    assert copied.startswith(f"{result['short_answer']['text']}\n{result['answer']}")  # short answer first
    for c in result["citations"]:
        assert f"[{c['n']}] {c['source']}:{c['start']}-{c['end']}" in copied
        assert c["quote"] in copied

    # An error from the API is shown in the thread (maxlength stops typing more, not scripts).
    box.evaluate("(el) => { el.value = 'x'.repeat(2001); }")
    page.locator("#send").click()
    error = page.locator(".turn.assistant .bubble.error")
    expect(error).to_be_visible()
    expect(error).to_contain_text("longer than 2000 characters")
    expect(page.locator("#send")).to_be_enabled()
    assert watch.dialogs == []


def test_phone_layout(browser, server):
    page, watch = open_page(browser, server, PHONE, is_mobile=True, has_touch=True)
    first = api_answer(server, DELEGATION)
    reply = ask(page, DELEGATION)
    ask(page, EVEREST)
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], "the page scrolls sideways on a phone"
    shot(page, "phone-thread.png")

    reply.locator(".answer-text button.cite", has_text="[1]").tap()
    panel = page.locator("#source-panel")
    expect(panel).to_be_visible()
    box = panel.bounding_box()
    assert box is not None and box["x"] == 0 and box["width"] == PHONE["width"]  # a full-width overlay
    expect_highlight(page, first["citations"][0]["quote"])
    shot(page, "phone-source.png")
    page.locator("#close-source").tap()
    expect(panel).to_be_hidden()
    assert watch.errors == [] and watch.dialogs == []


# An answer below the reader's "sure" level: Russia's request, found for the U.S. side's.
UNSURE = "What did the US side want?"


def test_unsure_answers_are_muted_and_abstentions_show_no_percentage(browser, server):
    result = api_answer(server, UNSURE)
    assert result["answerable"] is True and result["sure"] is False
    page, watch = open_page(browser, server, DESKTOP)
    unsure = ask(page, UNSURE)
    expect(unsure.locator(".bubble.unsure")).to_have_count(1)
    expect(unsure.locator(".unsure-text")).to_have_text("Not sure. The closest thing the documents say:")
    # A sure answer is shown plainly: the server's own answer, marked sure on the way to the page.
    real = api_answer(server, DELEGATION)
    page.route("**/api/ask", lambda route: route.fulfill(
        status=200, content_type="application/json", body=json.dumps({**real, "sure": True})))
    sure = ask(page, DELEGATION)
    expect(sure.locator(".unsure-text")).to_have_count(0)
    expect(sure.locator(".bubble.unsure")).to_have_count(0)
    expect(sure.locator(".confidence")).to_contain_text("%")
    page.unroute("**/api/ask")
    abstained = ask(page, EVEREST)
    expect(abstained.locator(".abstain-text")).to_have_text("The sources don't say.")
    expect(abstained.locator(".confidence")).to_have_count(0)
    assert "%" not in abstained.inner_text()
    shot(page, "unsure-and-abstained.png")
    assert watch.errors == [] and watch.dialogs == []


def test_asking_about_one_document_from_the_documents_panel(browser, server):
    page, watch = open_page(browser, server, DESKTOP)
    page.locator("#toggle-documents").click()
    page.locator(".ask-document").first.click()
    chip = page.locator("#scope-chip")
    expect(chip).to_be_visible()
    expect(chip).to_contain_text(f"Asking about {SEED_FILE.name}")
    expect(page.locator("#documents")).to_be_hidden()  # out of the way once a document is chosen
    reply = ask(page, DELEGATION)
    expect(reply.locator(".answer-text")).to_contain_text("Sonata Coulter")
    assert watch.asks[-1]["sources"] == [SEED_FILE.name]
    shot(page, "asking-about-one-document.png")
    page.locator("#clear-scope").click()
    expect(page.locator("#scope-bar")).to_be_hidden()
    ask(page, DELEGATION)
    assert watch.asks[-1]["sources"] is None
    assert watch.errors == [] and watch.dialogs == []


# ---- a document that tries to run script ----

EVIL_NAME = "<img src=x onerror=alert(1)>.txt"
EVIL_TEXT = """The Zorblax lantern festival is held every spring in the mountain town of Quellmoor.
<script>window.__pwned=1</script>
<img src=x onerror="window.__pwned=1"><img src=x onerror="alert('pwned')">
The Zorblax lantern festival was founded in 1872 by the glassblower Mirna Tovesk.
Visitors to the Zorblax lantern festival eat smoked pears and float paper lanterns down the river.
<a href="javascript:window.__pwned=1">click</a> <b onmouseover="window.__pwned=1">bold</b>
"""


@pytest.fixture(scope="module")
def evil_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    docs = tmp_path_factory.mktemp("evil-docs")
    (docs / EVIL_NAME).write_text(EVIL_TEXT, encoding="utf-8")
    index = make_index([docs], tmp_path_factory.mktemp("evil-index"))
    srv = start_server(index, tmp_path_factory.mktemp("evil-server") / "server.log", threads=2)
    yield srv
    srv.stop()


def test_document_markup_is_shown_as_text(browser, evil_server):
    page, watch = open_page(browser, evil_server, DESKTOP)
    question = '<img src=x onerror="window.__pwned=1"> Who founded the Zorblax lantern festival?'
    reply = ask(page, question)
    expect(page.locator(".turn.user").last).to_have_text(question)

    opener = reply.locator(".answer-text button.cite").first
    if not opener.count():
        opener = reply.locator("button.passage").first
    opener.click()
    source = page.locator("#source-text")
    expect(source).to_contain_text("<script>window.__pwned=1</script>")
    expect(page.locator("#source-title")).to_have_text(EVIL_NAME)
    expect(page.locator("#source-text", has_text="<script>window.__pwned=1</script>")).to_be_visible()
    expect(page.locator("#source-text", has_text='<img src=x onerror="window.__pwned=1">')).to_be_visible()
    more = reply.locator("details.passages-more > summary")
    if more.count():
        more.click()  # the passages behind an answer are folded away
    expect(reply.locator(".passage-text").first).to_contain_text("Zorblax")
    for passage in reply.locator("button.passage").all():
        passage.click()
        expect(page.locator("#source-panel mark.cited")).to_have_count(1)
    source.locator("..").hover()
    page.mouse.move(300, 300)

    assert page.locator("#layout script, #layout img, #layout a[href], #layout b").count() == 0
    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert watch.dialogs == []
    assert not [e for e in watch.errors if "Content Security Policy" in e], watch.errors
    shot(page, "malicious-source.png")


# ---- a server that wants a token ----

TOKEN = "browser-token-0123456789abcdef"


@pytest.fixture(scope="module")
def token_server(seed_index, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = start_server(seed_index, tmp_path_factory.mktemp("token-server") / "server.log", threads=2,
                       token=TOKEN)
    yield srv
    srv.stop()


def test_page_asks_for_the_token_and_keeps_it_for_the_tab(browser, token_server):
    context = browser.new_context(viewport=DESKTOP)
    page = context.new_page()
    watch = Watch(page)
    page.goto(token_server.url)  # the page itself needs no token
    form = page.locator("#token-form")
    expect(form).to_be_visible()
    expect(page.locator("#token-label")).to_have_text("This server needs an access token.")
    expect(page.locator("#token")).to_be_focused()
    shot(page, "token-form.png")

    page.locator("#token").fill("not-the-token")
    page.locator("#token").press("Enter")
    expect(page.locator("#token-label")).to_contain_text("was not accepted")
    expect(form).to_be_visible()

    page.locator("#token").fill(TOKEN)
    page.locator("#token-save").click()
    expect(form).to_be_hidden()
    expect(page.locator("#status")).to_contain_text("1 document")
    reply = ask(page, DELEGATION)
    expect(reply.locator(".answer-text")).to_contain_text("Sonata Coulter")
    reply.locator(".answer-text button.cite", has_text="[1]").click()
    expect(page.locator("#source-panel mark.cited")).to_have_count(1)  # sources are fetched with it too

    page.reload()  # kept in sessionStorage for this tab
    expect(page.locator("#status")).to_contain_text("1 document")
    expect(form).to_be_hidden()
    assert page.evaluate("sessionStorage.getItem('qa-token')") == TOKEN

    fresh = browser.new_context(viewport=DESKTOP).new_page()  # another tab's session: asked again
    fresh.goto(token_server.url)
    expect(fresh.locator("#token-form")).to_be_visible()
    # The only console errors are the browser's own notes on the 401s.
    assert all("401" in e for e in watch.errors), watch.errors
    assert watch.dialogs == []
    context.close()


# ---- documents added and removed from the page ----

TREASURER = "Who did the harbour board elect as treasurer?"
OBSERVATORY = "When did the Vellmar observatory open to visitors?"


@pytest.fixture(scope="module")
def upload_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server over a copy of the seeds, so uploads land in a folder of the test's own."""
    corpus = tmp_path_factory.mktemp("upload-corpus") / "docs"
    shutil.copytree(SEED_FILE.parent, corpus)
    index = make_index([corpus], tmp_path_factory.mktemp("upload-index"))
    srv = start_server(index, tmp_path_factory.mktemp("upload-server") / "server.log", threads=4)
    srv.corpus = corpus  # type: ignore[attr-defined]
    yield srv
    srv.stop()


def word_file(path: Path) -> Path:
    import docx

    document = docx.Document()
    document.add_heading("Harbour board minutes", level=1)
    document.add_paragraph("The meeting opened at six with eleven members present.")
    document.add_paragraph("The harbour board elected Mirela Okonkwo as treasurer in March 2025.")
    document.add_paragraph("Repaint the north pier", style="List Bullet")
    table = document.add_table(rows=1, cols=2)
    table.rows[0].cells[0].text = "Quarry lease"
    table.rows[0].cells[1].text = "renewed until 2031"
    document.save(str(path))
    return path


def test_documents_are_uploaded_asked_and_deleted_from_the_page(browser, upload_server, tmp_path):
    server = upload_server
    minutes = word_file(tmp_path / "minutes.docx")
    notes = tmp_path / "notes.txt"
    notes.write_text("Town notes.\n\nThe Vellmar observatory opened to visitors in 1987.\n", encoding="utf-8")
    page, watch = open_page(browser, server, DESKTOP)
    page.locator("#toggle-documents").click()
    listing = page.locator("#document-list > li")
    expect(listing).to_have_count(1)
    expect(page.locator("#documents-empty")).to_contain_text("Nothing uploaded yet")
    expect(page.locator("#dropzone-note")).to_contain_text(".docx")
    folder = f"{server.corpus / 'uploads'}/"  # type: ignore[attr-defined]  # the real folder, in full
    expect(page.locator("#dropzone-note")).to_contain_text(f"They go into {folder} and")

    page.locator("#file-input").set_input_files([str(minutes), str(notes)])
    message = page.locator("#upload-message")
    added = re.compile(r"^Added minutes\.docx \((\d+) passages\) and notes\.txt \((\d+) passages?\)$")
    expect(message).to_have_text(added, timeout=120_000)
    count, in_notes = map(int, added.match(message.inner_text()).groups())  # type: ignore[union-attr]
    chunks = {d["source"]: d["chunks"] for d in json.loads(server.get("/api/documents")[2])["documents"]}
    assert (count, in_notes) == (chunks["uploads/minutes.docx"], chunks["uploads/notes.txt"])
    assert page.locator("#upload-progress").evaluate("p => p.value") == 100
    expect(page.locator("#documents")).to_be_hidden()  # out of the way once files are added
    expect(page.locator(".turn.notice")).to_have_text(message.inner_text())  # said in the conversation
    page.locator("#toggle-documents").click()
    expect(listing).to_have_count(3)
    uploaded = page.locator("#document-list > li", has=page.locator(".badge", has_text="uploaded"))
    expect(uploaded).to_have_count(2)
    expect(uploaded.first).to_contain_text("uploads/minutes.docx")
    expect(uploaded.first).to_contain_text(f"{count} passage")
    expect(page.locator("#documents-empty")).to_be_hidden()
    expect(page.locator("#status")).to_contain_text("3 documents")
    assert not re.search(r"chunk|segment|\b1 (documents|passages|files)\b", page.locator("body").inner_text())
    shot(page, "documents-uploaded.png")

    expected = api_answer(server, TREASURER)
    assert expected["short_answer"]["text"] == "Mirela Okonkwo"
    citation = expected["citations"][0]
    assert citation["source"] == "uploads/minutes.docx"
    stored = json.loads(server.get("/api/sources/uploads/minutes.docx")[2])["text"]
    assert stored[citation["start"]:citation["end"]] == citation["quote"]
    assert stored.index("Harbour board minutes") < stored.index("Mirela") < stored.index("north pier") \
        < stored.index("Quarry lease")
    reply = ask(page, TREASURER)
    expect(reply.locator(".answer-text strong.short-answer")).to_have_text("Mirela Okonkwo")
    reply.locator(".answer-text button.cite", has_text="[1]").click()
    expect(page.locator("#source-title")).to_have_text("uploads/minutes.docx")
    expect_highlight(page, citation["quote"])
    page.locator("#close-source").click()
    assert "1987" in api_answer(server, OBSERVATORY)["short_answer"]["text"]

    watch.accept = True  # "notes.txt is already in uploads/. Replace it?", then "Delete …?"
    notes.write_text("Town notes.\n\nThe Vellmar observatory opened to visitors in 1989.\n", encoding="utf-8")
    page.locator("#toggle-documents").click()
    page.locator("#file-input").set_input_files([str(notes)])
    expect(message).to_have_text(f"Replaced notes.txt: {in_notes} passage{'' if in_notes == 1 else 's'}",
                                 timeout=120_000)
    assert "1989" in api_answer(server, OBSERVATORY)["short_answer"]["text"]
    page.locator("#toggle-documents").click()
    page.locator("#document-list > li", has_text="uploads/minutes.docx").locator(".delete-document").click()
    expect(message).to_have_text("Removed minutes.docx", timeout=120_000)
    expect(page.locator("#documents")).to_be_visible()  # a delete leaves the list open
    expect(listing).to_have_count(2)
    expect(page.locator("#document-list > li", has_text="minutes.docx")).to_have_count(0)
    assert not (server.corpus / "uploads" / "minutes.docx").exists()  # type: ignore[attr-defined]
    after = api_answer(server, TREASURER)
    assert all(c["source"] != "uploads/minutes.docx" for c in after["citations"] + after["passages"])
    assert [e for e in watch.errors if "409 (CONFLICT)" not in e] == []  # the browser notes the 409
    assert watch.dialogs == [f"notes.txt is already in {folder}. Replace it with the new file?",
                             f"Delete uploads/minutes.docx? The file is removed from {folder} "
                             "and from the answers."]


# ---- the page fits the screen: a phone and a laptop ----

ZEPHYR = "When does the Zephyr ferry leave Port Alder?"

# What sticks out of the window or is cut: every part of the header, of the documents panel
# and of the conversation lies inside the viewport, and no box holds more than it shows.
FIT_PROBLEMS = """(selectors) => {
  const problems = [];
  const width = document.documentElement.clientWidth;
  for (const selector of selectors) {
    for (const e of document.querySelectorAll(selector)) {
      if (!e.getClientRects().length) continue;  // not shown
      const r = e.getBoundingClientRect();
      const what = `${selector} "${e.textContent.trim().slice(0, 40)}"`;
      if (r.left < -0.5 || r.right > width + 0.5) {
        problems.push(`${what} sticks out: ${r.left}..${r.right} of ${width}`);
      }
      if (getComputedStyle(e).display !== "inline" && e.scrollWidth > e.clientWidth + 1) {
        problems.push(`${what} is cut: ${e.scrollWidth} wide in ${e.clientWidth}`);
      }
    }
  }
  return problems;
}"""
FITTED = [".topbar", ".topbar h1", "#status", "#toggle-documents", "#new-conversation", "#documents",
          ".documents-head", "#dropzone", "#dropzone-note", "#upload-message", "#document-list > li",
          ".document-name", ".document-meta", ".document-actions button", ".badge", "#thread > li",
          ".notice-text", ".answer-text", "#scope-bar", "#composer", "#question", "#send"]

# How many lines an element's text takes.
LINES = """(e) => {
  const text = document.createRange();
  text.selectNodeContents(e);
  return Math.round(text.getBoundingClientRect().height / parseFloat(getComputedStyle(e).lineHeight));
}"""

# The header's parts: where each is and how many lines it takes.
HEADER = f"""() => {{
  const lines = {LINES};
  return [".topbar h1", "#status", "#toggle-documents", "#new-conversation"].map((s) => {{
    const e = document.querySelector(s);
    const r = e.getBoundingClientRect();
    return {{selector: s, left: r.left, right: r.right, top: r.top, bottom: r.bottom, lines: lines(e)}};
  }});
}}"""

# A document row and its parts: height, and lines per part.
ROWS = """() => [...document.querySelectorAll("#document-list > li")].map((li) => {
  const lines = (s) => (""" + LINES + """)(li.querySelector(s));
  return {text: li.textContent, height: li.getBoundingClientRect().height, name: lines(".document-name"),
          meta: lines(".document-meta"), actions: new Set([...li.querySelectorAll(".document-actions button")]
            .map((b) => Math.round(b.getBoundingClientRect().top))).size};
})"""


def expect_fits(page: Page, viewport: dict) -> None:
    assert page.evaluate(FIT_PROBLEMS, FITTED) == []
    assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]  # no sideways scroll
    parts = page.evaluate(HEADER)
    for part in parts:  # each on one line: the title does not wrap, the buttons neither
        assert part["lines"] == 1 or (part["selector"] == "#status" and part["lines"] <= 2), part
    for i, a in enumerate(parts):  # and none covers another
        for b in parts[i + 1:]:
            assert (a["right"] <= b["left"] or b["right"] <= a["left"] or a["bottom"] <= b["top"]
                    or b["bottom"] <= a["top"]), (a, b)
    assert page.locator(".topbar").bounding_box()["height"] <= 80  # type: ignore[index]


def timetable(path: Path) -> Path:
    import docx

    document = docx.Document()
    document.add_heading("Port Alder timetable", level=1)
    document.add_paragraph("The Zephyr ferry leaves Port Alder at 7:15 every morning except Sunday.")
    document.save(str(path))
    return path


def test_the_page_fits_a_phone_and_a_laptop(browser, upload_server, tmp_path):
    """The header, the documents list and an upload's message, at 390x844 and 1280x900."""
    server = upload_server
    for name, viewport, options in (("phone", PHONE, {"is_mobile": True, "has_touch": True}),
                                    ("laptop", LAPTOP, {})):
        zephyr = timetable(tmp_path / "zephyr.docx")
        page, watch = open_page(browser, server, viewport, **options)
        health = json.loads(server.get("/api/health")[2])
        status = page.locator("#status")
        docs = health["documents"]  # the seed, and what the upload test left
        said = f"{docs} document{'' if docs == 1 else 's'} · {health['chunks']} passages · {health['model']}"
        expect(status).to_have_text(said)
        expect_fits(page, viewport)  # the status is whole, not "1 documen…"

        page.locator("#toggle-documents").click()
        page.locator("#file-input").set_input_files(str(zephyr))
        message = page.locator("#upload-message")
        expect(message).to_have_text(re.compile(r"^Added zephyr\.docx: \d+ passages?$"), timeout=120_000)
        expect(page.locator("#documents")).to_be_hidden()
        notice = page.locator(".turn.notice")
        expect(notice).to_have_text(message.inner_text())
        expect(notice).to_be_in_viewport()
        expect(status).to_contain_text(f"{docs + 1} documents")
        reply = ask(page, ZEPHYR)
        expect(reply.locator(".answer-text strong.short-answer")).to_contain_text("7:15")
        expect(reply.locator(".answer-text")).to_be_in_viewport()  # not pushed below the fold
        expect_fits(page, viewport)
        shot(page, f"{name}-after-upload.png")

        page.locator("#toggle-documents").click()
        rows = page.locator("#document-list > li")
        expect(rows).to_have_count(docs + 1)
        expect(rows.filter(has_text="zephyr.docx").locator(".delete-document")).to_have_count(1)
        expect_fits(page, viewport)
        for row in page.evaluate(ROWS):  # a list: a line for the name, one for its size, one for buttons
            assert row["name"] == 1 and row["meta"] == 1 and row["actions"] == 1, row
            assert row["height"] <= 100, row
        shot(page, f"{name}-documents.png")

        watch.accept = True
        rows.filter(has_text="zephyr.docx").locator(".delete-document").click()
        expect(message).to_have_text("Removed zephyr.docx", timeout=120_000)
        expect(rows).to_have_count(docs)
        folder = server.corpus / "uploads"  # type: ignore[attr-defined]
        assert watch.errors == [] and watch.dialogs == [
            f"Delete uploads/zephyr.docx? The file is removed from {folder}/ and from the answers."]
        page.context.close()
