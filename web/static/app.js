// The chat page: asks /api/ask, shows cited answers, opens sources at the cited span.
// All text from the server or the user goes into the page as text nodes (textContent,
// createTextNode, replaceChildren with strings) — never as HTML.
"use strict";

(() => {
  const MAX_HISTORY = 20; // the API accepts at most 20 earlier turns
  const SNIPPET_CHARS = 240;
  const SHOWN_PASSAGES = 3; // an abstention shows this many closest passages, the rest folded

  const $ = (id) => document.getElementById(id);
  const layout = $("layout");
  const intro = $("intro");
  const thread = $("thread");
  const threadWrap = $("thread-wrap");
  const form = $("composer");
  const input = $("question");
  const sendButton = $("send");
  const status = $("status");
  const panel = $("source-panel");
  const sourceTitle = $("source-title");
  const sourceMeta = $("source-meta");
  const sourceBody = $("source-body");
  const sourceText = $("source-text");
  const tokenForm = $("token-form");
  const tokenInput = $("token");
  const tokenLabel = $("token-label");
  const TOKEN_KEY = "qa-token"; // sessionStorage: kept for this tab only, gone when it closes

  let history = []; // [{role, content}] sent with follow-ups
  let conversation = 0; // bumped by "New conversation" so late answers are dropped
  let controller = null; // aborts the request in flight on "New conversation"
  let busy = false;
  let sourceRequest = 0; // only the latest source click may fill the panel
  let opener = null; // element to refocus when the source panel closes
  const sources = new Map(); // source name -> Promise of its text
  let token = readToken(); // sent as "Authorization: Bearer" when the server wants one
  let scope = null; // the document questions are asked within ("Ask about this document"), or null

  // ---- small DOM helpers (text only) ----

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function button(className, text, onClick, label) {
    const node = el("button", className, text);
    node.type = "button";
    if (label) node.setAttribute("aria-label", label);
    node.addEventListener("click", onClick);
    return node;
  }

  function where(item) {
    const span = "page" in item ? `page ${item.page}` : `characters ${item.start}–${item.end}`;
    return `${item.source} · ${span}`;
  }

  function snippet(text) {
    const flat = text.replace(/\s+/g, " ").trim();
    return flat.length > SNIPPET_CHARS ? `${flat.slice(0, SNIPPET_CHARS).trimEnd()}…` : flat;
  }

  // ---- the access token (asked for only when the API answers 401) ----

  function readToken() {
    try {
      return sessionStorage.getItem(TOKEN_KEY) || "";
    } catch (err) {
      return ""; // storage refused (privacy settings): the token lives in memory only
    }
  }

  function saveToken(value) {
    token = value;
    try {
      sessionStorage.setItem(TOKEN_KEY, value);
    } catch (err) {
      // keep it in memory
    }
  }

  function askForToken() {
    tokenLabel.textContent = token
      ? "That access token was not accepted. Enter the server's access token."
      : "This server needs an access token.";
    if (tokenForm.hidden) {
      tokenForm.hidden = false;
      tokenInput.value = "";
      tokenInput.focus();
    }
  }

  // ---- talking to the API ----

  class ApiError extends Error {}

  async function api(path, options = {}) {
    const headers = Object.assign({}, options.headers);
    if (token) headers.Authorization = `Bearer ${token}`;
    let response;
    try {
      response = await fetch(path, Object.assign({}, options, { headers }));
    } catch (err) {
      if (err.name === "AbortError") throw err;
      throw new ApiError("Could not reach the server. Is it still running?");
    }
    let body = null;
    try {
      body = await response.json();
    } catch (err) {
      body = null;
    }
    if (response.status === 401) {
      askForToken();
      throw new ApiError("This server needs an access token: enter it in the token field, then ask again.");
    }
    if (!response.ok) {
      const message = body && body.error && body.error.message;
      throw new ApiError(message || `The server answered ${response.status} ${response.statusText}.`);
    }
    if (body === null) throw new ApiError("The server sent a response that is not JSON.");
    return body;
  }

  function sourcePath(source) {
    return "/api/sources/" + source.split("/").map(encodeURIComponent).join("/");
  }

  function fetchSource(source) {
    if (!sources.has(source)) {
      const pending = api(sourcePath(source));
      pending.catch(() => sources.delete(source)); // let a later click try again
      sources.set(source, pending);
    }
    return sources.get(source);
  }

  async function showHealth() {
    try {
      const h = await api("/api/health");
      status.textContent = `${plural(h.documents, "document")} · ${plural(h.chunks, "passage")} · ${h.model}`;
      status.classList.remove("bad");
    } catch (err) {
      status.textContent = err.message;
      status.classList.add("bad");
    }
  }

  // ---- the conversation thread ----

  function addTurn(role) {
    intro.hidden = true;
    const li = el("li", `turn ${role}`);
    thread.append(li);
    return li;
  }

  function scrollToTurn(userTurn) {
    // Long answers: keep the question at the top; short ones: show the end of the thread.
    const top = userTurn.offsetTop - 12;
    const bottom = threadWrap.scrollHeight - threadWrap.clientHeight;
    threadWrap.scrollTop = Math.min(top, bottom);
  }

  function setBusy(on) {
    busy = on;
    sendButton.disabled = on;
    sendButton.classList.toggle("busy", on);
    sendButton.textContent = on ? "Waiting…" : "Send";
    thread.setAttribute("aria-busy", on ? "true" : "false");
  }

  async function ask(question) {
    const mine = conversation;
    const userTurn = addTurn("user");
    userTurn.append(el("div", "bubble", question));
    const reply = addTurn("assistant");
    const pending = el("div", "bubble pending");
    pending.append(el("span", "dots"), el("span", "pending-text", "Searching the documents…"));
    reply.append(pending);
    scrollToTurn(userTurn);
    setBusy(true);
    controller = new AbortController();
    try {
      const result = await api("/api/ask", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ question, history: history.slice(-MAX_HISTORY),
          sources: scope ? [scope] : null }),
        signal: controller.signal,
      });
      if (mine !== conversation) return;
      reply.replaceChildren(renderAnswer(result));
      history = history
        .concat([
          { role: "user", content: question },
          // The short answer shown is what a follow-up's "he" or "there" points at,
          // and the document it quoted, whose subject the conversation keeps.
          { role: "assistant", content: result.answer,
            short_answer: result.short_answer ? result.short_answer.text : null,
            source: result.citations.length ? result.citations[0].source : null },
        ])
        .slice(-MAX_HISTORY);
    } catch (err) {
      if (mine !== conversation || err.name === "AbortError") return;
      reply.replaceChildren(renderError(err));
      if (!input.value) input.value = question; // easy to retry
    } finally {
      if (mine === conversation) {
        setBusy(false);
        scrollToTurn(userTurn);
      }
    }
  }

  function renderError(err) {
    const bubble = el("div", "bubble error");
    bubble.setAttribute("role", "alert");
    bubble.append(el("p", "error-title", "Couldn't answer that."));
    bubble.append(el("p", "error-message", err.message || String(err)));
    return bubble;
  }

  function renderAnswer(result) {
    const bubble = el("div", "bubble answer");
    if (result.follow_up) {  // how the question was read, as the CLI says it
      bubble.append(el("p", "follow-up", `Read as a follow-up: ${result.follow_up}`));
    }
    if (result.answerable && !result.sure) {  // below the calibrated "sure" level: said so
      bubble.classList.add("unsure");
      bubble.append(el("p", "unsure-text", "Not sure. The closest thing the documents say:"));
    }
    if (result.answerable) {
      const text = el("p", "answer-text");
      text.append(...withShortAnswer(result.answer, result.citations[0].start, result.short_answer));
      for (const c of result.citations) {
        text.append(document.createTextNode(" "));
        text.append(button("cite", `[${c.n}]`,
          (e) => openSource(c, citationLabel(c), e.currentTarget, shortIn(result, c)),
          `Show source ${c.n}: ${c.source}`));
      }
      bubble.append(text);
      bubble.append(renderCitations(result));
      if (result.passages.length) {
        const more = el("details", "passages-more");
        more.append(el("summary", null, `Passages searched (${result.passages.length})`));
        more.append(renderPassages(result.passages));
        bubble.append(more);
      }
    } else {
      bubble.classList.add("abstain");
      bubble.append(el("p", "abstain-text", "The sources don't say."));
      if (result.passages.length) {
        bubble.append(el("p", "label", "Closest passages"));
        bubble.append(renderPassages(result.passages.slice(0, SHOWN_PASSAGES)));
        const rest = result.passages.slice(SHOWN_PASSAGES);
        if (rest.length) {
          const more = el("details", "passages-more");
          more.append(el("summary", null, `${rest.length} more`));
          more.append(renderPassages(rest, SHOWN_PASSAGES));
          bubble.append(more);
        }
      }
    }
    bubble.append(renderFooter(result));
    return bubble;
  }

  // The quote as text nodes, with the short answer (characters of the same document) in <strong>.
  function withShortAnswer(quote, quoteStart, short) {
    if (!short) return [document.createTextNode(quote)];
    const a = short.start - quoteStart;
    const b = short.end - quoteStart;
    if (a < 0 || b > quote.length || a >= b) return [document.createTextNode(quote)];
    const strong = el("strong", "short-answer", quote.slice(a, b));
    strong.title = "The short answer";
    return [document.createTextNode(quote.slice(0, a)), strong, document.createTextNode(quote.slice(b))];
  }

  // The short answer when it lies in this citation (it always lies in citation 1).
  function shortIn(result, c) {
    const s = result.short_answer;
    return s && s.source === c.source && c.start <= s.start && s.end <= c.end ? s : null;
  }

  function citationLabel(c) {
    return c.corroborates ? `Citation [${c.n}] · also says so (supports [${c.corroborates}])`
      : `Citation [${c.n}]`;
  }

  function renderCitations(result) {
    const list = el("ol", "citations");
    list.setAttribute("aria-label", "Sources");
    for (const c of result.citations) {
      const item = el("li");
      const row = button("citation", null,
        (e) => openSource(c, citationLabel(c), e.currentTarget, shortIn(result, c)));
      row.append(el("span", "citation-n", `[${c.n}]`));
      const body = el("span", "citation-body");
      const head = el("span", "citation-where", where(c));
      body.append(head);
      if (c.corroborates) {
        body.append(el("span", "badge", "also says so"));
        body.append(el("span", "citation-quote", c.quote));
      }
      row.append(body);
      item.append(row);
      list.append(item);
    }
    return list;
  }

  function renderPassages(passages, first = 0) {
    const list = el("ol", "passages");
    passages.forEach((p, i) => {
      const item = el("li");
      const label = `Passage ${first + i + 1}`;
      const row = button("passage", null, (e) => openSource(p, label, e.currentTarget));
      row.append(el("span", "passage-where", where(p)));
      row.append(el("span", "passage-text", snippet(p.text)));
      item.append(row);
      list.append(item);
    });
    return list;
  }

  function renderFooter(result) {
    const footer = el("div", "answer-footer");
    if (result.answerable) footer.append(renderConfidence(result)); // an abstention has no percentage
    const copy = button("ghost small copy", "Copy", async () => {
      const ok = await copyText(answerAsText(result));
      copy.textContent = ok ? "Copied" : "Copy failed";
      setTimeout(() => { copy.textContent = "Copy"; }, 1600);
    }, "Copy the answer and its sources");
    footer.append(copy);
    return footer;
  }

  function renderConfidence(result) {
    const conf = el("span", "confidence");
    conf.title = result.short_answer ? "The chance that the short answer is right"
      : "How sure the reader is that this quote answers the question";
    const meter = el("meter");
    meter.min = 0;
    meter.max = 1;
    meter.value = result.confidence;
    meter.setAttribute("aria-hidden", "true");
    conf.append(meter, document.createTextNode(` confidence ${Math.round(result.confidence * 100)}%`));
    return conf;
  }

  function answerAsText(result) {
    if (!result.answerable) {
      const lines = ["The sources don't say."];
      if (result.passages.length) lines.push("", "Closest passages:");
      for (const p of result.passages) {
        lines.push(`- ${p.source}:${p.start}-${p.end} “${snippet(p.text)}”`);
      }
      return lines.join("\n");
    }
    const markers = result.citations.map((c) => `[${c.n}]`).join("");
    const lines = [`${result.answer} ${markers}`, ""];
    if (result.short_answer) lines.unshift(result.short_answer.text);
    for (const c of result.citations) {
      const page = "page" in c ? ` (page ${c.page})` : "";
      const also = c.corroborates ? ` (also says so, supports [${c.corroborates}])` : "";
      lines.push(`[${c.n}] ${c.source}:${c.start}-${c.end}${page}${also}`, `    “${c.quote}”`);
    }
    return lines.join("\n");
  }

  async function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) {
      try {
        await navigator.clipboard.writeText(text);
        return true;
      } catch (err) {
        // fall through to the old way (e.g. clipboard permission refused)
      }
    }
    const area = el("textarea", "offscreen");
    area.value = text;
    area.setAttribute("readonly", "");
    document.body.append(area);
    area.select();
    let ok = false;
    try {
      ok = document.execCommand("copy");
    } catch (err) {
      ok = false;
    }
    area.remove();
    return ok;
  }

  // ---- the source panel ----

  async function openSource(item, label, from, short) {
    const mine = ++sourceRequest;
    opener = from || null;
    sourceTitle.textContent = item.source;
    sourceMeta.textContent = `${label} · ${"page" in item ? `page ${item.page} · ` : ""}characters ${item.start}–${item.end}`;
    sourceText.replaceChildren(el("span", "loading", "Loading the document…"));
    resetPageView();
    panel.hidden = false;
    layout.classList.add("with-source");
    try {
      const doc = await fetchSource(item.source);
      if (mine !== sourceRequest) return;
      const mark = el("mark", "cited");
      mark.append(...withShortAnswer(doc.text.slice(item.start, item.end), item.start, short || null));
      sourceText.replaceChildren(doc.text.slice(0, item.start), mark, doc.text.slice(item.end));
      if (!showPageFor(item, short || null)) mark.scrollIntoView({ block: "center", inline: "nearest" });
      sourceBody.focus({ preventScroll: true });
    } catch (err) {
      if (mine !== sourceRequest) return;
      const box = el("div", "bubble error");
      box.setAttribute("role", "alert");
      box.append(el("p", "error-title", "Couldn't open this document."), el("p", "error-message", err.message));
      sourceText.replaceChildren(box);
    }
  }

  // ---- the PDF page view: the cited page as printed, the quote highlighted on it ----
  // The page image comes from GET /api/sources/<source>/pages/<n>.png (fetched with the token,
  // shown as a blob URL); the highlight is drawn here from the citation's boxes (points from the
  // page's top-left corner), as percentages of the page, so it sits on the image at any size.

  const viewToggle = $("source-view");
  const viewPage = $("view-page");
  const viewText = $("view-text");
  const sourcePages = $("source-pages");
  const pageImages = new Map(); // image URL -> Promise of a blob URL
  let pageItem = null; // {item, short} of the PDF citation in the panel, or null

  function resetPageView() {
    pageItem = null;
    viewToggle.hidden = true;
    sourcePages.hidden = true;
    sourcePages.replaceChildren();
    sourceText.hidden = false;
  }

  // A PDF citation opens on its page; everything else stays in the text view. True: page view.
  function showPageFor(item, short) {
    if (!item.boxes || !item.boxes.length) return false;
    pageItem = { item, short };
    viewToggle.hidden = false;
    showView("page");
    return true;
  }

  function showView(view) {
    const page = view === "page" && pageItem !== null;
    viewPage.setAttribute("aria-pressed", String(page));
    viewText.setAttribute("aria-pressed", String(!page));
    sourcePages.hidden = !page;
    sourceText.hidden = page;
    if (page) {
      renderPages(pageItem.item, pageItem.short);
    } else {
      const mark = sourceText.querySelector("mark.cited");
      if (mark) mark.scrollIntoView({ block: "center", inline: "nearest" });
    }
  }

  function pageImage(url) {
    if (!pageImages.has(url)) {
      const pending = (async () => {
        const headers = token ? { Authorization: `Bearer ${token}` } : {};
        let response;
        try {
          response = await fetch(url, { headers });
        } catch (err) {
          throw new ApiError("Could not reach the server. Is it still running?");
        }
        if (response.status === 401) askForToken();
        if (!response.ok) {
          let body = null;
          try {
            body = await response.json();
          } catch (err) {
            body = null;
          }
          const message = body && body.error && body.error.message;
          throw new ApiError(message || `The server answered ${response.status}.`);
        }
        return URL.createObjectURL(await response.blob());
      })();
      pending.catch(() => pageImages.delete(url)); // let a later click try again
      pageImages.set(url, pending);
    }
    return pageImages.get(url);
  }

  function pageMark(rect, group, className) {
    const box = el("span", className);
    const [left, top, right, bottom] = rect;
    box.style.left = `${(left / group.width) * 100}%`;
    box.style.top = `${(top / group.height) * 100}%`;
    box.style.width = `${((right - left) / group.width) * 100}%`;
    box.style.height = `${((bottom - top) / group.height) * 100}%`;
    return box;
  }

  async function renderPages(item, short) {
    const mine = sourceRequest;
    sourcePages.replaceChildren(el("span", "loading", "Loading the page…"));
    try {
      const figures = [];
      for (const group of item.boxes) {
        const url = await pageImage(`${sourcePath(item.source)}/pages/${group.page}.png`);
        if (mine !== sourceRequest) return;
        const figure = el("div", "pdf-page");
        figure.style.aspectRatio = `${group.width} / ${group.height}`;
        const img = el("img");
        img.src = url;
        img.alt = `Page ${group.page} of ${item.source}`;
        figure.append(img, ...group.rects.map((r) => pageMark(r, group, "page-mark")));
        for (const g of (short && short.boxes) || []) {
          if (g.page === group.page) figure.append(...g.rects.map((r) => pageMark(r, g, "page-mark short")));
        }
        figures.push(figure);
      }
      sourcePages.replaceChildren(...figures);
      const first = sourcePages.querySelector(".page-mark");
      if (first) first.scrollIntoView({ block: "center", inline: "nearest" });
    } catch (err) {
      if (mine !== sourceRequest) return;
      // The page cannot be shown (the file changed, or cannot be drawn): the text view instead.
      pageItem = null;
      viewToggle.hidden = true;
      showView("text");
      sourceMeta.textContent += ` · page view unavailable: ${err.message}`;
    }
  }

  viewPage.addEventListener("click", () => showView("page"));
  viewText.addEventListener("click", () => showView("text"));

  function closeSource() {
    sourceRequest++;
    panel.hidden = true;
    layout.classList.remove("with-source");
    if (opener && opener.isConnected) opener.focus({ preventScroll: true });
    opener = null;
  }

  // ---- wiring ----

  function submit() {
    const question = input.value.trim();
    if (busy || !question) return;
    input.value = "";
    grow();
    ask(question);
  }

  function newConversation() {
    conversation++;
    if (controller) controller.abort();
    controller = null;
    history = [];
    thread.replaceChildren();
    intro.hidden = false;
    closeSource();
    setBusy(false);
    input.value = "";
    grow();
    input.focus();
  }

  // ---- documents: the list, uploads with progress, deletes ----

  const docsPanel = $("documents");
  const docsToggle = $("toggle-documents");
  const docsSummary = $("documents-summary");
  const docsEmpty = $("documents-empty");
  const docList = $("document-list");
  const dropzone = $("dropzone");
  const dropText = $("dropzone-text");
  const dropNote = $("dropzone-note");
  const fileInput = $("file-input");
  const uploadStatus = $("upload-status");
  const uploadProgress = $("upload-progress");
  const uploadMessage = $("upload-message");
  const uploadNotes = $("upload-notes");
  const scopeBar = $("scope-bar");
  const JOB_POLL_MS = 400;
  let library = { uploads: false }; // the last GET /api/documents
  let changing = false; // one upload or delete at a time from this page

  function size(bytes) {
    if (typeof bytes !== "number") return "size unknown";
    if (bytes < 1024) return `${bytes} B`;
    if (bytes < 1 << 20) return `${(bytes / 1024).toFixed(1)} KiB`;
    return `${(bytes / (1 << 20)).toFixed(1)} MiB`;
  }

  function plural(n, word) {
    return `${n} ${word}${n === 1 ? "" : "s"}`;
  }

  function showChange(percent, message, failed, notes = []) {
    uploadStatus.hidden = false;
    uploadStatus.classList.toggle("failed", failed);
    uploadProgress.value = percent;
    uploadMessage.textContent = message;
    uploadNotes.replaceChildren(...notes.map((note) => el("li", "", note)));
  }

  async function showDocuments() {
    try {
      library = await api("/api/documents");
    } catch (err) {
      docsSummary.textContent = err.message;
      return;
    }
    const docs = library.documents;
    const uploaded = docs.filter((d) => d.uploaded).length;
    docsSummary.textContent = `${plural(docs.length, "document")} indexed` +
      (uploaded ? ` · ${uploaded} uploaded here` : "");
    dropzone.classList.toggle("off", !library.uploads);
    fileInput.disabled = !library.uploads || changing;
    if (library.uploads) {
      dropText.textContent = "Drop files here to add them, or";
      dropNote.textContent = `Accepted: ${library.formats.join(" ")}, up to ${size(library.max_bytes)} ` +
        `each. They go into ${library.folder} and are indexed in the background; ` +
        "questions are answered meanwhile.";
    } else {
      dropText.textContent = "Documents can't be added on this server.";
      dropNote.textContent = library.reason || "";
    }
    docsEmpty.hidden = uploaded > 0;
    docsEmpty.textContent = `Nothing uploaded yet: the answers come from the ${plural(docs.length, "document")} ` +
      "below, indexed from the server's folder (qa index). " +
      (library.uploads ? "Add your own with the box above." : "");
    docList.replaceChildren(...docs.map(documentItem));
  }

  function indexedAt(iso) {
    const when = new Date(iso);
    if (Number.isNaN(when.getTime())) return "";
    return ` · indexed ${when.toLocaleString([], { dateStyle: "medium", timeStyle: "short" })}`;
  }

  // One row: the name (and "uploaded"), what it holds, and what can be done with it.
  function documentItem(doc) {
    const li = el("li");
    const title = el("span", "document-title");
    title.append(el("span", "document-name", doc.source));
    if (doc.uploaded) title.append(el("span", "badge", "uploaded"));
    const main = el("div", "document-main");
    main.append(title, el("span", "document-meta",
      `${size(doc.bytes)} · ${plural(doc.chunks, "passage")}${doc.indexed_at ? indexedAt(doc.indexed_at) : ""}`));
    const actions = el("div", "document-actions");
    actions.append(button("ghost small ask-document", "Ask about this document", () => setScope(doc.source),
      `Ask about ${doc.source} only`));
    if (doc.uploaded && library.uploads) {
      actions.append(button("ghost small delete-document", "Delete", () => removeDocument(doc.source),
        `Delete ${doc.source}`));
    }
    li.append(main, actions);
    return li;
  }

  // A line in the conversation that says what changed ("Added notes.txt: 2 passages").
  function addNotice(text) {
    const li = el("li", "turn notice");
    li.append(el("p", "notice-text", text));
    thread.append(li);
    li.scrollIntoView({ block: "nearest" });
  }

  // "Ask about this document": later questions are asked within it until the chip is removed.
  function setScope(source) {
    scope = source;
    scopeBar.hidden = !source;
    $("scope-label").textContent = source ? `Asking about ${source}` : "";
    if (source) toggleDocuments(false);
    input.focus();
  }

  function toggleDocuments(open = docsPanel.hidden) {
    docsPanel.hidden = !open;
    docsToggle.setAttribute("aria-expanded", String(open));
    if (open) showDocuments();
  }

  // XMLHttpRequest, not fetch: only it reports how much of the body has been sent.
  function sendFiles(files, replace) {
    return new Promise((resolve, reject) => {
      const data = new FormData();
      for (const file of files) data.append("file", file, file.name);
      if (replace) data.append("replace", "true");
      const xhr = new XMLHttpRequest();
      xhr.open("POST", "/api/documents");
      if (token) xhr.setRequestHeader("Authorization", `Bearer ${token}`);
      xhr.upload.onprogress = (e) => {
        if (e.lengthComputable) {
          const percent = Math.round((e.loaded / e.total) * 100);
          showChange(percent * 0.3, `Uploading… ${percent}%`, false);
        }
      };
      xhr.onload = () => {
        let body = null;
        try {
          body = JSON.parse(xhr.responseText);
        } catch (err) {
          body = null;
        }
        resolve({ status: xhr.status, body });
      };
      xhr.onerror = () => reject(new ApiError("Could not reach the server. Is it still running?"));
      xhr.send(data);
    });
  }

  function refusal(status, body) {
    if (status === 401) {
      askForToken();
      return new ApiError("This server needs an access token: enter it in the token field, then try again.");
    }
    const message = body && body.error && body.error.message;
    return new ApiError(message || `The server answered ${status}.`);
  }

  async function uploadFiles(files) {
    if (changing || !files.length) return;
    changing = true;
    fileInput.disabled = true;
    const names = files.map((f) => f.name).join(", ");
    try {
      showChange(0, `Uploading ${names}…`, false);
      let { status, body } = await sendFiles(files, false);
      if (status === 409 && body && body.error && body.error.code === "exists") {
        if (!window.confirm(`${body.error.message.split(";")[0]}. Replace it with the new file?`)) {
          showChange(0, "Nothing was uploaded: the existing file stays.", false);
          return;
        }
        ({ status, body } = await sendFiles(files, true));
      }
      if (status !== 202 || !body) throw refusal(status, body);
      const done = await follow(body.job);
      if (done.state === "done") {  // out of the way: the answers are what the person came for
        toggleDocuments(false);
        addNotice(done.message);
      }
    } catch (err) {
      showChange(0, err.message, true);
    } finally {
      changing = false;
      fileInput.value = "";
      fileInput.disabled = !library.uploads;
    }
  }

  async function removeDocument(source) {
    if (changing || !window.confirm(`Delete ${source}? The file is removed from ${library.folder} ` +
      "and from the answers.")) return;
    changing = true;
    try {
      showChange(0, `Deleting ${source}…`, false);
      const path = "/api/documents/" + source.split("/").map(encodeURIComponent).join("/");
      const body = await api(path, { method: "DELETE" });
      await follow(body.job);
    } catch (err) {
      showChange(0, err.message, true);
    } finally {
      changing = false;
    }
  }

  // Poll the job until it is done; meanwhile show how far it got. Its last state.
  async function follow(job) {
    let state;
    for (;;) {
      state = await api(`/api/jobs/${encodeURIComponent(job)}`);
      const p = state.progress;
      const read = p.documents_total ? p.documents_done / p.documents_total : 0;
      const embedded = p.chunks_total ? p.chunks_done / p.chunks_total : 0;
      const percent = 30 + 20 * read + 50 * embedded;
      if (state.state === "done") {
        showChange(100, state.message, false, state.messages);
        break;
      }
      if (state.state === "failed") {
        showChange(percent, state.message || `Indexing failed: ${state.error}`, true, state.messages);
        break;
      }
      showChange(percent, state.state === "queued" ? "Waiting for an earlier change to be indexed…"
        : `Indexing: ${p.documents_done} of ${plural(p.documents_total, "document")} read` +
          (p.chunks_total ? `, ${p.chunks_done} of ${plural(p.chunks_total, "new passage")} embedded…` : "…"),
        false, state.messages);
      await new Promise((resolve) => setTimeout(resolve, JOB_POLL_MS));
    }
    sources.clear(); // a replaced or deleted document's text changed
    await Promise.all([showDocuments(), showHealth()]);
    return state;
  }

  function grow() {
    input.style.height = "auto";
    input.style.height = `${Math.min(input.scrollHeight, 180)}px`;
  }

  form.addEventListener("submit", (e) => {
    e.preventDefault();
    submit();
  });
  input.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      submit();
    }
  });
  input.addEventListener("input", grow);
  $("new-conversation").addEventListener("click", newConversation);
  $("close-source").addEventListener("click", closeSource);
  tokenForm.addEventListener("submit", (e) => {
    e.preventDefault();
    const value = tokenInput.value.trim();
    if (!value) return;
    saveToken(value);
    tokenInput.value = "";
    tokenForm.hidden = true;
    sources.clear();
    showHealth();
    input.focus();
  });
  document.addEventListener("keydown", (e) => {
    if (e.key === "Escape" && !panel.hidden) closeSource();
  });
  docsToggle.addEventListener("click", () => toggleDocuments());
  $("clear-scope").addEventListener("click", () => setScope(null));
  fileInput.addEventListener("change", () => uploadFiles([...fileInput.files]));
  dropzone.addEventListener("dragover", (e) => {
    e.preventDefault();
    if (library.uploads) dropzone.classList.add("over");
  });
  dropzone.addEventListener("dragleave", () => dropzone.classList.remove("over"));
  dropzone.addEventListener("drop", (e) => {
    e.preventDefault();
    dropzone.classList.remove("over");
    if (library.uploads) uploadFiles([...e.dataTransfer.files]);
  });

  showHealth();
  input.focus();
})();
