"""The qa command as a user runs it: exit codes, messages, JSON and human output."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from qa.cli import main
from qa.contract import Answer

ROOT = Path(__file__).resolve().parent.parent


def run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    return subprocess.run([sys.executable, "-m", "qa.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def test_ask_builds_default_index_then_answers_json(tmp_path):
    shutil.copytree(ROOT / "seeds", tmp_path / "seeds")
    proc = run(["ask", "Who led the U.S. delegation?", "--json"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "building index" in proc.stderr
    result = json.loads(proc.stdout)
    assert set(result) == set(Answer.__required_keys__)
    cite = result["citations"][0]
    with open(tmp_path / "seeds" / cite["source"], encoding="utf-8") as fh:
        assert fh.read()[cite["start"] : cite["end"]] == cite["quote"]
    assert (tmp_path / "index" / "current" / "manifest.json").is_file()

    human = run(["ask", "How tall is Mount Everest?"], tmp_path)
    assert human.returncode == 0 and "The sources don't say." in human.stdout
    assert "building" not in human.stderr  # the index is reused


def test_human_output_has_markers_and_path_line(seed_index, capsys):
    assert main(["ask", "Who led the U.S. delegation?", "--index", str(seed_index)]) == 0
    out = capsys.readouterr().out
    assert "Sonata Coulter" in out and "[1]" in out
    assert "000_fdd6fe5acc3e6b5b.txt:18" in out  # path:line of the quote in the seed file


def test_usage_errors_exit_2(tmp_path):
    proc = run(["ask"], tmp_path)
    assert proc.returncode == 2 and "usage" in proc.stderr
    proc = run(["ask", "hi", "--top-k", "99"], tmp_path)
    assert proc.returncode == 2 and "top-k" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize(("argv", "message"), [
    (["ask", "Anything?", "--index", "{tmp}/missing"], "no index at"),
    (["index", "{tmp}/empty", "--index", "{tmp}/idx"], "no readable documents"),
    (["eval", "{tmp}/not-squad.json"], "not a readable SQuAD"),
])
def test_other_errors_exit_1_with_one_line(argv, message, tmp_path, seed_index, capsys):
    (tmp_path / "empty").mkdir()
    (tmp_path / "not-squad.json").write_text("{\"data\": 3}")
    (tmp_path / "squad.json").write_text('{"data": []}', encoding="utf-8")
    argv = [a.format(tmp=tmp_path, seed=seed_index, squad=tmp_path / "squad.json") for a in argv]
    assert main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("qa: error:") and message in err[0]


@pytest.mark.parametrize(("argv", "message"), [
    (["ask", "   ", "--index", "{seed}"], "question is empty"),
    (["ask", "x" * 2001, "--index", "{seed}"], "longer than 2000"),
    (["ask", "Who?", "--index", "{seed}", "--source", "nope.txt"], "unknown source 'nope.txt'"),
    (["index", "{tmp}/nowhere", "--index", "{tmp}/idx"], "no such file or folder"),
    (["train-reader", "{tmp}/nope.json", "--out", "{tmp}/out"], "no such file"),
    (["train-reader", "{squad}", "--out", "{tmp}/out", "--init", "{tmp}"], "no trained reader"),
])
def test_usage_errors_exit_2_with_one_line_before_any_model_loads(argv, message, tmp_path, seed_index,
                                                                 capsys):
    (tmp_path / "squad.json").write_text('{"data": []}', encoding="utf-8")
    argv = [a.format(tmp=tmp_path, seed=seed_index, squad=tmp_path / "squad.json") for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("qa: error:") and message in err[0]


def test_a_missing_source_is_refused_before_the_model_loads(tmp_path):
    code = ("import sys\nfrom qa.cli import main\n"
            "code = main(['index', sys.argv[1], '--index', sys.argv[2]])\n"
            "print(code, 'torch' in sys.modules, 'sentence_transformers' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path / "nowhere"), str(tmp_path / "index")],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.stdout.split() == ["2", "False", "False"], proc.stderr
    assert proc.stderr.strip().splitlines() == [f"qa: error: no such file or folder: {tmp_path / 'nowhere'}"]


def test_index_reports_changes_and_summary(tmp_path, capsys):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text("The harbour master is called Petra Lind.\n", encoding="utf-8")
    (docs / "b.csv").write_text("x,y\n", encoding="utf-8")
    assert main(["index", str(docs), "--index", str(tmp_path / "idx")]) == 0
    err = capsys.readouterr().err
    assert "b.csv: unsupported file type" in err
    assert "indexed 1 document," in err and "1 new" in err
    (docs / "a.txt").write_text("The harbour master is called Jon Berg.\n", encoding="utf-8")
    assert main(["index", str(docs), "--index", str(tmp_path / "idx")]) == 0
    assert "1 changed" in capsys.readouterr().err


def test_eval_json_reports_every_figure(tmp_path, capsys):
    context = "The Varnholm lighthouse was built in 1871. It is 42 metres tall."
    data = {"version": "v2.0", "data": [{"title": "Varnholm", "paragraphs": [{
        "context": context,
        "qas": [
            {"id": "1", "question": "When was the Varnholm lighthouse built?", "is_impossible": False,
             "answers": [{"text": "1871", "answer_start": context.index("1871")}]},
            {"id": "2", "question": "Who wrote Pride and Prejudice?", "is_impossible": True, "answers": []},
        ]}]}]}
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps(data))
    assert main(["eval", str(path), "--json"]) == 0
    results = json.loads(capsys.readouterr().out)
    assert set(results) == {"span", "sentence"}  # both readers, side by side
    for figures in results.values():
        assert set(figures) == {"recall@1", "recall@5", "answer_contains_gold", "mean_answer_chars",
                                "short_answer_em", "short_answer_f1",
                                "abstained_when_unanswerable", "answered_when_answerable",
                                "citation_valid", "latency_p50_ms", "latency_p95_ms", "gold_found_in"}
        assert figures["recall@1"] == 1.0 and figures["answer_contains_gold"] == 1.0
        assert figures["abstained_when_unanswerable"] == 1.0 and figures["citation_valid"] == 1.0
    assert results["span"]["short_answer_em"] == 1.0  # "1871", not the sentence around it
    assert results["sentence"]["short_answer_em"] == 0.0
    # Where the gold answer was still in hand, stage by stage; the sentence reader reads no windows.
    assert results["span"]["gold_found_in"] == {
        "the top 5 passages": 1.0, "a window the reader read": 1.0, "the window it chose": 1.0,
        "its best sentence": 1.0, "the answer given": 1.0}
    assert list(results["sentence"]["gold_found_in"]) == [
        "the top 5 passages", "its best sentence", "the answer given"]


def test_eval_runs_a_conversation_set(tmp_path, capsys):
    """`qa eval` on a set of chains: the share of chains right, and of later turns whose short
    answer is the expected one (a follow-up's short answer is not what it refers to)."""
    text = (ROOT / "seeds" / "000_fdd6fe5acc3e6b5b.txt").read_text(encoding="utf-8")
    data = {"description": "two chains over the seed", "documents": [{"name": "seed.txt", "text": text}],
            "chains": [
                {"id": "a", "turns": [
                    {"question": "Who headed the Russian side?", "expected": ["Darchiyev", "Darchiev"]},
                    {"question": "And the American side?", "expected": ["Sonata Coulter"]}]},
                {"id": "b", "turns": [
                    {"question": "Who did Donald Trump have a call with?", "expected": ["Vladimir Putin"]},
                    {"question": "Who wrote Pride and Prejudice?", "expected": []}]}]}
    path = tmp_path / "chains.json"
    path.write_text(json.dumps(data))
    assert main(["eval", str(path), "--reader", "span", "--json"]) == 0
    figures = json.loads(capsys.readouterr().out)["span"]
    assert figures["chains"] == 2 and figures["chains_right"] == 1.0
    assert figures["later_short_answers_right"] == [1, 1]  # "Sonata Coulter", not Darchiyev again
    assert figures["standalone_made_worse"] == 0 and figures["failures"] == []
    assert main(["eval", str(path), "--reader", "span"]) == 0
    out = capsys.readouterr().out
    assert "span reader: 1.000 of 2 chains right" in out
    assert "short answer right, turns after the first: 1 of 1" in out


def test_eval_plays_information_seeking_dialogs_and_tells_turns_apart_by_rule(tmp_path, capsys):
    """`qa eval` on dialogs in QuAC's form: with history, scoped to the dialog's document, and
    each later turn alone, also by the rule that read it, so history is seen to help or not."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "seed.txt").write_text((ROOT / "seeds" / "000_fdd6fe5acc3e6b5b.txt").read_text(encoding="utf-8"))
    (docs / "lighthouse.txt").write_text("The Varnholm lighthouse was built in 1871 on a granite skerry. "
                                         "It is 42 metres tall and its light reaches 20 nautical miles.")
    title = "the head of the North America department of the Russian Foreign Ministry"
    dialogs = [{"doc": "seed.txt", "turns": [
                   {"question": "Who led the Russian delegation?", "answers": ["Alexander Darchiyev"]},
                   {"question": "What is his title?", "answers": [title]},
                   {"question": "Who wrote Pride and Prejudice?", "answers": [], "unanswerable": True}]},
               {"doc": "lighthouse.txt", "turns": [
                   {"question": "When was the Varnholm lighthouse built?", "answers": ["1871"]},
                   {"question": "How tall is it?", "answers": ["42 metres"]}]}]
    path = tmp_path / "chains.json"
    path.write_text(json.dumps({"dialogs": dialogs}))
    assert main(["eval", str(path), "--reader", "span", "--json"]) == 0
    ways = json.loads(capsys.readouterr().out)["span"]
    assert list(ways) == ["history, first turns", "history, later turns", "alone, later turns",
                          "scoped, first turns", "scoped, later turns", "refers back: alone",
                          "refers back: history", "standalone: alone", "standalone: history"]
    assert ways["history, first turns"]["overlap"] == ways["scoped, first turns"]["overlap"] == 1.0
    assert ways["refers back: history"]["turns"] == 2 and ways["refers back: history"]["overlap"] == 1.0
    # "How tall is it?" alone is not about the lighthouse: the history keeps it there
    assert ways["refers back: alone"]["overlap"] < 1.0
    assert ways["standalone: history"]["abstained_when_unanswerable"] == 1.0
    assert main(["eval", str(path), "--reader", "span"]) == 0
    assert "refers back: history" in capsys.readouterr().out
