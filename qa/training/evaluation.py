"""``qa eval``: measure retrieval and answers on a SQuAD 1.1/2.0 file.

Each article is written out as a text file (paragraphs joined by a blank
line), indexed with the real pipeline, and every question is asked through
the engine. Gold answers are character spans of the articles, so retrieval
can be checked by span coverage and citations by reading the files back.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..contract import AskRequest
from ..engine import Engine
from ..errors import QAError
from ..index.build import build_index
from ..index.embedding import Embedder
from ..index.store import IndexData
from ..readers import READERS
from ..readers.abstention import FEATURES, fit, probability
from .metrics import exact_match, f1, normalize

SURE_PRECISION = 0.9  # answers at or above the "sure" level are right this share of the time

CALIBRATION_BINS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0001)
SWEEP = (0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5)


@dataclass
class Question:
    text: str
    source: str
    gold: list[tuple[int, int, str]]  # (start, end, text) in the article file; empty: unanswerable


def load_squad(path: Path, out_dir: Path) -> list[Question]:
    """Write the articles of a SQuAD file as text files and return the questions."""
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
        articles = raw["data"]
        if not isinstance(articles, list):
            raise TypeError("'data' is not a list")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise QAError(f"{path} is not a readable SQuAD JSON file ({exc})") from None
    out_dir.mkdir(parents=True, exist_ok=True)
    questions: list[Question] = []
    for number, article in enumerate(articles):
        title = str(article.get("title") or f"article-{number}")
        name = f"{number:03d}-{re.sub(r'[^A-Za-z0-9]+', '_', title).strip('_')[:60]}.txt"
        parts: list[str] = []
        offset = 0
        for para in article["paragraphs"]:
            context = para["context"]
            for qa in para["qas"]:
                gold = [
                    (offset + a["answer_start"], offset + a["answer_start"] + len(a["text"]), a["text"])
                    for a in qa.get("answers", [])
                ] if not qa.get("is_impossible") else []
                questions.append(Question(qa["question"], name, gold))
            parts.append(context)
            offset += len(context) + 2
        text = "\n\n".join(parts)
        with open(out_dir / name, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
    return questions


def covers(item: dict, q: Question) -> bool:
    return item["source"] == q.source and any(
        item["start"] <= s and e <= item["end"] for s, e, _ in q.gold
    )


def evaluate(dataset: Path, work_dir: Path, index_dir: Path, model: str | None = None,
             threshold: float | None = None,
             readers: tuple[str, ...] = READERS,
             reader_dir: Path | None = None) -> dict[str, tuple[dict, list[dict]]]:
    """Run every question through each reader over one index: per reader, the summary
    figures and one record per question."""
    corpus = work_dir / "corpus"
    questions = load_squad(dataset, corpus)
    embedder = Embedder(model)
    build_index([corpus], index_dir, embedder, report=lambda _: None, progress=False)
    files = {p.name: p.read_text(encoding="utf-8") for p in corpus.iterdir()}
    out = {}
    for name in readers:
        engine = Engine(index_dir, model, threshold, reader=name, reader_dir=reader_dir)
        records = [_record(engine, q, files) for q in questions]
        out[engine.reader.name] = (summarize(records), records)
    return out


def _record(engine: Engine, q: Question, files: dict[str, str]) -> dict:
    t0 = time.perf_counter()
    result, reading = engine.answer(AskRequest.of(q.text, top_k=5))
    ms = (time.perf_counter() - t0) * 1000
    golds = [g for _, _, g in q.gold]
    data = engine.data
    best = data.sentence_text(reading.best) if reading and reading.best is not None else ""
    if reading and reading.short is not None:  # what the reader would say, answered or not
        doc = data.sentence_span(reading.best)[0]
        best_short = doc.text[reading.short[0] : reading.short[1]]
    else:
        best_short = best
    said = (result["short_answer"] or {}).get("text") or result["answer"]
    quotes = result["citations"] + result["passages"]
    return {
        "question": q.text,
        "source": q.source,
        "answerable": bool(q.gold),
        "answered": result["answerable"],
        "confidence": result["confidence"],
        "answer": result["answer"],
        "short_answer": (result["short_answer"] or {}).get("text"),
        "r1": bool(q.gold) and any(covers(p, q) for p in result["passages"][:1]),
        "r5": bool(q.gold) and any(covers(p, q) for p in result["passages"][:5]),
        "contains": bool(q.gold) and result["answerable"] and any(
            normalize(g) in normalize(result["answer"]) for g in golds
        ),
        "em": exact_match(said, golds) if q.gold and result["answerable"] else 0.0,
        "f1": f1(said, golds) if q.gold and result["answerable"] else 0.0,
        "citations_ok": all(
            files.get(c["source"], "")[c["start"] : c["end"]] == c.get("quote", c.get("text"))
            for c in quotes
        ) and _short_ok(result, files),
        "ms": ms,
        "evidence": None if reading is None or reading.evidence is None
        else reading.evidence.tolist(),
        "best_right": bool(q.gold) and any(normalize(g) in normalize(best) for g in golds),
        "windows_read": len(reading.windows) if reading else 0,
        "read_holds": bool(reading) and any(holds_gold(data, w, q) for w in reading.windows),
        "chosen_holds": bool(reading and reading.windows)
        and holds_gold(data, reading.windows[reading.chosen], q),
        # Would the reader's best guess be right, had it answered: the reliability table's truth.
        "right": bool(q.gold) and (f1(best_short, golds) >= 0.5 if reading and reading.short
                                   else any(normalize(g) in normalize(best) for g in golds)),
    }


def holds_gold(data: IndexData, window: tuple[int, int, int], q: Question) -> bool:
    """The window (document, start, end) holds one of the question's gold answers whole."""
    doc, start, end = window
    return data.documents[doc].source == q.source and any(start <= s and e <= end for s, e, _ in q.gold)


def _short_ok(result: dict, files: dict[str, str]) -> bool:
    """The short answer reads back from its file and lies inside citation 1."""
    short = result["short_answer"]
    if short is None:
        return True
    first = result["citations"][0]
    return (files.get(short["source"], "")[short["start"] : short["end"]] == short["text"]
            and short["source"] == first["source"]
            and first["start"] <= short["start"] <= short["end"] <= first["end"])


def summarize(records: list[dict]) -> dict:
    answerable = [r for r in records if r["answerable"]]
    unanswerable = [r for r in records if not r["answerable"]]
    answered = [r for r in records if r["answered"]]
    ms = np.array([r["ms"] for r in records]) if records else np.zeros(1)

    def share(rows: list[dict], key: str) -> float:
        return round(sum(float(r[key]) for r in rows) / len(rows), 4) if rows else 0.0

    return {
        "questions": len(records),
        "recall@1": share(answerable, "r1"),
        "recall@5": share(answerable, "r5"),
        "answer_contains_gold": share(answerable, "contains"),
        "mean_answer_chars": round(float(np.mean([len(r["answer"]) for r in answered])), 1)
        if answered else 0.0,
        "short_answer_em": share(answerable, "em"),
        "short_answer_f1": share(answerable, "f1"),
        "abstained_when_unanswerable": round(1 - share(unanswerable, "answered"), 4)
        if unanswerable else 0.0,
        "answered_when_answerable": share(answerable, "answered"),
        "citation_valid": share(records, "citations_ok"),
        "latency_p50_ms": round(float(np.percentile(ms, 50)), 2),
        "latency_p95_ms": round(float(np.percentile(ms, 95)), 2),
    }


def funnel(records: list[dict]) -> list[tuple[str, float]]:
    """Where the gold answers of answerable questions were still in hand, stage by stage, so
    a miss can be put down to retrieval, to reading the wrong window, to the wrong sentence
    or to abstaining. The window stages are there for a reader that reads windows."""
    answerable = [r for r in records if r["answerable"]]
    if not answerable:
        return []
    stages = [("the top 5 passages", "r5")]
    if any(r["windows_read"] for r in answerable):
        stages += [("a window the reader read", "read_holds"), ("the window it chose", "chosen_holds")]
    stages += [("its best sentence", "best_right"), ("the answer given", "contains")]
    return [(label, round(sum(float(r[key]) for r in answerable) / len(answerable), 4))
            for label, key in stages]


def calibration(records: list[dict]) -> list[tuple[str, int, float, float]]:
    """Reliability table over every question: per confidence bin, how many, their mean
    confidence, and the share whose best guess is right (unanswerable ones never are)."""
    rows = []
    for lo, hi in zip(CALIBRATION_BINS, CALIBRATION_BINS[1:]):
        inside = [r for r in records if lo <= r["confidence"] < hi]
        if inside:
            rows.append((
                f"{lo:.1f}-{min(hi, 1.0):.1f}", len(inside),
                float(np.mean([r["confidence"] for r in inside])),
                float(np.mean([r["right"] for r in inside])),
            ))
    return rows


def threshold_sweep(records: list[dict],
                    thresholds: tuple[float, ...] = SWEEP) -> list[tuple[float, float, float]]:
    """What each abstention threshold would give: (threshold, answered when answerable,
    abstained when unanswerable)."""
    answerable = [r["confidence"] for r in records if r["answerable"]]
    unanswerable = [r["confidence"] for r in records if not r["answerable"]]
    return [(t, float(np.mean([c >= t for c in answerable])) if answerable else 0.0,
             float(np.mean([c < t for c in unanswerable])) if unanswerable else 0.0)
            for t in thresholds]


def fit_confidence(records: list[dict]) -> np.ndarray:
    """Logistic regression of "the best sentence holds a gold answer" on the reader's evidence.

    Unanswerable questions count as wrong whatever is read, so the fitted
    probability is the chance that an answer given is right.
    """
    from sklearn.linear_model import LogisticRegression

    rows = [r for r in records if r["evidence"] is not None]
    x = np.array([r["evidence"][:-1] for r in rows])
    y = np.array([r["best_right"] for r in rows])
    model = LogisticRegression(C=1.0, max_iter=5000).fit(x, y)
    return np.append(model.coef_[0], model.intercept_[0])


def fit_abstention(records: list[dict], precision: float = SURE_PRECISION) -> dict:
    """The span reader's abstention model fitted on these questions (unanswerable ones count
    as wrong), and the confidence at which its answers are right ``precision`` of the time:
    the "sure" level. Both as reader.json holds them."""
    rows = [r for r in records if r["evidence"] is not None and len(r["evidence"]) == len(FEATURES)]
    evidence = np.array([r["evidence"] for r in rows])
    right = np.array([r["right"] for r in rows])
    weights = fit(evidence, right)
    confidence = np.array([probability(weights, e) for e in evidence])
    return {"features": list(FEATURES), "weights": weights,
            "sure": sure_level(confidence, right, precision)}


def sure_level(confidence: np.ndarray, right: np.ndarray, precision: float = SURE_PRECISION) -> float:
    """The lowest confidence above which answers are right at least ``precision`` of the time
    (1.0: no such level)."""
    order = np.argsort(-confidence, kind="stable")
    hits = np.cumsum(right[order]) / np.arange(1, len(order) + 1)
    good = np.flatnonzero(hits >= precision)
    return round(float(confidence[order][good[-1]]), 4) if len(good) else 1.0


def report(results: dict[str, tuple[dict, list[dict]]], as_json: bool = False, fit: bool = False) -> str:
    """What ``qa eval`` prints for a SQuAD file: each reader's figures side by side, then its
    reliability, thresholds and where the gold answers were lost (or all of it as JSON)."""
    lines = []
    if fit and "sentence" in results:
        weights = fit_confidence(results["sentence"][1])
        lines.append("CONFIDENCE_WEIGHTS = np.array([" + ", ".join(f"{w:.4f}" for w in weights) + "])")
    if fit and "span" in results:  # reader.json's "abstention": learned on this set's unanswerables
        lines.append(json.dumps({"abstention": fit_abstention(results["span"][1])}))
    if as_json:
        lines.append(json.dumps({name: {**{k: v for k, v in figures.items() if k != "questions"},
                                        "gold_found_in": dict(funnel(records))}
                                 for name, (figures, records) in results.items()}))
        return "\n".join(lines)
    names = list(results)
    lines.append(f"{'reader':30s} " + " ".join(f"{n:>10s}" for n in names))
    for key in next(iter(results.values()))[0]:
        lines.append(f"{key:30s} " + " ".join(f"{results[n][0][key]!s:>10s}" for n in names))
    for name, (_, records) in results.items():
        lines.append(f"\n{name} reader, reliability (all questions: confidence bin, count, mean "
                     "confidence, share whose best guess is right)")
        lines += [f"  {b}  {n:5d}  {conf:.2f}  {right:.2f}" for b, n, conf, right in calibration(records)]
        lines.append(f"{name} reader, thresholds (threshold, answered when answerable, abstained when "
                     "unanswerable)")
        lines += [f"  {t:.2f}  {answered:.3f}  {abstained:.3f}" for t, answered, abstained in
                  threshold_sweep(records)]
        lines.append(f"{name} reader, where the gold answer was still found (answerable questions)")
        lines += [f"  {label:28s} {share:.3f}" for label, share in funnel(records)]
    return "\n".join(lines)
