"""``qa eval`` on conversations: each dialog played turn by turn with its own history.

Two forms. Our chains (``eval/conversations.json``): documents and chains of turns, each
with the texts a right answer holds and the kind of follow-up it tests. Information-seeking
dialogs in QuAC's form (``chains.json`` beside a ``docs/`` folder): each dialog asks about
one document, turn by turn, with the gold spans of that document; played twice, over the
whole index and scoped to the dialog's document, and each later turn once more alone, its
figures also told apart by the rule that read it as a follow-up (or "standalone").
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from ..conversation import exchange
from ..engine import Engine
from ..errors import QAError
from ..index.build import build_index
from ..index.embedding import Embedder
from ..readers import READERS
from ..readers.kinds import asked_kind, is_kind
from .metrics import exact_match, f1, normalize


def load_chains(path: Path, out_dir: Path) -> list[dict]:
    """Write a conversation set's documents as files and return its chains."""
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
        documents, chains = raw["documents"], raw["chains"]
        out_dir.mkdir(parents=True, exist_ok=True)
        for doc in documents:
            name = Path(str(doc["name"])).name
            with open(out_dir / name, "w", encoding="utf-8", newline="") as fh:
                fh.write(str(doc["text"]))
        for chain in chains:
            for turn in chain["turns"]:
                if not isinstance(turn["question"], str) or not isinstance(turn["expected"], list):
                    raise TypeError("a turn needs a question and a list of expected texts")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise QAError(f"{path} is not a readable conversation set ({exc})") from None
    return chains


def is_conversation_set(path: Path) -> bool:
    try:
        return "chains" in json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError, TypeError):
        return False


def _turn_right(result: dict, expected: list[str]) -> bool:
    if not expected:
        return not result["answerable"]
    said = normalize(result["answer"])
    return result["answerable"] and any(normalize(e) in said for e in expected)


def _short_right(result: dict, expected: list[str]) -> bool:
    """The short answer is the expected answer, give or take words around it."""
    short = normalize((result["short_answer"] or {}).get("text") or "")
    return bool(short) and any(normalize(e) in short or short in normalize(e) for e in expected)


def evaluate_chains(dataset: Path, work_dir: Path, index_dir: Path, model: str | None = None,
                    threshold: float | None = None, readers: tuple[str, ...] = READERS,
                    reader_dir: Path | None = None) -> dict[str, dict]:
    """Ask every chain turn by turn with its history; per reader, the share of chains and
    turns right (by kind), and how many standalone turns history made worse than the
    same question asked alone."""
    corpus = work_dir / "corpus"
    chains = load_chains(dataset, corpus)
    build_index([corpus], index_dir, Embedder(model), report=lambda _: None, progress=False)
    out = {}
    for name in readers:
        engine = Engine(index_dir, model, threshold, reader=name, reader_dir=reader_dir)
        chains_right, by_kind, worse, failures, shorts = 0, {}, 0, [], []
        for chain in chains:
            history: list[dict] = []
            right = True
            for i, turn in enumerate(chain["turns"]):
                result = engine.ask(turn["question"], history)
                ok = _turn_right(result, turn["expected"])
                kind = turn.get("kind", "turn")
                by_kind.setdefault(kind, []).append(ok)
                if i and turn["expected"]:
                    shorts.append(_short_right(result, turn["expected"]))
                if i and result["follow_up"] is None:
                    alone = engine.ask(turn["question"])
                    worse += _turn_right(alone, turn["expected"]) and not ok
                if not ok:
                    right = False
                    said = (result["short_answer"] or {}).get("text") or result["answer"][:80]
                    failures.append(f"{chain.get('id', '?')} turn {i + 1} ({kind}): {turn['question']!r} -> "
                                    f"{said!r} (query {result['query'][:80]!r})")
                history += exchange(turn["question"], result)
            chains_right += right
        out[engine.reader.name] = {
            "chains": len(chains),
            "chains_right": round(chains_right / len(chains), 4) if chains else 0.0,
            "turns_right": {k: round(sum(v) / len(v), 4) for k, v in sorted(by_kind.items())},
            "standalone_made_worse": worse,
            "later_short_answers_right": [sum(shorts), len(shorts)],
            "failures": failures,
        }
    return out


def chains_report(results: dict[str, dict], as_json: bool = False) -> str:
    """What ``qa eval`` prints for a conversation set: chains right, turns right by kind, and
    every chain that went wrong."""
    if as_json:
        return json.dumps(results, ensure_ascii=False)
    lines = []
    for name, figures in results.items():
        lines.append(f"{name} reader: {figures['chains_right']:.3f} of {figures['chains']} chains right; "
                     f"standalone turns made worse by history: {figures['standalone_made_worse']}")
        lines += [f"  turns right, {kind:14s} {share:.3f}" for kind, share in figures["turns_right"].items()]
        right, turns = figures["later_short_answers_right"]
        lines.append(f"  short answer right, turns after the first: {right} of {turns}")
        lines += [f"  wrong: {line}" for line in figures["failures"]]
    return "\n".join(lines)


def is_dialog_set(path: Path) -> bool:
    """A set of information-seeking dialogs in QuAC's form: {"dialogs": [...]} beside docs/."""
    try:
        return "dialogs" in json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError, TypeError):
        return False


def load_dialogs(path: Path) -> tuple[list[dict], Path]:
    """The dialogs, and the folder of their documents."""
    try:
        dialogs = json.loads(Path(path).read_text(encoding="utf-8"))["dialogs"]
        docs = Path(path).parent / "docs"
        for dialog in dialogs:
            if not (docs / dialog["doc"]).is_file():
                raise FileNotFoundError(f"{docs / dialog['doc']} is missing")
            for turn in dialog["turns"]:
                if not isinstance(turn["question"], str) or not isinstance(turn["answers"], list):
                    raise TypeError("a turn needs a question and a list of answers")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise QAError(f"{path} is not a readable dialog set ({exc})") from None
    return dialogs, docs


def _turn(result: dict, turn: dict, doc: str, text: str) -> dict:
    """What one answer got right: answered, quote holds a gold answer, cited span in the
    dialog's own document overlapping a gold span, short answer EM/F1, kind of answer."""
    golds = [] if turn.get("unanswerable") else [g for g in turn["answers"] if g.strip()]
    answered = bool(result["answerable"])
    cited = result["citations"][0] if answered else None
    spans = [(at, at + len(g)) for g in golds if (at := text.find(g)) >= 0]
    short = (result["short_answer"] or {}).get("text") or ""
    kind = asked_kind(turn["question"])
    return {
        "answerable": bool(golds),
        "answered": answered,
        "right": (answered and any(normalize(g) in normalize(result["answer"]) for g in golds)
                  if golds else not answered),
        "contains": answered and any(normalize(g) in normalize(result["answer"]) for g in golds),
        "overlap": bool(cited) and cited["source"] == doc and any(
            cited["start"] < b and a < cited["end"] for a, b in spans),
        "em": exact_match(short, golds) if answered and golds and short else 0.0,
        "f1": f1(short, golds) if answered and golds and short else 0.0,
        "typed": bool(answered and short and kind),
        "wrong_kind": bool(answered and short and kind and not is_kind(kind, short)),
    }


def follow_up_rule(result: dict) -> str:
    """The rule that read a turn as a follow-up, as its answer's ``follow_up`` names it
    ("refers back", "continues the last question", …), or "standalone"."""
    why = result["follow_up"]
    return "standalone" if why is None else re.sub(r"\s*\(.*", "", why.split(";")[0].split(":")[0]).strip()


def _figures(turns: list[dict]) -> dict:
    answerable = [t for t in turns if t["answerable"]]
    typed = [t for t in turns if t["typed"]]

    def share(rows: list[dict], key: str) -> float:
        return round(sum(r[key] for r in rows) / len(rows), 4) if rows else 0.0

    return {"turns": len(turns), "answered": share(turns, "answered"),
            "abstained_when_unanswerable": share([t for t in turns if not t["answerable"]], "right")
            if len(answerable) < len(turns) else 0.0,
            "contains": share(answerable, "contains"), "overlap": share(answerable, "overlap"),
            "short_em": share(answerable, "em"), "short_f1": share(answerable, "f1"),
            "wrong_kind": share(typed, "wrong_kind"), "typed_answers": len(typed)}


def evaluate_dialogs(dataset: Path, work_dir: Path, index_dir: Path, model: str | None = None,
                     threshold: float | None = None, readers: tuple[str, ...] = READERS,
                     reader_dir: Path | None = None) -> dict[str, dict]:
    """Play every dialog with its history, over all documents and scoped to its own; ask
    later turns alone too. Per reader: figures for first and later turns of each way."""
    dialogs, docs = load_dialogs(dataset)
    build_index([docs], index_dir, Embedder(model), report=lambda _: None, progress=False)
    texts = {d["doc"]: (docs / d["doc"]).read_text(encoding="utf-8") for d in dialogs}
    out = {}
    for name in readers:
        engine = Engine(index_dir, model, threshold, reader=name, reader_dir=reader_dir)
        ways: dict[str, list[dict]] = {}
        by_rule: dict[str, list[dict]] = {}  # later turns with history and alone, by how they were read
        for dialog in dialogs:
            doc, text = dialog["doc"], texts[dialog["doc"]]
            for way, sources in (("history", None), ("scoped", [doc])):
                history: list[dict] = []
                for i, turn in enumerate(dialog["turns"]):
                    result = engine.ask(turn["question"], history, sources=sources)
                    played = _turn(result, turn, doc, text)
                    ways.setdefault(f"{way}, {'first' if i == 0 else 'later'} turns", []).append(played)
                    history += exchange(turn["question"], result)
                    if i and sources is None:
                        alone = _turn(engine.ask(turn["question"]), turn, doc, text)
                        ways.setdefault("alone, later turns", []).append(alone)
                        by_rule.setdefault(f"{follow_up_rule(result)}: history", []).append(played)
                        by_rule.setdefault(f"{follow_up_rule(result)}: alone", []).append(alone)
        ways.update(sorted(by_rule.items()))
        out[engine.reader.name] = {way: _figures(turns) for way, turns in ways.items()}
    return out


def dialogs_report(results: dict[str, dict], as_json: bool = False) -> str:
    """What ``qa eval`` prints for a dialog set: per reader, a row of figures per way."""
    if as_json:
        return json.dumps(results, ensure_ascii=False)
    lines = []
    for name, ways in results.items():
        keys = list(next(iter(ways.values())))
        lines.append(f"{name} reader{'':27s} " + " ".join(f"{k[:10]:>10s}" for k in keys))
        lines += [f"  {way:40s} " + " ".join(f"{figures[k]!s:>10s}" for k in keys)
                  for way, figures in ways.items()]
    return "\n".join(lines)
