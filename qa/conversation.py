"""Turn a follow-up question into a standalone query using the earlier turns.

"What is her title?" means nothing alone; after "Who led the U.S.
delegation?" and its answer it does. When a question leans on what came
before (a pronoun, or too few words of its own), the previous question and
answer are put in front of it for retrieval and reading.
"""

from __future__ import annotations

import re

MAX_TURNS = 20
MAX_CHARS = 2000
_REFERRING = {
    "he", "she", "him", "her", "his", "hers", "it", "its", "they", "them", "their", "theirs",
    "this", "these", "those", "former", "latter",
}
_WORD = re.compile(r"[a-z]+", re.IGNORECASE)


class HistoryError(ValueError):
    """The history is not a list of {"role", "content"} turns."""


def validate_history(history: object) -> list[dict[str, str]]:
    """Check the shape of the history the caller sent; raise HistoryError with the reason."""
    if history is None:
        return []
    if not isinstance(history, list):
        raise HistoryError("history must be a list of turns")
    if len(history) > MAX_TURNS:
        raise HistoryError(f"history has {len(history)} turns; at most {MAX_TURNS} are accepted")
    turns = []
    for i, turn in enumerate(history):
        if not isinstance(turn, dict) or set(turn) != {"role", "content"}:
            raise HistoryError(f"history[{i}] must be an object with exactly 'role' and 'content'")
        role, content = turn["role"], turn["content"]
        if role not in ("user", "assistant"):
            raise HistoryError(f"history[{i}].role must be 'user' or 'assistant'")
        if not isinstance(content, str):
            raise HistoryError(f"history[{i}].content must be a string")
        if len(content) > MAX_CHARS * 4:
            raise HistoryError(f"history[{i}].content is too long")
        turns.append({"role": role, "content": content})
    return turns


def is_follow_up(question: str) -> bool:
    """True when the question refers back (pronouns) or has almost no words of its own."""
    words = [w.lower() for w in _WORD.findall(question)]
    return any(w in _REFERRING for w in words) or len(words) <= 2


def contextualize(question: str, history: list[dict[str, str]]) -> str:
    """The query to retrieve and read with: the question, plus the last exchange if needed."""
    if not history or not is_follow_up(question):
        return question
    last_user = next((t["content"] for t in reversed(history) if t["role"] == "user"), "")
    last_answer = next((t["content"] for t in reversed(history) if t["role"] == "assistant"), "")
    context = " ".join(x.strip() for x in (last_user, last_answer) if x.strip())
    # The question leads: a reader that clips a long query keeps what is being asked.
    return f"{question} {context}".strip() if context else question
