"""Read a question in the light of the conversation, explainably and without a model.

A question that stands on its own is answered as if there were no history. A
follow-up is rewritten into the query that is actually searched and read, by
rules that can be shown to the user (``Rewrite.why``):
- elliptical, continuing the last question ("And the American side?", "What
  about Moscow?"): the fragment takes the place of the matching phrase of the
  last question ("Who headed the American side?"), or joins it;
- a bare question word ("When?", "How many?", "Why?"), or no word of its own but a
  verb whose subject is left out ("How many were seized?"): it asks about the last
  question and its answer;
- asking for more ("What else?"; "What else was bad about it?" reads its own words): the
  last question again; no answer given so far is repeated, unless with a short answer
  not given yet (the reader abstains rather than repeat one);
- referring back with a pronoun or "that", "those", "there", "which one": the last
  question is added, and the last answer where the word points at what it said.
A follow-up never repeats the last answer's quote when another one answers
(``Rewrite.avoid``), and its short answer is never what it refers to, the last
answer's own short answer (``Rewrite.last``); the reader decides both. Where that
short answer is what a word points at, the reader reads it in the word's place
(``Rewrite.resolved``): "he" or "her" after a "who" question ("What did he hail?" is
read "What did Vladimir Putin hail?"), "there" after a "where" question, and a bare
question word after a "who did it" question ("When?" after "Who led the Normans of
Edessa?" is read "When? Robert Crispin led the Normans of Edessa."). "They", "them" and
"their" are read as the group the last question asks about ("the Normans"), and "the
Russian one" as "the Russian delegation" after "Who led the U.S. delegation?".
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from .readers.kinds import PERSON, STATEMENT, asked_kind

_WORD = re.compile(r"[A-Za-z][A-Za-z'’.-]*[A-Za-z]|[A-Za-z]")
_QUESTION_END = re.compile(r"(?<=\?)\s+")
_QUESTION_WORDS = {"what", "who", "whom", "whose", "when", "where", "why", "which", "how"}
# Words that carry no subject of their own: with only these, a question leans on the last one.
_EMPTY = _QUESTION_WORDS | {
    "many", "much", "long", "often", "far", "old", "else", "more", "exactly", "about", "then", "so",
    "is", "was", "are", "were", "did", "does", "do", "it", "that", "this", "the", "a", "an", "and",
    "anything", "something", "tell", "me", "us", "please", "again", "also", "really", "of", "for",
}
_PERSONAL = {"he", "she", "him", "her", "his", "hers", "they", "them", "their", "theirs", "its", "it"}
_DEMONSTRATIVE = {"this", "these", "those", "former", "latter"}
_BE = {"is", "are", "was", "were", "be"}
# "that" refers back after these ("What about that?", "Why did they do that?"); after a noun it
# starts a relative clause ("the region that ..."), which stands on its own.
_BEFORE_THAT = _BE | {"about", "of", "for", "with", "after", "before", "by", "from", "in", "on", "at",
                      "did", "does", "do", "mean", "means", "cause", "caused", "like"}
_CONTINUATIONS = ("and what about ", "and how about ", "what about ", "how about ", "what of ",
                  "same for ", "and ", "but ", "or ", "also ")
_MORE = re.compile(r"^(what|who|where|which|anything|something|tell me)\s+(else|more)\b|^(and\s+)?"
                   r"(anything|something)\s+else\b|^(tell me )?more\b|^go on\b", re.IGNORECASE)
_PREPOSITIONS = {"by", "in", "on", "at", "from", "with", "for", "since", "until", "after", "before",
                 "during", "to", "through", "under", "into", "than", "between", "among", "within",
                 "without", "against", "across", "over", "around", "toward", "towards", "near",
                 "beyond", "behind", "below", "above", "along", "via", "per", "of", "upon"}
_VERBS = _BE | {"did", "does", "do", "can", "could", "will", "would", "has", "have", "had", "should"}
_DETERMINERS = {"the", "a", "an", "his", "her", "its", "their", "our", "this", "that", "these", "those"}
# The words the last question's answer can stand in for, by the last question's first word,
# and how it takes their place ("his title" -> "Sonata Coulter's title").
_PERSON = {"he": "{}", "she": "{}", "him": "{}", "his": "{}'s", "hers": "{}'s", "her": "{}"}
_STANDS_FOR = {"who": _PERSON, "whom": _PERSON, "where": {"there": "in {}"}}
_AUXILIARIES = _VERBS - _BE
# Words that give a question no subject of its own beside a verb: "What happened next?".
_NO_SUBJECT = {"next", "later", "afterwards", "after", "first", "finally", "eventually", "been", "being"}
# Past tenses and participles without "-ed" (and "-eed" ones, which nouns share: "need").
_IRREGULAR = {
    "agreed", "freed", "decreed", "guaranteed", "held", "built", "found", "won", "lost", "made",
    "sent", "sold", "bought", "paid", "said", "told", "kept", "left", "met", "led", "cut", "spent",
    "brought", "taught", "caught", "fought", "thought", "sought", "begun", "began", "done", "gone",
    "went", "known", "seen", "saw", "shown", "grown", "drawn", "thrown", "flown", "taken", "took",
    "given", "gave", "chosen", "chose", "written", "wrote", "spoken", "broken", "stolen", "born",
    "came", "become", "became", "ran", "got", "gotten", "struck", "fled", "fell", "fallen",
    "rose", "risen", "hid", "hidden", "sank", "sunk", "swore", "sworn", "tore", "torn", "wore",
    "worn", "meant", "happened",
}
MAX_REFERENT_WORDS = 8  # a longer short answer is a description, not a name to put in a question


@dataclass(frozen=True)
class Rewrite:
    """The query searched and read, and why; ``why`` is None for a standalone question."""

    query: str  # what retrieval searches with
    why: str | None = None
    avoid: tuple[str, ...] = ()  # earlier answers not to repeat when another one answers
    read: str = ""  # what the reader reads in the windows found; empty: the query
    alone: str = ""  # the question as it would stand on its own, where a rule rewrote it so
    last: tuple[str, str] = ()  # for a follow-up: the last question and answer it builds on
    more: bool = False  # asks for more: an answer in ``avoid`` only with a short answer not in ``shown``
    shown: tuple[str, ...] = ()  # asking for more: the short answers the conversation gave
    referent: str = ""  # for a follow-up: the last short answer, where the history gives it
    asked: str = ""  # the question as the user asked it

    @property
    def reader_question(self) -> str:
        return self.read or self.query

    def resolved(self, referent: str) -> Rewrite:
        """This follow-up with ``referent`` (the last answer's short answer) read in place of
        the words that point at it, and "they", "them", "their" read as the group the last
        question asks about; itself when no word does (see the module)."""
        if not self.last:
            return self
        referent = referent.strip()
        named = bool(referent) and len(referent.split()) <= MAX_REFERENT_WORDS
        read = _resolve(self.asked, self.last[0], referent) if named else None
        read = _name_the_group(read or self.asked, self.last[0]) or read
        if self.asked in self.query:  # a continuation put its own "one" in place already
            read = _name_the_one(read or self.asked, self.last[0]) or read
        return self if read is None else self.read_as(read, referent)

    def read_as(self, read: str, name: str = "") -> Rewrite:
        """This follow-up read as ``read``, the question with ``name`` in place of the words
        that pointed at it; retrieval searches it still with the last exchange beside it."""
        query = self.query.replace(self.asked, read, 1)
        if self.last and _refers_back(read.replace(name, "") if name else read):  # another word points back
            read = f"{read} {self.last[0]}"
        return replace(self, query=query, read=read, alone=read, why=f"{self.why}; read as {read!r}")


def exchange(question: str, result: dict) -> list[dict[str, str | None]]:
    """The two history turns one question and its answer JSON make, with the short answer
    and the document quoted."""
    short = result.get("short_answer") or {}
    cited = result.get("citations") or [{}]
    return [{"role": "user", "content": question},
            {"role": "assistant", "content": result["answer"], "short_answer": short.get("text"),
             "source": cited[0].get("source")}]


def _words(text: str) -> list[str]:
    return [w.lower().replace("’", "'") for w in _WORD.findall(text)]


def _last(history: list[dict[str, str]], role: str) -> str:
    return next((t["content"].strip() for t in reversed(history) if t["role"] == role), "")


def _fragment(words: list[str]) -> bool:
    """A phrase rather than a question of its own: "By which treaty?", "What year?"."""
    if not words:
        return False
    if words[0] in _PREPOSITIONS and len(words) <= 5:
        return True
    return words[0] in _QUESTION_WORDS and len(words) <= 3 and not any(w in _VERBS for w in words)


def _only_a_verb(question: str, words: list[str]) -> bool:
    """A question whose only word of substance is a verb, its subject left to the last
    exchange: "How many were seized?", "What happened next?", "Who won?". A noun ("What
    is carrageenan?") or a name ("Who was Rollo?") makes it a question of its own."""
    own = [w for w in words if w not in _EMPTY and w not in _NO_SUBJECT]
    named = any(w[:1].isupper() for w in _WORD.findall(question)[1:])
    return len(own) == 1 and not named and _is_participle(own[0])


def _is_participle(word: str) -> bool:
    """A past tense or participle: "seized", "agreed", "held", "taken" (not "need", "speed")."""
    return word in _IRREGULAR or (len(word) >= 5 and word.endswith("ed") and not word.endswith("eed"))


def _refers_back(question: str) -> str | None:
    """The word by which the question points at something said before, or None."""
    raw = _WORD.findall(question)
    words = _words(question)
    # A named subject ("When did Putin say his ...") gives a personal pronoun its referent.
    named = any(w[0].isupper() and w.lower() not in _QUESTION_WORDS for w in raw[1:])
    for i, w in enumerate(words):
        before = words[i - 1] if i else ""
        after = words[i + 1] if i + 1 < len(words) else ""
        if w in _PERSONAL and not named:
            return w
        if w in _DEMONSTRATIVE:
            return w
        if w in ("one", "ones") and after != "of" and (
                before in ("which", "other", "another") or (i > 1 and words[i - 2] == "the")):
            return w  # "Which one includes Las Vegas?", "the Russian one"; not "one of the planets"
        if w == "that" and (i == 0 or after == "" or before in _BEFORE_THAT):
            return w
        if w == "there" and before not in _BE and after not in _BE:
            return w
    return None


def _last_name(tokens: list[str], first: int) -> tuple[int, int] | None:
    """The last run of capitalised words from index ``first`` on, as [start, end)."""
    end = len(tokens)
    while end > first and not tokens[end - 1][:1].isupper():
        end -= 1
    if end == first:
        return None
    start = end - 1
    while start > first and tokens[start - 1][:1].isupper():
        start -= 1
    return start, end


def _continue(fragment: str, last_question: str) -> str:
    """The last question with the fragment in place of its matching phrase.

    "the American side" replaces "the Russian side" in "Who headed the Russian side?"
    (the same head word, back to its determiner; "the American one" the same way); a
    possessive replaces one ("And San Diego's?" after "What is its population?"); a
    phrase led by a preposition replaces the last one led by it ("And under Rollo?"); a
    name replaces the last name of the last question ("And Georgia?" after "... into
    Ukraine?"). Otherwise the fragment is added to the last question. Where the last
    question was itself a follow-up read with the one before, only its own first sentence
    is matched.
    """
    question = _own_sentence(last_question)
    words = fragment.rstrip(" ?.!").split()
    tokens = question.rstrip(" ?.!").split()
    low = [t.lower().strip(",;:") for t in tokens]
    if not words or not tokens:
        return f"{last_question} {fragment}".strip()
    head = words[-1].lower()
    if head in ("one", "ones") and len(words) > 1:  # "the American one": the last phrase's noun
        phrase = _noun_phrase(low)
        if phrase:
            start, end = phrase
            return " ".join([*tokens[:start], *words[:-1], tokens[end - 1], *tokens[end:]]) + "?"
    if head.endswith(("'s", "’s")):  # "San Diego's" for "its", "his", "their", "Los Angeles's"
        owner = _possessive(tokens, low)
        if owner:
            start, end = owner
            return " ".join([*tokens[:start], *words, *tokens[end:]]) + "?"
    if head in low:
        end = max(i for i, t in enumerate(low) if t == head)
        start = end
        while start > max(end - 4, 1) and low[start] not in _DETERMINERS:
            start -= 1
        if low[start] not in _DETERMINERS:
            start = end
        if words[0].lower() not in _DETERMINERS and low[start] in _DETERMINERS:
            start += 1
        return " ".join([*tokens[:start], *words, *tokens[end + 1 :]]) + "?"
    lead = words[0].lower()
    if lead in _PREPOSITIONS and lead in low[1:]:  # "under Rollo" for "under him"
        start = max(i for i, t in enumerate(low) if t == lead)
        phrases = sum(w.lower() in _PREPOSITIONS for w in words)  # as many as the fragment has
        end = start + 1
        while end < len(low):
            if low[end] in _PREPOSITIONS:
                phrases -= 1
                if not phrases:
                    break
            end += 1
        return " ".join([*tokens[:start], *words, *tokens[end:]]) + "?"
    name, old = _last_name(words, 0), _last_name(tokens, 1)
    if name and old and name[1] == len(words):
        return " ".join([*tokens[: old[0]], *words[name[0] :], *tokens[old[1] :]]) + "?"
    return f"{last_question} {fragment}"


def _own_sentence(question: str) -> str:
    """The first sentence of a question read with the one before ("What is its population?
    What is the most populous city?"), unless it has no words of its own ("Why? ...")."""
    first = _QUESTION_END.split(question.strip(), maxsplit=1)[0]
    words = _words(first)
    return first if words and not all(w in _EMPTY for w in words) else question


def _possessive(tokens: list[str], low: list[str]) -> tuple[int, int] | None:
    """Where the question names an owner, as [start, end): "its", "his", "their", "her"
    before a noun, or a name ending in "'s"."""
    for i, word in enumerate(low):
        if word in ("its", "his", "their") or (word == "her" and i + 1 < len(low)):
            return i, i + 1
        if word.endswith(("'s", "’s")) and tokens[i][:1].isupper():
            start = i
            while start > 1 and tokens[start - 1][:1].isupper():
                start -= 1
            return start, i + 1
    return None


def _noun_phrase(words: list[str]) -> tuple[int, int] | None:
    """The last phrase of a determiner and two or more words (up to a preposition or the
    end) in the lower-cased ``words``, as [start, end): "the Russian side"."""
    for start in range(len(words) - 1, -1, -1):
        if words[start] not in _DETERMINERS:
            continue
        end = start + 1
        while end < len(words) and words[end] not in _PREPOSITIONS and words[end] not in _DETERMINERS:
            end += 1
        if end - start >= 3:
            return start, end
    return None


def _resolve(question: str, last_question: str, referent: str) -> str | None:
    """``question`` with ``referent`` in place of what points at it, or None (see the module)."""
    opening = _words(last_question)[:2]
    if not opening:
        return None
    stands_for = _STANDS_FOR.get(opening[0], {})
    tokens = question.split()
    for i, token in enumerate(tokens):
        word, tail = split_word(token)
        form = stands_for.get(word.lower())
        if form is None:
            continue
        before = tokens[i - 1].lower() if i else ""
        after = _words(tokens[i + 1]) if i + 1 < len(tokens) else []
        if word.lower() == "her" and not tail and after and after[0] not in _PREPOSITIONS:
            form = "{}'s"  # "her title"
        if form.startswith("in ") and before in _PREPOSITIONS:
            form = "{}"  # "from there"
        tokens[i] = form.format(referent) + tail
        return " ".join(tokens)
    words = _words(question)
    subject = len(opening) > 1 and opening[0] == "who" and opening[1] not in _AUXILIARIES
    if subject and words and all(w in _EMPTY for w in words):  # "When?" after "Who led ...?"
        rest = last_question.strip().rstrip("?").split(maxsplit=1)
        if len(rest) == 2:
            return f"{question.strip()} {referent} {rest[1]}."
    return None


_PLURAL_PRONOUNS = {"they": "{}", "them": "{}", "their": "{}'"}
# "the Normans", "the parties", "the Russian diplomats": "the", then words, the last a plural
# noun (not "the United States", a name; not "the process", "the status", "the analysis").
_GROUP = re.compile(r"\bthe((?:\s+[A-Za-z][\w-]*){0,2}?\s+[A-Za-z][\w-]*[^sui\W]s)\b")


def _name_the_group(question: str, last_question: str) -> str | None:
    """``question`` with "they", "them", "their" read as the group the last question asks
    about ("What language did they adopt?" after "What religion were the Normans?" reads
    "What language did the Normans adopt?"); None when it has no such word or the last
    question names no group. After a "who" question they are its answer instead."""
    if _words(last_question)[:1] in (["who"], ["whom"]):
        return None
    group = next((m for m in _GROUP.finditer(last_question)
                  if not _is_name(m.group(1).split())), None)
    if group is None:
        return None
    tokens = question.split()
    changed = False
    for i, token in enumerate(tokens):
        word, tail = split_word(token)
        form = _PLURAL_PRONOUNS.get(word.lower())
        if form is not None:
            tokens[i] = form.format(f"the{group.group(1)}") + tail
            changed = True
    return " ".join(tokens) if changed else None


def _name_the_one(question: str, last_question: str) -> str | None:
    """``question`` with "the X one" read as the last question's phrase with X: "Who led
    the Russian one?" after "Who led the U.S. delegation?" reads "Who led the Russian
    delegation?"; None when it has none or the last question no such phrase."""
    tokens = question.split()
    low = [split_word(t)[0].lower() for t in tokens]
    at = next((i for i in range(2, len(low)) if low[i] in ("one", "ones") and low[i - 2] == "the"
               and low[i - 1] not in _DETERMINERS), None)
    last = _own_sentence(last_question).rstrip(" ?.!").split()
    phrase = _noun_phrase([t.lower().strip(",;:") for t in last])
    if at is None or phrase is None:
        return None
    tokens[at] = last[phrase[1] - 1].strip(",;:") + split_word(tokens[at])[1]
    return " ".join(tokens)


def _is_name(words: list[str]) -> bool:
    """Capitalised words before a capitalised last one: "United States", not "Normans"."""
    return len(words) > 1 and words[-1][:1].isupper() and words[-2][:1].isupper()


def split_word(token: str) -> tuple[str, str]:
    """A token as its word and the punctuation after it: "him?" -> ("him", "?")."""
    end = len(token)
    while end and not token[end - 1].isalnum():
        end -= 1
    return token[:end], token[end:]


def _asked(history: list[dict[str, str]]) -> str:
    """The last question as it stands alone: a follow-up as the rules rewrote it ("And the
    American side?" -> "Who headed the American side?"), any other question as asked."""
    for i in range(len(history) - 1, -1, -1):
        if history[i]["role"] == "user":
            question = history[i]["content"].strip()
            said = rewrite(question, history[:i])
            return said.resolved(said.referent).alone or question
    return ""


def rewrite(question: str, history: list[dict[str, str]]) -> Rewrite:
    """The query to retrieve and read with, and the rule that made it (see the module)."""
    last_question, last_answer = _asked(history), _last(history, "assistant")
    if not last_question:
        return Rewrite(question)
    said = _follow_up(question, last_question, last_answer, tuple(
        t["content"] for t in history if t["role"] == "assistant" and t["content"].strip()))
    if said.why is None:
        return said
    shorts = [t.get("short_answer") or "" for t in history if t["role"] == "assistant"]
    return replace(said, last=(last_question, last_answer) if last_answer else (), asked=question.strip(),
                   referent=shorts[-1] if shorts else "",
                   shown=tuple(s for s in shorts if s) if said.more else ())


def _follow_up(question: str, last_question: str, last_answer: str, given: tuple[str, ...] = ()) -> Rewrite:
    """The question read as a follow-up of the last question and answer, if it is one;
    ``given``: every answer the conversation gave, none of which asking for more repeats."""
    avoid = (last_answer,) if last_answer else ()
    text = question.strip()
    lowered, words = text.lower(), _words(text)
    more = bool(_MORE.match(lowered))
    if more and all(w in _EMPTY or w in _PERSONAL for w in words):  # "What else?"
        return Rewrite(last_question, "asks for more: the last question again, without the answers "
                       "given so far", given or avoid, alone=last_question, more=True)
    if more:  # "What else was bad about his time there?": its own words
        return Rewrite(f"{text} {last_question}", "asks for more: the question with the last one, "
                       "without the answers given so far", given or avoid, text, alone=text, more=True)
    empty = bool(words) and all(w in _EMPTY for w in words)
    with_last = f"{text} {last_question}"
    own = ("no words of its own" if empty else "no words of its own but a verb" if _only_a_verb(text, words)
           else "a fragment, not a sentence" if _fragment(words) else "")
    if own:
        return Rewrite(f"{with_last} {last_answer}".strip(),
                       f"{own}: asks about the last question and answer", avoid, alone=with_last)
    for lead in _CONTINUATIONS:  # "one" in a fragment is the continuation's own ("the American one")
        if (lowered.startswith(lead) and words and words[-1] not in _EMPTY
                and _refers_back(text) in (None, "one", "ones")):
            fragment = text[len(lead):].strip()
            if _words(fragment) and _words(fragment)[0] in _QUESTION_WORDS:
                break  # "And when did they meet?" is a question of its own, perhaps referring back
            query = _continue(fragment, last_question)
            return Rewrite(query, f"continues the last question: {query!r}", avoid, alone=query)
    word = _refers_back(text)
    if word:
        # The reader reads the last question beside this one to know what "that", "those",
        # "there", "which one" or a person it asked about stand for, unless this one asks what
        # was said or done (it would name a person again). A personal pronoun with no name in its
        # place (Rewrite.resolved) it reads as asked: the last question names nobody either.
        # Retrieval adds the last answer only for what points at what it said: a pronoun's
        # subject has its documents first (subject.py), and the answer's words drew the search
        # to the answer given. QuAC later turns 0.267 -> 0.313, scoped 0.351 -> 0.412, chains
        # 0.807 -> 0.825 (docs/conversation.md).
        who = asked_kind(last_question) == PERSON and asked_kind(text) != STATEMENT
        read = text if word in _PERSONAL and not who else with_last
        query, added = (with_last, "question") if word in _PERSONAL else (
            f"{with_last} {last_answer}".strip(), "question and answer")
        return Rewrite(query, f"refers back ({word!r}): the last {added} added", avoid, read, alone=with_last)
    return Rewrite(question)
