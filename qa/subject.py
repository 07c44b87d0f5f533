"""What a conversation is about: its subject, kept until a question names another.

The subject is what the questions named ("Where was RuPaul born?" names RuPaul) and the
documents that answered about it. Only questions set it, never answers: "Who were his
parents?" does not make the mother the subject. A question that names nothing, or names
only what the subject's documents mention ("What did she do at ATYP?"), keeps it; one that
names something new releases it. Follow-ups lean toward the subject's documents (a prior
in ranking, ``qa.retriever.hybrid``), and a pronoun that no grammar binds elsewhere reads
as the subject's name ("When did he start his career?" -> "When did RuPaul start
RuPaul's career?").
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .contract import SubjectJSON, Turn
from .conversation import split_word

# A name: capitalised words, joined by "of", "de", "the", "and" or hyphens ("Bank of
# America", "Jean-Paul Sartre"), or an acronym ("FUNAI", "U.S.").
_NAME = re.compile(r"(?:\b[A-Z][\w'’.-]*)(?:\s+(?:(?:of|de|du|da|von|van|the|and)\s+)?[A-Z][\w'’.-]*)*")
# Capitalised words that are not names where a question starts or elsewhere.
_NOT_NAMES = {
    "what", "who", "whom", "whose", "when", "where", "why", "which", "how", "is", "are", "was",
    "were", "do", "does", "did", "can", "could", "will", "would", "has", "have", "had", "should",
    "tell", "and", "but", "so", "or", "in", "on", "at", "after", "before", "during", "i", "the",
    "a", "an", "any", "please", "also", "then", "besides", "other", "mr", "mrs", "ms", "dr",
}
# A word naming a people or language ("Russian", "Chinese", "Polish"), which before a noun
# describes it: "the Russian delegation" is no name.
_DEMONYM = re.compile(r"(an|ese|ish|ic|i)$")
_PERSON = {"he": "{}", "him": "{}", "his": "{}'s", "she": "{}", "her": "{}", "hers": "{}'s"}
_THING = {"its": "{}'s", "they": "{}", "them": "{}", "their": "{}'s"}
# Pronouns that point at the same one as each other: "his" in the last question, "he" now.
_FAMILY = {"he": "m", "him": "m", "his": "m", "she": "f", "her": "f", "hers": "f",
           "they": "p", "them": "p", "their": "p", "its": "n"}


@dataclass(frozen=True)
class Subject:
    """The names the dialog is about (the first one named first) and the documents that
    answered about them (the latest first); empty when no question named or found one."""

    names: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()
    kind: str = "person"  # or "thing" ("FUNAI") or "the" (named after "the": "the Normans")

    def answered(self, source: str | None) -> Subject:
        """The subject once a document answered about it: that document first among its own."""
        if not source:
            return self
        return Subject(self.names, tuple(dict.fromkeys((source, *self.sources))), self.kind)

    def as_json(self) -> SubjectJSON | None:
        return SubjectJSON(names=list(self.names), sources=list(self.sources)) if self else None

    def __bool__(self) -> bool:
        return bool(self.names or self.sources)

    def read(self, question: str, last_question: str) -> str | None:
        """``question`` with its pronouns read as the subject's name, or None when none does:
        "he", "his" for a person, "its", "they", "their" for a thing. A pronoun after a "who"
        question reads as that question's answer instead ("Who led the delegation?" -> "What
        did he say?"), unless the "who" question used one like it itself ("Who were his
        parents?" -> "When did he start?": he is still the subject)."""
        if not self.names:
            return None
        forms = _PERSON if self.kind == "person" else _THING
        name = f"the {self.names[0]}" if self.kind == "the" else self.names[0]
        asked_who = _words(last_question)[:1] in (["who"], ["whom"])
        kept = {_FAMILY[w] for w in _words(last_question) if w in _FAMILY}
        tokens = question.split()
        changed = False
        for i, token in enumerate(tokens):
            word, tail = split_word(token)
            form = forms.get(word.lower())
            if form is None or (asked_who and _FAMILY[word.lower()] not in kept):
                continue
            after = _words(tokens[i + 1]) if i + 1 < len(tokens) else []
            if word.lower() == "her" and after and after[0] not in _FOLLOWS_OBJECT:
                form = "{}'s"  # "her career"
            tokens[i] = form.format(name) + tail
            changed = True
        return " ".join(tokens) if changed else None


_FOLLOWS_OBJECT = {"to", "in", "on", "at", "for", "with", "from", "by", "about", "after", "before",
                   "and", "or", "as", "when", "where", "why", "first", "last", "again"}


def names_in(question: str) -> tuple[tuple[str, ...], str]:
    """The names a question gives, and the first one's kind (see ``Subject.kind``)."""
    names: list[str] = []
    kind = "person"
    if sum(len(w) > 1 and w.isupper() for w in question.split()) > 2:
        return (), kind  # SHOUTED: capitals say nothing
    for match in _NAME.finditer(question):
        words = match.group(0).rstrip("?.!,;:'’").split()
        while words and words[0].lower().strip(".") in _NOT_NAMES:
            words = words[1:]
        name = " ".join(words).removesuffix("'s").removesuffix("’s")
        before = question[:match.start()].split()[-1:]
        after = [split_word(w)[0] for w in question[match.end():].split()[:1]]
        modifier = bool(after) and after[0][:1].islower() and after[0].isalpha()
        if not name or (modifier and (before == ["the"] or _DEMONYM.search(name)) and " " not in name):
            continue  # "the Russian delegation", "US troops"
        if not names:
            kind = "the" if before == ["the"] else "thing" if name.replace(".", "").isupper() else "person"
        names.append(name)
    return tuple(dict.fromkeys(names)), kind


def follow(history: Sequence[Turn], question: str, answered_in: Sequence[str | None],
           mentions: Callable[[str, tuple[str, ...]], bool]) -> Subject:
    """The subject after ``history`` and ``question``: ``answered_in`` gives the document
    each assistant turn quoted (None: none), ``mentions(name, sources)`` whether those
    documents mention a name."""
    subject = Subject()
    answers = iter(answered_in)
    for turn in [*history, Turn(role="user", content=question, short_answer="")]:
        if turn["role"] == "assistant":
            subject = subject.answered(next(answers, None))
            continue
        names, kind = names_in(turn["content"])
        if not names or any(_same(name, subject.names) for name in names):
            continue
        if subject.sources and all(mentions(name, subject.sources) for name in names):
            if not subject.names:  # the documents' subject, named now
                subject = Subject(names, subject.sources, kind)
            continue
        subject = Subject(names, (), kind)  # a new subject: the old one is released
    return subject


def _same(name: str, names: tuple[str, ...]) -> bool:
    """The name is one of these, or part of one ("Dewey" of "John Dewey")."""
    words = set(name.lower().split())
    return any(words <= set(n.lower().split()) or set(n.lower().split()) <= words for n in names)


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z']+", text.lower().replace("’", "'"))
