"""Asking within documents (``sources``) and what may corroborate an answer, over a real
index of two folders whose documents share words, through the engine and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qa.cli import main
from qa.engine import Engine
from qa.errors import InvalidRequest
from qa.index.build import build_index

ORCHARD = ("The Linden orchard was planted by Ada Varga in 1962. The orchard grows pears and "
           "plums on the south slope.\n")
VINEYARD = ("The Linden vineyard was planted by Karl Osten in 1978. The vineyard grows riesling "
            "on terraces above the river.\n")
MILL = "The old mill on the Linden road was built in 1851 and ground rye until 1950.\n"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("scope")
    (root / "farms").mkdir()
    (root / "farms" / "orchard.txt").write_text(ORCHARD, encoding="utf-8")
    (root / "farms" / "vineyard.txt").write_text(VINEYARD, encoding="utf-8")
    (root / "mill.txt").write_text(MILL, encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def scoped(corpus, embedder, tmp_path_factory) -> Engine:
    index = tmp_path_factory.mktemp("scope-index")
    build_index([corpus], index, embedder, report=lambda _: None)
    return Engine(index)


def sources_of(result: dict) -> set[str]:
    return {c["source"] for c in result["citations"]} | {p["source"] for p in result["passages"]}


def test_a_question_within_one_document_is_answered_from_it_alone(scoped):
    anywhere = scoped.ask("Who planted the Linden vineyard?")
    assert anywhere["short_answer"]["text"] == "Karl Osten"
    within = scoped.ask("Who planted it?", sources=["farms/orchard.txt"])
    assert within["short_answer"]["text"] == "Ada Varga"
    assert sources_of(within) == {"farms/orchard.txt"}
    assert within["scope"] == ["farms/orchard.txt"]


def test_a_folder_scopes_to_every_document_in_it(scoped):
    result = scoped.ask("When was it planted?", sources=["farms"], top_k=10)
    assert sources_of(result) == {"farms/orchard.txt", "farms/vineyard.txt"}
    assert scoped.search("built in 1851", sources=["farms/"]) != []
    assert {p["source"] for p in scoped.search("built in 1851", sources=["farms/"])} <= {
        "farms/orchard.txt", "farms/vineyard.txt"}


@pytest.mark.parametrize(("sources", "message"), [
    (["nope.txt"], "unknown source 'nope.txt'"),
    (["../farms/orchard.txt"], "unknown source '../farms/orchard.txt'"),
    (["farm"], "unknown source 'farm'"),  # a folder prefix is a whole folder name
    (["/etc/passwd"], "unknown source '/etc/passwd'"),
    ("farms", "sources must be a list"),
    ([""], "sources[0] must be a document name or folder"),
    ([3], "sources[0] must be a document name or folder"),
    (["x"] * 101, "at most 100"),
])
def test_unknown_or_malformed_sources_are_refused_with_the_reason(scoped, sources, message):
    with pytest.raises(InvalidRequest, match=message.replace("[", r"\[").replace("]", r"\]")):
        scoped.ask("Who planted the orchard?", sources=sources)
    with pytest.raises(InvalidRequest):
        scoped.search("orchard", sources=sources)


def test_the_cli_scopes_by_name_or_path_on_disk(scoped, corpus, capsys):
    index = str(scoped.index_dir)
    assert main(["ask", "Who planted it?", "--index", index, "--json",
                 "--source", str(corpus / "farms" / "vineyard.txt")]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["short_answer"]["text"] == "Karl Osten" and sources_of(result) == {"farms/vineyard.txt"}
    assert main(["ask", "When was it built?", "--index", index, "--json",
                 "--source", "mill.txt", "--source", "farms/orchard.txt"]) == 0
    assert sources_of(json.loads(capsys.readouterr().out)) <= {"mill.txt", "farms/orchard.txt"}
    assert main(["ask", "Who planted it?", "--index", index, "--source", "barn.txt"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["qa: error: unknown source 'barn.txt': no indexed document is called that or lies "
                   "in that folder"]


def test_a_heading_never_corroborates(tmp_path, embedder):
    import docx

    doc = docx.Document()
    doc.add_heading("Zephyr", level=1)
    doc.add_paragraph("The Zephyr project was launched by Mara Quint in 2019 to map the coast.")
    doc.add_heading("Zephyr project", level=2)
    doc.add_paragraph("Mara Quint launched the Zephyr project in 2019, with two boats and a drone.")
    doc.add_paragraph("Funding for the survey came from the harbour board.")
    (tmp_path / "docs").mkdir()
    doc.save(tmp_path / "docs" / "zephyr.docx")
    build_index([tmp_path / "docs"], tmp_path / "index", embedder, report=lambda _: None)
    result = Engine(tmp_path / "index").ask("Who launched the Zephyr project?")
    assert result["short_answer"]["text"] == "Mara Quint"
    also = [c["quote"] for c in result["citations"] if "corroborates" in c]
    assert also == [q for q in also if "Mara Quint launched" in q or "launched by Mara Quint" in q]
    assert "Zephyr" not in also and "Zephyr project" not in also
    assert len(also) == 1  # the other paragraph says it too, in its own words
