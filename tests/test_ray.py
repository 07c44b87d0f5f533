"""Indexing on Ray (`qa index --ray`): the same index as a local build, on one node or two,
with each worker writing its own segments,
when an embedding worker is killed mid-build, and one clear line when Ray is missing.

One real Ray runtime serves the module: a two-node cluster on this machine (head and one
worker node, one CPU each), so a two-worker build runs one embedding actor per node. (One
test runs `qa index --ray` in its own process, which starts and stops a Ray of its own.)
"""

from __future__ import annotations

import logging
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import ray
from ray.cluster_utils import Cluster

from qa.cli import main
from qa.engine import Engine
from qa.errors import QAError
from qa.index import store
from qa.index.build import Progress, build_index, split_parts
from qa.index.embedding import Embedder, resolve_model
from qa.index.manifest import read_manifest
from qa.index.ray_build import MISSING, RaySegments

ROOT = Path(__file__).resolve().parent.parent
QUESTION = "When did Russia send troops into Ukraine?"
WORDS = ["harbour", "council", "ferry", "lighthouse", "granite", "winter", "market", "fishermen",
         "archive", "bridge", "railway", "museum", "orchard", "glacier", "valley", "river", "ledger",
         "mayor", "treaty", "festival"]


def write_docs(folder: Path, count: int, paragraphs: int, seed: int = 7) -> None:
    """Plain-text documents of made-up sentences (a fixed seed: the same every run)."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for d in range(count):
        blocks = []
        for _ in range(paragraphs):
            sentences = [" ".join(rng.choices(WORDS, k=rng.randint(6, 16))).capitalize()
                         + f" in {rng.randint(1800, 2020)}." for _ in range(rng.randint(3, 7))]
            blocks.append(" ".join(sentences))
        (folder / f"doc_{d:03d}.txt").write_text("\n\n".join(blocks) + "\n", encoding="utf-8")


@pytest.fixture(scope="module")
def cluster():
    """Two Ray nodes on this machine, one CPU each; this process is the driver."""
    nodes = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    nodes.add_node(num_cpus=1)
    ray.init(address=nodes.address, logging_level=logging.ERROR, log_to_driver=False)
    yield nodes
    ray.shutdown()
    nodes.shutdown()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """The seeds, two small made-up files and one that cannot be read (skipped either way)."""
    root = tmp_path_factory.mktemp("ray-corpus") / "docs"
    shutil.copytree(ROOT / "seeds", root)
    write_docs(root / "made-up", 2, 6)
    (root / "latin1.txt").write_bytes(b"caf\xe9 latin-1 text that is not UTF-8")
    return root


@pytest.fixture(scope="module")
def local_index(corpus, tmp_path_factory, embedder) -> Path:
    index = tmp_path_factory.mktemp("local") / "index"
    build_index([corpus], index, embedder, report=lambda _: None, progress=False)
    return index


def assert_same_index(a: Path, b: Path, embedder: Embedder) -> None:
    """The same documents with the same spans and vectors, in whatever segments and order."""
    x = store.load(a, embedder.name, embedder.dimension)
    y = store.load(b, embedder.name, embedder.dimension)
    px, py = split_parts(x), split_parts(y)
    assert sorted(px) == sorted(py)
    for source, part in px.items():
        other = py[source]
        assert (part.document.sha256, part.document.text, part.document.pages) == \
               (other.document.sha256, other.document.text, other.document.pages), source
        assert np.array_equal(part.sentences, other.sentences), source
        assert np.array_equal(part.chunks, other.chunks), source
        assert close(part.chunk_vectors, other.chunk_vectors), source
        assert close(part.sentence_vectors, other.sentence_vectors), source
    assert x.manifest["documents"] == y.manifest["documents"]
    assert x.manifest["chunking"] == y.manifest["chunking"]


def close(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal within float tolerance. The index stores float16, so float32 vectors a hair apart
    (batched with other texts, padded differently) can round one float16 step apart."""
    return np.allclose(np.asarray(a, np.float32), np.asarray(b, np.float32), rtol=2**-10, atol=1e-5)


def embedding_actors() -> list[dict]:
    """The embedding actors Ray has started in this cluster, alive or not (the GCS table)."""
    return [a for a in ray._private.state.actors().values() if "WriteSegment" in a["ActorClassName"]]


def test_ray_build_through_the_cli_equals_a_local_build(cluster, corpus, local_index, embedder, tmp_path,
                                                         capsys):
    index = tmp_path / "index"
    before = {a["ActorID"] for a in embedding_actors()}
    assert main(["index", str(corpus), "--index", str(index), "--ray", "--workers", "2"]) == 0
    err = capsys.readouterr().err.splitlines()
    assert err[-2].startswith("skipped ") and "latin1.txt" in err[-2]
    assert err[-1].startswith("indexed 3 documents")
    assert err[-1].endswith("(3 new, 0 changed, 0 removed, 0 unchanged, 1 skipped; 1 segment)")
    assert_same_index(local_index, index, embedder)
    here, there = Engine(local_index).ask(QUESTION), Engine(index).ask(QUESTION)
    assert here["answerable"] and here["short_answer"]["text"] == "Feb. 24, 2022"
    for key in ("answer", "answerable", "short_answer", "citations"):
        assert here[key] == there[key], key
    assert [(p["source"], p["start"], p["end"]) for p in here["passages"]] == \
           [(p["source"], p["start"], p["end"]) for p in there["passages"]]
    assert ray.is_initialized()  # a Ray the command did not start is left running

    # Two workers on a two-node cluster: one embedding actor on each node.
    ours = [a for a in embedding_actors() if a["ActorID"] not in before]
    assert len(ours) == 2
    assert len({a["Address"]["NodeID"] for a in ours}) == 2 == len([n for n in ray.nodes() if n["Alive"]])


def test_workers_write_their_own_segments(cluster, corpus, local_index, embedder, tmp_path):
    """One document a segment: each segment is written by an embedding actor on a node of the
    cluster (the driver writes none), into the shared index folder, and nothing else is left."""
    index = tmp_path / "index"
    report = build_index([corpus], index, embedder, report=lambda _: None, progress=False,
                         write_segments=RaySegments(workers=2, documents_per_segment=1))
    assert report.segments == 3
    segments = read_manifest(index)["segments"]
    nodes = {n["NodeID"] for n in ray.nodes() if n["Alive"]}
    assert len(segments) == 3 and all(entry["node"] in nodes for entry in segments)
    assert sorted(p.name for p in index.glob("seg-*")) == sorted(e["name"] for e in segments)
    assert_same_index(local_index, index, embedder)
    # Three segments, searched side by side (faiss.IndexShards), answer as the one segment does.
    here, there = Engine(local_index).ask(QUESTION), Engine(index).ask(QUESTION)
    for key in ("answer", "short_answer", "citations", "passages"):
        assert here[key] == there[key], key


def qa_index(corpus: Path, index: Path, *ray_args: str) -> subprocess.CompletedProcess:
    """`qa index` in its own process, as a user runs it."""
    return subprocess.run([sys.executable, "-m", "qa.cli", "index", str(corpus), "--index", str(index),
                           *ray_args], capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, HF_HUB_OFFLINE="1"))


@pytest.mark.parametrize("where", ["a Ray it starts", "the running cluster"])
def test_the_cli_in_its_own_process(where, cluster, corpus, local_index, embedder, tmp_path):
    """`--ray` starts a Ray of its own and stops it; `--ray ADDRESS` uses the cluster and leaves
    it running."""
    index = tmp_path / "index"
    address = [cluster.address] if where == "the running cluster" else []
    proc = qa_index(corpus, index, "--ray", *address, "--workers", "1")
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "(3 new, 0 changed, 0 removed, 0 unchanged, 1 skipped; 1 segment)" in proc.stderr.splitlines()[-1]
    assert_same_index(local_index, index, embedder)
    assert len([n for n in ray.nodes() if n["Alive"]]) == 2


def test_incremental_ray_build_embeds_only_what_changed(cluster, corpus, local_index, embedder, tmp_path):
    docs = tmp_path / "docs"
    shutil.copytree(corpus, docs)
    index = tmp_path / "index"
    build_index([docs], index, embedder, report=lambda _: None, progress=False)
    (docs / "made-up" / "doc_000.txt").write_text("The ferry leaves at seven.\n", encoding="utf-8")
    write_docs(docs / "more", 1, 3, seed=11)
    report = build_index([docs], index, embedder, report=lambda _: None, progress=False,
                         write_segments=RaySegments(workers=2))
    assert (report.added, report.changed, report.unchanged, len(report.skipped)) == (1, 1, 2, 1)
    fresh = tmp_path / "fresh"
    build_index([docs], fresh, embedder, report=lambda _: None, progress=False)
    assert_same_index(fresh, index, embedder)


def test_a_killed_worker_is_restarted_and_the_build_completes(cluster, embedder, tmp_path):
    docs = tmp_path / "docs"
    write_docs(docs, 12, 6, seed=3)
    local = tmp_path / "local"
    build_index([docs], local, embedder, report=lambda _: None, progress=False)

    index, tracker, failed = tmp_path / "ray", Progress(), []
    before = {a["ActorID"] for a in embedding_actors()}

    def build() -> None:
        try:  # one document per call: many calls, so the kill lands mid-build
            build_index([docs], index, embedder, report=lambda _: None, progress=False, tracker=tracker,
                        write_segments=RaySegments(workers=2, documents_per_segment=1))
        except BaseException as exc:
            failed.append(exc)

    thread = threading.Thread(target=build)
    thread.start()
    deadline = time.monotonic() + 120
    while tracker.documents_done == 0 and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)  # until the first document came back: both actors are up and busy
    victim = next(a for a in embedding_actors() if a["ActorID"] not in before and a["State"] == "ALIVE")
    done_at_kill = tracker.documents_done
    os.kill(victim["Pid"], signal.SIGKILL)  # as a lost machine would: no goodbye, work in flight
    thread.join(300)
    assert not thread.is_alive() and not failed, failed
    assert 0 < done_at_kill < 12
    restarted = ray._private.state.actors(victim["ActorID"])
    assert restarted["NumRestarts"] >= 1
    assert_same_index(local, index, embedder)
    named = {e["name"] for e in read_manifest(index)["segments"]}
    assert {p.name for p in index.glob("seg-*")} == named  # nothing half-written is left


def test_a_failed_ray_build_publishes_nothing(cluster, embedder, tmp_path):
    """A model folder the workers cannot read (like one only the driver has): the build fails
    with one line and the index published before stays as it was."""
    model = tmp_path / "model"
    shutil.copytree(resolve_model(None), model)
    driver_only = Embedder(str(model))
    docs = tmp_path / "docs"
    write_docs(docs, 2, 3)
    index = tmp_path / "index"
    build_index([docs], index, driver_only, report=lambda _: None, progress=False)
    published = (index / "current").resolve()
    before = sorted(p.name for p in published.iterdir())
    shutil.rmtree(model)
    (docs / "doc_000.txt").write_text("The ferry leaves at seven.\n", encoding="utf-8")
    with pytest.raises(QAError, match=r"^indexing on Ray failed: cannot load model") as caught:
        build_index([docs], index, driver_only, report=lambda _: None, progress=False,
                    write_segments=RaySegments(workers=1))
    assert "\n" not in str(caught.value)
    assert (index / "current").resolve() == published
    assert sorted(p.name for p in published.iterdir()) == before
    store.load(index, driver_only.name, driver_only.dimension)


def test_ray_flag_without_ray_installed_is_one_line_and_exit_2(corpus, tmp_path):
    index = tmp_path / "index"
    code = ("import sys; sys.modules['ray'] = None; from qa.cli import main; "
            f"sys.exit(main(['index', {str(corpus)!r}, '--index', {str(index)!r}, '--ray']))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, HF_HUB_OFFLINE="1"))
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [f"qa: error: {MISSING}"]
    assert MISSING == "Ray is not installed: pip install 'qa-docs[ray]'"
    assert not index.exists()


def test_ray_options_are_checked(capsys):
    with pytest.raises(SystemExit) as caught:
        main(["index", "--ray", "docs"])
    assert caught.value.code == 2
    assert "not a Ray address" in capsys.readouterr().err
    assert main(["index", "--workers", "2"]) == 2
    assert capsys.readouterr().err.splitlines() == ["qa: error: --workers needs --ray"]
