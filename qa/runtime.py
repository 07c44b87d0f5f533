"""ONNX Runtime sessions that start fast, for a command that answers one question and exits.

Loading a model from its ``.onnx`` file means parsing every weight out of one protobuf and
optimising the graph again: 0.15 s for the question encoder (90 MB) and 0.05 s for the reader
at every start of ``qa ask``. So each model is optimised once and kept in the cache, its
weights in a file of their own beside the graph, which ONNX Runtime reads without parsing:
the two then load in 0.04 s and 0.02 s (bench/cli_start.py). The kept copy is named for the
model file's size and time and the ONNX Runtime version, so a new model or library makes a
new one; when it cannot be made or read (a read-only cache, a damaged file), the model file
itself is loaded as before, and a damaged copy is made again at the next start.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from pathlib import Path

import numpy as np

CACHE_ENV = "QA_CACHE"
GRAPH = "model.onnx"
WEIGHTS = "model.data"  # named inside GRAPH, so fixed
PROBE = "probe.npz"
TOLERANCE = 1e-4


def cache_dir() -> Path:
    """Where derived model files are kept: $QA_CACHE, else $XDG_CACHE_HOME/qa, else ~/.cache/qa."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "qa"


def remove(path: Path) -> None:
    """A kept file or folder gone, whichever it is."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def session(model: Path, where: Path, name: str, threads: int = 0, spinning: bool = True,
            prepack: bool = True, probe: dict[str, np.ndarray] | None = None):
    """``model`` under ONNX Runtime on the CPU, from its optimised copy ``where/name.*`` (made
    now if missing, replacing the copies of earlier versions); the model itself when that
    fails. ``threads`` 0 lets ONNX Runtime choose; ``spinning`` False makes idle threads
    sleep at once rather than spin on the cores the next step needs. ``prepack`` False skips
    laying the weights out for faster products: loading takes 0.02 s instead of 0.07 s for the
    question encoder, and each run a few milliseconds more, which pays for one question.
    ``probe``, inputs for the model: the copy must give the outputs the model gave for them
    when it was made, so that a copy damaged in place is not trusted."""
    import onnxruntime

    def options(level: onnxruntime.GraphOptimizationLevel) -> onnxruntime.SessionOptions:
        out = onnxruntime.SessionOptions()
        out.log_severity_level = 3
        out.graph_optimization_level = level
        out.intra_op_num_threads = threads
        if not spinning:
            out.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if not prepack:
            out.add_session_config_entry("session.disable_prepacking", "1")
        return out

    cpu = ["CPUExecutionProvider"]
    made = model.stat()  # a missing model raises here, as loading it would
    kept = where / f"{name}.{made.st_size}-{made.st_mtime_ns}.ort{onnxruntime.__version__}"
    try:
        if not (kept / GRAPH).is_file():
            if kept.is_file():  # an optimised graph as earlier versions kept it, weights inside
                kept.unlink()
            _optimise(model, kept, options(onnxruntime.GraphOptimizationLevel.ORT_ENABLE_EXTENDED), probe)
            for stale in where.glob(f"{name}.*.ort*"):
                if stale != kept:
                    remove(stale)
        out = onnxruntime.InferenceSession(
            str(kept / GRAPH), options(onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL), providers=cpu)
        if probe is not None:
            with np.load(kept / PROBE) as expected:
                given = out.run(None, probe)
                if len(given) != len(expected.files) or not all(
                        np.allclose(a, expected[k], atol=TOLERANCE) for a, k in zip(given, expected.files)):
                    raise ValueError("the copy does not give the model's outputs")
        return out
    except Exception:  # a read-only cache or a damaged copy: the model as it is, this time
        with contextlib.suppress(OSError):
            remove(kept)  # made again next time
        return onnxruntime.InferenceSession(
            str(model), options(onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL), providers=cpu)


def _optimise(model: Path, kept: Path, options, probe: dict[str, np.ndarray] | None) -> None:
    """Write the optimised graph, its weights and the model's outputs for the probe into a new
    folder, renamed into place when whole: a process that stops halfway leaves no copy that
    looks complete."""
    import onnxruntime

    partial = kept.with_name(f".{kept.name}.{uuid.uuid4().hex[:8]}.part")
    partial.mkdir(parents=True)
    try:
        options.optimized_model_filepath = str(partial / GRAPH)
        options.add_session_config_entry("session.optimized_model_external_initializers_file_name", WEIGHTS)
        options.add_session_config_entry("session.optimized_model_external_initializers_min_size_in_bytes",
                                         "1024")
        made = onnxruntime.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
        if probe is not None:
            np.savez(partial / PROBE, *made.run(None, probe))
        try:
            partial.rename(kept)
        except OSError:  # another process kept its copy first
            if not (kept / GRAPH).is_file():
                raise
    finally:
        remove(partial)
