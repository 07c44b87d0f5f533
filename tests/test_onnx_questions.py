"""Questions through ONNX Runtime: the model's own vectors, without PyTorch once exported,
and PyTorch whenever that fails."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from qa.index.embedding import resolve_model
from qa.index.questions import export_name, load_export, question_encoder
from qa.runtime import cache_dir

QUESTIONS = ["Who led the U.S. delegation?", "When did the talks in Istanbul take place?", "x",
             "What did Russia offer the United States during the consultations in Istanbul on Thursday?",
             "  Ünïcode — “quoted”, tab\there and 中文 too?  ", "word " * 400]


def _unused():
    raise AssertionError("the PyTorch model was loaded although an export was there")


def test_engine_encodes_questions_with_onnx_runtime_and_the_same_vectors(engine, embedder):
    assert engine.question_runtime == "onnxruntime"
    assert np.allclose(engine.encode_question(QUESTIONS), embedder.encode(QUESTIONS), atol=1e-5)
    assert engine.encode_question([]).shape == (0, embedder.dimension)


def test_the_tokenizer_feeds_the_export_what_sentence_transformers_would(engine, embedder):
    """Long (truncated), padded, spaced and non-ASCII questions, in one batch."""
    encode, dimension = load_export(None)
    assert dimension == embedder.dimension
    expected = embedder.encode(QUESTIONS)
    assert np.allclose(encode(QUESTIONS), expected, atol=1e-5)
    for question, vector in zip(QUESTIONS, expected):  # alone, with no padding
        assert np.allclose(encode([question])[0], vector, atol=1e-5)


def test_once_exported_questions_need_no_pytorch(engine, embedder):
    notes: list[str] = []
    encode, runtime, dimension = question_encoder(None, _unused, notes.append)
    assert (runtime, dimension, notes) == ("onnxruntime", embedder.dimension, [])
    assert np.allclose(encode(QUESTIONS), embedder.encode(QUESTIONS), atol=1e-5)


def test_qa_ask_answers_without_importing_pytorch(engine, seed_index):
    """A fresh process over an exported model: the answer, and neither torch nor
    sentence-transformers in its modules (they take seconds to import)."""
    script = ("import json, sys; from qa.engine import Engine; "
              f"answer = Engine({str(seed_index)!r}).ask('Who led the U.S. delegation?'); "
              "print(json.dumps([answer['answerable'], sorted(m for m in ('torch', "
              "'sentence_transformers', 'transformers') if m in sys.modules)]))")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         env=dict(os.environ), timeout=300)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == [True, []]
    assert out.stderr == ""


@pytest.mark.parametrize("damage", ["onnx", "npy"])
def test_a_damaged_export_is_made_again(engine, embedder, damage):
    notes: list[str] = []
    exported = list(cache_dir().glob(f"*.{damage}"))
    assert len(exported) == 1
    exported[0].write_bytes(b"not a model" * 100)
    encode, runtime, _ = question_encoder(None, lambda: embedder, notes.append)
    assert (runtime, notes) == ("onnxruntime", [])
    assert np.allclose(encode(QUESTIONS), embedder.encode(QUESTIONS), atol=1e-5)
    assert exported[0].stat().st_size > (1_000_000 if damage == "onnx" else 1_000)


def test_an_export_that_gives_other_vectors_is_made_again(engine, embedder):
    """Probe vectors of another model (as a stale file would hold) are not trusted."""
    probes = next(cache_dir().glob("*.npy"))
    np.save(probes, np.load(probes)[::-1])
    encode, runtime, _ = question_encoder(None, lambda: embedder, [].append)
    assert runtime == "onnxruntime"
    assert np.allclose(encode(QUESTIONS), embedder.encode(QUESTIONS), atol=1e-5)


def test_when_export_fails_questions_go_through_pytorch(embedder, tmp_path, monkeypatch):
    import torch

    def broken(*args, **kwargs):
        raise RuntimeError("exporter unavailable")

    monkeypatch.setenv("QA_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(torch.onnx, "export", broken)
    notes: list[str] = []
    encode, runtime, dimension = question_encoder(None, lambda: embedder, notes.append)
    assert (runtime, dimension) == ("pytorch", embedder.dimension)
    assert notes == ["qa: note: questions are encoded with PyTorch (RuntimeError: exporter unavailable)"]
    assert np.allclose(encode(QUESTIONS), embedder.encode(QUESTIONS))
    assert not list((tmp_path / "cache").glob("*"))  # no half-written file left behind


def test_an_export_replaces_the_earlier_exports_of_its_model(embedder, tmp_path, monkeypatch):
    """Exports left by other library versions go (about 90 MB each); other models' stay."""
    cache = tmp_path / "cache"
    cache.mkdir()
    monkeypatch.setenv("QA_CACHE", str(cache))
    folder = export_name(Path(resolve_model(None))).split("-")[0]
    earlier = [f"{folder}-{'0' * 24}.onnx", f"{folder}-{'0' * 24}.npy", f"{'a' * 24}.onnx"]
    kept = ["0badc0de-" + "1" * 24 + ".onnx", "notes.txt"]
    for name in earlier + kept:
        (cache / name).write_bytes(b"x")
    assert question_encoder(None, lambda: embedder, [].append)[1] == "onnxruntime"
    names = sorted(p.name for p in cache.iterdir())
    name = export_name(Path(resolve_model(None)))
    assert [n for n in names if n.startswith(folder) and n.endswith((".npy", ".onnx"))] == [
        f"{name}{s}" for s in (".npy", ".onnx")]
    assert [n for n in names if ".ort" in n and n.startswith(folder)] == [
        n for n in names if n.startswith(f"{name}.") and ".ort" in n]  # its optimised graph only
    assert all(name in names for name in kept) and not any(name in names for name in earlier)
