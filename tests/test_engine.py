"""End-to-end answers over the seeds, checked against the file itself."""

from __future__ import annotations

import re

import jsonschema
import pytest

from qa.contract import ANSWER_SCHEMA, Answer
from qa.errors import InvalidRequest

KEYS = set(Answer.__required_keys__)  # the contract's answer, every key always present


def check_quotes(result: dict, text: str) -> None:
    """Every citation and passage is a verbatim span of the seed file."""
    for c in result["citations"]:
        assert text[c["start"] : c["end"]] == c["quote"]
    for p in result["passages"]:
        assert text[p["start"] : p["end"]] == p["text"]


@pytest.mark.parametrize(("question", "expected"), [
    ("Who led the U.S. delegation?", "Sonata Coulter"),
    ("Where were the consultations held?", "Istanbul"),
    ("When did Russia send troops into Ukraine?", "Feb. 24, 2022"),
    ("How many diplomatic premises were seized?", "six premises"),
    ("What did Putin say the first contacts encourage?", "certain hopes"),
])
def test_answers_are_verbatim_and_cited(engine, seed_text, question, expected):
    result = engine.ask(question)
    assert set(result) == KEYS == set(ANSWER_SCHEMA["required"])
    jsonschema.validate(result, ANSWER_SCHEMA)
    assert result["answerable"] is True
    assert expected in result["answer"]
    assert result["citations"][0]["n"] == 1
    assert result["citations"][0]["quote"] == result["answer"]
    assert result["citations"][0]["source"] == "000_fdd6fe5acc3e6b5b.txt"
    assert 0.0 < result["confidence"] <= 1.0
    assert result["passages"] and result["passages"][0]["score"] >= result["passages"][-1]["score"]
    check_quotes(result, seed_text)


def test_near_identical_statements_corroborate_instead_of_repeating(engine, seed_text):
    result = engine.ask("What did Russia offer to restore between the two countries?")
    assert result["answerable"] and "air" in result["answer"]
    extra = [c for c in result["citations"] if c["n"] > 1]
    assert extra, "the ministry statement and the wire story both say it"
    assert all(c["corroborates"] == 1 for c in extra)
    quotes = [c["quote"] for c in result["citations"]]
    assert len(set(quotes)) == len(quotes)
    assert any("air" in q for q in quotes[1:])
    check_quotes(result, seed_text)


def test_follow_up_uses_the_history(engine, seed_text):
    first = engine.ask("Who led the U.S. delegation?")
    alone = engine.ask("What is her title?")
    history = [{"role": "user", "content": "Who led the U.S. delegation?"},
               {"role": "assistant", "content": first["answer"]}]
    follow = engine.ask("What is her title?", history)
    assert follow["answerable"]
    assert "deputy assistant secretary of state" in follow["answer"].lower()
    assert "Coulter" in follow["answer"]
    # Without the history the same words do not lead to her title.
    assert "deputy assistant secretary" not in alone["answer"].lower()
    check_quotes(follow, seed_text)


@pytest.mark.parametrize("question", [
    "How tall is Mount Everest?",
    "Who wrote Pride and Prejudice?",
    "What is the boiling point of water at sea level?",
    "How do I bake sourdough bread?",
])
def test_off_topic_questions_abstain_with_closest_passages(engine, question):
    result = engine.ask(question)
    assert result["answerable"] is False
    assert result["answer"] == "" and result["citations"] == []
    assert result["passages"], "the closest passages are still returned"


def test_question_of_stop_words_abstains_cleanly(engine):
    result = engine.ask("what is the?")
    assert result["answerable"] is False and result["passages"] == [] and result["confidence"] == 0.0


def test_top_k_limits_passages(engine):
    assert len(engine.ask("Istanbul talks", top_k=2)["passages"]) == 2
    assert len(engine.ask("Istanbul talks", top_k=1)["passages"]) == 1


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"question": ""}, "empty"),
    ({"question": "   "}, "empty"),
    ({"question": 42}, "string"),
    ({"question": "x" * 2001}, "longer"),
    ({"question": "ok?", "top_k": 0}, "top_k"),
    ({"question": "ok?", "top_k": True}, "top_k"),
    ({"question": "ok?", "history": "nope"}, "history"),
    ({"question": "ok?", "history": [{"role": "system", "content": "x"}]}, "role"),
    ({"question": "ok?", "history": [{"role": "user"}]}, "history[0]"),
    ({"question": "ok?", "history": [{"role": "user", "content": "x"}] * 21}, "at most 20"),
    ({"question": "ok?", "history": [{"role": "assistant", "content": "x", "short_answer": 3}]},
     "history[0].short_answer must be a string"),
    ({"question": "ok?", "history": [{"role": "assistant", "content": "x", "extra": 1}]}, "history[0]"),
])
def test_bad_requests_are_clear_errors(engine, kwargs, message):
    with pytest.raises(InvalidRequest, match=re.escape(message)):
        engine.ask(**kwargs)
