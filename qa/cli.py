"""The ``qa`` command: index, ask, chat, eval, serve and mcp.

Exit codes: 0 when it answered (or abstained), 2 for usage errors, 1 for
anything else; every error is one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import sys
import tempfile
from pathlib import Path

from .contract import AskRequest
from .errors import InvalidRequest, QAError
from .index.sources import shown
from .options import DEFAULT_INDEX, EngineOptions, default_sources, open_engine
from .readers import READERS
from .readers.sentence import DEFAULT_THRESHOLD
from .readers.span import DEFAULT_THRESHOLD as SPAN_THRESHOLD

TRAIN = "train-reader"


def _say(line: str) -> None:
    print(line, file=sys.stderr)


def _embedder(model: str | None):
    from .index.embedding import Embedder

    return Embedder(model)


def cmd_index(args: argparse.Namespace) -> int:
    from .index.build import build_index

    sources = [Path(s) for s in args.sources] or default_sources()
    missing = [s for s in sources if not os.path.lexists(s)]
    if missing:  # before the model loads: a mistyped path is said at once
        _say(f"qa: error: no such file or folder: {shown(missing[0])}")
        return 2
    if args.ray is None:
        if args.workers is not None:
            _say("qa: error: --workers needs --ray")
            return 2
        result = build_index(sources, args.index, _embedder(args.model), rebuild=args.rebuild, report=_say,
                             optimize=args.optimize)
    else:
        from .index.ray_build import RayMissing, RaySegments, ray_session, require_ray

        try:
            require_ray()
        except RayMissing as exc:
            _say(f"qa: error: {exc}")
            return 2
        embedder = _embedder(args.model)
        with ray_session(None if args.ray == LOCAL_RAY else args.ray):
            result = build_index(sources, args.index, embedder, rebuild=args.rebuild, report=_say,
                                 write_segments=RaySegments(workers=args.workers), optimize=args.optimize)
    _say(result.summary())
    return 0


LOCAL_RAY = "local"


def _ray_address(value: str) -> str:
    """An argparse type: where --ray connects (``local`` starts Ray here)."""
    if value in ("auto", LOCAL_RAY) or "://" in value or re.fullmatch(r"[\w.-]+:\d+", value):
        return value
    raise argparse.ArgumentTypeError(
        f"{value!r} is not a Ray address (auto, ray://HOST:PORT or HOST:PORT); "
        "give the sources before --ray"
    )


def _engine(args: argparse.Namespace, brief: bool = False):
    return open_engine(EngineOptions(args.index, args.model, args.threshold, args.reader, args.reader_dir,
                                     brief))


def _history(path: str | None) -> list:
    """The earlier turns from a JSON file (or - for standard input), as the API takes them."""
    if path is None:
        return []
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
        return json.loads(text)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise QAError(f"--history {path}: not a readable JSON file ({exc})") from None


def cmd_ask(args: argparse.Namespace) -> int:
    from .terminal import add_lines, format_answer

    request = AskRequest.of(args.question, _history(args.history), args.top_k, args.source)  # checked first
    engine = _engine(args, brief=True)
    result = engine.answer(request)[0]
    if args.json:
        print(json.dumps(result, ensure_ascii=False, indent=1))
    else:
        print(format_answer(add_lines(result, engine), sys.stdout.isatty()))
    if args.show_page:
        show_page(engine, result, Path(args.show_page))
    return 0


def show_page(engine, result: dict, out: Path) -> None:
    """Write the PDF page citation 1 is printed on, the quote and short answer highlighted."""
    cited = result["citations"][0] if result["citations"] else None
    if cited is None or not cited.get("boxes"):
        why = "no citation (the sources don't say)" if cited is None else f"{cited['source']} is not a PDF"
        raise QAError(f"--show-page: {why}; nothing written to {out}")
    short = result["short_answer"]
    page = cited["boxes"][0]["page"]
    png = engine.page_image(cited["source"], page, cited=(cited["start"], cited["end"]),
                            short=(short["start"], short["end"]) if short else None)
    try:
        out.write_bytes(png)
    except OSError as exc:
        raise QAError(f"--show-page: cannot write {out} ({exc.strerror or exc})") from None
    _say(f"wrote page {page} of {cited['source']} to {out}")


def cmd_chat(args: argparse.Namespace) -> int:
    from .terminal import chat

    return chat(_engine(args), args.top_k, args.source)


def cmd_eval(args: argparse.Namespace) -> int:
    from .training import conversations as talk
    from .training.evaluation import evaluate, report

    readers = READERS if args.reader == "both" else (args.reader,)
    dataset = Path(args.dataset)
    if talk.is_dialog_set(dataset):
        run, show = talk.evaluate_dialogs, talk.dialogs_report
    elif talk.is_conversation_set(dataset):
        run, show = talk.evaluate_chains, talk.chains_report
    else:
        run, show = evaluate, lambda results, as_json: report(results, as_json, args.fit)
    with tempfile.TemporaryDirectory(prefix="qa-eval-") as tmp:
        work = Path(args.work_dir) if args.work_dir else Path(tmp)
        results = run(dataset, work, args.index or work / "index", args.model, args.threshold, readers,
                      args.reader_dir)
    print(show(results, args.json))
    return 0


def cmd_train_reader(args: argparse.Namespace) -> int:
    if not Path(args.dataset).is_file():  # before PyTorch loads
        _say(f"qa: error: no such file: {shown(args.dataset)}")
        return 2
    if args.also and not Path(args.also).is_file():
        _say(f"qa: error: no such file: {shown(args.also)}")
        return 2
    if args.init and not (Path(args.init) / "reader.onnx").is_file():
        _say(f"qa: error: no trained reader (reader.onnx) in {shown(args.init)}")
        return 2
    from .training.train import Settings, train

    settings = Settings(epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.learning_rate,
                        seed=args.seed, held_out_articles=args.held_out_articles,
                        limit_questions=args.limit_questions, precision=args.precision,
                        trap_epochs=args.trap_epochs, init=args.init, also=args.also,
                        also_articles=args.also_articles)
    train(Path(args.dataset), Path(args.out), settings, base=args.model)
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from web.server import UsageError, serve, settings

    from .library import Library

    try:
        config = settings(args)  # before anything is loaded or bound
    except UsageError as exc:
        _say(f"qa: error: {exc}")
        return 2
    engine = _engine(args)
    code = serve(engine, Library(engine, args.uploads, args.read_only), config)
    # The server has stopped and said so: leave now. Unloading PyTorch (loaded for uploads)
    # and ONNX Runtime at interpreter exit took seconds more (docs/speed.md).
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def cmd_mcp(args: argparse.Namespace) -> int:
    from .mcp_server import serve

    return serve(lambda: _engine(args))  # stdout carries only the protocol; notes go to stderr


def _train_arguments(p: argparse.ArgumentParser) -> None:
    from .training.train import Settings

    p.add_argument("dataset")
    p.add_argument("--out", required=True, help="folder for checkpoints, the log and the exported reader")
    p.add_argument("--epochs", type=_bounded(float, 0.0001, 100.0), default=Settings.epochs,
                   help=f"passes over the training examples (default {Settings.epochs})")
    p.add_argument("--trap-epochs", type=_bounded(float, 0.0, 100.0), default=Settings.trap_epochs,
                   help="then passes over examples that add reworded questions the window no longer "
                        f"answers, at a low rate (default {Settings.trap_epochs}; 0: none)")
    p.add_argument("--batch-size", type=_bounded(int, 1, 1024), default=Settings.batch_size)
    p.add_argument("--learning-rate", type=_bounded(float, 1e-7, 1.0), default=Settings.learning_rate)
    p.add_argument("--seed", type=int, default=Settings.seed)
    p.add_argument("--held-out-articles", type=_bounded(int, 1, 1000), default=Settings.held_out_articles,
                   help="whole articles kept apart for validation and calibration")
    p.add_argument("--limit-questions", type=_bounded(int, 1, 10**7), default=None,
                   help="train on the first N questions only (a quick check)")
    p.add_argument("--precision", choices=["bf16", "fp32"], default=Settings.precision,
                   help="bf16: mixed precision, weights kept in fp32 (default; 1.5x faster on a CPU "
                        "with AVX512-BF16 or a recent GPU); fp32: full precision everywhere")
    p.add_argument("--model", default=None, help="encoder to start from (default: all-MiniLM-L6-v2)")
    p.add_argument("--init", default=None, metavar="READER_DIR",
                   help="start from this trained reader's weights (a folder with reader.onnx), "
                        "to train it further, e.g. on SQuAD 2.0's unanswerable questions")
    p.add_argument("--also", default=None, metavar="SQUAD_FILE",
                   help="train on the first --also-articles articles of this SQuAD file too (none "
                        "held out), so that training further keeps what the reader knew")
    p.add_argument("--also-articles", type=_bounded(int, 0, 10**5), default=0)


def parser(training: bool = False) -> argparse.ArgumentParser:
    """The command line; ``training``: with train-reader's options (they import training code)."""
    top = argparse.ArgumentParser(prog="qa", description=__doc__.splitlines()[0] if __doc__ else None)
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def common(p: argparse.ArgumentParser, index_default: Path | None = DEFAULT_INDEX) -> None:
        p.add_argument("--index", type=Path, default=index_default, help="index folder (default: index)")
        p.add_argument("--model", default=None,
                       help="sentence-transformers model folder or name (default: all-MiniLM-L6-v2)")

    def reader(p: argparse.ArgumentParser, top_k: bool = True) -> None:
        p.add_argument("--reader", choices=READERS, default="span",
                       help="span: the trained model that finds the short answer (default); "
                            "sentence: the sentence picker it replaces")
        p.add_argument("--threshold", type=_unit, default=None,
                       help=f"abstain below this confidence (default: the reader's own, "
                            f"{SPAN_THRESHOLD} for span, {DEFAULT_THRESHOLD} for sentence)")
        p.add_argument("--reader-dir", type=Path, default=None,
                       help="a reader exported by 'qa train-reader' (its reader/ folder; "
                            "default: the one shipped with qa)")
        if top_k:
            p.add_argument("--top-k", type=_top_k, default=5, help="passages to return (1-20, default 5)")

    def scope(p: argparse.ArgumentParser) -> None:
        p.add_argument("--source", action="append", default=None, metavar="PATH",
                       help="ask within this document or folder only (its name as citations give it, "
                            "or its path on disk); repeat for several")

    p = sub.add_parser("index", help="index documents (folders or files)")
    p.add_argument("sources", nargs="*", help="folders or files (default: seeds)")
    p.add_argument("--rebuild", action="store_true", help="re-embed everything")
    p.add_argument("--optimize", action="store_true",
                   help="merge every segment into one, dropping deleted documents' rows")
    p.add_argument("--ray", nargs="?", const=LOCAL_RAY, default=None, type=_ray_address, metavar="ADDRESS",
                   help="read, chunk and embed on Ray: a local Ray started here, or the cluster at "
                        "ADDRESS (auto, ray://HOST:PORT); needs pip install 'qa-docs[ray]'")
    p.add_argument("--workers", type=_bounded(int, 1, 100_000), default=None, metavar="N",
                   help="embedding workers with --ray (default: the cluster's CPUs, or its GPUs)")
    common(p)
    p.set_defaults(func=cmd_index)

    p = sub.add_parser("ask", help="answer one question")
    p.add_argument("question")
    p.add_argument("--json", action="store_true", help="print the answer JSON")
    p.add_argument("--history", metavar="FILE",
                   help='earlier turns, a JSON list of {"role": "user"|"assistant", "content": str} '
                        '(an assistant turn may add "short_answer": str); - reads standard input; '
                        "the JSON shows the query actually used")
    p.add_argument("--show-page", metavar="OUT.png",
                   help="also write the PDF page citation 1 is on, with the quote highlighted")
    common(p)
    reader(p)
    scope(p)
    p.set_defaults(func=cmd_ask)

    p = sub.add_parser("chat", help="interactive session that keeps the conversation")
    common(p)
    reader(p)
    scope(p)
    p.set_defaults(func=cmd_chat)

    p = sub.add_parser("eval", help="measure on a SQuAD 1.1/2.0 JSON file")
    p.add_argument("dataset")
    p.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    p.add_argument("--work-dir", help="keep the article files here (default: a temporary folder)")
    p.add_argument("--fit", action="store_true",
                   help="also fit the reader's confidence model on this data and print it")
    p.add_argument("--threshold", type=_unit, default=None,
                   help="abstention threshold to evaluate (default: each reader's own)")
    p.add_argument("--reader", choices=(*READERS, "both"), default="both",
                   help="which reader to measure (default: both, side by side)")
    p.add_argument("--reader-dir", type=Path, default=None, help="span reader folder (default: shipped)")
    common(p, index_default=None)
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser(TRAIN, help="train the span reader on a SQuAD 1.1 file (resumes in --out)")
    if training:  # its defaults are the training code's, imported only to train
        _train_arguments(p)
    p.set_defaults(func=cmd_train_reader)

    p = sub.add_parser("serve", help="serve the JSON API and chat page")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=_bounded(int, 0, 65535), default=8000, help="0: any free port")
    p.add_argument("--threads", type=_bounded(int, 1, 1000), default=8)
    common(p)
    reader(p, top_k=False)
    p.add_argument("--token", default=None,
                   help="require 'Authorization: Bearer TOKEN' on /api/* (default: $QA_TOKEN; "
                        "needed on any host but loopback)")
    p.add_argument("--insecure", action="store_true",
                   help="serve on a non-loopback host without a token (prints a warning)")
    p.add_argument("--uploads", type=Path, default=None, metavar="DIR",
                   help="where files added from the page go (default: uploads/ in the indexed folder)")
    p.add_argument("--read-only", action="store_true",
                   help="no uploads or deletes through the page or the API")
    p.add_argument("--rate-limit", default=None, metavar="LIMIT",
                   help="questions per client address on /api/ask, e.g. 60/minute; 0 or off: no limit "
                        "(default: off on loopback without a token, else 120/minute;20/second)")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("mcp", help="serve the engine to AI agents over stdio (Model Context Protocol)")
    common(p)
    reader(p, top_k=False)
    p.set_defaults(func=cmd_mcp)
    return top


def _bounded(kind: type, low: float, high: float):
    """An argparse type: a number of the given kind within [low, high]."""

    def parse(value: str):
        try:
            x = kind(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{value!r} is not a {kind.__name__}") from None
        if not low <= x <= high:
            raise argparse.ArgumentTypeError(f"must be from {low} to {high}")
        return x

    return parse


_unit = _bounded(float, 0.0, 1.0)
_top_k = _bounded(int, 1, 20)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parser(training=TRAIN in argv).parse_args(argv)
    try:
        return args.func(args)
    except InvalidRequest as exc:  # a question, history or source the command line gave
        _say(f"qa: error: {exc}")
        return 2
    except QAError as exc:
        _say(f"qa: error: {exc}")
        return 1
    except KeyboardInterrupt:
        _say("qa: interrupted")
        return 130
    except OSError as exc:
        _say(f"qa: error: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": "))
        return 1


def run() -> None:
    """The ``qa`` command. Once ``qa ask`` has written its answer, which leaves nothing to undo,
    the process ends without tearing ONNX Runtime, FAISS and their threads down: that took
    0.1 s of the 0.5 s a question takes from the shell (bench/cli_start.py)."""
    code = main()
    if sys.argv[1:2] == ["ask"]:
        with contextlib.suppress(OSError):  # a closed pipe: the answer went nowhere either way
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    run()
