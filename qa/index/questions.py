"""Encode questions with ONNX Runtime: the same model, exported once, about 3x faster here.

For one short question PyTorch spends most of its time on per-call overhead (about
6 ms for a dozen word pieces on two cores); ONNX Runtime runs the same graph in about
2 ms. The model's whole pipeline (transformer, pooling, normalisation, exactly as
sentence-transformers composes it) is exported on first use into a cache folder, keyed
by the model's files and the library versions, together with the vectors PyTorch gave
for a few probe sentences. Later starts load the export and the model's own tokenizer
without importing PyTorch at all (``qa ask`` starts in about a second instead of six),
after checking that the probes still give those vectors: a damaged or stale file is
exported again, and if export or ONNX Runtime fails, questions go through PyTorch.
Indexing stays on PyTorch, which is as fast as ONNX Runtime for full batches.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
import threading
import uuid
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .. import runtime
from ..runtime import cache_dir
from .embedding import DEFAULT_MODEL, Embedder, on_model_thread, resolve_model, unit_rows

PROBES = [
    "Who led the U.S. delegation?",
    "The lighthouse on the northern cliff was repainted white in 1999, after the storm.",
    "  Naïve café-goers paid €3.50 — DON'T they?  ",
]
TOLERANCE = 1e-4  # largest difference from PyTorch's vectors that counts as the same model
INPUTS = ("input_ids", "attention_mask", "token_type_ids")
LEGACY_NAME = re.compile(r"[0-9a-f]{24}")
LIBRARIES = ("torch", "onnxruntime", "sentence-transformers", "transformers", "tokenizers")

Encoder = Callable[[list[str]], np.ndarray]


class NoExport(Exception):
    """There is no usable export of this model yet."""


def question_encoder(name: str | None, load_embedder: Callable[[], Embedder],
                     report: Callable[[str], None], prepack: bool = True) -> tuple[Encoder, str, int]:
    """The fastest encoder for questions that gives the model's own vectors, its runtime's
    name, and the vectors' dimension. ``load_embedder`` gives the PyTorch model; it is
    called only to export (once per model and library versions) or to fall back on;
    ``prepack`` as runtime.session takes it."""
    try:
        encode, dimension = load_export(name, prepack)
        return encode, "onnxruntime", dimension
    except NoExport:
        pass
    embedder = load_embedder()
    try:
        export(embedder)
        encode, dimension = load_export(name, prepack)
        return encode, "onnxruntime", dimension
    except Exception as exc:  # any failure leaves PyTorch, which always works
        reason = str(exc) if isinstance(exc, NoExport) else _reason(exc)
        report(f"qa: note: questions are encoded with PyTorch ({reason})")
        return embedder.encode, "pytorch", embedder.dimension


def load_export(name: str | None, prepack: bool = True) -> tuple[Encoder, int]:
    """The cached export of the model and its dimension, checked against the probe vectors
    PyTorch gave when it was made; NoExport when there is none that gives them."""
    try:
        folder = Path(resolve_model(name or DEFAULT_MODEL))
        path = cache_dir() / export_name(folder)
        expected = np.load(path.with_suffix(".npy"))
        encode = _encoder(folder, path.with_suffix(".onnx"), prepack)
        if expected.shape[0] != len(PROBES) or np.abs(encode(PROBES) - expected).max() > TOLERANCE:
            raise ValueError("the export does not give the model's vectors")
        return encode, int(expected.shape[1])
    except Exception as exc:  # missing, damaged or stale: any reason means exporting again
        raise NoExport(_reason(exc)) from None


def export(embedder: Embedder) -> None:
    """Export the model's pipeline and the probe vectors PyTorch gives, each file atomically
    (the vectors last: they mark the export complete), then remove this model folder's
    earlier exports: each is about 90 MB, and a library upgrade would otherwise leave one
    behind every time."""
    path = cache_dir() / export_name(Path(resolve_model(embedder.name)))
    path.parent.mkdir(parents=True, exist_ok=True)
    on_model_thread(_export, embedder, path.with_suffix(".onnx"))
    partial = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.part")
    try:
        with open(partial, "wb") as fh:
            np.save(fh, embedder.encode(PROBES))
        os.replace(partial, path.with_suffix(".npy"))
    finally:
        partial.unlink(missing_ok=True)
    folder = path.name.split("-")[0]
    for old in path.parent.iterdir():
        # Also the exports named before names began with the folder's digest: never read again.
        earlier = old.stem.startswith(f"{folder}-") or LEGACY_NAME.fullmatch(old.stem)
        derived = ".ort" in old.name  # an export's optimised copy (runtime.session)
        ours = old.name.startswith(f"{path.name}.")
        if earlier and (old.suffix in (".onnx", ".npy") or derived) and not ours:
            runtime.remove(old)


def _installed(names: tuple[str, ...]) -> dict[str, str]:
    """The installed versions of these distributions, read from the names of their
    ``NAME-VERSION.dist-info`` folders on sys.path, as importlib.metadata reads them (whose
    import alone cost 0.03 s of every `qa ask`)."""
    def key(name: str) -> str:
        return re.sub(r"[-_.]+", "_", name).lower()

    wanted = {key(n): n for n in names}
    found: dict[str, str] = {}
    for entry in sys.path:
        try:
            listing = os.listdir(entry or ".")
        except OSError:
            continue
        for item in listing:
            name, _, version = item.removesuffix(".dist-info").partition("-")
            if item.endswith(".dist-info") and key(name) in wanted:
                found.setdefault(wanted[key(name)], version)
    return found


def _reason(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:200]}" if text else type(exc).__name__


def export_name(folder: Path) -> str:
    """A name for the export: a digest of the model folder's path, then one of its files
    (name, size, time) and the versions of the libraries that export and run it (read
    from their metadata: nothing is imported)."""
    if not folder.is_dir():
        raise ValueError(f"{str(folder)!r} is not a model folder")
    where = hashlib.sha256(str(folder.resolve()).encode()).hexdigest()[:8]
    digest = hashlib.sha256()
    versions = _installed(LIBRARIES)
    for library in LIBRARIES:
        digest.update(f"{library}={versions.get(library, 'absent')}\0".encode())
    for file in sorted(p for p in folder.rglob("*") if p.is_file()):
        info = file.stat()
        digest.update(f"{file.relative_to(folder)}\0{info.st_size}\0{info.st_mtime_ns}\0".encode())
    return f"{where}-{digest.hexdigest()[:24]}"


def _export(embedder: Embedder, path: Path) -> None:
    """Trace the model's pipeline on the probes and write it, atomically, as ONNX."""
    import torch

    model = embedder.model
    features = model.preprocess(PROBES)
    names = [k for k in INPUTS if k in features]

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


def _encoder(folder: Path, path: Path, prepack: bool) -> Encoder:
    """The export under ONNX Runtime, fed by the model's own tokenizer (tokenizer.json) set
    as sentence-transformers sets it: texts stripped, truncated to max_seq_length, padded
    to the longest, lower-cased when the model asks."""
    from tokenizers import Tokenizer

    settings = json.loads((folder / "sentence_bert_config.json").read_text(encoding="utf-8"))
    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    tokenizer.enable_truncation(int(settings["max_seq_length"]))
    padding = tokenizer.padding or {}
    tokenizer.enable_padding(pad_id=padding.get("pad_id", 0), pad_type_id=padding.get("pad_type_id", 0),
                             pad_token=padding.get("pad_token", "[PAD]"))
    lower = bool(settings.get("do_lower_case"))
    # Its threads sleep as soon as a question is encoded, rather than spin for a while on both
    # cores, which slowed the reader that runs next (engine p50: 24 -> 16 ms).
    session = runtime.session(path, path.parent, path.stem, spinning=False, prepack=prepack)
    wanted = [i.name for i in session.get_inputs()]
    if not set(wanted) <= set(INPUTS):
        raise ValueError(f"the export takes other inputs ({', '.join(wanted)})")
    dimension = session.get_outputs()[0].shape[-1]
    if not isinstance(dimension, int):
        raise ValueError("the export does not say its vectors' dimension")
    lock = threading.Lock()  # the Rust tokenizer must not be shared between threads

    def encode(texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, dimension), np.float32)
        texts = [t.strip().lower() if lower else t.strip() for t in texts]
        with lock:
            encodings = tokenizer.encode_batch(texts)
        columns = {"input_ids": [e.ids for e in encodings], "token_type_ids": [e.type_ids for e in encodings],
                   "attention_mask": [e.attention_mask for e in encodings]}
        return unit_rows(session.run(None, {k: np.array(columns[k], np.int64) for k in wanted})[0])

    return encode
