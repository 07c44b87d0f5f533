"""An index of segments: an update writes one small segment, a delete only marks, merges
compact; in every state the index answers exactly as a fresh one-segment build of the
same documents. Real model, real FAISS, real processes killed for real."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import bm25s
import numpy as np
import pytest

from qa.engine import Engine
from qa.errors import IndexInvalid
from qa.index.build import MERGE_FACTOR, build_index, write_locally
from qa.index.lexical import Lexical, Postings
from qa.index.manifest import read_manifest
from qa.index.words import tokenize

ROOT = Path(__file__).resolve().parent.parent
QUESTIONS = [
    "When did Russia send troops into Ukraine?",
    "Who heads the North America department of the Russian Foreign Ministry?",
    "Who repainted the lighthouse?",
    "When does the ferry to Varnholm leave?",
    "What does the bakery sell?",
    "How tall is Mount Everest?",
]
EXTRA = {
    "lighthouse.txt": "The Varnholm lighthouse was repainted by Ilse Brandt in 1999.\n\nIt is white.\n",
    "ferry.txt": "The ferry to Varnholm leaves at seven every morning from the north pier.\n",
    "bakery.txt": "The harbour bakery sells rye bread and cardamom buns.\n",
}


@pytest.fixture
def corpus(tmp_path) -> Path:
    folder = tmp_path / "docs"
    shutil.copytree(ROOT / "seeds", folder)
    for name, text in EXTRA.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


def answers(index: Path) -> list[tuple]:
    engine = Engine(index)
    out = []
    for question in QUESTIONS:
        r = engine.ask(question)
        out.append((question, r["answer"], r["short_answer"], round(r["confidence"], 3),
                    [(c["source"], c["start"], c["end"]) for c in r["citations"]],
                    [(p["source"], p["start"], p["end"], round(p["score"], 3)) for p in r["passages"]]))
    return out


def fresh_answers(corpus: Path, tmp: Path, embedder) -> list[tuple]:
    index = tmp / f"fresh-{time.monotonic_ns()}"
    build_index([corpus], index, embedder, report=lambda _: None)
    assert len(manifest(index)["segments"]) == 1
    return answers(index)


def manifest(index: Path) -> dict:
    return json.loads((index / "current" / "manifest.json").read_text(encoding="utf-8"))


def test_updates_deletes_and_merges_answer_as_a_fresh_build(corpus, tmp_path, embedder):
    index = tmp_path / "index"
    (corpus / "bakery.txt").rename(tmp_path / "bakery.txt")
    build_index([corpus], index, embedder, report=lambda _: None)
    assert len(manifest(index)["segments"]) == 1

    (tmp_path / "bakery.txt").rename(corpus / "bakery.txt")  # a new document: a second segment
    report = build_index([corpus], index, embedder, report=lambda _: None)
    assert (report.added, report.unchanged, report.segments) == (1, 3, 2)
    assert answers(index) == fresh_answers(corpus, tmp_path, embedder)

    (corpus / "lighthouse.txt").write_text(  # changed: its first copy is only marked deleted
        "The Varnholm lighthouse was repainted by Jonas Berg in 2021.\n", encoding="utf-8")
    report = build_index([corpus], index, embedder, report=lambda _: None)
    segments = manifest(index)["segments"]
    assert (report.changed, len(segments)) == (1, 3)
    assert segments[0]["deleted"] == ["lighthouse.txt"] and "lighthouse.txt" in segments[2]["sources"]
    assert answers(index) == fresh_answers(corpus, tmp_path, embedder)
    assert "Jonas Berg" in Engine(index).ask("Who repainted the lighthouse?")["answer"]

    (corpus / "ferry.txt").unlink()  # removed: marked, nothing written but the manifest
    report = build_index([corpus], index, embedder, report=lambda _: None)
    segments = manifest(index)["segments"]
    assert (report.removed, len(segments)) == (1, 3)
    assert segments[0]["deleted"] == ["ferry.txt", "lighthouse.txt"]
    assert answers(index) == fresh_answers(corpus, tmp_path, embedder)

    report = build_index([corpus], index, embedder, report=lambda _: None, optimize=True)
    (segment,) = manifest(index)["segments"]
    assert segment["deleted"] == [] and report.segments == 1
    assert sorted(p.name for p in index.iterdir() if p.name.startswith("seg-")) == [segment["name"]]
    assert answers(index) == fresh_answers(corpus, tmp_path, embedder)


def test_small_segments_are_merged_by_size_tier(corpus, tmp_path, embedder):
    index = tmp_path / "index"
    build_index([corpus], index, embedder, report=lambda _: None)
    for i in range(MERGE_FACTOR + 2):
        (corpus / f"note-{i}.txt").write_text(f"Harbour note {i}: berth {i} is free on Sunday.\n",
                                              encoding="utf-8")
        build_index([corpus], index, embedder, report=lambda _: None)
        assert len(manifest(index)["segments"]) < MERGE_FACTOR  # ten of a tier never stay ten
    assert answers(index) == fresh_answers(corpus, tmp_path, embedder)


def test_bm25_is_bm25s_and_does_not_depend_on_the_split():
    texts = ["the lighthouse keeper painted the lighthouse", "a ferry leaves the pier at seven",
             "the keeper of the ferry", "bread and buns at the bakery", "seven buns for the keeper"]
    tokens = tokenize(texts)
    reference = bm25s.BM25()
    reference.index(tokens, show_progress=False)
    one = Lexical([(Postings.build(tokens), np.arange(5))], 5)
    two = Lexical([(Postings.build(tokens[:2]), np.arange(2)),
                   (Postings.build(tokens[2:]), np.arange(2, 5))], 5)
    for query in (["keeper"], ["ferri", "seven"], ["lighthous", "bun", "keeper"]):
        expected = reference.get_scores(query)
        for lexical in (one, two):
            ids = np.array([lexical.vocab_dict[w] for w in query])
            assert np.allclose(lexical.get_scores_from_ids(ids), expected, atol=1e-5)
    # A deleted chunk neither scores nor counts: as if the collection never held it.
    without = Lexical([(Postings.build(tokens[:2]), np.array([0, -1])),
                       (Postings.build(tokens[2:]), np.arange(1, 4))], 4)
    alone = Lexical([(Postings.build(tokens[:1] + tokens[2:]), np.arange(4))], 4)
    for word in ("keeper", "seven", "ferri"):
        assert np.allclose(without.get_scores_from_ids(np.array([without.vocab_dict[word]])),
                           alone.get_scores_from_ids(np.array([alone.vocab_dict[word]])))


def test_sigkill_during_a_merge_loses_nothing(corpus, tmp_path, embedder):
    index = tmp_path / "index"
    build_index([corpus], index, embedder, report=lambda _: None)
    for i in range(3):
        (corpus / f"extra-{i}.txt").write_text(f"Extra note {i} about berth {i}.\n", encoding="utf-8")
        build_index([corpus], index, embedder, report=lambda _: None)
    expected = fresh_answers(corpus, tmp_path, embedder)
    before = manifest(index)
    assert len(before["segments"]) == 4
    argv = [sys.executable, "-m", "qa.cli", "index", str(corpus), "--index", str(index), "--optimize"]
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    outcomes = []
    for _ in range(2):  # killed the moment the merged segment's folder appears: mid-write
        segments = {n for n in os.listdir(index) if n.startswith("seg-")}
        proc = subprocess.Popen(argv, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while not {n for n in os.listdir(index) if n.startswith("seg-")} - segments:
            assert proc.poll() is None and time.monotonic() < deadline, "no merge began"
            time.sleep(0.0005)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        now = manifest(index)
        outcomes.append(len(now["segments"]))
        assert now["segments"] == before["segments"]  # killed before publishing: the old index, whole
        assert answers(index) == expected
    done = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert len(manifest(index)["segments"]) == 1
    assert answers(index) == expected
    referenced = {manifest(index)["segments"][0]["name"]}
    assert {p.name for p in index.iterdir() if p.name.startswith("seg-")} == referenced  # nothing left over
    print(f"\nsegments after each kill: {outcomes}")
    assert outcomes == [4, 4]


def test_a_segment_damaged_before_publishing_is_refused_and_the_index_stays(corpus, tmp_path, embedder):
    """A worker's segment is checked against its checksums before the manifest names it (here a
    file changed on shared storage between write and check): one clear line, nothing published,
    nothing left behind."""
    index = tmp_path / "index"
    build_index([corpus], index, embedder, report=lambda _: None, progress=False)
    before = answers(index)
    published = (index / "current").resolve()
    (corpus / "new.txt").write_text("The ferry to Varnholm leaves at seven.\n", encoding="utf-8")

    def damaged(*args):
        written = write_locally(*args)
        with open(args[1] / written[0].entry["name"] / "documents.jsonl", "a", encoding="utf-8") as fh:
            fh.write("garbage\n")
        return written

    with pytest.raises(IndexInvalid, match="a segment this build wrote did not check out") as caught:
        build_index([corpus], index, embedder, report=lambda _: None, progress=False, write_segments=damaged)
    assert "run the build again" in str(caught.value) and "--rebuild" not in str(caught.value)
    assert (index / "current").resolve() == published
    named = {e["name"] for e in read_manifest(index)["segments"]}
    assert {p.name for p in index.glob("seg-*")} == named
    assert answers(index) == before
