"""Follow-up questions: how they are read (rules a user can see) and what they answer."""

from __future__ import annotations

import pytest

from qa.conversation import exchange, rewrite


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
    ("What did the duchy become under Richard I?", "And under Rollo?",
     "What did the duchy become under Rollo?"),
    ("What is its population?", "And San Diego's?", "What is San Diego's population?"),
    ("What is Los Angeles's population?", "And San Diego's?", "What is San Diego's population?"),
])
def test_elliptical_continuations_take_the_place_of_the_matching_phrase(last, question, query):
    said = rewrite(question, history(last))
    assert said.query == query
    assert said.why and "continues the last question" in said.why


@pytest.mark.parametrize(("question", "with_answer"), [
    ("When?", True), ("How many?", True), ("Why?", True), ("By which treaty?", True), ("What year?", True),
    ("What happened there?", True), ("How many were seized?", True), ("What happened next?", True),
    ("Who won?", True), ("What was agreed?", True),
    ("Why were those links cut in the first place?", True),
    ("Who cut air links with Russia after that?", True),
    # a personal pronoun: the subject's documents come first, and the last answer's words would
    # draw the search back to the answer given
    ("What is her title?", False), ("And its population?", False)])
def test_fragments_and_references_carry_the_last_exchange(question, with_answer):
    said = rewrite(question, history("Who led the U.S. delegation?", "Sonata Coulter led it."))
    assert said.query.startswith(question)  # the question leads: a reader that clips keeps it
    assert "Who led the U.S. delegation?" in said.query
    assert ("Sonata Coulter led it." in said.query) == with_answer
    assert said.why and said.avoid == ("Sonata Coulter led it.",)


def test_asking_for_more_repeats_the_question_without_its_answer():
    said = rewrite("What else?", history("What did the parties agree to ensure?", "Financing."))
    assert said.query == "What did the parties agree to ensure?"
    assert said.avoid == ("Financing.",) and "more" in said.why and said.more


@pytest.mark.parametrize("question", ["What else was bad about his time at Old Trafford?",
                                      "Tell me more about his early life."])
def test_asking_for_more_with_words_of_its_own_reads_its_own_question(question):
    said = rewrite(question, history("Why was his spell not a great success?", "He had no fear."))
    assert said.reader_question == question and said.more and said.avoid == ("He had no fear.",)
    assert said.query == f"{question} Why was his spell not a great success?"
    plain = rewrite("What else did he do?", history("What did he do in 1990?"))
    assert plain.query == plain.reader_question == "What did he do in 1990?"


def test_asking_for_more_again_avoids_every_answer_given():
    turns = [*history("What did the parties agree to ensure?", "Financing."),
             *history("What else?", "Conditions for diplomats.")]
    said = rewrite("Anything else?", turns)
    assert said.query == "What did the parties agree to ensure?"
    assert said.avoid == ("Financing.", "Conditions for diplomats.") and said.more
    assert not rewrite("Why?", turns).more  # only asking for more never repeats


@pytest.mark.parametrize(("last", "question", "query"), [
    ("Who headed the Russian side?", "And the American one?", "Who headed the American side?"),
    ("What is the most populous city in California?", "And the second most populous one?",
     "What is the second most populous city in California?"),
])
def test_one_stands_for_the_noun_of_the_last_question(last, question, query):
    said = rewrite(question, history(last))
    assert said.query == query and said.why.startswith("continues the last question")


def test_a_continuation_of_a_follow_up_matches_its_own_question():
    turns = [*history("What is the most populous city in California?", "Los Angeles, with 3,792,621."),
             *history("What is its population?", "3,792,621.")]
    assert rewrite("And San Diego's?", turns).query == "What is San Diego's population?"


@pytest.mark.parametrize(("last", "question", "read"), [
    ("Who led the U.S. delegation?", "And who led the Russian one?", "And who led the Russian delegation?"),
    ("What is the most populous city in California?", "What is the population of the smallest one?",
     "What is the population of the smallest city?"),
])
def test_the_x_one_in_a_question_is_read_with_the_last_phrase(last, question, read):
    said = rewrite(question, history(last)).resolved("")
    assert said.reader_question == read and said.why.startswith("refers back ('one')")


def test_which_one_refers_back():
    said = rewrite("Which one includes Las Vegas?", history("How many megaregions are there?", "Eleven."))
    assert said.why.startswith("refers back ('one')") and said.query.endswith("Eleven.")
    assert rewrite("Which one is larger?", []).why is None


@pytest.mark.parametrize("question", ["Between which years?", "Among whom?", "Within which borders?"])
def test_a_phrase_led_by_a_preposition_is_a_fragment(question):
    said = rewrite(question, history("How many premises were seized?", "Six premises."))
    assert said.query == f"{question} How many premises were seized? Six premises."
    assert said.why.startswith("a fragment")


def test_a_follow_up_of_a_follow_up_keeps_the_first_question():
    turns = [*history("What did Russia offer the United States?", "Direct air links."),
             *history("Why?", "Sanctions.")]
    said = rewrite("Anything else?", turns)
    assert said.query == "Why? What did Russia offer the United States?"
    when = rewrite("When?", turns)
    assert when.query == "When? Why? What did Russia offer the United States? Sanctions."


@pytest.mark.parametrize("question", [
    "Who wrote Pride and Prejudice?",
    "How tall is Mount Everest?",
    "What is the name of the region that borders France?",  # a relative "that"
    "Is there a follow-up meeting planned?",  # "is there" refers to nothing
    "What did Putin say his hopes were?",  # the pronoun's referent is named in the question
    "When was the Duchy of Normandy founded?",
    "What is carrageenan?",  # a noun of its own, not a verb
    "What is the need?",  # "-eed" nouns are not past tenses
    "Who was Rollo?",  # a name
    "Which one of the planets is the largest?",  # "one of" names its own set
])
def test_questions_that_stand_alone_are_not_bent(question):
    said = rewrite(question, history("Who led the U.S. delegation?"))
    assert said.query == question and said.why is None and said.avoid == ()


@pytest.mark.parametrize(("last", "question", "referent", "read"), [
    # "he", "she", "her" after a "who" question: its answer
    ("Who did Donald Trump have a call with?", "What did he hail?", "Vladimir Putin",
     "What did Vladimir Putin hail?"),
    ("Who led the U.S. delegation?", "What is her title?", "Sonata Coulter",
     "What is Sonata Coulter's title?"),
    ("Who led the U.S. delegation?", "Who sat beside her?", "Sonata Coulter",
     "Who sat beside Sonata Coulter?"),
    # another word still points back: the last question stays beside the question read
    ("Who ruled the duchy of Normandy?", "What did it become under him?", "Richard I",
     "What did it become under Richard I? Who ruled the duchy of Normandy?"),
    # "there" after a "where" question
    ("Where did the officials negotiate in February?", "What was agreed there?", "Saudi Arabia",
     "What was agreed in Saudi Arabia?"),
    ("Where did the officials negotiate in February?", "Who flew in from there?", "Riyadh",
     "Who flew in from Riyadh?"),
    # a bare question word after "who did it": the last question told with its answer
    ("Who led the Normans of Edessa against the Turks?", "When?", "Robert Crispin",
     "When? Robert Crispin led the Normans of Edessa against the Turks."),
])
def test_the_last_short_answer_is_read_where_a_word_points_at_it(last, question, referent, read):
    said = rewrite(question, history(last, f"A quote that names {referent}.")).resolved(referent)
    assert said.reader_question == read
    assert said.why.endswith(f"read as {read!r}")  # what was read is shown to the user
    assert said.query.startswith(read.split("?")[0]) and referent in said.query  # and searched


@pytest.mark.parametrize(("last", "question", "referent"), [
    ("What did Russia offer the United States?", "Why did he offer it?", "direct air links"),  # not "who"
    ("Who did Trump call?", "When?", "Putin"),  # the answer is not the subject of the last question
    ("When did Russia send troops into Ukraine?", "Who was there?", "Feb. 24, 2022"),  # not "where"
    # "it" after a "what" question: read "What is Los Angeles's population?", the model
    # answered worse than with "its" and the last question beside it (eval/conversations.json)
    ("What is the most populous city in California?", "What is its population?", "Los Angeles"),
    ("Who led the U.S. delegation?", "What did he say?", "a long description that cannot stand in "
                                                         "for a name in any question"),
    ("Who led the U.S. delegation?", "What did he say?", ""),
])
def test_nothing_is_read_in_where_no_rule_applies(last, question, referent):
    said = rewrite(question, history(last))
    assert said.resolved(referent) == said


@pytest.mark.parametrize(("last", "question", "read"), [
    ("What religion were the Normans?", "What language did they adopt?",
     "What language did the Normans adopt?"),
    ("What language did the Normans adopt?", "What was their religion?", "What was the Normans' religion?"),
    ("What did the parties agree to ensure?", "When did they meet?", "When did the parties meet?"),
    ("When did the Russian diplomats leave?", "Why did they leave?", "Why did the Russian diplomats leave?"),
])
def test_they_is_read_as_the_group_the_last_question_asks_about(last, question, read):
    said = rewrite(question, history(last)).resolved("")
    assert said.read == read and said.why.endswith(f"read as {read!r}")
    assert said.query.startswith(read) and last in said.query  # still searched with the last exchange


@pytest.mark.parametrize(("last", "question", "with_last"), [
    ("Who did the Normans fight?", "Where did they fight?", True),  # after "who", "they" may be the answer
    ("What did Russia offer the United States?", "What did they say?", False),  # a name, not a group
    ("Where did senior officials negotiate?", "What did they agree?", False),  # no "the": left to the reader
])
def test_they_is_not_read_as_a_group_it_may_not_be(last, question, with_last):
    said = rewrite(question, history(last))
    assert said.resolved("") == said and said.query == f"{question} {last}"
    assert said.read == (f"{question} {last}" if with_last else question)


def test_a_pronoun_without_a_name_is_read_as_asked_and_that_with_the_last_question():
    last = history("When was he born?", "He was born in 1914 in Los Angeles.")
    said = rewrite("Who were his parents?", last).resolved("")
    assert said.reader_question == "Who were his parents?"
    assert said.query == "Who were his parents? When was he born?"
    said = rewrite("Why were those links cut?", history("What did Russia offer?", "Direct air links."))
    said = said.resolved("")
    assert said.reader_question == "Why were those links cut? What did Russia offer?"
    assert said.query == "Why were those links cut? What did Russia offer? Direct air links."


def test_the_history_gives_the_short_answer_a_follow_up_refers_to():
    result = {"answer": "Sonata Coulter, who led the U.S. delegation, and Alexander Darchiyev met.",
              "short_answer": {"text": "Sonata Coulter", "source": "s", "start": 0, "end": 14}}
    turns = exchange("Who led the U.S. delegation?", result)
    assert turns[1]["short_answer"] == "Sonata Coulter"
    said = rewrite("What is her title?", turns)
    assert said.referent == "Sonata Coulter"
    assert exchange("Why?", {"answer": "", "short_answer": None})[1]["short_answer"] is None


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
    return before, engine.ask(question, exchange(first, before))


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
    assert before["short_answer"]["text"].endswith("Vladimir Putin")
    assert after["follow_up"].endswith(f"read as 'What did {before['short_answer']['text']} hail?'")
    assert "Putin" not in (after["short_answer"] or {}).get("text", "")  # answered or not
    check(after, seed_text)


def test_pronoun_follow_up_over_the_seeds(engine, seed_text):
    before, after = ask_after(engine, "What did Russia offer the United States?",
                              "Why were those links cut in the first place?")
    assert "air" in before["answer"]
    assert after["follow_up"] and "those" in after["follow_up"]
    assert after["answerable"] and "sanctions" in after["answer"]
    assert after["answer"] != before["answer"]  # not the same quote again
    check(after, seed_text)


def test_a_question_with_only_a_verb_of_its_own_is_a_follow_up(engine, seed_text):
    before, after = ask_after(engine, "What did the consultations address besides financing?",
                              "How many were seized?")
    alone = engine.ask("How many were seized?")
    assert "properties" in before["answer"]
    assert after["follow_up"].startswith("no words of its own but a verb")
    assert after["query"].startswith("How many were seized? What did the consultations address")
    assert after["answerable"] and "six premises" in after["answer"]
    assert alone["follow_up"] is None and alone["query"] == "How many were seized?"
    check(after, seed_text)


@pytest.mark.parametrize("reader", ["span", "sentence"])
@pytest.mark.parametrize(("first", "more_found"), [("What did the parties agree to ensure?", True),
                                                   ("What was agreed in Riyadh?", False)])
def test_asking_for_more_never_repeats_an_answer(reader, first, more_found, engine, seed_index, seed_text):
    from qa.engine import Engine

    engine = engine if reader == "span" else Engine(seed_index, reader=reader)
    history, quotes, shorts = [], [], []
    for question in (first, "What else?", "What else?"):
        result = engine.ask(question, history)
        history += exchange(question, result)
        short = (result["short_answer"] or {}).get("text", "")
        if any(result["answer"] and result["answer"] in q for q in quotes):  # a sentence quoted again
            assert short and not any(s in short for s in shorts)  # only for a short answer not given
        quotes.append(result["answer"])
        shorts.append(short)
        check(result, seed_text)
    assert quotes[0] and (bool(quotes[1]) or not more_found)


def test_asking_for_more_finds_another_answer_in_the_same_sentence(engine, seed_text):
    first = "What did the U.S. delegation raise concerns about?"
    before, after = ask_after(engine, first, "What else?")
    assert before["short_answer"]["text"] == "access to banking and contracted services"
    assert after["answer"] == before["answer"]  # the sentence names both concerns
    assert after["short_answer"]["text"].startswith("the need to ensure stable and sustainable staffing")
    check(after, seed_text)


def test_a_fragment_follow_up_over_the_seeds(engine, seed_text):
    before, after = ask_after(engine, "How many premises were seized?", "Between which years?")
    assert before["short_answer"]["text"] == "six"
    assert after["follow_up"].startswith("a fragment")
    assert after["short_answer"]["text"] == "2016 and 2018"
    check(after, seed_text)


NORMANS = ("The Normans were famed for their martial spirit and eventually for their Christian piety, "
           "becoming exponents of the Catholic orthodoxy into which they assimilated. They adopted the "
           "Gallo-Romance language of the Frankish land they settled, their dialect becoming known as "
           "Norman, Normaund or Norman French, an important literary language.\n")


def test_they_follow_up_over_a_document(tmp_path, embedder):
    from qa.engine import Engine
    from qa.index.build import build_index

    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "normans.txt").write_text(NORMANS, encoding="utf-8")
    build_index([tmp_path / "docs"], tmp_path / "index", embedder, report=lambda _: None)
    engine = Engine(tmp_path / "index")
    before, after = ask_after(engine, "What religion were the Normans?", "What language did they adopt?")
    assert "Catholic" in before["short_answer"]["text"]
    assert after["follow_up"].endswith("read as 'What language did the Normans adopt?'")
    assert after["short_answer"]["text"].startswith("Gallo-Romance")
    check(after, NORMANS)


def test_topic_change_is_answered_as_if_alone(engine):
    _, after = ask_after(engine, "Who led the U.S. delegation?", "Who wrote Pride and Prejudice?")
    alone = engine.ask("Who wrote Pride and Prejudice?")
    assert after["follow_up"] is None and after["query"] == "Who wrote Pride and Prejudice?"
    assert after["answerable"] is False and alone["answerable"] is False
    assert after["passages"] == alone["passages"]


def test_reader_reads_a_reference_with_the_last_question_not_the_long_quote():
    said = rewrite("What is her title?",
                   history("Who led the U.S. delegation?", "Sonata Coulter, a long quote."))
    assert said.query == "What is her title? Who led the U.S. delegation?"  # searched so too
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


def test_a_pronoun_is_read_as_the_person_the_user_was_shown(engine, seed_text):
    history = []
    for question in ("Who headed the Russian side?", "And the American side?"):
        result = engine.ask(question, history)
        history += exchange(question, result)
    assert history[-1]["short_answer"] == "Sonata Coulter"
    after = engine.ask("What is her title?", history)
    assert after["follow_up"].endswith("read as \"What is Sonata Coulter's title?\"")
    assert after["query"].startswith("What is Sonata Coulter's title?")
    assert "deputy assistant secretary of state" in after["short_answer"]["text"]
    check(after, seed_text)


def test_without_the_short_answer_in_the_history_the_reader_finds_it_again(engine, seed_text):
    first = "Who headed the Russian side?"
    before = engine.ask(first)
    assert before["short_answer"]["text"] == "Alexander Darchiyev"
    after = engine.ask("What is his title?", history(first, before["answer"]))  # no short_answer
    assert after["follow_up"].endswith("read as \"What is Alexander Darchiyev's title?\"")
    assert "North America department" in after["short_answer"]["text"]
    check(after, seed_text)


def test_what_they_discussed_is_a_topic_not_the_person_last_named(engine, seed_text):
    """After two "who" turns the reader reads "What did they discuss?" on its own: read with
    "Who led the Russian delegation?" beside it, it gave "Alexander Darchiyev" again."""
    history = []
    for question in ("Who led the Russian delegation?", "And the American side?"):
        result = engine.ask(question, history)
        history += exchange(question, result)
    after = engine.ask("What did they discuss?", history)
    assert after["answerable"], after
    short = after["short_answer"]["text"]
    assert not any(name in short for name in ("Darchiyev", "Darchiev", "Coulter")), short
    assert len(short.split()) >= 3  # a topic says something: "access to banking and contracted services"
    check(after, seed_text)


def test_how_many_is_answered_with_a_number_not_a_date(engine, seed_text):
    """"27, 2025" (of "February 27, 2025") held digits, so it passed for a quantity."""
    _, after = ask_after(engine, "What did the consultations address besides the missions' financing?",
                         "How many were seized?")
    assert after["answerable"], after
    assert after["short_answer"]["text"].lower().startswith("six"), after["short_answer"]
    check(after, seed_text)


def test_the_reader_reads_what_they_did_alone_after_a_who_question():
    said = rewrite("What did they discuss?", history("Who led the Russian delegation?", "Darchiyev led it."))
    assert said.reader_question == "What did they discuss?"
    # retrieval still searches with the last exchange
    assert said.query.startswith("What did they discuss? Who led the Russian delegation?")
    when = rewrite("When did that happen?", history("Why were those links cut?", "After the invasion."))
    assert when.reader_question == "When did that happen? Why were those links cut?"
