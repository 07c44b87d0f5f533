"""``qa mcp``: the engine as a Model Context Protocol server over stdio, for AI agents.

This module only translates tool calls into ``Engine`` calls and back: the engine checks
every argument (its ``QAError`` becomes a tool error with the engine's message) and makes
every answer, exactly as the CLI and the web API get them. Built on the official ``mcp``
SDK's low-level ``Server``, so the tools' JSON Schemas are the ones written here and the
arguments reach the engine as the agent sent them.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial

import anyio
import mcp.types as types
from mcp.server import Server
from mcp.server.stdio import stdio_server

from . import __version__
from .conversation import MAX_CHARS, MAX_TURNS
from .engine import DEFAULT_TOP_K, MAX_TOP_K, Engine, InvalidRequest
from .errors import QAError

log = logging.getLogger("qa.mcp")

INSTRUCTIONS = (
    "Answers questions from the user's own documents, offline. Every quote it returns is "
    "verbatim text from a document: `source` names the file and `start`/`end` are the exact "
    "character offsets of the quote in it. Cite by quoting the text exactly and naming the "
    "source. `answerable: false` means the documents don't say: tell the user so and do not "
    "invent an answer."
)

CITING = (
    "Every quote is verbatim text from the user's documents: `source` is the file (relative to "
    "the indexed folder; `page` too for PDFs) and `start`/`end` are character offsets into its "
    "text, so text[start:end] is exactly the quote. Cite by giving the quote word for word in "
    "quotation marks and naming its source (and page), e.g. \u201c...\u201d (report.txt); never "
    "present your own paraphrase as a quote."
)

ASK = (
    "Answer a question from the user's documents. Extractive: nothing is generated. "
    "`short_answer.text` is the exact phrase that answers, `answer` the sentence that holds it, "
    "and `citations` where they come from (citation 1 is `answer`; others marked `corroborates` "
    "say the same elsewhere). " + CITING + " `answerable: false` means the documents don't say: "
    "tell the user that and do not invent an answer or fill it in from your own knowledge "
    "(`passages` still lists the closest text found). `confidence` (0-1) is the calibrated chance "
    "that the short answer is right. For a follow-up (\"And when?\", \"What about her?\") pass the "
    "earlier turns as `history`; `query` shows what was actually searched."
)

SEARCH = (
    "Find the passages of the user's documents that best match a query, best first, without "
    "answering: to read around an answer, check a claim, or gather several places. " + CITING
    + " `score` only orders the passages. If no passage says it, the documents don't say: do not "
    "fill the gap from your own knowledge."
)

_TOP_K = {"type": "integer", "minimum": 1, "maximum": MAX_TOP_K, "default": DEFAULT_TOP_K,
          "description": f"how many passages to return, 1-{MAX_TOP_K} (default {DEFAULT_TOP_K})"}
_SPAN = {  # where a quote or passage is: the same fields in citations, passages and short_answer
    "source": {"type": "string", "description": "the document, relative to the indexed folder"},
    "start": {"type": "integer", "description": "character offset where the text starts"},
    "end": {"type": "integer", "description": "character offset where the text ends"},
    "page": {"type": "integer", "description": "PDF page number (PDFs only)"},
}
_PASSAGE = {
    "type": "object",
    "properties": {**_SPAN, "text": {"type": "string", "description": "verbatim document text"},
                   "score": {"type": "number", "description": "retrieval score, higher is better"}},
    "required": ["source", "start", "end", "text", "score"],
}
_CITATION = {
    "type": "object",
    "properties": {**_SPAN, "n": {"type": "integer", "description": "citation number"},
                   "quote": {"type": "string", "description": "verbatim document text"},
                   "corroborates": {"type": "integer",
                                    "description": "present when it says the same as citation 1"}},
    "required": ["n", "source", "start", "end", "quote"],
}

TOOLS = [
    types.Tool(
        name="ask",
        title="Ask the documents",
        description=ASK,
        input_schema={
            "type": "object",
            "properties": {
                "question": {"type": "string", "minLength": 1, "maxLength": MAX_CHARS,
                             "description": "the question, in plain language"},
                "history": {
                    "type": "array", "maxItems": MAX_TURNS,
                    "description": f"earlier turns of this conversation, oldest first (at most {MAX_TURNS})",
                    "items": {"type": "object",
                              "properties": {"role": {"type": "string", "enum": ["user", "assistant"]},
                                             "content": {"type": "string"},
                                             "short_answer": {
                                                 "type": ["string", "null"],
                                                 "description": "assistant turns: the short answer "
                                                                "given (what 'he' or 'there' may "
                                                                "point at)"}},
                              "required": ["role", "content"], "additionalProperties": False},
                },
                "top_k": _TOP_K,
            },
            "required": ["question"],
            "additionalProperties": False,
        },
        output_schema={
            "type": "object",
            "properties": {
                "question": {"type": "string"},
                "query": {"type": "string", "description": "what was searched and read"},
                "follow_up": {"type": ["string", "null"],
                              "description": "the rule that read the question as a follow-up, or null"},
                "answer": {"type": "string", "description": "the verbatim answer sentence ('' if none)"},
                "answerable": {"type": "boolean",
                               "description": "false: the documents don't say; do not invent an answer"},
                "confidence": {"type": "number"},
                "short_answer": {"type": ["object", "null"],
                                 "properties": {**_SPAN, "text": {"type": "string"}},
                                 "required": ["text", "source", "start", "end"]},
                "citations": {"type": "array", "items": _CITATION},
                "passages": {"type": "array", "items": _PASSAGE},
                "took_ms": {"type": "number"},
            },
            "required": ["question", "query", "answer", "answerable", "confidence", "short_answer",
                         "citations", "passages"],
        },
        annotations=types.ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=False),
    ),
    types.Tool(
        name="search",
        title="Search the documents",
        description=SEARCH,
        input_schema={
            "type": "object",
            "properties": {
                "query": {"type": "string", "minLength": 1, "maxLength": MAX_CHARS,
                          "description": "what to look for, in plain language or key words"},
                "top_k": _TOP_K,
            },
            "required": ["query"],
            "additionalProperties": False,
        },
        output_schema={
            "type": "object",
            "properties": {"passages": {"type": "array", "items": _PASSAGE}},
            "required": ["passages"],
        },
        annotations=types.ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=False),
    ),
]
_ARGUMENTS = {tool.name: (set(tool.input_schema["properties"]), tool.input_schema["required"])
              for tool in TOOLS}


def _call(engine: Engine, name: str, arguments: dict) -> dict:
    """One tool call as an engine call; a bad argument raises InvalidRequest with the reason."""
    known, required = _ARGUMENTS[name]
    unknown = sorted(set(arguments) - known)
    if unknown:
        raise InvalidRequest(f"unknown argument {', '.join(map(repr, unknown))}; {name} takes "
                      + ", ".join(sorted(known)))
    missing = [arg for arg in required if arg not in arguments]
    if missing:
        raise InvalidRequest(f"missing argument {missing[0]!r}")
    if name == "ask":
        return engine.ask(arguments["question"], arguments.get("history"), arguments.get("top_k"))
    return {"passages": engine.search(arguments["query"], arguments.get("top_k"))}


def _error(message: str) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(type="text", text=message)], is_error=True)


def build_server(engine: Engine) -> Server:
    """The MCP server for a loaded engine: tools ``ask`` and ``search``."""

    async def list_tools(ctx, params) -> types.ListToolsResult:
        return types.ListToolsResult(tools=TOOLS)

    async def call_tool(ctx, params: types.CallToolRequestParams) -> types.CallToolResult:
        if params.name not in _ARGUMENTS:
            return _error(f"unknown tool {params.name!r}; the tools are {', '.join(_ARGUMENTS)}")
        try:  # the engine is thread-safe; a worker thread keeps the protocol answering meanwhile
            call = partial(_call, engine, params.name, params.arguments or {})
            result = await anyio.to_thread.run_sync(call)
        except QAError as exc:
            return _error(str(exc))
        except Exception:  # a bug must not take the agent's server down
            log.exception("tool %s failed", params.name)
            return _error(f"internal error in {params.name}; the server log (stderr) has the details")
        text = json.dumps(result, ensure_ascii=False)
        return types.CallToolResult(content=[types.TextContent(type="text", text=text)],
                                    structured_content=result)

    return Server("qa", version=__version__, title="qa: cited answers from your documents",
                  instructions=INSTRUCTIONS, on_list_tools=list_tools, on_call_tool=call_tool)


@contextmanager
def _stdout_to_stderr() -> Iterator[None]:
    """Send anything written to stdout (by Python or a library) to stderr: stdout is the protocol's."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


async def _run(server: Server) -> None:
    async with stdio_server() as (read_stream, write_stream):  # diverts stray stdout while serving
        await server.run(read_stream, write_stream, server.create_initialization_options())


def serve(load: Callable[[], Engine]) -> int:
    """Load the engine once (its QAError propagates to the CLI), then serve stdio until the client
    closes it; exit code 0."""
    with _stdout_to_stderr():
        engine = load()
    print(f"qa mcp: serving {engine.index_dir} over stdio", file=sys.stderr, flush=True)
    anyio.run(_run, build_server(engine))
    return 0
