"""Follow-up questions: how they are read (rules a user can see) and what they answer."""

from __future__ import annotations

import pytest

from qa.conversation import rewrite


def history(question: str, answer: str = "An earlier answer.") -> list[dict[str, str]]:
    return [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]


@pytest.mark.parametrize(("last", "question", "query"), [
    ("Who headed the Russian side?", "And the American side?", "Who headed the American side?"),
    ("Who led the U.S. delegation?", "What about the Russian delegation?", "Who led the Russian delegation?"),
    ("When did Russia send troops into Ukraine?", "And Georgia?",
     "When did Russia send troops into Georgia?"),
    ("Who were the Raoulii descended from?", "And the Petraliphae?",
     "Who were the Petraliphae descended from?"),
    ("What desert is at the border with Nevada?", "And at the border with Arizona?",
     "What desert is at the border with Arizona?"),
])
def test_elliptical_continuations_take_the_place_of_the_matching_phrase(last, question, query):
    said = rewrite(question, history(last))
    assert said.query == query
    assert said.why and "continues the last question" in said.why


@pytest.mark.parametrize("question", ["When?", "How many?", "Why?", "By which treaty?", "What year?",
                                      "What is her title?", "Why were those links cut in the first place?",
                                      "Who cut air links with Russia after that?", "What happened there?",
                                      "And its population?"])
def test_fragments_and_references_carry_the_last_exchange(question):
    said = rewrite(question, history("Who led the U.S. delegation?", "Sonata Coulter led it."))
    assert said.query.startswith(question)  # the question leads: a reader that clips keeps it
    assert "Who led the U.S. delegation?" in said.query and "Sonata Coulter led it." in said.query
    assert said.why and said.avoid == ("Sonata Coulter led it.",)


def test_asking_for_more_repeats_the_question_without_its_answer():
    said = rewrite("What else?", history("What did the parties agree to ensure?", "Financing."))
    assert said.query == "What did the parties agree to ensure?"
    assert said.avoid == ("Financing.",) and "more" in said.why


@pytest.mark.parametrize("question", [
    "Who wrote Pride and Prejudice?",
    "How tall is Mount Everest?",
    "What is the name of the region that borders France?",  # a relative "that"
    "Is there a follow-up meeting planned?",  # "is there" refers to nothing
    "What did Putin say his hopes were?",  # the pronoun's referent is named in the question
    "When was the Duchy of Normandy founded?",
])
def test_questions_that_stand_alone_are_not_bent(question):
    said = rewrite(question, history("Who led the U.S. delegation?"))
    assert said.query == question and said.why is None and said.avoid == ()


def test_no_history_no_rewrite():
    assert rewrite("When?", []).query == "When?"


# ---- over the seeds, with the real model, index and reader ----

def check(result: dict, text: str) -> None:
    for c in result["citations"]:
        assert text[c["start"] : c["end"]] == c["quote"]
    short = result["short_answer"]
    if short:
        assert text[short["start"] : short["end"]] == short["text"]


def ask_after(engine, first: str, question: str) -> tuple[dict, dict]:
    before = engine.ask(first)
    return before, engine.ask(question, history(first, before["answer"]))


def test_elliptical_follow_up_over_the_seeds(engine, seed_text):
    before, after = ask_after(engine, "Who headed the Russian side?", "And the American side?")
    assert "Darchiyev" in before["short_answer"]["text"] or "Darchiev" in before["short_answer"]["text"]
    assert after["query"] == "Who headed the American side?"
    assert after["answerable"] and "Sonata Coulter" in after["answer"]
    # The sentence names both; the short answer is not the person the follow-up moves on from.
    assert after["short_answer"]["text"] == "Sonata Coulter"
    check(after, seed_text)


def test_a_follow_up_short_answer_is_not_what_it_refers_to(engine, seed_text):
    before, after = ask_after(engine, "Who did Donald Trump have a call with?", "What did he hail?")
    assert before["short_answer"]["text"] == "Vladimir Putin"
    assert after["follow_up"] and "he" in after["follow_up"]
    assert "Putin" not in after["short_answer"]["text"]
    check(after, seed_text)


def test_pronoun_follow_up_over_the_seeds(engine, seed_text):
    before, after = ask_after(engine, "What did Russia offer the United States?",
                              "Why were those links cut in the first place?")
    assert "air" in before["answer"]
    assert after["follow_up"] and "those" in after["follow_up"]
    assert after["answerable"] and "sanctions" in after["answer"]
    assert after["answer"] != before["answer"]  # not the same quote again
    check(after, seed_text)


def test_topic_change_is_answered_as_if_alone(engine):
    _, after = ask_after(engine, "Who led the U.S. delegation?", "Who wrote Pride and Prejudice?")
    alone = engine.ask("Who wrote Pride and Prejudice?")
    assert after["follow_up"] is None and after["query"] == "Who wrote Pride and Prejudice?"
    assert after["answerable"] is False and alone["answerable"] is False
    assert after["passages"] == alone["passages"]


def test_reader_reads_a_reference_with_the_last_question_not_the_long_quote():
    said = rewrite("What is her title?",
                   history("Who led the U.S. delegation?", "Sonata Coulter, a long quote."))
    assert said.query.endswith("Sonata Coulter, a long quote.")  # retrieval gets everything
    assert said.reader_question == "What is her title? Who led the U.S. delegation?"
    plain = rewrite("And the American side?", history("Who headed the Russian side?"))
    assert plain.reader_question == plain.query == "Who headed the American side?"


def test_a_follow_up_builds_on_the_last_question_as_it_was_rewritten():
    history = [{"role": "user", "content": "Who headed the Russian side?"},
               {"role": "assistant", "content": "Alexander Darchiyev headed the Russian side."},
               {"role": "user", "content": "And the American side?"},
               {"role": "assistant", "content": "Sonata Coulter led the U.S. delegation."}]
    assert rewrite("What else?", history).query == "Who headed the American side?"
    assert rewrite("And the Georgian side?", history).query == "Who headed the Georgian side?"
    assert rewrite("What is her title?", history).read == "What is her title? Who headed the American side?"
