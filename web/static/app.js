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
      const docs = `${h.documents} document${h.documents === 1 ? "" : "s"}`;
      status.textContent = `${docs} · ${h.chunks} passages · ${h.model}`;
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
        body: JSON.stringify({ question, history: history.slice(-MAX_HISTORY) }),
        signal: controller.signal,
      });
      if (mine !== conversation) return;
      reply.replaceChildren(renderAnswer(result));
      history = history
        .concat([{ role: "user", content: question }, { role: "assistant", content: result.answer }])
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
    const conf = el("span", "confidence");
    conf.title = result.short_answer ? "The chance that the short answer is right"
      : "How sure the reader is that this quote answers the question";
    const meter = el("meter");
    meter.min = 0;
    meter.max = 1;
    meter.value = result.confidence;
    meter.setAttribute("aria-hidden", "true");
    conf.append(meter, document.createTextNode(` confidence ${Math.round(result.confidence * 100)}%`));
    footer.append(conf);
    const copy = button("ghost small copy", "Copy", async () => {
      const ok = await copyText(answerAsText(result));
      copy.textContent = ok ? "Copied" : "Copy failed";
      setTimeout(() => { copy.textContent = "Copy"; }, 1600);
    }, "Copy the answer and its sources");
    footer.append(copy);
    return footer;
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
    panel.hidden = false;
    layout.classList.add("with-source");
    try {
      const doc = await fetchSource(item.source);
      if (mine !== sourceRequest) return;
      const mark = el("mark", "cited");
      mark.append(...withShortAnswer(doc.text.slice(item.start, item.end), item.start, short || null));
      sourceText.replaceChildren(doc.text.slice(0, item.start), mark, doc.text.slice(item.end));
      mark.scrollIntoView({ block: "center", inline: "nearest" });
      sourceBody.focus({ preventScroll: true });
    } catch (err) {
      if (mine !== sourceRequest) return;
      const box = el("div", "bubble error");
      box.setAttribute("role", "alert");
      box.append(el("p", "error-title", "Couldn't open this document."), el("p", "error-message", err.message));
      sourceText.replaceChildren(box);
    }
  }

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

  showHealth();
  input.focus();
})();
