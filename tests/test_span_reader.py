"""The trained span reader: the shipped model file, real ONNX Runtime, the seeds' own text."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from qa.cli import main
from qa.contract import AskRequest
from qa.engine import Engine
from qa.readers.abstention import FEATURES
from qa.readers.span import CONFIG, DEFAULT_READER_DIR, MODEL, TOKENIZER
from qa.readers.windows import MAX_ANSWER_SENTENCES, best_span

ROOT = Path(__file__).resolve().parent.parent


def check_short(result: dict, text: str) -> dict:
    """The short answer reads back from the file and lies inside citation 1."""
    short = result["short_answer"]
    first = result["citations"][0]
    assert text[short["start"] : short["end"]] == short["text"]
    assert short["source"] == first["source"]
    assert first["start"] <= short["start"] < short["end"] <= first["end"]
    assert result["answer"] == first["quote"]
    return short


def test_the_reader_ships_small_and_is_the_default(engine):
    assert (DEFAULT_READER_DIR / MODEL).stat().st_size < 30 * 2**20
    assert engine.reader.name == "span"
    assert engine.health()["reader"] == "span"


@pytest.mark.parametrize(("question", "expected"), [
    ("Who led the U.S. delegation?", "Sonata Coulter"),
    ("Where were the consultations held?", "Istanbul"),
    ("Who heads the North America department of the Russian Foreign Ministry?", "Alexander Darchiyev"),
    ("When did Russia send troops into Ukraine?", "Feb. 24, 2022"),
    ("Who did Donald Trump have a call with?", "Vladimir Putin"),
    ("What did Putin say the first contacts with the new U.S. administration encourage?", "certain hopes"),
])
def test_short_answers_over_the_seeds(engine, seed_text, question, expected):
    result = engine.ask(question)
    assert result["answerable"]
    short = check_short(result, seed_text)
    assert short["text"] == expected


# Wikipedia, "Computational complexity theory" (CC BY-SA), as in SQuAD 2.0's dev set.
ANALYSIS = ("To classify the computation time (or similar resources, such as space consumption), one is "
            "interested in proving upper and lower bounds on the minimum amount of time required by the "
            "most efficient algorithm solving a given problem. The complexity of an algorithm is usually "
            "taken to be its worst-case complexity, unless specified otherwise. Analyzing a particular "
            "algorithm falls under the field of analysis of algorithms. To show an upper bound T(n) on "
            "the time complexity of a problem, one needs to show only that there is a particular "
            "algorithm with running time at most T(n).\n")


def test_a_span_may_run_on_into_the_next_sentences_but_no_further():
    """best_span looks across at most MAX_ANSWER_SENTENCES sentences of the window."""
    sentences = ((0, 10), (11, 20), (21, 30), (31, 40))
    offsets = np.array([(0, 0)] + [(i, i + 1) for i in range(0, 40, 2)] + [(0, 0)])
    in_window = np.array([False] + [True] * 20 + [False])
    start, end = np.full(22, -9.0), np.full(22, -9.0)
    start[3], end[8] = 5.0, 5.0  # from sentence 0 into sentence 1
    span = best_span(start, end, offsets, in_window, sentences)
    assert (span.start, span.end, span.sentence, span.through) == (4, 15, 0, 1)
    end[8], end[19] = -9.0, 9.0  # into sentence 3: four sentences, too many
    span = best_span(start, end, offsets, in_window, sentences)
    assert span.through - span.sentence < MAX_ANSWER_SENTENCES


def test_a_banned_mention_is_never_the_span_and_the_rest_share_the_probability():
    """A follow-up's short answer neither starts nor ends on what it refers to; the span's
    probability is then over the tokens a span may use."""
    sentences = ((0, 40),)
    offsets = np.array([(0, 0)] + [(i, i + 2) for i in range(0, 40, 2)] + [(0, 0)])
    in_window = np.array([False] + [True] * 20 + [False])
    start, end = np.full(22, -9.0), np.full(22, -9.0)
    start[2], end[3] = 8.0, 8.0  # characters 2-6: the referent
    start[10], end[11] = 4.0, 4.0  # characters 18-22: the answer after it
    assert best_span(start, end, offsets, in_window, sentences).start == 2
    span = best_span(start, end, offsets, in_window, sentences, banned=((2, 6),))
    assert (span.start, span.end) == (18, 22)
    assert span.log_prob > -0.1  # nearly all the mass that is left


def test_a_span_never_holds_a_banned_mention():
    """Nor does it run across one: asked for more after "banking", not "banking and staffing"."""
    sentences = ((0, 40),)
    offsets = np.array([(0, 0)] + [(i, i + 2) for i in range(0, 40, 2)] + [(0, 0)])
    in_window = np.array([False] + [True] * 20 + [False])
    start, end = np.full(22, -9.0), np.full(22, -9.0)
    start[1], end[6] = 8.0, 8.0  # characters 0-12: a span around the given answer (4-8)
    start[8], end[9] = 2.0, 2.0  # characters 14-18: another answer
    span = best_span(start, end, offsets, in_window, sentences)
    assert (span.start, span.end) == (0, 12)
    span = best_span(start, end, offsets, in_window, sentences, banned=((4, 8),))
    assert (span.start, span.end) == (14, 18)


def test_a_multi_sentence_answer_is_cited_exactly(tmp_path):
    """A short answer that runs on over a sentence end (the reader's ``through``) is cited from
    the first sentence's start to the last one's end, exactly as stored."""
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "complexity.txt").write_text(ANALYSIS, encoding="utf-8")
    assert main(["index", str(tmp_path / "docs"), "--index", str(tmp_path / "index")]) == 0
    engine = Engine(tmp_path / "index")
    result, reading = engine.answer(AskRequest.of("What falls under the field of analysis of algorithms?"))
    first = reading.answer - 1  # "The complexity of an algorithm ...", the sentence before
    citation = engine._citation(engine.data, first, 1, reading.answer)
    assert ANALYSIS[citation["start"]:citation["end"]] == citation["quote"]
    assert citation["quote"].startswith("The complexity of an algorithm")
    assert citation["quote"].endswith("falls under the field of analysis of algorithms.")
    assert result["answer"] in citation["quote"] and result["short_answer"]["text"] in citation["quote"]


def test_confidence_separates_a_clear_answer_from_off_topic(engine):
    clear = engine.ask("When did Russia send troops into Ukraine?")
    off = engine.ask("How tall is Mount Everest?")
    assert clear["confidence"] >= 0.6
    assert off["confidence"] < 0.2
    assert off["answerable"] is False and off["short_answer"] is None and off["citations"] == []


def test_sentence_reader_stays_available(seed_index, seed_text):
    engine = Engine(seed_index, reader="sentence")
    result = engine.ask("Who led the U.S. delegation?")
    assert result["answerable"] and "Sonata Coulter" in result["answer"]
    assert result["short_answer"] is None
    assert engine.health()["reader"] == "sentence"


def test_cli_prints_the_short_answer_first_and_says_when_unsure(seed_index, capsys):
    assert main(["ask", "When did Russia send troops into Ukraine?", "--index", str(seed_index),
                 "--json"]) == 0
    sure = json.loads(capsys.readouterr().out)["sure"]
    assert main(["ask", "When did Russia send troops into Ukraine?", "--index", str(seed_index)]) == 0
    lines = capsys.readouterr().out.splitlines()
    if not sure:  # below the reader's "sure" level (docs/quality.md): said before the answer
        assert lines.pop(0) == "Not sure: this is the closest thing the documents say."
    assert lines[0] == "Feb. 24, 2022"  # not a terminal: no bold escape codes
    assert "Feb. 24, 2022" in lines[1] and lines[1].endswith("[1]")


@pytest.mark.parametrize("damage", ["missing", "garbage", "truncated", "bad-config", "no-tokenizer"])
def test_damaged_reader_falls_back_in_one_line(tmp_path, seed_index, damage):
    folder = tmp_path / "reader"
    shutil.copytree(DEFAULT_READER_DIR, folder)
    named = {"missing": MODEL, "garbage": MODEL, "truncated": MODEL, "bad-config": CONFIG,
             "no-tokenizer": TOKENIZER}[damage]
    target = folder / named
    if damage in ("missing", "no-tokenizer"):
        target.unlink()
    elif damage == "garbage":
        target.write_bytes(b"not an onnx model\n" * 100)
    elif damage == "truncated":
        target.write_bytes(target.read_bytes()[:4096])
    else:
        target.write_text('{"calibration": [1, "x"]}')
    proc = subprocess.run(
        [sys.executable, "-m", "qa.cli", "ask", "Who led the U.S. delegation?", "--json",
         "--index", str(seed_index), "--reader-dir", str(folder)],
        capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    notes = [line for line in proc.stderr.splitlines() if str(target) in line]
    assert len(notes) == 1 and "sentence reader" in notes[0]
    assert "Traceback" not in proc.stderr
    result = json.loads(proc.stdout)
    assert result["answerable"] and result["short_answer"] is None


def test_a_learned_abstention_in_reader_json_decides_confidence_threshold_and_sure(tmp_path, seed_index):
    """reader.json's "abstention" block (as `qa eval --fit` prints it) replaces the calibration:
    here one that abstains on every negated question and is sure of everything else."""
    folder = tmp_path / "reader"
    shutil.copytree(DEFAULT_READER_DIR, folder)
    config = json.loads((folder / CONFIG).read_text())
    weights = [0.0] * len(FEATURES) + [4.0]
    weights[FEATURES.index("negated")] = -8.0
    config["abstention"] = {"features": list(FEATURES), "weights": weights, "sure": 0.9, "threshold": 0.5}
    (folder / CONFIG).write_text(json.dumps(config))
    engine = Engine(seed_index, reader_dir=folder)
    assert engine.threshold == 0.5 and engine.reader.sure_level == 0.9
    plain = engine.ask("Who led the U.S. delegation?")
    assert plain["answerable"] and plain["sure"] and plain["confidence"] == round(1 / (1 + math.exp(-4)), 4)
    negated = engine.ask("Who never led the U.S. delegation?")
    assert not negated["answerable"] and not negated["sure"]
    config["abstention"]["weights"] = [1.0, 2.0]  # not one weight a feature: damaged
    (folder / CONFIG).write_text(json.dumps(config))
    assert Engine(seed_index, reader_dir=folder).reader.name == "sentence"


def tiny_squad(path: Path) -> Path:
    """Three small articles (one is held out), a dozen questions."""
    articles = []
    facts = [
        ("Varnholm", "The Varnholm lighthouse was built in 1871 by Erik Lund. It is 42 metres tall. "
                     "Its lamp was electrified in 1923."),
        ("Ostra", "Ostra is a village on the island of Skarv. About 300 people live there. "
                  "The ferry from Ostra leaves at noon."),
        ("Brenna", "The Brenna bridge crosses the river Ule. It opened in 1964 and is 812 metres long. "
                   "Anna Holm designed it."),
    ]
    questions = {
        "Varnholm": [("When was the Varnholm lighthouse built?", "1871"), ("Who built it?", "Erik Lund"),
                     ("How tall is the lighthouse?", "42 metres"),
                     ("When was the lamp electrified?", "1923")],
        "Ostra": [("Where is Ostra?", "the island of Skarv"),
                  ("How many people live in Ostra?", "About 300"),
                  ("When does the ferry leave?", "noon")],
        "Brenna": [("What does the Brenna bridge cross?", "the river Ule"), ("When did it open?", "1964"),
                   ("Who designed the bridge?", "Anna Holm")],
    }
    for title, context in facts:
        qas = [{"id": f"{title}-{i}", "question": q,
                "answers": [{"text": a, "answer_start": context.index(a)}]}
               for i, (q, a) in enumerate(questions[title])]
        articles.append({"title": title, "paragraphs": [{"context": context, "qas": qas}]})
    path.write_text(json.dumps({"version": "1.1", "data": articles}), encoding="utf-8")
    return path


def examples(err: str) -> int:
    """How many training examples a run said it built."""
    return int(err.split(" training examples")[0].split()[-1])


def test_training_runs_end_to_end_and_resumes(tmp_path, seed_index, capsys):
    data = tiny_squad(tmp_path / "tiny.json")
    out = tmp_path / "run"
    args = ["train-reader", str(data), "--out", str(out), "--held-out-articles", "1",
            "--limit-questions", "6", "--batch-size", "32", "--epochs", "1", "--trap-epochs", "1",
            "--seed", "3"]
    assert main(args) == 0
    err = first_err = capsys.readouterr().err
    assert "1 steps of 32; then 1 steps over" in err and "validation" in err
    log = [json.loads(line) for line in (out / "train.log").read_text().splitlines()]
    assert log[-1]["step"] == 2 and "loss" in log[-1] and "f1" in log[-1]
    assert log[-1]["lr"] == 2e-5  # the second phase, reworded questions, runs at its own low rate
    reader = out / "reader"
    config = json.loads((reader / CONFIG).read_text())
    assert len(config["calibration"]) == 3 and config["trained"]["seed"] == 3
    assert (reader / MODEL).stat().st_size < 30 * 2**20

    engine = Engine(seed_index, reader_dir=reader)  # the new model loads and answers
    assert engine.reader.name == "span"
    result = engine.ask("Who led the U.S. delegation?", top_k=1)
    assert result["passages"]

    again = tmp_path / "again"  # the same seed gives the same run
    assert main([*args[:3], str(again), *args[4:]]) == 0
    capsys.readouterr()
    assert [r["loss"] for r in map(json.loads, (again / "train.log").read_text().splitlines())] == \
        [r["loss"] for r in log]

    # Trained further, the shipped reader starts from its own weights: it reads the held-out
    # article at once, where one step from the base encoder cannot.
    further = tmp_path / "further"
    assert main(["train-reader", str(data), "--out", str(further), "--held-out-articles", "1",
                 "--limit-questions", "6", "--epochs", "1", "--learning-rate", "1e-6", "--seed", "3",
                 "--init", str(DEFAULT_READER_DIR), "--also", str(data), "--also-articles", "1"]) == 0
    err = capsys.readouterr().err
    assert f"starting from the reader in {DEFAULT_READER_DIR}" in err
    assert examples(err) > examples(first_err)  # and trained on an article of --also besides
    trained = json.loads((further / "reader" / CONFIG).read_text())
    assert trained["trained"]["init"] == str(DEFAULT_READER_DIR)
    assert trained["validation_paragraphs"]["f1"] > 0.6 > config["validation_paragraphs"]["f1"]

    assert main(args) == 0  # a finished run resumes at its end and exports again
    assert "resuming from step 2 of 2" in capsys.readouterr().err
    other = [*args[:-1], "4"]
    assert main(other) == 1  # another seed never resumes from this run's checkpoint
    assert "is from another run" in capsys.readouterr().err
