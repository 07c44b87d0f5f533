"""Models under ONNX Runtime from their optimised copy in the cache: made once, giving the
model's own outputs, and the model itself whenever the copy is missing, damaged or cannot be
written."""

import shutil

import numpy as np
import onnxruntime
import pytest

from qa import runtime
from qa.readers.span import DEFAULT_READER_DIR, MODEL
from qa.readers.windows import load_tokenizer

READER = DEFAULT_READER_DIR / MODEL


@pytest.fixture(scope="module")
def inputs() -> dict[str, np.ndarray]:
    encoding = load_tokenizer(DEFAULT_READER_DIR).encode(
        "Who led the U.S. delegation?", "The U.S. delegation was led by Sonata Coulter, a deputy secretary.")
    return {"input_ids": np.array([encoding.ids], np.int64),
            "attention_mask": np.array([encoding.attention_mask], np.int64),
            "token_type_ids": np.array([encoding.type_ids], np.int64)}


@pytest.fixture(scope="module")
def expected(inputs) -> list[np.ndarray]:
    plain = onnxruntime.InferenceSession(str(READER), providers=["CPUExecutionProvider"])
    return plain.run(None, inputs)


def _same(session, inputs, expected) -> bool:
    return all(np.allclose(a, b, atol=1e-4) for a, b in zip(session.run(None, inputs), expected))


def _copies(where):
    return sorted(p.name for p in where.iterdir())


def test_the_optimised_copy_is_made_once_and_gives_the_models_outputs(tmp_path, inputs, expected):
    assert _same(runtime.session(READER, tmp_path, "reader", threads=1), inputs, expected)
    [kept] = _copies(tmp_path)  # nothing half-written beside it
    assert kept.startswith("reader.") and kept.endswith(f".ort{onnxruntime.__version__}")
    weights = tmp_path / kept / runtime.WEIGHTS
    assert weights.stat().st_size > 10_000_000  # the weights lie outside the graph's file
    made = weights.stat().st_mtime_ns
    assert _same(runtime.session(READER, tmp_path, "reader", threads=1), inputs, expected)
    assert weights.stat().st_mtime_ns == made and _copies(tmp_path) == [kept]


@pytest.mark.parametrize("damage", [runtime.GRAPH, runtime.WEIGHTS])
def test_a_damaged_copy_falls_back_to_the_model_and_is_made_again(tmp_path, inputs, expected, damage):
    runtime.session(READER, tmp_path, "reader", threads=1)
    [kept] = _copies(tmp_path)
    target = tmp_path / kept / damage
    whole = target.stat().st_size
    target.write_bytes(target.read_bytes()[: whole // 2])
    assert _same(runtime.session(READER, tmp_path, "reader", threads=1), inputs, expected)
    runtime.session(READER, tmp_path, "reader", threads=1)  # the next start makes it again
    assert target.stat().st_size == whole


def test_a_copy_changed_in_place_is_not_trusted_when_probed(tmp_path, inputs, expected):
    """Weights altered but not cut (a byte flipped in every thousand): ONNX Runtime loads them happily,
    so the copy's outputs for the probe are compared with the model's."""
    runtime.session(READER, tmp_path, "reader", threads=1, probe=inputs)
    [kept] = _copies(tmp_path)
    weights = tmp_path / kept / runtime.WEIGHTS
    data = bytearray(weights.read_bytes())
    for at in range(0, len(data), 997):
        data[at] ^= 0x5A
    weights.write_bytes(bytes(data))
    damaged = onnxruntime.InferenceSession(str(tmp_path / kept / runtime.GRAPH),
                                           providers=["CPUExecutionProvider"])
    assert not _same(damaged, inputs, expected)  # the damage shows in the outputs
    assert _same(runtime.session(READER, tmp_path, "reader", threads=1, probe=inputs), inputs, expected)


def test_copies_of_earlier_versions_go_and_others_stay(tmp_path, inputs, expected):
    """A copy for the model's earlier file (another size or time) is removed when the new one
    is made; so is the single-file graph earlier releases kept under the same name."""
    model = tmp_path / "model" / MODEL
    model.parent.mkdir()
    shutil.copy(READER, model)
    where = tmp_path / "cache"
    where.mkdir()
    (where / "reader.1-2.ort1.0.0").mkdir()
    (where / "reader.1-2.ort1.0.0" / runtime.GRAPH).write_bytes(b"old")
    (where / "other.1-2.ort1.0.0").write_bytes(b"another model's")
    made = model.stat()
    same_name = where / f"reader.{made.st_size}-{made.st_mtime_ns}.ort{onnxruntime.__version__}"
    same_name.write_bytes(b"a graph kept whole")
    assert _same(runtime.session(model, where, "reader", threads=1), inputs, expected)
    assert _copies(where) == sorted(["other.1-2.ort1.0.0", same_name.name])
    assert (same_name / runtime.GRAPH).is_file()


def test_a_cache_that_cannot_be_written_loads_the_model_itself(tmp_path, inputs, expected):
    where = tmp_path / "not-a-folder"
    where.write_bytes(b"")
    assert _same(runtime.session(READER, where, "reader", threads=1), inputs, expected)
