"""Scale benchmark: dense and lexical search at 10k, 100k and 1M chunks.

    .venv/bin/python bench/scale.py [--sizes 10000 100000 1000000] [--out bench/SCALE.md]

Embedding a million chunks takes days on two cores, so this uses synthetic data
and says so: unit vectors drawn around 2,000 random topic centres (real embeddings
cluster; uniform random vectors would be an unfair worst case for any approximate
index), and texts of 40 words drawn from a Zipf-distributed 50,000-word vocabulary.
Queries are perturbed copies of stored vectors / short word samples. For each size
it reports the dense index that ``qa.store.dense_index`` chooses, its build time,
search latency, memory per chunk and recall@10 against exact search, and the BM25
index's build time and query latency (bm25s, an inverted index).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import bm25s
import faiss
import numpy as np

from qa.retrieval import bm25_top
from qa.store import dense_index

DIM = 384
TOPICS = 2000


def vectors(n: int, rng: np.random.Generator) -> np.ndarray:
    centres = rng.standard_normal((TOPICS, DIM)).astype(np.float32)
    out = np.empty((n, DIM), np.float32)
    for i in range(0, n, 100_000):
        m = min(100_000, n - i)
        block = centres[rng.integers(0, TOPICS, m)] + 0.9 * rng.standard_normal((m, DIM)).astype(np.float32)
        out[i : i + m] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out


def exact_top(data: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    scores = queries @ data.T
    return np.argsort(-scores, axis=1)[:, :k]


def index_bytes(index: faiss.Index) -> int:
    return int(faiss.serialize_index(index).nbytes)


def dense_row(n: int, rng: np.random.Generator, queries: int = 200) -> str:
    data = vectors(n, rng)
    picks = rng.integers(0, n, queries)
    # A question near a stored chunk: cosine about 0.9 to it.
    q = data[picks] + (0.5 / np.sqrt(DIM)) * rng.standard_normal((queries, DIM)).astype(np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    t0 = time.perf_counter()
    index, info = dense_index(data)
    build = time.perf_counter() - t0
    lat = []
    found = []
    for row in q:
        t0 = time.perf_counter()
        _, ids = index.search(row.reshape(1, -1), 10)
        lat.append((time.perf_counter() - t0) * 1000)
        found.append(ids[0])
    truth = exact_top(data, q, 10)
    recall = np.mean([len(set(f) & set(t)) / 10 for f, t in zip(found, truth)])
    size = index_bytes(index)
    return (f"| {n:,} | {info['type']} | {build:.1f} s | {np.percentile(lat, 50):.2f} ms | "
            f"{np.percentile(lat, 95):.2f} ms | {recall:.3f} | {size / n:.0f} B |")


def lexical_row(n: int, rng: np.random.Generator, queries: int = 200) -> str:
    vocab = np.array([f"w{i}" for i in range(50_000)])
    ranks = np.minimum(rng.zipf(1.3, size=(n, 40)), 50_000) - 1
    corpus = [vocab[r].tolist() for r in ranks]
    t0 = time.perf_counter()
    retriever = bm25s.BM25()
    retriever.index(corpus, show_progress=False)
    build = time.perf_counter() - t0
    lat = []
    for _ in range(queries):
        words = vocab[rng.integers(0, 5000, 5)].tolist()
        ids = np.array([retriever.vocab_dict[w] for w in words if w in retriever.vocab_dict] or [0])
        t0 = time.perf_counter()
        bm25_top(retriever, ids, 50)  # what qa.retrieval.lexical_search runs
        lat.append((time.perf_counter() - t0) * 1000)
    size = sum(a.nbytes for a in (retriever.scores["data"], retriever.scores["indices"],
                                   retriever.scores["indptr"]))
    return (f"| {n:,} | {build:.1f} s | {np.percentile(lat, 50):.2f} ms | {np.percentile(lat, 95):.2f} ms "
            f"| {size / n:.0f} B |")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    p.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "SCALE.md")
    args = p.parse_args(argv)
    rng = np.random.default_rng(7)
    dense = [dense_row(n, rng) for n in args.sizes]
    lexical = [lexical_row(n, rng) for n in args.sizes]
    lines = [
        "# Scale (synthetic data)",
        "",
        f"Command: `.venv/bin/python bench/scale.py --sizes {' '.join(map(str, args.sizes))}`",
        "",
        "Dense search (384-dimensional unit vectors, 1 query at a time, k = 10):",
        "",
        "| chunks | index | build | p50 | p95 | recall@10 vs exact | index bytes per chunk |",
        "| --- | --- | --- | --- | --- | --- | --- |",
        *dense,
        "",
        "Lexical search (bm25s inverted index, 40-word chunks, 5-word queries, k = 50):",
        "",
        "| chunks | build | p50 | p95 | index bytes per chunk |",
        "| --- | --- | --- | --- | --- |",
        *lexical,
    ]
    args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
