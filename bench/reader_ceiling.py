"""How far the shipped span reader can take a set of questions, past what the engine reads.

    .venv/bin/python bench/reader_ceiling.py DATASET [--work-dir DIR] [--depth 20]

DATASET is a SQuAD-format file (``qa eval`` reads the same). Two measurements over its
answerable questions, with the real index, model and window rule:
- **Reading more windows.** The windows the engine opens around the best candidate
  sentences, in its order, up to 16. For the first 2, 4, 8 and 16: the share of questions
  where one of them holds a gold answer whole, and where the one the engine's rule
  (``window_choice``) would pick holds it. The engine reads 2, or 4 when unsure.
- **The reader as a reranker.** The top DEPTH chunks of retrieval, each read whole in the
  reader's windows; recall@5 of retrieval's order, and of the chunks reordered by their
  best answerable logit plus ``a`` times their retrieval score. It costs one model run per
  window (about 40 a question at depth 20 on COVID-QA's papers, ten times the engine's).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from qa.engine import Engine
from qa.index.build import build_index
from qa.index.embedding import Embedder
from qa.readers.base import Candidate, candidates, score
from qa.readers.span import window_choice
from qa.readers.windows import clip_question
from qa.retriever.hybrid import make_query, retrieve
from qa.training.evaluation import holds_gold, load_squad

COUNTS = (2, 4, 8, 16)
MIXES = (0.0, 1.0, 2.0, 4.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", type=Path)
    parser.add_argument("--work-dir", type=Path, default=None,
                        help="where the corpus and index go (kept; an index there is updated)")
    parser.add_argument("--depth", type=int, default=20, help="chunks the reranker reads")
    args = parser.parse_args()
    tmp = tempfile.TemporaryDirectory(prefix="qa-ceiling-")
    work = args.work_dir or Path(tmp.name)
    questions = [q for q in load_squad(args.dataset, work / "corpus") if q.gold]
    build_index([work / "corpus"], work / "index", Embedder(), report=lambda _: None, progress=False)
    engine = Engine(work / "index")
    reader, data = engine.reader, engine.data
    read_holds = {n: [] for n in COUNTS}
    chosen_holds = {n: [] for n in COUNTS}
    before, after = [], {a: [] for a in MIXES}
    for q in questions:
        question = clip_question(reader.tokenizer, q.text)
        passages = retrieve(data, make_query(data, q.text, engine.encode_question([q.text])[0]),
                            max(5, args.depth))
        windows = reader.windows(data, score(data, candidates(passages)), max(COUNTS))
        reads = reader.read_windows(question, windows)
        holds = [holds_gold(data, (data.sentence_document(r.first), r.window.start,
                                   r.window.start + len(r.window.text)), q) for r in reads]
        for n in COUNTS:
            read_holds[n].append(any(holds[:n]))
            choice = max(range(min(n, len(reads))), key=lambda i: window_choice(i, reads[i]), default=None)
            chosen_holds[n].append(choice is not None and holds[choice])
        best, chunk_holds = [], []
        for p in passages:
            whole = [Candidate(s, p.chunk, np.zeros(0), 0.0) for s in data.chunk_sentences(p.chunk)]
            tiles = reader.windows(data, whole, len(whole))
            best.append(max(r.evidence[0] for r in reader.read_windows(question, tiles)))
            _, start, end = data.chunk_span(p.chunk)
            chunk_holds.append(holds_gold(data, (data.chunk_document(p.chunk), start, end), q))
        before.append(any(chunk_holds[:5]))
        for a in MIXES:
            order = np.argsort(-(np.array(best) + a * np.array([p.score for p in passages])), kind="stable")
            after[a].append(any(chunk_holds[i] for i in order[:5]))
    print(f"{args.dataset}: {len(questions)} answerable questions")
    print("windows read | one holds the answer | the chosen one holds it")
    for n in COUNTS:
        print(f"{n:12d} | {np.mean(read_holds[n]):20.3f} | {np.mean(chosen_holds[n]):23.3f}")
    print(f"recall@5 of the top {args.depth} chunks: retrieval's order {np.mean(before):.3f}")
    for a in MIXES:
        print(f"  reordered by the reader's best answerable logit + {a:g} x retrieval score: "
              f"{np.mean(after[a]):.3f}")


if __name__ == "__main__":
    main()
