"""Questions through ONNX Runtime: the model's own vectors, and PyTorch whenever that fails."""

import numpy as np

from qa.onnx_questions import cache_dir, question_encoder

QUESTIONS = ["Who led the U.S. delegation?", "When did the talks in Istanbul take place?", "x",
             "What did Russia offer the United States during the consultations in Istanbul on Thursday?"]


def test_engine_encodes_questions_with_onnx_runtime_and_the_same_vectors(engine, embedder):
    assert engine.question_runtime == "onnxruntime"
    assert np.allclose(engine.encode_question(QUESTIONS), embedder.encode(QUESTIONS), atol=1e-5)
    assert engine.encode_question([]).shape == (0, embedder.dimension)


def test_a_damaged_export_is_made_again(engine, embedder):
    notes: list[str] = []
    exported = list(cache_dir().glob("*.onnx"))
    assert len(exported) == 1
    exported[0].write_bytes(b"not a model" * 100)
    encode, runtime = question_encoder(embedder, notes.append)
    assert (runtime, notes) == ("onnxruntime", [])
    assert np.allclose(encode(QUESTIONS), embedder.encode(QUESTIONS), atol=1e-5)
    assert exported[0].stat().st_size > 1_000_000


def test_when_export_fails_questions_go_through_pytorch(embedder, tmp_path, monkeypatch):
    import torch

    def broken(*args, **kwargs):
        raise RuntimeError("exporter unavailable")

    monkeypatch.setenv("QA_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(torch.onnx, "export", broken)
    notes: list[str] = []
    encode, runtime = question_encoder(embedder, notes.append)
    assert runtime == "pytorch"
    assert notes == ["qa: note: questions are encoded with PyTorch (RuntimeError: exporter unavailable)"]
    assert np.allclose(encode(QUESTIONS), embedder.encode(QUESTIONS))
    assert not list((tmp_path / "cache").glob("*"))  # no half-written file left behind
