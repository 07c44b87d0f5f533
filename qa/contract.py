"""The answer contract: what a question asks for and what an answer is, defined once.

The engine builds these dictionaries; the CLI prints them, the web API and the MCP
server send them unchanged. The JSON Schemas below describe exactly them: the OpenAPI
document, the MCP tools' schemas and the tests all take them from here. Requests are
checked here too (``AskRequest.from_json``), so every front end refuses the same things
with the same words.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypedDict

from .errors import InvalidRequest

DEFAULT_TOP_K = 5
MAX_TOP_K = 20
MAX_TURNS = 20
MAX_CHARS = 2000
MAX_SOURCES = 100  # documents or folders one question may be scoped to
MAX_SOURCE_CHARS = 1000
_TURN_KEYS = frozenset({"role", "content", "short_answer", "source"})


class Turn(TypedDict):
    """One earlier turn of a conversation, as the caller sends it (checked)."""

    role: str
    content: str
    short_answer: str  # assistant turns: the short answer shown ("" when none)
    source: str  # assistant turns: the document quoted ("" when none or not said)


class SubjectJSON(TypedDict):
    """What the conversation is about (``qa.subject``)."""

    names: list[str]
    sources: list[str]


class PageBoxes(TypedDict):
    """Where a PDF span is printed on one page (qa.pages): [left, top, right, bottom] rectangles,
    one per line, in points from the top-left corner of the page, which is width x height."""

    page: int
    width: float
    height: float
    rects: list[list[float]]


class _Boxes(TypedDict, total=False):
    boxes: list[PageBoxes]  # PDFs only


class ShortAnswer(_Boxes):
    text: str
    source: str
    start: int
    end: int


class _Page(TypedDict, total=False):
    page: int  # PDFs only


class _Corroborating(_Page, total=False):
    corroborates: int  # when it says what citation 1 says


class Citation(_Corroborating, _Boxes):
    n: int
    source: str
    start: int
    end: int
    quote: str


class Passage(_Page):
    source: str
    start: int
    end: int
    text: str
    score: float


class Answer(TypedDict):
    question: str
    query: str
    follow_up: str | None
    answer: str
    answerable: bool
    sure: bool
    confidence: float
    short_answer: ShortAnswer | None
    citations: list[Citation]
    passages: list[Passage]
    scope: list[str]
    subject: SubjectJSON | None
    took_ms: float


# --- JSON Schemas (draft 2020-12; web/openapi.py writes them in OpenAPI 3.0's dialect) ---

def _ref(name: str) -> dict:
    return {"$ref": f"#/$defs/{name}"}


def _obj(properties: dict, required: list[str] | None = None) -> dict:
    return {"type": "object", "properties": properties,
            "required": list(properties) if required is None else required,
            "additionalProperties": False}


_OFFSET = {"type": "integer", "minimum": 0}
_SOURCE = {"type": "string", "description": "the document, relative to the indexed folder"}
_PAGE = {"type": "integer", "minimum": 1, "description": "PDF page the span starts on (PDFs only)"}
_BOXES = {"type": "array", "items": {"$ref": "#/$defs/PageBoxes"},
          "description": "PDFs only: where the span is printed, page by page (GET "
                         "/api/sources/{source}/pages/{page}.png shows the page)"}
# What a question must be: no NUL, and something besides the characters str.strip() removes
# (Python's whitespace, which differs from a regex \s; all lie below U+3001).
_SPACE = "".join(chr(i) for i in range(0x3001) if chr(i).isspace())
QUESTION_PATTERN = f"^[^\\x00]*[^\\x00{_SPACE}][^\\x00]*$"
_TOP_K = {"type": ["integer", "null"], "minimum": 1, "maximum": MAX_TOP_K, "default": DEFAULT_TOP_K,
          "description": f"how many passages to return, 1-{MAX_TOP_K} (null: the default, {DEFAULT_TOP_K})"}

_SOURCES = {"type": ["array", "null"], "maxItems": MAX_SOURCES,
            "items": {"type": "string", "minLength": 1, "maxLength": MAX_SOURCE_CHARS},
            "description": "ask within these documents only: each an indexed document's name as "
                           "citations give it, or a folder prefix of names (null or []: all)"}

SCHEMAS: dict[str, dict] = {
    "AskRequest": _obj({
        "question": {"type": "string", "minLength": 1, "maxLength": MAX_CHARS, "pattern": QUESTION_PATTERN,
                     "description": "the question, in plain language; not blank, no NUL"},
        "history": {"type": ["array", "null"], "maxItems": MAX_TURNS, "items": _ref("Turn"),
                    "description": f"earlier turns of this conversation, oldest first (at most "
                                   f"{MAX_TURNS}), for follow-up questions (null: none)"},
        "top_k": _TOP_K,
        "sources": _SOURCES,
    }, required=["question"]),
    "SearchRequest": _obj({
        "query": {"type": "string", "minLength": 1, "maxLength": MAX_CHARS, "pattern": QUESTION_PATTERN,
                  "description": "what to look for, in plain language or key words"},
        "top_k": _TOP_K,
        "sources": _SOURCES,
    }, required=["query"]),
    "Turn": _obj({
        "role": {"type": "string", "enum": ["user", "assistant"]},
        "content": {"type": "string", "maxLength": MAX_CHARS * 4},
        "short_answer": {"type": ["string", "null"], "maxLength": MAX_CHARS,
                         "description": "assistant turns: the short answer given, which a follow-up's "
                                        "pronoun or 'there' may point at (absent: the reader finds it "
                                        "again in content)"},
        "source": {"type": ["string", "null"], "maxLength": MAX_SOURCE_CHARS,
                   "description": "assistant turns: the document quoted (citation 1's source), whose "
                                  "subject follow-ups keep (absent: found from content)"},
    }, required=["role", "content"]),
    "Subject": _obj({
        "names": {"type": "array", "items": {"type": "string"},
                  "description": "what the questions named, the first one named first"},
        "sources": {"type": "array", "items": {"type": "string"},
                    "description": "the documents that answered about it, the latest first; "
                                   "follow-ups prefer them"},
    }),
    "Citation": _obj({
        "n": {"type": "integer", "minimum": 1, "description": "marker number, [n] in the answer"},
        "source": _SOURCE,
        "start": _OFFSET,
        "end": _OFFSET,
        "quote": {"type": "string", "description": "verbatim: exactly text[start:end] of the source"},
        "page": _PAGE,
        "corroborates": {"type": "integer", "minimum": 1,
                         "description": "present when this quote says what citation n says"},
        "boxes": _BOXES,
    }, required=["n", "source", "start", "end", "quote"]),
    "Passage": _obj({
        "source": _SOURCE,
        "start": _OFFSET,
        "end": _OFFSET,
        "text": {"type": "string", "description": "verbatim: exactly text[start:end] of the source"},
        "score": {"type": "number", "description": "retrieval score: it only orders the passages"},
        "page": _PAGE,
    }, required=["source", "start", "end", "text", "score"]),
    "ShortAnswer": _obj({
        "text": {"type": "string", "description": "the exact phrase that answers: text[start:end]"},
        "source": {"type": "string", "description": "the document of citation 1"},
        "start": _OFFSET,
        "end": _OFFSET,
        "boxes": _BOXES,
    }, required=["text", "source", "start", "end"]),
    "PageBoxes": _obj({
        "page": {"type": "integer", "minimum": 1},
        "width": {"type": "number", "minimum": 0, "description": "the page's width, in points"},
        "height": {"type": "number", "minimum": 0, "description": "the page's height, in points"},
        "rects": {"type": "array", "items": {"type": "array", "items": {"type": "number"},
                                             "minItems": 4, "maxItems": 4},
                  "description": "[left, top, right, bottom] in points from the page's top-left "
                                 "corner, one per line of the span"},
    }),
    "Answer": _obj({
        "question": {"type": "string"},
        "query": {"type": "string", "description": "what was searched and read: the question, or for "
                                                   "a follow-up the question rewritten with the history"},
        "follow_up": {"type": ["string", "null"],
                      "description": "why the question was read as a follow-up, and how; null: it "
                                     "stands on its own and was answered as if there were no history"},
        "answer": {"type": "string", "description": "a verbatim quote from the sources (the sentence "
                                                    "that holds the short answer); empty when abstaining"},
        "answerable": {"type": "boolean",
                       "description": "false: the documents don't say; do not invent an answer"},
        "sure": {"type": "boolean",
                 "description": "true: confident enough that answers this sure are right at least 9 "
                                "times in 10 on held-out questions; false with answerable: the closest "
                                "thing found, present it as unsure"},
        "confidence": {"type": "number", "minimum": 0, "maximum": 1,
                       "description": "span reader: the calibrated chance that the short answer is right"},
        "short_answer": {"anyOf": [_ref("ShortAnswer"), {"type": "null"}],
                         "description": "the exact answer inside citation 1; null when abstaining "
                                        "or with the sentence reader"},
        "citations": {"type": "array", "items": _ref("Citation"),
                      "description": "where the answer comes from: citation 1 is `answer`"},
        "passages": {"type": "array", "items": _ref("Passage"),
                     "description": "the closest passages, also when abstaining"},
        "scope": {"type": "array", "items": {"type": "string"},
                  "description": "the documents or folders the question was asked within ([]: all)"},
        "subject": {"anyOf": [_ref("Subject"), {"type": "null"}],
                    "description": "what the conversation is about, kept from earlier turns until a "
                                   "question names something new; null: nothing yet"},
        "took_ms": {"type": "number", "minimum": 0},
    }),
    "SearchResult": _obj({"passages": {"type": "array", "items": _ref("Passage")}}),
}


def schema(name: str) -> dict:
    """One schema of SCHEMAS, whole: with the definitions it refers to beside it."""
    return {**SCHEMAS[name], "$defs": {k: v for k, v in SCHEMAS.items() if k != name}}


# --- Requests ---

def check_text(value: object, name: str) -> str:
    """A question or query as the engine reads it (stripped), or InvalidRequest."""
    if not isinstance(value, str):
        raise InvalidRequest(f"{name} must be a string")
    if not value.strip():
        raise InvalidRequest(f"{name} is empty")
    if len(value) > MAX_CHARS:
        raise InvalidRequest(f"{name} is longer than {MAX_CHARS} characters")
    if "\x00" in value:
        raise InvalidRequest(f"{name} contains a null character")
    return value.strip()


def check_top_k(top_k: object) -> int:
    if top_k is None:
        return DEFAULT_TOP_K
    if isinstance(top_k, bool) or not isinstance(top_k, int) or not 1 <= top_k <= MAX_TOP_K:
        raise InvalidRequest(f"top_k must be a whole number from 1 to {MAX_TOP_K}")
    return top_k


def check_history(history: object) -> list[Turn]:
    """The turns the caller sent, checked; InvalidRequest says what is wrong.

    An assistant turn may carry the ``short_answer`` it gave (a string or null), so that a
    follow-up refers to exactly what the user was shown; on a user turn it has no use."""
    if history is None:
        return []
    if not isinstance(history, list):
        raise InvalidRequest("history must be a list of turns")
    if len(history) > MAX_TURNS:
        raise InvalidRequest(f"history has {len(history)} turns; at most {MAX_TURNS} are accepted")
    turns: list[Turn] = []
    for i, turn in enumerate(history):
        if not isinstance(turn, dict) or not {"role", "content"} <= set(turn) <= _TURN_KEYS:
            raise InvalidRequest(f"history[{i}] must be an object with 'role' and 'content' "
                                 "(and optionally 'short_answer' and 'source')")
        role, content = turn["role"], turn["content"]
        short, source = turn.get("short_answer"), turn.get("source")
        if role not in ("user", "assistant"):
            raise InvalidRequest(f"history[{i}].role must be 'user' or 'assistant'")
        if not isinstance(content, str):
            raise InvalidRequest(f"history[{i}].content must be a string")
        if len(content) > MAX_CHARS * 4:
            raise InvalidRequest(f"history[{i}].content is too long")
        if short is not None and (not isinstance(short, str) or len(short) > MAX_CHARS):
            raise InvalidRequest(f"history[{i}].short_answer must be a string of at most {MAX_CHARS} "
                                 "characters, or null")
        if source is not None and (not isinstance(source, str) or len(source) > MAX_SOURCE_CHARS):
            raise InvalidRequest(f"history[{i}].source must be a document name of at most "
                                 f"{MAX_SOURCE_CHARS} characters, or null")
        turns.append(Turn(role=role, content=content, short_answer=short or "", source=source or ""))
    return turns


def check_sources(sources: object) -> tuple[str, ...]:
    """The documents or folders a question is scoped to, as given (checked against the
    index by the engine); () for all."""
    if sources is None:
        return ()
    if not isinstance(sources, list):
        raise InvalidRequest("sources must be a list of document names or folders")
    if len(sources) > MAX_SOURCES:
        raise InvalidRequest(f"sources has {len(sources)} entries; at most {MAX_SOURCES} are accepted")
    out = []
    for i, source in enumerate(sources):
        if not isinstance(source, str) or not source.strip():
            raise InvalidRequest(f"sources[{i}] must be a document name or folder, not empty")
        if len(source) > MAX_SOURCE_CHARS or "\x00" in source:
            raise InvalidRequest(f"sources[{i}] is not a usable name")
        out.append(source.strip())
    return tuple(dict.fromkeys(out))


def _fields(body: object, name: str, word: str) -> Mapping:
    """The body as a mapping of the request's known fields, its required ones present."""
    if not isinstance(body, Mapping):
        raise InvalidRequest("the request must be a JSON object")
    known = SCHEMAS[name]["properties"]
    unknown = sorted(set(body) - set(known))
    if unknown:
        raise InvalidRequest(f"unknown {word}{'s' if len(unknown) > 1 else ''} "
                             f"{', '.join(map(repr, unknown))}; send only {', '.join(known)}")
    missing = [field for field in SCHEMAS[name]["required"] if field not in body]
    if missing:
        raise InvalidRequest(f"missing {word} {missing[0]!r}")
    return body


@dataclass(frozen=True)
class AskRequest:
    """A question, checked: build it with ``of`` (Python) or ``from_json`` (a request body)."""

    question: str
    history: tuple[Turn, ...] = ()
    top_k: int = DEFAULT_TOP_K
    sources: tuple[str, ...] = ()  # ask within these documents or folders only (): all

    @classmethod
    def of(cls, question: object, history: object = None, top_k: object = None,
           sources: object = None) -> AskRequest:
        return cls(check_text(question, "question"), tuple(check_history(history)), check_top_k(top_k),
                   check_sources(sources))

    @classmethod
    def from_json(cls, body: object, word: str = "field") -> AskRequest:
        """From a JSON object (an API body, an MCP tool's arguments); ``word`` names its keys."""
        body = _fields(body, "AskRequest", word)
        return cls.of(body["question"], body.get("history"), body.get("top_k"), body.get("sources"))


@dataclass(frozen=True)
class SearchRequest:
    """A retrieval-only query, checked like a question."""

    query: str
    top_k: int = DEFAULT_TOP_K
    sources: tuple[str, ...] = ()

    @classmethod
    def of(cls, query: object, top_k: object = None, sources: object = None) -> SearchRequest:
        return cls(check_text(query, "query"), check_top_k(top_k), check_sources(sources))

    @classmethod
    def from_json(cls, body: object, word: str = "field") -> SearchRequest:
        body = _fields(body, "SearchRequest", word)
        return cls.of(body["query"], body.get("top_k"), body.get("sources"))


ANSWER_SCHEMA = schema("Answer")  # the answer JSON, as one self-contained JSON Schema
