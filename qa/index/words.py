"""Words as BM25 and the readers count them: split, normalised, stemmed, stop words out.

One definition for the index (postings, sentence terms) and for questions, so a
question's words are always the words the index holds.
"""

from __future__ import annotations

import importlib.util
import re
import unicodedata
from functools import lru_cache
from pathlib import Path


def _bm25s_stopwords() -> tuple[str, ...]:
    """bm25s's English stop words, read from its module alone: importing the package would
    load its evaluation tools too (asyncio, tqdm, numpy.f2py: 60 ms of every `qa ask`)."""
    package = importlib.util.find_spec("bm25s")
    spec = importlib.util.spec_from_file_location(
        "bm25s_stopwords", Path(package.submodule_search_locations[0]) / "stopwords.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.STOPWORDS_EN_PLUS


# NLTK's English stop words (as bundled with bm25s) plus question words it lacks: a
# question's "how many" must not count as words the corpus should contain.
STOPWORDS = sorted(set(_bm25s_stopwords()) | {"many", "much", "whose", "could", "would"})


_WORD = re.compile(r"(?u)\b\w\w+\b")  # the word pattern bm25s and scikit-learn use
# Initials written with full stops ("U.S.", "U.K.", "D.C."): one word, as written without
# them ("US"), where the word pattern would drop every letter.
_INITIALS = re.compile(r"(?<![\w.])(?:[^\W\d_]\.)+[^\W\d_]\.?(?!\w)")
_ACCENTS = re.compile(r"[\u0300-\u036f]")
_STOP = frozenset(STOPWORDS)


def tokenize(texts: list[str]) -> list[list[str]]:
    """Lower-cased, stemmed words without English stop words (BM25's vocabulary), their
    accents off as the embedder's tokenizer takes them off: "Zurich" finds "Zürich"."""
    stem = _stemmer().stemWords
    return [stem([w for w in _WORD.findall(_plain(t)) if w not in _STOP]) for t in texts]


def _plain(text: str) -> str:
    """The text as its words are matched: accents off, initials undotted, lower case."""
    if not text.isascii():
        text = _ACCENTS.sub("", unicodedata.normalize("NFKD", text))
    return _INITIALS.sub(_undotted, text).lower()


def _undotted(match: re.Match) -> str:
    return match.group(0).replace(".", "")


@lru_cache(maxsize=1)
def _stemmer():
    import Stemmer

    return Stemmer.Stemmer("english")
