"""Indexing throughput: a local build against Ray with 1 and 2 embedding workers.

Run from the repository root (needs the ray extra: pip install -e '.[ray]'):

    HF_HUB_OFFLINE=1 .venv/bin/python bench/ray_index.py [--documents 50 --paragraphs 20 --repeat 2]

It writes a synthetic corpus (made-up sentences, about 1,000 chunks), then builds the
index from scratch three ways in each round: locally (`build_index`, as `qa index`), and
on a local Ray started once by this script with 1 and with 2 workers (as `qa index --ray
--workers N`); each way's best time over the rounds counts (the machine is shared and
drifts). A build's time includes everything but loading the driver's model: on Ray,
starting the actors and loading the model in each, which the last line measures alone
(a one-chunk build). Ray's own start is timed apart (once per `qa index --ray` command).
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from qa.index.build import build_index
from qa.index.embedding import Embedder
from qa.index.ray_build import RaySegments, ray_session, require_ray

WORDS = ["harbour", "council", "ferry", "lighthouse", "granite", "winter", "market", "fishermen",
         "archive", "bridge", "railway", "museum", "orchard", "glacier", "valley", "river", "ledger",
         "mayor", "treaty", "festival", "island", "engineer", "cliff", "pier", "school", "mill"]


def write_corpus(folder: Path, documents: int, paragraphs: int, seed: int = 1) -> None:
    """Documents of made-up sentences; a paragraph of about 12 sentences makes about one chunk."""
    rng = random.Random(seed)
    folder.mkdir(parents=True)
    for d in range(documents):
        blocks = [" ".join(" ".join(rng.choices(WORDS, k=rng.randint(8, 16))).capitalize()
                           + f" in {rng.randint(1800, 2020)}." for _ in range(12))
                  for _ in range(paragraphs)]
        (folder / f"doc_{d:04d}.txt").write_text("\n\n".join(blocks) + "\n", encoding="utf-8")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--documents", type=int, default=50)
    ap.add_argument("--paragraphs", type=int, default=20, help="paragraphs per document")
    ap.add_argument("--repeat", type=int, default=2, help="rounds; each build's best time counts")
    args = ap.parse_args()
    ray = require_ray()
    embedder = Embedder()
    builds = {"local (one process)": None, "Ray, 1 worker": RaySegments(workers=1),
              "Ray, 2 workers": RaySegments(workers=2)}
    best: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="qa-ray-bench-") as tmp:
        corpus, small = Path(tmp) / "corpus", Path(tmp) / "small"
        write_corpus(corpus, args.documents, args.paragraphs)
        write_corpus(small, 1, 1)
        started = time.perf_counter()
        with ray_session():
            ray_start = time.perf_counter() - started
            for _ in range(args.repeat):  # rounds, so that a slow minute on a shared machine hits all
                for name, step in builds.items():
                    seconds, chunks = timed(corpus, Path(tmp) / "index", embedder, step)
                    best[name] = min(seconds, best.get(name, seconds))
            fixed = min(timed(small, Path(tmp) / "small-ray", embedder, builds["Ray, 1 worker"])[0]
                        - timed(small, Path(tmp) / "small-local", embedder, None)[0]
                        for _ in range(args.repeat))
    local = best["local (one process)"]
    print(f"corpus: synthetic (made-up sentences), {args.documents} documents, {chunks:,} chunks")
    print(f"machine: {os.cpu_count()} CPU cores, Ray {ray.__version__}; best of {args.repeat} rounds; "
          f"local Ray started in {ray_start:.1f} s (once per command, not in the builds)")
    print(f"{'build':20s} {'seconds':>8s} {'chunks/s':>9s} {'vs local':>9s} {'overhead':>9s}")
    for name, seconds in best.items():
        print(f"{name:20s} {seconds:8.1f} {chunks / seconds:9.1f} {seconds / local:8.2f}x "
              f"{seconds - local:+8.1f}s")
    print(f"Ray's fixed cost per build (one 1-chunk document, 1 worker, minus the local build of it): "
          f"{fixed:.1f} s")
    return 0


def timed(corpus: Path, index: Path, embedder: Embedder, step: RaySegments | None) -> tuple[float, int]:
    """Seconds to build the index from scratch, and its chunks."""
    started = time.perf_counter()
    result = build_index([corpus], index, embedder, report=lambda _: None, progress=False, rebuild=True,
                         write_segments=step)
    return time.perf_counter() - started, result.chunks


if __name__ == "__main__":
    sys.exit(main())
