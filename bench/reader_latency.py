"""Where a question's time goes with the span reader, stage by stage.

    .venv/bin/python bench/reader_latency.py [--index DIR] [--rounds N]

Builds the seeds' index if none is given, then times each stage of
``Engine.answer`` for the seeds' questions (on-topic and off-topic, from
eval/seeds-offtopic.json): question encoding (ONNX Runtime), retrieval, and
reading (sentence scoring, windows, tokenising, the reader model on ONNX
Runtime, int8, one run per window side by side, span decoding and
calibration). Prints p50 per stage and the engine's own p50 for both readers.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from qa.engine import Engine
from qa.index.build import build_index
from qa.index.embedding import Embedder
from qa.readers.base import ReadRequest, candidates, score
from qa.readers.windows import clip_question
from qa.retriever.hybrid import make_query, retrieve

ROOT = Path(__file__).resolve().parent.parent


def questions() -> list[str]:
    data = json.loads((ROOT / "eval" / "seeds-offtopic.json").read_text(encoding="utf-8"))
    return [qa["question"] for a in data["data"] for p in a["paragraphs"] for qa in p["qas"]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", type=Path, default=None)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    tmp = tempfile.TemporaryDirectory(prefix="qa-bench-")
    index = args.index or Path(tmp.name) / "index"
    if args.index is None:
        build_index([ROOT / "seeds"], index, Embedder(), report=lambda _: None, progress=False)
    qs = questions()
    for name in ("span", "sentence"):
        engine = Engine(index, reader=name)
        for q in qs:
            engine.ask(q)
        took = []
        for _ in range(args.rounds):
            for q in qs:
                t = time.perf_counter()
                engine.ask(q)
                took.append((time.perf_counter() - t) * 1000)
        print(f"engine.ask with the {name} reader: p50 {np.percentile(took, 50):.1f} ms, "
              f"p95 {np.percentile(took, 95):.1f} ms ({len(took)} questions)")

    engine = Engine(index)
    reader, data = engine.reader, engine.data
    stages: dict[str, list[float]] = {k: [] for k in ("encode question", "retrieve", "read")}
    widths = []
    for _ in range(args.rounds):
        for q in qs:
            t0 = time.perf_counter()
            vector = engine.encode_question([q])[0]
            t1 = time.perf_counter()
            passages = retrieve(data, make_query(data, q, vector), 5)
            t2 = time.perf_counter()
            reader.read(ReadRequest(data, passages, q, reader.default_threshold))
            t3 = time.perf_counter()
            windows = reader.windows(data, score(data, candidates(passages)))
            question = clip_question(reader.tokenizer, q)
            widths.append([len(reader.tokenizer.encode(question, w.text)) for w, _ in windows])
            for key, a, b in zip(stages, (t0, t1, t2), (t1, t2, t3)):
                stages[key].append((b - a) * 1000)
    print(f"reader input: {np.mean([len(w) for w in widths]):.1f} windows of "
          f"{np.mean([x for w in widths for x in w]):.0f} word pieces (mean)")
    for key, values in stages.items():
        print(f"  {key:22s} p50 {np.percentile(values, 50):6.2f} ms")


if __name__ == "__main__":
    main()
