"""Training examples for the span reader, built from a SQuAD file.

A SQuAD 2.0 file's unanswerable questions are read against the window of their
paragraph that matches them best. SQuAD 1.1 has only answerable questions, so the
no-answer side is also made from the same articles, the ways SQuAD 2.0's
unanswerable questions arise:
- a window of the article that does not hold the answer;
- the window the lexical side of our retriever would rank highest (the most
  question-word weight, by IDF) among those that do not hold it;
- the question with a name or number swapped for another one from the same
  article, against the window that answered the original;
- the question negated ("Who was ..." -> "Who wasn't ...") or with a word turned
  into its opposite ("first" -> "last"), against the window that answered the
  original: SQuAD 2.0's negation and antonym questions, with entity swaps half of
  its unanswerable ones (Rajpurkar et al., 2018).
Windows are the reader's own (``qa.readers.windows``): whole sentences, cut by the
same segmenter the index uses.
"""

from __future__ import annotations

import json
import math
import random
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from ..errors import QAError
from ..index.chunking import Span, split_sentences
from ..index.words import tokenize
from ..readers.windows import Window, make_window, window_around
from .metrics import normalize

HARD_NEGATIVES = 0.35  # share of questions that also get a retriever-style negative window
SWAPPED = 0.2  # share that also get a swapped-entity question
REWORDED = 0.5  # share that also get their negated and antonym questions (the second phase)
_NUMBER = re.compile(r"\b\d[\d,.]*\b")
_NAME = re.compile(r"\b[A-Z][a-z]+(?:\s+(?:of\s+|the\s+)?[A-Z][a-z]+)*\b")


@dataclass(frozen=True)
class Example:
    question: str
    window: Window
    answer: tuple[int, int] | None  # characters in window.text; None: the window does not answer
    answers: tuple[str, ...] = ()  # every gold text, for EM/F1


@dataclass
class Paragraph:
    text: str
    spans: list[tuple[int, int]]
    words: list[set[str]]  # stemmed words of each sentence


@dataclass
class Question:
    text: str
    paragraph: int
    start: int  # -1: written not to be answered by its paragraph (SQuAD 2.0)
    end: int
    answers: tuple[str, ...]

    @property
    def answerable(self) -> bool:
        return self.start >= 0


@dataclass
class Article:
    title: str
    paragraphs: list[Paragraph]
    questions: list[Question]


def load_articles(path: Path) -> list[Article]:
    """Articles of a SQuAD file, paragraphs split into sentences."""
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))["data"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise QAError(f"{path} is not a readable SQuAD JSON file ({exc})") from None
    articles = []
    for article in raw:
        paragraphs, questions = [], []
        for para in article["paragraphs"]:
            text = para["context"]
            spans = [(s.start, s.end) for s in split_sentences(text, Span(0, len(text)))]
            words = [set(w) for w in tokenize([text[a:b] for a, b in spans])]
            for qa in para["qas"]:
                if qa.get("is_impossible") or not qa.get("answers"):  # SQuAD 2.0's unanswerables
                    questions.append(Question(qa["question"].strip(), len(paragraphs), -1, -1, ()))
                    continue
                first = qa["answers"][0]
                start = first["answer_start"]
                questions.append(Question(qa["question"].strip(), len(paragraphs), start,
                                          start + len(first["text"]),
                                          tuple(a["text"] for a in qa["answers"])))
            paragraphs.append(Paragraph(text, spans, words))
        articles.append(Article(str(article.get("title", "")), paragraphs, questions))
    return articles


def split_articles(articles: list[Article], held_out: int, seed: int) -> tuple[list[Article], list[Article]]:
    """Whole articles kept apart for validation, chosen by the seed."""
    order = list(range(len(articles)))
    random.Random(seed).shuffle(order)
    keep = set(order[:held_out])
    return ([a for i, a in enumerate(articles) if i not in keep],
            [a for i, a in enumerate(articles) if i in keep])


def _sentence_of(spans: list[tuple[int, int]], char: int) -> int:
    for i, (_, b) in enumerate(spans):
        if char < b:
            return i
    return len(spans) - 1


def positive(q: Question, para: Paragraph, rng: random.Random | None) -> Example | None:
    """The answer's window, centred on its sentence, or on a neighbour when rng is given."""
    first = _sentence_of(para.spans, q.start)
    last = _sentence_of(para.spans, max(q.end - 1, q.start))
    centres = [first]
    if rng is not None:
        centres = [c for c in range(first - 2, last + 3) if 0 <= c < len(para.spans)]
    for centre in ([rng.choice(centres)] if rng else []) + [first]:
        lo, hi = window_around(para.spans, centre)
        window = make_window(para.text, para.spans, lo, hi)
        a, b = q.start - window.start, q.end - window.start
        if a >= 0 and b <= len(window.text) and window.text[a:b].strip():
            return Example(q.text, window, (a, b), q.answers)
    return None


def idf_of(article: Article) -> dict[str, float]:
    counts = Counter(w for p in article.paragraphs for s in p.words for w in s)
    n = sum(len(p.words) for p in article.paragraphs)
    return {w: math.log(1 + n / c) for w, c in counts.items()}


def hard_negative(q: Question, article: Article, idf: dict[str, float],
                  rng: random.Random) -> Example | None:
    """The window around the sentence with the most question-word weight that does not
    hold the answer (nor its text anywhere), picked among the best three."""
    words = set(tokenize([q.text])[0])
    gold = {normalize(a) for a in q.answers}
    scored = []
    for p_no, para in enumerate(article.paragraphs):
        for s_no, sentence_words in enumerate(para.words):
            weight = sum(idf.get(w, 0.0) for w in words & sentence_words)
            if weight > 0:
                scored.append((weight, p_no, s_no))
    scored.sort(reverse=True)
    found = []
    for _, p_no, s_no in scored:
        para = article.paragraphs[p_no]
        lo, hi = window_around(para.spans, s_no)
        window = make_window(para.text, para.spans, lo, hi)
        holds = p_no == q.paragraph and window.start < q.end and q.start < window.start + len(window.text)
        if holds or any(g and g in normalize(window.text) for g in gold):
            continue
        found.append(window)
        if len(found) == 3:
            break
    return Example(q.text, rng.choice(found), None, q.answers) if found else None


def unanswered(q: Question, article: Article, idf: dict[str, float]) -> Example | None:
    """An unanswerable question against the window of its paragraph a retriever would
    give the reader: around the sentence with the most question-word weight."""
    words = set(tokenize([q.text])[0])
    para = article.paragraphs[q.paragraph]
    weights = [sum(idf.get(w, 0.0) for w in words & sentence) for sentence in para.words]
    if not weights:
        return None
    lo, hi = window_around(para.spans, max(range(len(weights)), key=weights.__getitem__))
    return Example(q.text, make_window(para.text, para.spans, lo, hi), None, ())


def entities_of(text: str) -> list[str]:
    return _NUMBER.findall(text) + [m for m in _NAME.findall(text) if len(m) > 2]


def swapped(q: Question, window: Window, article_entities: list[str],
            rng: random.Random) -> Example | None:
    """The question with one of its names or numbers that the window mentions replaced
    by another of the article's that the window does not mention."""
    in_question = [e for e in entities_of(q.text[1:]) if e in window.text]
    if not in_question:
        return None
    old = rng.choice(in_question)
    kind = _NUMBER.fullmatch(old) is not None
    choices = sorted({e for e in article_entities
                      if (_NUMBER.fullmatch(e) is not None) == kind and e not in window.text
                      and e.lower() not in q.text.lower()})
    if not choices:
        return None
    new = rng.choice(choices)
    return Example(q.text.replace(old, new, 1), window, None, q.answers)


# "Who was ..." -> "Who wasn't ...": the auxiliary among the first words, negated.
_NEGATED = {"did": "didn't", "does": "doesn't", "do": "don't", "is": "isn't", "was": "wasn't",
            "were": "weren't", "are": "aren't", "can": "can't", "could": "couldn't", "will": "won't",
            "would": "wouldn't", "has": "hasn't", "have": "haven't", "had": "hadn't",
            "should": "shouldn't"}
_OPPOSITES = [
    ("first", "last"), ("largest", "smallest"), ("biggest", "smallest"), ("before", "after"),
    ("north", "south"), ("east", "west"), ("northern", "southern"), ("eastern", "western"),
    ("increase", "decrease"), ("increased", "decreased"), ("earliest", "latest"),
    ("highest", "lowest"), ("most", "least"), ("more", "less"), ("oldest", "newest"),
    ("won", "lost"), ("win", "lose"), ("rise", "fall"), ("major", "minor"), ("maximum", "minimum"),
    ("upper", "lower"), ("early", "late"), ("longest", "shortest"), ("best", "worst"),
    ("higher", "lower"), ("larger", "smaller"), ("strongest", "weakest"), ("richest", "poorest"),
    ("inner", "outer"), ("top", "bottom"), ("start", "end"), ("began", "ended"),
    ("allowed", "forbade"), ("supported", "opposed"), ("accepted", "rejected"),
    ("internal", "external"), ("public", "private"), ("positive", "negative"),
]
_OPPOSITE = {a: b for a, b in _OPPOSITES} | {b: a for a, b in _OPPOSITES}


def negated(question: str) -> str | None:
    """The question with its auxiliary (among its first four words) negated, or None."""
    tokens = question.split()
    for i, token in enumerate(tokens[1:4], 1):
        if token.lower() in _NEGATED:
            tokens[i] = _NEGATED[token.lower()]
            return " ".join(tokens)
    return None


def opposite(question: str) -> str | None:
    """The question with its first word that has an opposite turned into it, or None."""
    tokens = question.split()
    for i, token in enumerate(tokens):
        word = token.strip("?,.;:").lower()
        if word in _OPPOSITE:
            tokens[i] = token.lower().replace(word, _OPPOSITE[word])
            return " ".join(tokens)
    return None


def reworded(q: Question, window: Window) -> list[Example]:
    """The question negated and with a word turned into its opposite (where it can be),
    each against the window that answered the original: neither is answered there."""
    return [Example(text, window, None, q.answers)
            for text in (negated(q.text), opposite(q.text)) if text is not None]


def build_examples(articles: list[Article], rng: random.Random, centred: bool,
                   hard: float | None, swap: float | None, reword: float | None) -> list[Example]:
    """For every question its answer window and, with the given chance (None: always,
    without a draw), a hard, a swapped and reworded negatives."""
    out: list[Example] = []
    for article in articles:
        idf = idf_of(article)
        entities = [e for p in article.paragraphs for e in entities_of(p.text)]
        for q in article.questions:
            if not q.answerable:  # written to look answered by its paragraph: the real thing
                out += filter(None, [unanswered(q, article, idf)])
                continue
            pos = positive(q, article.paragraphs[q.paragraph], None if centred else rng)
            if pos is None:
                continue
            out.append(pos)
            if hard is None or rng.random() < hard:
                neg = hard_negative(q, article, idf, rng)
                if neg is not None:
                    out.append(neg)
            if swap is None or rng.random() < swap:
                neg = swapped(q, pos.window, entities, rng)
                if neg is not None:
                    out.append(neg)
            if reword is None or (reword and rng.random() < reword):  # 0: no draw, as before
                out += reworded(q, pos.window)
    return out


def training_examples(articles: list[Article], seed: int, reword: bool = False) -> list[Example]:
    """Answer windows centred near the answer; some questions also get a negative (and,
    with ``reword``, their negated and antonym questions: the second phase of training)."""
    return build_examples(articles, random.Random(seed), False, HARD_NEGATIVES, SWAPPED,
                          REWORDED if reword else 0.0)


def validation_examples(articles: list[Article], seed: int, reword: bool = False) -> list[Example]:
    """Held-out examples: each question's answer window (centred), and the same hard and
    swapped (and, with ``reword``, reworded) negatives training gets, for every question."""
    return build_examples(articles, random.Random(seed + 1), True, None, None, None if reword else 0.0)
