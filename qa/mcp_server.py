"""``qa mcp``: the engine as a Model Context Protocol server over stdio, for AI agents.

This module only translates tool calls into ``Engine`` calls and back: the answer contract
(``qa.contract``) checks every argument as it checks the web API's (its ``QAError`` becomes a
tool error with the same message), and the engine makes every answer, exactly as the CLI and
the web API get them. Built on the official ``mcp`` SDK's low-level ``Server``, so the tools'
JSON Schemas are the contract's and the arguments reach the contract as the agent sent them.
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
from .contract import AskRequest, SearchRequest, schema
from .engine import Engine
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
    "that the short answer is right; `sure: false` on an answer means it is only the closest thing "
    "found: say so, do not present it as a fact. `sources` (document names as citations give them, "
    "or folder prefixes) asks within those documents only. For a follow-up (\"And when?\", "
    "\"What about her?\") pass the earlier turns as `history` (each answer with its citation 1 "
    "`source`); `query` shows what was searched, and `subject` what the conversation is about "
    "(the names asked about and the documents that answered), which follow-ups keep."
)

SEARCH = (
    "Find the passages of the user's documents that best match a query, best first, without "
    "answering: to read around an answer, check a claim, or gather several places. " + CITING
    + " `score` only orders the passages; `sources` searches within those documents only. If no "
    "passage says it, the documents don't say: do not fill the gap from your own knowledge."
)

TOOLS = [
    types.Tool(
        name="ask",
        title="Ask the documents",
        description=ASK,
        input_schema=schema("AskRequest"),
        output_schema=schema("Answer"),
        annotations=types.ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=False),
    ),
    types.Tool(
        name="search",
        title="Search the documents",
        description=SEARCH,
        input_schema=schema("SearchRequest"),
        output_schema=schema("SearchResult"),
        annotations=types.ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=False),
    ),
]
_REQUESTS = {"ask": AskRequest, "search": SearchRequest}


def _call(engine: Engine, name: str, arguments: dict) -> dict:
    """One tool call as an engine call; a bad argument raises InvalidRequest with the reason."""
    request = _REQUESTS[name].from_json(arguments, word="argument")
    if isinstance(request, AskRequest):
        return dict(engine.answer(request)[0])
    return {"passages": engine.find(request)}


def _error(message: str) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(type="text", text=message)], is_error=True)


def build_server(engine: Engine) -> Server:
    """The MCP server for a loaded engine: tools ``ask`` and ``search``."""

    async def list_tools(ctx, params) -> types.ListToolsResult:
        return types.ListToolsResult(tools=TOOLS)

    async def call_tool(ctx, params: types.CallToolRequestParams) -> types.CallToolResult:
        if params.name not in _REQUESTS:
            return _error(f"unknown tool {params.name!r}; the tools are {', '.join(_REQUESTS)}")
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
