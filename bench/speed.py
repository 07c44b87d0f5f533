"""Speed benchmark: ours against the floor the model and FAISS set, and against a peer.

Run from the repository root (writes BENCHMARKS.md):

    .venv/bin/python bench/speed.py --dataset ../shared/data/squad2-dev-3articles.json \\
        [--haystack-python /tmp/haystack-venv/bin/python]

It builds a corpus of at least 2,000 chunks (16 copies of the dataset's articles plus
the seeds), then measures in one run, on this machine:
1. indexing throughput of ``qa index`` against ``model.encode`` on the same chunk texts;
2. query latency of ``Engine.ask`` and of ``POST /api/ask`` against the floor of encoding
   the question with ``model.encode`` plus one FAISS search (and, stricter, against the
   bare forward pass of PyTorch and of ONNX Runtime, each plus one FAISS search);
3. HTTP throughput with 1, 4 and 16 concurrent clients (zero errors expected);
4. cold start: from starting ``qa serve`` to its first answer;
5. with --haystack-python, a Haystack (haystack-ai 3.x) hybrid pipeline on the same chunks, model and
   questions (bench/peer_haystack.py, run in its own virtual environment).
Ratios matter more than absolute times: the machine is shared and drifts.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import load

from qa.engine import Engine
from qa.index import store
from qa.index.build import build_index
from qa.index.embedding import BATCH_SIZE, Embedder, on_model_thread
from qa.retriever.hybrid import DEPTH
from qa.runtime import CACHE_ENV
from qa.training.evaluation import covers, load_squad

ROOT = Path(__file__).resolve().parent.parent
COPIES = 16


def make_corpus(dataset: Path, folder: Path) -> list:
    """16 copies of the dataset's articles (each marked, so each is its own document) and the seeds."""
    questions = load_squad(dataset, folder / "articles")
    corpus = folder / "corpus"
    corpus.mkdir()
    for k in range(COPIES):
        for path in sorted((folder / "articles").iterdir()):
            name = path.name if k == 0 else f"copy{k:02d}-{path.name}"
            prefix = "" if k == 0 else f"Copy {k}.\n\n"
            (corpus / name).write_text(prefix + path.read_text(encoding="utf-8"), encoding="utf-8")
    for seed in (ROOT / "seeds").iterdir():
        (corpus / seed.name).write_bytes(seed.read_bytes())
    return questions


def chunk_texts(corpus: Path, scratch: Path, embedder: Embedder) -> list[str]:
    """The texts ``qa index`` will embed, found with the same chunker (not timed)."""
    from qa.index.chunking import ChunkSettings, chunk_text

    settings = ChunkSettings(limit_tokens=embedder.max_tokens - 2)
    out = []
    for path in sorted(corpus.iterdir()):
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
        _, chunks = chunk_text(text, embedder.count_tokens, settings)
        out.extend(text[c.start : c.end] for c in chunks)
    return out


def floor_seconds(embedder: Embedder, texts: list[str]) -> float:
    """Plain ``model.encode`` of the chunk texts, on the thread that runs the model."""
    t0 = time.perf_counter()
    on_model_thread(embedder.model.encode, texts, batch_size=BATCH_SIZE, normalize_embeddings=True)
    return time.perf_counter() - t0


def encode_floor(embedder: Embedder, question: str) -> np.ndarray:
    """The question's vector from plain ``model.encode``, on the thread that runs the model."""
    return on_model_thread(embedder.model.encode, [question], batch_size=BATCH_SIZE,
                           normalize_embeddings=True, show_progress_bar=False)


def pct(values: list[float], p: float) -> float:
    return float(np.percentile(values, p))


def timed(fn: Callable[[str], object], items: list[str]) -> list[float]:
    """Milliseconds of fn on each item, after a pause that lets other threads go idle."""
    time.sleep(1)
    out = []
    for item in items:
        t0 = time.perf_counter()
        fn(item)
        out.append((time.perf_counter() - t0) * 1000)
    return out


def http_asker(url: str) -> Callable[[str], None]:
    """One keep-alive connection; each call POSTs a question and reads the answer."""
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=60)

    def ask(question: str) -> None:
        conn.request("POST", "/api/ask", body=json.dumps({"question": question}),
                     headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        response.read()
        if response.status != 200:
            raise SystemExit(f"HTTP {response.status} for {question!r}")

    return ask


def machine() -> str:
    with open("/proc/cpuinfo") as fh:
        cpu = next((line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")),
                   platform.processor())
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{os.cpu_count()} cores ({cpu}), {mem:.0f} GiB, Python {platform.python_version()}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", type=Path, default=ROOT.parent / "shared/data/squad2-dev-3articles.json")
    p.add_argument("--queries", type=int, default=300, help="questions timed per measure")
    p.add_argument("--haystack-python", help="python of a venv with bench/haystack-requirements.txt")
    p.add_argument("--out", type=Path, default=ROOT / "BENCHMARKS.md")
    args = p.parse_args(argv)
    rows: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="qa-bench-") as tmp:
        tmp_path = Path(tmp)
        questions = make_corpus(args.dataset, tmp_path)
        asked = [q.text for q in questions][: args.queries]
        os.environ[CACHE_ENV] = str(tmp_path / "cache")  # the ONNX export: made in this run
        embedder = Embedder()
        embedder.encode(["warm up"])

        # 1. Indexing throughput against model.encode on the same chunk texts.
        # The floor is timed before and after the build and averaged, so drift on a shared
        # machine falls on both sides.
        index = tmp_path / "index"
        texts = chunk_texts(tmp_path / "corpus", tmp_path / "chunks-only", embedder)
        floor_before = floor_seconds(embedder, texts)
        build = build_index([tmp_path / "corpus"], index, embedder, report=lambda _: None, progress=False)
        floor_s = (floor_before + floor_seconds(embedder, texts)) / 2
        data = store.load(index)
        ours_rate, floor_rate = build.chunks / build.seconds, len(texts) / floor_s
        rows["index"] = (f"| indexing, {build.chunks} chunks | {ours_rate:.1f} chunks/s "
                         f"({build.seconds:.1f} s, whole `qa index`) | {floor_rate:.1f} chunks/s "
                         f"(`model.encode`, {floor_s:.1f} s) | **{ours_rate / floor_rate:.2f}** of floor |")

        # 2. Query latency: engine and HTTP against encode + one FAISS search.
        engine = Engine(index)
        for q in asked[:20]:
            engine.ask(q)
        def floor_query(q: str) -> None:
            data.dense.search(encode_floor(embedder, q), DEPTH)

        # In blocks, not question by question: PyTorch's and ONNX Runtime's threads keep
        # spinning for a while after each call, and taking turns would slow both. The
        # model.encode floor is timed first and last, and averaged, against drift.
        floor_ms = timed(floor_query, asked)
        bare_ms = timed(lambda q: data.dense.search(embedder.encode([q]), DEPTH), asked)
        engine_ms = timed(engine.ask, asked)
        onnx_ms = timed(lambda q: data.dense.search(engine.encode_question([q]), DEPTH), asked)
        floor_ms = floor_ms + timed(floor_query, asked)
        rows["engine"] = (f"| query, engine call | p50 {pct(engine_ms, 50):.1f} ms, p95 "
                          f"{pct(engine_ms, 95):.1f} ms | p50 {pct(floor_ms, 50):.1f} ms, p95 "
                          f"{pct(floor_ms, 95):.1f} ms | **{pct(engine_ms, 50) / pct(floor_ms, 50):.2f}x** "
                          f"floor (p50) |")
        rows["bare"] = (f"| query, engine call against PyTorch's bare forward pass + FAISS | "
                        f"p50 {pct(engine_ms, 50):.1f} ms | p50 {pct(bare_ms, 50):.1f} ms, "
                        f"p95 {pct(bare_ms, 95):.1f} ms | "
                        f"{pct(engine_ms, 50) / pct(bare_ms, 50):.2f}x (p50) |")
        rows["onnx"] = (f"| query, engine call against the ONNX Runtime forward pass + FAISS "
                        f"(questions run on {engine.question_runtime}) | "
                        f"p50 {pct(engine_ms, 50):.1f} ms | p50 {pct(onnx_ms, 50):.1f} ms, "
                        f"p95 {pct(onnx_ms, 95):.1f} ms | "
                        f"{pct(engine_ms, 50) / pct(onnx_ms, 50):.2f}x (p50) |")

        # 4. Cold start, the first on a machine (the model is exported to ONNX once) and the
        # usual one; then 2. over HTTP and 3. throughput under concurrency.
        os.environ[CACHE_ENV] = str(tmp_path / "fresh-cache")
        t0 = time.perf_counter()
        proc, url = load.start_server(index, 8, tmp_path / "server-first.log")
        http_asker(url)(asked[0])
        first_start = time.perf_counter() - t0
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        os.environ[CACHE_ENV] = str(tmp_path / "cache")
        t0 = time.perf_counter()
        proc, url = load.start_server(index, 8, tmp_path / "server.log")
        ask_http = http_asker(url)
        ask_http(asked[0])
        cold = time.perf_counter() - t0
        try:
            # The floor is timed again after, and the floors averaged.
            http_ms = timed(ask_http, asked)
            floor_p50 = pct(floor_ms + timed(floor_query, asked), 50)
            rows["http"] = (f"| query, `POST /api/ask` | p50 {pct(http_ms, 50):.1f} ms, p95 "
                            f"{pct(http_ms, 95):.1f} ms | p50 {floor_p50:.1f} ms | "
                            f"**{pct(http_ms, 50) / floor_p50:.2f}x** floor (p50) |")
            for clients in (1, 4, 16):
                tally, seconds = load.run(url, clients, 25 * clients + 100, None, 60)
                lat = sorted(tally.latencies_ms)
                rows[f"c{clients}"] = (
                    f"| {clients} concurrent client{'s' if clients > 1 else ''} | "
                    f"{len(lat) / seconds:.1f} questions/s, p50 {load.percentile(lat, 50):.0f} ms, "
                    f"p95 {load.percentile(lat, 95):.0f} ms | | {len(tally.errors)} errors |")
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
        rows["cold"] = (f"| cold start (`qa serve` to first answer) | {cold:.1f} s ({first_start:.1f} s "
                        "the first time on a machine, exporting the model to ONNX) | | |")

        peer = None
        if args.haystack_python:
            # Side by side on the dataset's own articles (one copy: gold spans are unambiguous).
            single = tmp_path / "articles-index"
            build_index([tmp_path / "articles"], single, embedder, report=lambda _: None, progress=False)
            ours = Engine(single)
            answerable = [q for q in questions if q.gold]
            for q in answerable[:20]:
                ours.ask(q.text)
            ours_ms = timed(lambda q: ours.ask(q.text), answerable)
            recall5 = np.mean([any(covers(x, q) for x in ours.ask(q.text)["passages"][:5])
                               for q in answerable])
            out = tmp_path / "peer.json"
            subprocess.run([args.haystack_python, str(ROOT / "bench/peer_haystack.py"), "--index",
                            str(single), "--dataset", str(args.dataset), "--out", str(out)],
                           check=True, env=dict(os.environ, HF_HUB_OFFLINE="1"))
            peer = json.loads(out.read_text())

    lines = [
        "# Benchmarks",
        "",
        "Command: `.venv/bin/python bench/speed.py"
        + (f" --haystack-python {args.haystack_python}`" if peer else "`"),
        f"Machine: {machine()}. Date: {time.strftime('%Y-%m-%d')}.",
        f"Corpus: {COPIES} copies of the 3 SQuAD 2.0 dev articles plus the seeds; "
        f"questions: the first {len(asked)} of the dataset.",
        "",
        "| measure | ours | floor | ratio |",
        "| --- | --- | --- | --- |",
        *[rows[k] for k in ("index", "engine", "http", "bare", "onnx", "c1", "c4", "c16", "cold")],
    ]
    if peer:
        lines += [
            "",
            f"## Side by side with {peer['peer']}",
            "",
            f"The dataset's {len(answerable)} answerable questions over its own articles: same chunks, "
            "same model, same machine, same run.",
            "",
            "| | recall@5 | query p50 | query p95 |",
            "| --- | --- | --- | --- |",
            f"| qa (engine call: retrieval and answer) | {recall5:.3f} | {pct(ours_ms, 50):.1f} ms "
            f"| {pct(ours_ms, 95):.1f} ms |",
            f"| Haystack hybrid, BM25 + embedding + RRF (retrieval only) | {peer['recall@5']:.3f} "
            f"| {peer['latency_p50_ms']:.1f} ms | {peer['latency_p95_ms']:.1f} ms |",
        ]
    args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
