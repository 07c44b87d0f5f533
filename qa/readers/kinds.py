"""The kind of answer a question asks for, and whether a short answer is of that kind.

"When" wants a time, "how many" a quantity, "who" a person or a group, "where" a place;
"why" and "what did they discuss" want a phrase that says something, never a bare name.
Rules on the question's first words (past "and", "in" and the like: "In what country …" wants a
place, "And its population?" a quantity) and the answer's own shape (digits, month names,
capitals; a date's day and year are no quantity), so the reader can prefer a span of the kind
asked among its likeliest ones, and ``qa eval`` can count the answers of the wrong kind.
"""

from __future__ import annotations

import re

TIME, QUANTITY, PERSON, PLACE, STATEMENT = "time", "quantity", "person", "place", "statement"

_MONTHS = ("january|february|march|april|may|june|july|august|september|october|november|december|"
           "jan|feb|mar|apr|jun|jul|aug|sep|sept|oct|nov|dec")
_TIME_WORDS = (rf"\b({_MONTHS})\b\.?|\b\d{{3,4}}s?\b|\b\d{{1,2}}(st|nd|rd|th)\b|"
               r"\bcentur(y|ies)\b|\bdecades?\b|\byears?\b|\bmonths?\b|\bweeks?\b|\bdays?\b|\bhours?\b|"
               r"\b(monday|tuesday|wednesday|thursday|friday|saturday|sunday)\b|\b(today|yesterday|"
               r"tomorrow|ago|spring|summer|autumn|fall|winter|dawn|dusk|noon|midnight|morning|"
               r"evening|night|era|age|period|dynasty|reign|bc|ad|bce|ce)\b|\b\d{1,2}:\d{2}\b|"
               # a time told by what it came after or before: "after their second album"
               r"\b(after|before|during|until|till|since|following|prior|later|earlier)\b")
_TIME = re.compile(_TIME_WORDS, re.IGNORECASE)
_NUMBER_WORDS = ("one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|fourteen|"
                 "fifteen|sixteen|seventeen|eighteen|nineteen|twenty|thirty|forty|fifty|sixty|seventy|"
                 "eighty|ninety|hundred|hundreds|thousand|thousands|million|millions|billion|billions|"
                 "dozen|dozens|several|many|few|half|a pair|both|single|double|twice")
_QUANTITY = re.compile(rf"\d|\b({_NUMBER_WORDS})\b|%|\bper ?cent\b", re.IGNORECASE)
# A whole date: "February 27, 2025", "27 February 2025", "Feb. 24, 2022", "March 2011".
_DATE = re.compile(
    rf"\b(\d{{1,2}}\s+)?({_MONTHS})\.?(\s+\d{{1,2}}(st|nd|rd|th)?)?(,?\s+(1\d{{3}}|20\d{{2}}))?\b",
    re.IGNORECASE)
# What is left of a date cut into ("27, 2025" of "February 27, 2025"): a day and a year.
_DAY_AND_YEAR = re.compile(r"\b\d{1,2}(st|nd|rd|th)?,\s+(1\d{3}|20\d{2})\b", re.IGNORECASE)
_WORD = re.compile(r"[\w'’.-]+")
# Words before the question's own that say nothing of the kind: "In what country …", "And when …".
_LEAD = {"and", "so", "but", "then", "also", "ok", "okay", "well", "in", "on", "at", "during", "by", "from",
         "to", "for"}
_PLACES = {"country", "countries", "city", "cities", "state", "town", "village", "region", "province",
           "continent", "county", "place", "island", "river", "location", "district", "capital", "nation"}
# "What is its population?", "And the percentage?": a noun that is a number.
_AMOUNTS = {"population", "percentage", "percent", "amount", "cost", "price", "salary", "budget",
            "height", "length", "distance", "temperature", "weight", "speed"}
# "What did they discuss?": verbs whose object is what was said or done, never a bare name.
_SAYING = {"discuss", "say", "want", "ask", "mean", "do", "propose", "offer", "agree", "demand",
           "suggest", "announce", "decide", "talk", "claim", "argue", "believe", "think", "hope",
           "promise", "request", "stress", "note", "call", "plan", "achieve", "accomplish"}


def asked_kind(question: str) -> str | None:
    """The kind of answer the question asks for, or None when its words do not say."""
    words = [w.lower() for w in _WORD.findall(question)]
    while len(words) > 1 and words[0] in _LEAD:
        words = words[1:]
    if not words:
        return None
    first, rest = words[0], words[1:]
    if first == "when" or (first in ("what", "which") and rest[:1] in (["year"], ["date"], ["month"],
                                                                       ["day"], ["century"], ["time"])):
        return TIME
    if first == "how" and rest[:1] in (["many"], ["much"], ["long"], ["old"], ["far"], ["big"], ["tall"],
                                       ["large"], ["high"], ["wide"], ["deep"], ["heavy"]):
        return QUANTITY
    if first in ("what", "which") and rest[:1] and rest[0] in _PLACES:
        return PLACE
    if first in ("what", "its", "his", "her", "their", "the") and any(
            w in _AMOUNTS or (w == "number" and nxt == "of") for w, nxt in zip(words[:5], [*words[1:6], ""])):
        return QUANTITY
    if first in ("who", "whom"):
        return PERSON
    if first == "where":
        return PLACE
    if first == "why" or (first == "what" and rest[:1] in (["did"], ["does"], ["do"])
                          and any(w in _SAYING for w in words[2:])):
        return STATEMENT
    return None


def is_kind(kind: str | None, text: str) -> bool:
    """Whether ``text`` can be an answer of this kind (any text fits None)."""
    text = text.strip()
    if kind is None or not text:
        return True
    if kind == TIME:
        return bool(_TIME.search(text))
    if kind == QUANTITY:  # a number that is not a date's
        return bool(_QUANTITY.search(_DAY_AND_YEAR.sub(" ", _DATE.sub(" ", text))))
    if kind in (PERSON, PLACE):  # a name or a description, never a bare time or number
        return not _only_time_or_number(text)
    return not _bare_name(text)  # STATEMENT


def whole_expression(kind: str | None, text: str, start: int, end: int) -> tuple[int, int]:
    """The span widened to the whole date it cuts into ("February" of "February 27, 2025")."""
    if kind != TIME:
        return start, end
    for m in _DATE.finditer(text, max(0, start - 12), min(len(text), end + 16)):
        if m.start() <= start < m.end() or m.start() < end <= m.end():
            return min(start, m.start()), max(end, m.end())
    return start, end


def _only_time_or_number(text: str) -> bool:
    rest = _TIME.sub(" ", _QUANTITY.sub(" ", text))
    return not re.search(r"[A-Za-z]{2,}", rest.replace("the", "").replace("of", "").replace("and", ""))


def _bare_name(text: str) -> bool:
    """One to four capitalised words and nothing else: "Alexander Darchiyev"."""
    words = text.rstrip(".,;:").split()
    return 0 < len(words) <= 4 and all(w[:1].isupper() for w in words)
