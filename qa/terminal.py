"""The answer as a person reads it in a terminal, and ``qa chat``'s conversation loop.

``qa chat`` reads lines with the standard library's readline where the platform has it:
arrow keys edit the line, up and down recall earlier questions, Ctrl-L clears the screen.
An empty line does nothing, Ctrl-C abandons the line being typed, and Ctrl-D or ``exit``
ends the session.
"""

from __future__ import annotations

import contextlib
import sys

from .conversation import exchange
from .errors import QAError

LEAVE = ("exit", "quit", "/exit", "/quit")
RESET = "/reset"
MAX_HISTORY = 20  # the turns the engine accepts


def format_answer(result: dict, bold: bool = False) -> str:
    """Human-readable answer: the short answer (bold on a terminal), the quote with
    markers, then each source as path:line."""
    lines = []
    if result.get("follow_up"):
        lines.append(f"(read as a follow-up: {result['follow_up']})")
    if result["answerable"]:
        if not result.get("sure", True):
            lines.append("Not sure: this is the closest thing the documents say.")
        short = result.get("short_answer")
        if short:
            lines.append(f"\033[1m{short['text']}\033[0m" if bold else short["text"])
        markers = "".join(f"[{c['n']}]" for c in result["citations"])
        lines.append(f"{result['answer']} {markers}")
        lines.append(f"(confidence {result['confidence']:.2f})")
        lines.append("")
        lines.append("Sources:")
        for c in result["citations"]:
            note = f" (corroborates [{c['corroborates']}])" if "corroborates" in c else ""
            lines.append(f"  [{c['n']}] {_where(c)}{note}")
            lines.append(f"      “{c['quote']}”")
    else:
        lines.append("The sources don't say.")
        if result["passages"]:
            lines.append("")
            lines.append("Closest passages:")
            for p in result["passages"][:3]:
                text = " ".join(p["text"].split())
                lines.append(f"  {_where(p)}  {text[:200]}{'…' if len(text) > 200 else ''}")
    return "\n".join(lines)




def _where(item: dict) -> str:
    """path:line of a quote, or path:page N for PDFs."""
    if "page" in item:
        return f"{item['source']}:page {item['page']}"
    line = item.get("line")
    return f"{item['source']}:{line}" if line else item["source"]


def add_lines(result: dict, engine) -> dict:
    """Line numbers for the human view (the JSON stays as the engine made it)."""
    for item in result["citations"] + result["passages"]:
        text = engine.source_text(item["source"]) or ""
        item["line"] = text.count("\n", 0, item["start"]) + 1
    return result


def chat(engine, top_k: int, sources: list[str] | None) -> int:
    """Ask question after question, each with the conversation so far; exit code 0."""
    with contextlib.suppress(ImportError):  # without readline, plain input() still works
        import readline  # noqa: F401  (input() edits lines and keeps history once it is loaded)
    history: list[dict] = []
    print("Ask a question about your documents (Ctrl-D or 'exit' to leave, /reset to start over).",
          file=sys.stderr)
    while True:
        try:
            question = input("you> ").strip()
        except EOFError:
            print()
            return 0
        except KeyboardInterrupt:  # Ctrl-C: the line is dropped, the session goes on
            print()
            continue
        if not question:
            continue
        if question.lower() in LEAVE:
            return 0
        if question == RESET:
            history = []
            print("(a new conversation)", file=sys.stderr)
            continue
        try:
            result = engine.ask(question, history[-MAX_HISTORY:], top_k, sources)
        except QAError as exc:
            print(f"error: {exc}", file=sys.stderr)
            continue
        print(format_answer(add_lines(result, engine), sys.stdout.isatty()))
        print()
        history += exchange(question, result)
