"""The engine: one object that answers questions from a loaded index.

Every front end (CLI, web app, MCP server, Python) calls ``Engine.ask`` and passes on
the answer it builds unchanged; what that answer holds is ``qa.contract.Answer``.
"""

from __future__ import annotations

import bisect
import os
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from . import pages
from .contract import Answer, AskRequest, Citation, Passage, SearchRequest, ShortAnswer
from .conversation import rewrite
from .errors import InvalidRequest
from .index import store
from .index.embedding import DEFAULT_MODEL, Embedder
from .index.manifest import read_manifest, verify_files
from .index.questions import question_encoder
from .index.words import tokenize
from .readers import Reading, ReadRequest, load_reader
from .retriever.hybrid import bm25_top, make_query, retrieve
from .subject import Subject, follow


class Engine:
    """A model and an index, loaded once; ``ask`` is safe to call from many threads."""

    def __init__(self, index_dir: Path, model: str | None = None,
                 threshold: float | None = None, reader: str = "span", reader_dir: Path | None = None,
                 report: Callable[[str], None] = lambda line: print(line, file=sys.stderr),
                 brief: bool = False) -> None:
        """``brief``: the process answers a question or so and ends, so the models load
        fast rather than run fast (runtime.session's ``prepack``)."""
        self.index_dir = Path(index_dir)
        manifest = read_manifest(self.index_dir)
        checked = verify_files(self.index_dir, manifest)  # refuse damage before the model loads
        self.model_name = model or manifest.get("model") or DEFAULT_MODEL
        self._embedder: Embedder | None = None
        self._embedder_lock = threading.Lock()
        # The reader loads on the other core while the question encoder and the index do.
        with ThreadPoolExecutor(1) as pool:
            reading = pool.submit(load_reader, reader, reader_dir, report, not brief)
            self.encode_question, self.question_runtime, self.dimension = question_encoder(
                self.model_name, lambda: self.embedder, report, not brief)
            self.data = store.load(self.index_dir, self.model_name, self.dimension, verified=checked)
            self.reader = reading.result()
        self.threshold = self.reader.default_threshold if threshold is None else threshold

    @property
    def embedder(self) -> Embedder:
        """The PyTorch model, loaded when first needed (to index uploads, or to export it for
        questions): answering questions needs only its ONNX export."""
        with self._embedder_lock:
            if self._embedder is None:
                self._embedder = Embedder(self.model_name)
            return self._embedder

    def build_signature(self) -> store.Signature:
        """What identifies the index's published build on disk: it changes when it is rebuilt."""
        return store.build_signature(self.index_dir)

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

    def document_hash(self, source: str) -> str | None:
        """SHA-256 of an indexed document's content, which names its version (None: not indexed)."""
        doc = self.data.document(source)
        return None if doc is None else doc.sha256

    def page_image(self, source: str, page: int, width: object = None,
                   cited: tuple[int, int] | None = None, short: tuple[int, int] | None = None) -> bytes:
        """Page ``page`` of an indexed PDF as a PNG, characters ``cited`` and ``short`` highlighted
        when given; PageUnavailable says why not (only indexed files, unchanged, are shown)."""
        data = self.data
        return pages.page_png(data.manifest, data.document(source), source, page, width, cited, short)

    def ask(self, question: object, history: object = None, top_k: object = None,
            sources: object = None) -> Answer:
        """Answer one question, within ``sources`` (document names or folders) when given;
        checked here: InvalidRequest says what is wrong."""
        return self.answer(AskRequest.of(question, history, top_k, sources))[0]

    def search(self, query: object, top_k: object = None, sources: object = None) -> list[Passage]:
        """Retrieval only: the best passages for ``query``, as the answer lists them."""
        return self.find(SearchRequest.of(query, top_k, sources))

    def find(self, request: SearchRequest) -> list[Passage]:
        """The passages a checked search request asks for."""
        data = self.data
        within = self._within(data, request.sources)
        return [self._passage(data, p.chunk, p.score)
                for p in self._retrieve(data, request.query, request.top_k, within)]

    @staticmethod
    def _within(data: store.IndexData, sources: tuple[str, ...]) -> np.ndarray | None:
        """The chunks of the documents and folders named (None: no scope); an unknown name is
        an InvalidRequest, never an empty answer."""
        if not sources:
            return None
        documents: list[int] = []
        for source in sources:
            found = data.documents_within(source) or _on_disk(data, source)
            if not found:
                raise InvalidRequest(f"unknown source {source!r}: no indexed document is called that "
                                     "or lies in that folder")
            documents += found
        return data.chunks_of(documents)

    def _retrieve(self, data: store.IndexData, query: str, n: int,
                  within: np.ndarray | None = None, preferred: frozenset[int] = frozenset()) -> list:
        """The n best chunks for the query (none for an empty index or a query of stop words
        only), the chunks of the ``preferred`` documents (positions) ranked higher."""
        if not data.chunk_count or not tokenize([query])[0] or (within is not None and not len(within)):
            return []
        vector = self.encode_question([query])[0]
        prefer = data.chunks_of(sorted(preferred)) if preferred else None
        return retrieve(data, make_query(data, query, vector), n, within, prefer)

    @staticmethod
    def _subject(data: store.IndexData, request: AskRequest) -> Subject:
        """What the conversation is about, the documents earlier answers quoted included."""
        def answered_in(turn: dict) -> str | None:
            if turn["source"] and data.document(turn["source"]) is not None:
                return turn["source"]
            return _quoted_in(data, turn["content"])

        def mentions(name: str, sources: tuple[str, ...]) -> bool:
            return any(name in doc.text for s in sources if (doc := data.document(s)) is not None)

        history = request.history
        return follow(history, request.question,
                      [answered_in(t) for t in history if t["role"] == "assistant"], mentions)

    def answer(self, request: AskRequest) -> tuple[Answer, Reading | None]:
        """The answer to a checked request, and the reader's verdict behind it (for evaluation)."""
        started = time.perf_counter()
        data = self.data
        within = self._within(data, request.sources)
        said = rewrite(request.question, list(request.history))
        subject = self._subject(data, request)
        # A follow-up: what it refers to (the last short answer, as the history gives it or as
        # the reader finds it again) is never its own short answer; the subject's name, or
        # else that answer, stands in for the words that point at it.
        referent = said.referent or (self.reader.referent(*said.last) if said.last else "")
        asked = [t["content"] for t in request.history if t["role"] == "user"]
        named = subject.read(said.asked, asked[-1]) if said.asked and asked else None
        said = said.read_as(named, subject.names[0]) if named else said.resolved(referent)
        preferred = frozenset(i for s in subject.sources for i in data.documents_within(s))
        passages = self._retrieve(data, said.query, max(request.top_k, 5), within, preferred)
        reading = None
        if passages:
            banned = tuple(dict.fromkeys(s for s in (referent, *said.shown) if s.strip()))
            reading = self.reader.read(ReadRequest(data, passages, said.reader_question, self.threshold,
                                                   said.avoid, banned, said.more, preferred))
        result = Answer(
            question=request.question,
            query=said.query,
            follow_up=said.why,
            answer="",
            answerable=False,
            sure=False,
            confidence=round(reading.confidence, 4) if reading else 0.0,
            short_answer=None,
            citations=[],
            passages=[self._passage(data, p.chunk, p.score) for p in passages[:request.top_k]],
            scope=list(request.sources),
            subject=subject.as_json(),
            took_ms=0.0,
        )
        if reading and reading.answer is not None:
            first = self._citation(data, reading.answer, 1, reading.through)
            result["answer"] = first["quote"]
            result["subject"] = subject.answered(first["source"]).as_json()
            result["answerable"] = True
            result["sure"] = reading.confidence >= self.reader.sure_level
            result["citations"] = [first] + [
                Citation(**self._citation(data, s, i + 2), corroborates=1)
                for i, s in enumerate(reading.corroborating)
            ]
            if reading.short is not None:
                doc = data.sentence_span(reading.answer)[0]
                start, end = reading.short
                result["short_answer"] = ShortAnswer(text=doc.text[start:end], source=doc.source,
                                                     start=start, end=end)
                if doc.boxes is not None:
                    result["short_answer"]["boxes"] = pages.highlight(doc, start, end)
        result["took_ms"] = round((time.perf_counter() - started) * 1000, 2)
        return result, reading

    @staticmethod
    def _citation(data: store.IndexData, sentence: int, n: int, through: int | None = None) -> Citation:
        """Sentence ``sentence`` (to sentence ``through`` of the same document, when the answer
        runs on) as a citation: the quote is exactly the stored text between the offsets."""
        doc, start, end = data.sentence_span(sentence)
        if through is not None:
            end = data.sentence_span(through)[2]
        out = Citation(n=n, source=doc.source, start=start, end=end, quote=doc.text[start:end])
        if doc.pages:
            out["page"] = bisect.bisect_right(doc.pages, start)
        if doc.boxes is not None:  # a PDF: where the quote is printed (qa.pages)
            out["boxes"] = pages.highlight(doc, start, end)
        return out

    @staticmethod
    def _passage(data: store.IndexData, chunk: int, score: float) -> Passage:
        doc, start, end = data.chunk_span(chunk)
        out = Passage(source=doc.source, start=start, end=end, text=doc.text[start:end],
                      score=round(float(score), 6))
        if doc.pages:
            out["page"] = bisect.bisect_right(doc.pages, start)
        return out


def _quoted_in(data: store.IndexData, quote: str) -> str | None:
    """The indexed document that holds this quote word for word, or None: looked for among
    the documents of the chunks that share most of its words."""
    quote = quote.strip()
    terms = [data.lexical.vocab_dict[t] for t in set(tokenize([quote])[0]) if t in data.lexical.vocab_dict]
    if not quote or not terms:
        return None
    for chunk in bm25_top(data.lexical, np.array(sorted(terms), dtype=np.int64), 5)[0].tolist():
        doc = data.chunk_span(chunk)[0]
        if quote in doc.text:
            return doc.source
    return None


def _on_disk(data: store.IndexData, path: str) -> list[int]:
    """The indexed documents at ``path`` as a user names it on disk ("seeds/report.txt"): a
    file or folder inside one of the folders the index was built from."""
    if not os.path.exists(path):
        return []
    where = os.path.realpath(path)
    for root in data.manifest.get("sources", []):
        root = os.path.realpath(root)
        if where == root and os.path.isfile(root):
            return data.documents_within(os.path.basename(root))
        if os.path.isdir(root) and (where + os.sep).startswith(root + os.sep):
            inside = os.path.relpath(where, root)
            return list(range(len(data.documents))) if inside == "." else data.documents_within(
                Path(inside).as_posix())
    return []
