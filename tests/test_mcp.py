"""`qa mcp` as an agent sees it: the SDK's own stdio client against one real server process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from anyio.from_thread import start_blocking_portal
from mcp import ClientSession, StdioServerParameters, stdio_client

from qa.errors import InvalidRequest

ROOT = Path(__file__).resolve().parent.parent
QUESTION = "When did Russia send troops into Ukraine?"


@asynccontextmanager
async def _connect(index: Path, errlog):
    params = StdioServerParameters(command=sys.executable,
                                   args=["-m", "qa.cli", "mcp", "--index", str(index)],
                                   env=dict(os.environ, HF_HUB_OFFLINE="1"), cwd=str(ROOT))
    async with stdio_client(params, errlog=errlog) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        yield session


class Agent:
    """Blocking calls into one client session that lives on a portal's event loop."""

    def __init__(self, portal, session: ClientSession, stderr: Path) -> None:
        self.portal, self.session, self.stderr = portal, session, stderr

    def tools(self) -> dict:
        return {tool.name: tool for tool in self.portal.call(self.session.list_tools).tools}

    def call(self, name: str, arguments: dict):
        return self.portal.call(self.session.call_tool, name, arguments)

    def ok(self, name: str, arguments: dict) -> dict:
        result = self.call(name, arguments)
        assert not result.is_error, result.content
        assert json.loads(result.content[0].text) == result.structured_content  # the text form is the same
        return result.structured_content


@pytest.fixture(scope="module")
def agent(seed_index, tmp_path_factory):
    stderr = tmp_path_factory.mktemp("mcp") / "stderr.txt"
    with open(stderr, "w") as errlog, start_blocking_portal() as portal, \
            portal.wrap_async_context_manager(_connect(seed_index, errlog)) as session:
        yield Agent(portal, session, stderr)


def test_tools_are_listed_with_descriptions_and_schemas(agent):
    tools = agent.tools()
    assert set(tools) == {"ask", "search"}
    for tool in tools.values():
        assert "verbatim" in tool.description and "source" in tool.description
        assert "start" in tool.description and "end" in tool.description
        assert tool.input_schema["type"] == "object" and tool.output_schema["type"] == "object"
        assert tool.annotations.read_only_hint is True
    ask = tools["ask"]
    assert "answerable: false" in ask.description and "do not invent" in ask.description
    assert set(ask.input_schema["properties"]) == {"question", "history", "top_k", "sources"}
    assert "sure: false" in ask.description and "sure" in ask.output_schema["properties"]
    assert ask.input_schema["required"] == ["question"]
    assert ask.input_schema["properties"]["top_k"]["maximum"] == 20
    assert set(tools["search"].input_schema["properties"]) == {"query", "top_k", "sources"}
    assert "passages" in tools["search"].output_schema["properties"]


def test_ask_returns_the_answer_json_with_verbatim_citations(agent, seed_text):
    result = agent.ok("ask", {"question": QUESTION})
    assert result["answerable"] is True
    short = result["short_answer"]
    assert short["text"] == "Feb. 24, 2022" == seed_text[short["start"] : short["end"]]
    cite = result["citations"][0]
    assert cite["source"] == "000_fdd6fe5acc3e6b5b.txt"
    assert cite["quote"] == seed_text[cite["start"] : cite["end"]] == result["answer"]
    assert cite["start"] <= short["start"] < short["end"] <= cite["end"]
    for p in result["passages"]:
        assert p["text"] == seed_text[p["start"] : p["end"]]


def test_ask_takes_history_and_top_k(agent):
    history = [{"role": "user", "content": QUESTION}, {"role": "assistant", "content": "Feb. 24, 2022"}]
    result = agent.ok("ask", {"question": "And who led the U.S. delegation?", "history": history, "top_k": 2})
    assert result["question"] == "And who led the U.S. delegation?"
    assert len(result["passages"]) <= 2


def test_search_returns_exact_spans(agent, seed_text):
    result = agent.ok("search", {"query": "Russia troops Ukraine", "top_k": 3})
    passages = result["passages"]
    assert 1 <= len(passages) <= 3
    for p in passages:
        assert p["source"] == "000_fdd6fe5acc3e6b5b.txt"
        assert p["text"] == seed_text[p["start"] : p["end"]]
    assert [p["score"] for p in passages] == sorted((p["score"] for p in passages), reverse=True)


def test_search_gives_the_passages_ask_lists(agent):
    assert agent.ok("search", {"query": QUESTION, "top_k": 4})["passages"] == \
        agent.ok("ask", {"question": QUESTION, "top_k": 4})["passages"]


@pytest.mark.parametrize(("tool", "arguments", "message"), [
    ("ask", {"question": ""}, "question is empty"),
    ("ask", {"question": "   "}, "question is empty"),
    ("ask", {"question": QUESTION, "top_k": 0}, "top_k must be a whole number from 1 to 20"),
    ("ask", {"question": QUESTION, "top_k": "x"}, "top_k must be a whole number from 1 to 20"),
    ("ask", {"question": QUESTION, "top_k": 21}, "top_k must be a whole number from 1 to 20"),
    ("ask", {"question": QUESTION, "history": "not a list"}, "history must be a list of turns"),
    ("ask", {"question": QUESTION, "history": [{"role": "bot", "content": "hi"}]},
     "history[0].role must be 'user' or 'assistant'"),
    ("ask", {"question": 42}, "question must be a string"),
    ("ask", {}, "missing argument 'question'"),
    ("ask", {"question": QUESTION, "k": 3}, "unknown argument 'k'"),
    ("search", {"query": ""}, "query is empty"),
    ("search", {"query": "troops", "top_k": 0}, "top_k must be a whole number from 1 to 20"),
    ("search", {"query": ["troops"]}, "query must be a string"),
    ("ask", {"question": QUESTION, "sources": ["../../etc/passwd"]}, "unknown source '../../etc/passwd'"),
    ("search", {"query": "troops", "sources": "000_fdd6fe5acc3e6b5b.txt"}, "sources must be a list"),
    ("nope", {}, "unknown tool 'nope'"),
])
def test_bad_arguments_are_tool_errors_and_the_server_carries_on(agent, tool, arguments, message):
    result = agent.call(tool, arguments)
    assert result.is_error is True
    assert message in result.content[0].text
    assert agent.ok("ask", {"question": QUESTION})["short_answer"]["text"] == "Feb. 24, 2022"


def test_ask_and_search_within_a_document(agent):
    result = agent.ok("ask", {"question": QUESTION, "sources": ["000_fdd6fe5acc3e6b5b.txt"]})
    assert result["scope"] == ["000_fdd6fe5acc3e6b5b.txt"] and result["answerable"] is True
    found = agent.ok("search", {"query": "troops", "sources": ["000_fdd6fe5acc3e6b5b.txt"]})["passages"]
    assert found and {p["source"] for p in found} == {"000_fdd6fe5acc3e6b5b.txt"}


def test_off_topic_question_is_not_answerable(agent):
    result = agent.ok("ask", {"question": "How tall is Mount Everest?"})
    assert result["answerable"] is False
    assert result["answer"] == "" and result["citations"] == [] and result["short_answer"] is None


def test_notes_go_to_stderr(agent):
    agent.tools()  # the server is up and stdout has carried only the protocol so far
    assert "qa mcp: serving" in agent.stderr.read_text()


def test_missing_index_is_one_line_and_exit_1(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "qa.cli", "mcp", "--index", str(tmp_path / "none")],
                          cwd=ROOT, env=dict(os.environ, HF_HUB_OFFLINE="1"), stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("qa: error:"), proc.stderr


def test_engine_search_validates_like_ask(engine, seed_text):
    passages = engine.search(QUESTION, 2)
    assert len(passages) == 2 and passages == engine.ask(QUESTION, top_k=2)["passages"]
    assert all(p["text"] == seed_text[p["start"] : p["end"]] for p in passages)
    assert engine.search("the of and") == []  # stop words only: nothing to search for
    for query, top_k in [("", 5), (None, 5), ("troops", 0), ("troops", True)]:
        with pytest.raises(InvalidRequest):
            engine.search(query, top_k)
