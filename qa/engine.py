"""The engine: one object that answers questions from a loaded index.

Both the CLI and the web app call ``Engine.ask`` and return its dictionary
unchanged, so the answer JSON is defined here and only here.
"""

from __future__ import annotations

import bisect
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from . import store
from .answer import Reading
from .conversation import MAX_CHARS, rewrite, validate_history
from .embedding import DEFAULT_MODEL, Embedder
from .errors import QAError
from .onnx_questions import question_encoder
from .readers import load_reader
from .retrieval import make_query, retrieve

DEFAULT_TOP_K = 5
MAX_TOP_K = 20


class InvalidRequest(QAError):
    """The question, history or top_k the caller gave cannot be used."""


def check_question(question: object, name: str = "question") -> str:
    if not isinstance(question, str):
        raise InvalidRequest(f"{name} must be a string")
    if not question.strip():
        raise InvalidRequest(f"{name} is empty")
    if len(question) > MAX_CHARS:
        raise InvalidRequest(f"{name} is longer than {MAX_CHARS} characters")
    if "\x00" in question:
        raise InvalidRequest(f"{name} contains a null character")
    return question.strip()


def check_top_k(top_k: object) -> int:
    if top_k is None:
        return DEFAULT_TOP_K
    if isinstance(top_k, bool) or not isinstance(top_k, int) or not 1 <= top_k <= MAX_TOP_K:
        raise InvalidRequest(f"top_k must be a whole number from 1 to {MAX_TOP_K}")
    return top_k


class Engine:
    """A model and an index, loaded once; ``ask`` is safe to call from many threads."""

    def __init__(self, index_dir: Path, model: str | None = None,
                 threshold: float | None = None, reader: str = "span", reader_dir: Path | None = None,
                 report: Callable[[str], None] = lambda line: print(line, file=sys.stderr)) -> None:
        self.index_dir = Path(index_dir)
        manifest = store.read_manifest(self.index_dir)
        checked = store.verify_files(self.index_dir, manifest)  # refuse damage before the model loads
        self.model_name = model or manifest.get("model") or DEFAULT_MODEL
        self._embedder: Embedder | None = None
        self._embedder_lock = threading.Lock()
        self.encode_question, self.question_runtime, self.dimension = question_encoder(
            self.model_name, lambda: self.embedder, report)
        self.data = store.load(self.index_dir, self.model_name, self.dimension, verified=checked)
        self.reader = load_reader(reader, reader_dir, report)
        self.threshold = self.reader.default_threshold if threshold is None else threshold

    @property
    def embedder(self) -> Embedder:
        """The PyTorch model, loaded when first needed (to index uploads, or to export it for
        questions): answering questions needs only its ONNX export."""
        with self._embedder_lock:
            if self._embedder is None:
                self._embedder = Embedder(self.model_name)
            return self._embedder

    def reload(self) -> None:
        """Swap in the index's current build (after a rebuild) without a restart."""
        self.data = store.load(self.index_dir, self.model_name, self.dimension)

    def health(self) -> dict:
        data = self.data
        return {"status": "ok", "documents": len(data.documents), "chunks": data.chunk_count,
                "model": self.model_name, "reader": self.reader.name}

    def source_text(self, source: str) -> str | None:
        """Stored text of an indexed document, or None: nothing outside the index is read."""
        doc = self.data.document(source)
        return None if doc is None else doc.text

    def ask(self, question: object, history: object = None, top_k: object = None) -> dict:
        """Answer one question; the returned dict is the answer JSON."""
        return self.answer(question, history, top_k)[0]

    def search(self, query: object, top_k: object = None) -> list[dict]:
        """Retrieval only: the best passages for ``query``, as the answer JSON's ``passages`` lists them."""
        query = check_question(query, "query")
        k = check_top_k(top_k)
        data = self.data
        return [self._passage(data, p.chunk, p.score) for p in self._retrieve(data, query, k)]

    def _retrieve(self, data: store.IndexData, query: str, n: int) -> list:
        """The n best chunks for the query (none for an empty index or a query of stop words only)."""
        if not data.chunk_count or not store.tokenize([query])[0]:
            return []
        vector = self.encode_question([query])[0]
        return retrieve(data, make_query(data, query, vector), n)

    def answer(self, question: object, history: object = None,
               top_k: object = None) -> tuple[dict, Reading | None]:
        """The answer JSON and the reader's verdict behind it (for evaluation)."""
        started = time.perf_counter()
        question = check_question(question)
        try:
            turns = validate_history(history)
        except ValueError as exc:
            raise InvalidRequest(str(exc)) from None
        k = check_top_k(top_k)
        data = self.data
        said = rewrite(question, turns)
        # A follow-up: what it refers to (the last short answer, as the history gives it or as
        # the reader finds it again) stands in for the words that point at it, and is never
        # its own short answer.
        referent = said.referent or (self.reader.referent(*said.last) if said.last else "")
        said = said.resolved(referent)
        query = said.query
        passages = self._retrieve(data, query, max(k, 5))
        reading = None
        if passages:
            banned = tuple(dict.fromkeys(s for s in (referent, *said.shown) if s.strip()))
            reading = self.reader.read(data, passages, said.reader_question, self.threshold, said.avoid,
                                       banned, said.more)
        result = {
            "question": question,
            "query": query,
            "follow_up": said.why,
            "answer": "",
            "answerable": False,
            "confidence": round(reading.confidence, 4) if reading else 0.0,
            "short_answer": None,
            "citations": [],
            "passages": [self._passage(data, p.chunk, p.score) for p in passages[:k]],
        }
        if reading and reading.answer is not None:
            first = self._citation(data, reading.answer, 1, reading.through)
            result["answer"] = first["quote"]
            result["answerable"] = True
            result["citations"] = [first] + [
                dict(self._citation(data, s, i + 2), corroborates=1)
                for i, s in enumerate(reading.corroborating)
            ]
            if reading.short is not None:
                doc = data.documents[int(data.spans["sent_doc"][reading.answer])]
                start, end = reading.short
                result["short_answer"] = {"text": doc.text[start:end], "source": doc.source,
                                          "start": start, "end": end}
        result["took_ms"] = round((time.perf_counter() - started) * 1000, 2)
        return result, reading

    @staticmethod
    def _citation(data: store.IndexData, sentence: int, n: int, through: int | None = None) -> dict:
        """Sentence ``sentence`` (to sentence ``through`` of the same document, when the answer
        runs on) as a citation: the quote is exactly the stored text between the offsets."""
        doc = data.documents[int(data.spans["sent_doc"][sentence])]
        last = sentence if through is None else through
        start, end = int(data.spans["sent_start"][sentence]), int(data.spans["sent_end"][last])
        out = {"n": n, "source": doc.source, "start": start, "end": end,
               "quote": doc.text[start:end]}
        if doc.pages:
            out["page"] = bisect.bisect_right(doc.pages, start)
        return out

    @staticmethod
    def _passage(data: store.IndexData, chunk: int, score: float) -> dict:
        doc = data.documents[int(data.spans["chunk_doc"][chunk])]
        start, end = int(data.spans["chunk_start"][chunk]), int(data.spans["chunk_end"][chunk])
        out = {"source": doc.source, "start": start, "end": end, "text": doc.text[start:end],
               "score": round(float(score), 6)}
        if doc.pages:
            out["page"] = bisect.bisect_right(doc.pages, start)
        return out
