"""Encode questions with ONNX Runtime: the same model, exported once, about 3x faster here.

For one short question PyTorch spends most of its time on per-call overhead (about
6 ms for a dozen word pieces on two cores); ONNX Runtime runs the same graph in about
2 ms. The model's whole pipeline (transformer, pooling, normalisation, exactly as
sentence-transformers composes it) is exported on first use into a cache folder,
keyed by the model's files and the library versions. Every load checks it against
PyTorch on probe sentences: a damaged or stale file is exported again, and if export
or ONNX Runtime fails, questions go through PyTorch as before. Indexing stays on
PyTorch, which is as fast as ONNX Runtime for full batches.
"""

from __future__ import annotations

import hashlib
import os
import uuid
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .embedding import Embedder, on_model_thread, resolve_model, unit_rows

PROBES = [
    "Who led the U.S. delegation?",
    "The lighthouse on the northern cliff was repainted white in 1999, after the storm.",
]
TOLERANCE = 1e-4  # largest difference from PyTorch's vectors that counts as the same model
CACHE_ENV = "QA_CACHE"

Encoder = Callable[[list[str]], np.ndarray]


def cache_dir() -> Path:
    """Where exported models are kept: $QA_CACHE, else $XDG_CACHE_HOME/qa, else ~/.cache/qa."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "qa"


def question_encoder(embedder: Embedder, report: Callable[[str], None]) -> tuple[Encoder, str]:
    """The fastest encoder for questions that gives the model's own vectors, and its runtime's name."""
    try:
        return _load(embedder), "onnxruntime"
    except Exception as exc:  # any failure leaves PyTorch, which always works
        report(f"qa: note: questions are encoded with PyTorch ({_reason(exc)})")
        return embedder.encode, "pytorch"


def _reason(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:200]}" if text else type(exc).__name__


def _load(embedder: Embedder) -> Encoder:
    import onnxruntime

    path = cache_dir() / f"{_key(embedder)}.onnx"
    expected = embedder.encode(PROBES)
    for attempt in (1, 2):
        if not path.is_file() or attempt == 2:
            path.parent.mkdir(parents=True, exist_ok=True)
            on_model_thread(_export, embedder, path)
        try:
            options = onnxruntime.SessionOptions()
            options.log_severity_level = 3
            # Its threads sleep as soon as a question is encoded, rather than spin for a while
            # on both cores, which slowed the reader that runs next (engine p50: 24 -> 16 ms).
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            encode = _encoder(embedder, session)
            if np.abs(encode(PROBES) - expected).max() <= TOLERANCE:
                return encode
        except Exception:
            if attempt == 2:
                raise
    raise ValueError("the exported model does not give the model's vectors")


def _key(embedder: Embedder) -> str:
    """A name for the export: the model folder's files (name, size, time) and library versions."""
    import onnxruntime
    import sentence_transformers
    import torch

    folder = Path(resolve_model(embedder.name))
    if not folder.is_dir():
        raise ValueError(f"{embedder.name!r} is not a model folder")
    digest = hashlib.sha256()
    for part in (torch.__version__, onnxruntime.__version__, sentence_transformers.__version__):
        digest.update(part.encode() + b"\0")
    for file in sorted(p for p in folder.rglob("*") if p.is_file()):
        info = file.stat()
        digest.update(f"{file.relative_to(folder)}\0{info.st_size}\0{info.st_mtime_ns}\0".encode())
    return digest.hexdigest()[:24]


def _input_names(features: dict) -> list[str]:
    import torch

    return [k for k, v in features.items() if isinstance(v, torch.Tensor)]


def _export(embedder: Embedder, path: Path) -> None:
    """Trace the model's pipeline on the probes and write it, atomically, as ONNX."""
    import torch

    model = embedder.model
    features = model.preprocess(PROBES)
    names = _input_names(features)

    class Pipeline(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
            return self.model(dict(zip(names, inputs)))["sentence_embedding"]

    axes = {name: {0: "texts", 1: "tokens"} for name in names}
    partial = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.part")
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                Pipeline().eval(), tuple(features[k] for k in names), str(partial),
                input_names=names, output_names=["sentence_embedding"],
                dynamic_axes={**axes, "sentence_embedding": {0: "texts"}}, opset_version=17,
                dynamo=False,
            )
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def _encoder(embedder: Embedder, session) -> Encoder:
    wanted = [i.name for i in session.get_inputs()]

    def run(texts: list[str]) -> np.ndarray:
        features = embedder.model.preprocess(texts)
        if sorted(wanted) != sorted(_input_names(features)):
            raise ValueError("the exported model takes other inputs than the tokenizer gives")
        return unit_rows(session.run(None, {k: features[k].numpy() for k in wanted})[0])

    def encode(texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, embedder.dimension), np.float32)
        # On the model thread: the tokenizer is not safe to share between threads.
        return on_model_thread(run, texts)

    return encode
