"""Segments at scale, on synthetic corpora (random unit vectors, Zipf-distributed words).

For N chunks (default 100,000 and 1,000,000), in one run:
- the whole index written as one segment and published (what a full build saves);
- updating one document (a new small segment, the old copy marked deleted, a new
  manifest published) against an index of N chunks: the index's share of an update,
  without embedding the document (which costs what that document costs, at ~65 chunks/s);
- question p50 (retrieval and sentence reading) over the same chunks in ten segments and in
  one (their full merge), and whether the two answer the same (both approximate above
  50,000 chunks, so not always exactly).

    .venv/bin/python bench/segments.py [--chunks 100000 1000000]   # 12 GiB of memory at 1M
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scale import DIM, synthetic_parts

from qa.index import store
from qa.index.manifest import read_manifest
from qa.readers import ReadRequest, SentenceReader
from qa.retriever.hybrid import make_query, retrieve

DOC_CHUNKS = 20  # the updated document


def write(folder: Path, parts: list, deleted: dict[str, list[str]] | None = None,
          previous: list[dict] | None = None, size: int | None = None) -> list[dict]:
    """Write each part as a segment of an index of ``size`` chunks and publish all of them
    (after ``previous``)."""
    entries = list(previous or [])
    for documents, spans, chunk_vectors, sentence_vectors, chunk_texts, sentence_texts in parts:
        entry = store.write_segment(folder, documents, spans, chunk_vectors, sentence_vectors,
                                    chunk_texts, sentence_texts, size)
        counts = np.bincount(spans["chunk_doc"], minlength=len(documents))
        entry["sources"] = {d.source: int(counts[i]) for i, d in enumerate(documents)}
        entries.append(entry)
    for entry in entries:
        entry["deleted"] = sorted(set(entry["deleted"]) | set((deleted or {}).get(entry["name"], [])))
    store.publish(folder, {"model": "synthetic", "dimension": DIM, "chunking": {},
                           "documents": {}, "segments": entries})
    return entries


def p50(data: store.IndexData, questions: list[tuple[str, np.ndarray]]) -> tuple[float, list]:
    lat, said = [], []
    for text, vector in questions:
        t0 = time.perf_counter()
        passages = retrieve(data, make_query(data, text, vector), 5)
        reading = SentenceReader().read(ReadRequest(data, passages, "", SentenceReader.default_threshold))
        lat.append((time.perf_counter() - t0) * 1000)
        said.append((data.chunk_text(passages[0].chunk) if passages else "", reading.best))
    return float(np.percentile(lat, 50)), said


def row(n: int, rng: np.random.Generator) -> str:
    """One size: the ten-segment index, its full merge (the one segment of the same chunks),
    an update of one document, and question p50 over both."""
    tenths = synthetic_parts(n, rng, 10)
    with tempfile.TemporaryDirectory(prefix="qa-seg-") as tmp:
        ten, one = Path(tmp) / "ten", Path(tmp) / "one"
        write(ten, tenths, size=n)
        del tenths
        base = store.load(ten)
        questions = []
        for c in rng.integers(0, n, 200).tolist():  # 5 of a chunk's words, and its vector moved a little
            q = base.chunk_vectors[c] + (0.5 / np.sqrt(DIM)) * rng.standard_normal(DIM).astype(np.float32)
            words = base.chunk_text(c).replace(".", "").split()
            questions.append((" ".join(rng.choice(words, 5)), (q / np.linalg.norm(q)).astype(np.float32)))
        t0 = time.perf_counter()
        merged = store.combine({}, [store.load_segment(ten, e) for e in read_manifest(ten)["segments"]],
                               DIM, ten)
        parts = [(merged.documents, merged.spans, merged.chunk_vectors[:], merged.sentence_vectors[:],
                  [merged.chunk_text(i) for i in range(merged.chunk_count)],
                  [merged.sentence_text(i) for i in range(len(merged.spans["sent_start"]))])]
        combined = time.perf_counter() - t0
        t0 = time.perf_counter()
        entries = write(one, parts)
        full = time.perf_counter() - t0
        del merged, parts
        whole = store.load(one)
        lat_ten, said_ten = p50(base, questions)
        lat_one, said_one = p50(whole, questions)
        lat_ten, said_ten = p50(base, questions)  # again, warm, as the one segment's run was
        same = sum(x == y for x, y in zip(said_one, said_ten))
        del base, whole
        update = synthetic_parts(DOC_CHUNKS, rng, 1)[0]
        source = store.load_segment(one, entries[0]).documents[0].source
        update[0][0].source = source  # the same document, changed
        t0 = time.perf_counter()
        write(one, [update], {entries[0]["name"]: [source]}, entries, size=n)
        updated = time.perf_counter() - t0
    return (f"| {n:,} | {full:.1f} s | **{updated:.2f} s** | {lat_one:.1f} ms | {lat_ten:.1f} ms "
            f"({lat_ten / lat_one:.2f}x) | {combined + full:.1f} s | {same} of {len(questions)} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, nargs="*", default=[100_000, 1_000_000])
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    print("Synthetic corpora (random unit vectors, Zipf words; bench/scale.py's generator).")
    print("| chunks | full write (one segment) | update one document (index side) | question p50, "
          "one segment | ten segments | merge ten into one | same answers, ten and merged |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for n in args.chunks:
        print(row(n, rng), flush=True)


if __name__ == "__main__":
    main()
