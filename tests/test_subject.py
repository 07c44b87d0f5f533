"""A conversation's subject (``qa.subject``): named by questions, kept by follow-ups, released
by a new name; over a real index of two documents that share words."""

from __future__ import annotations

from pathlib import Path

import pytest

from qa.contract import Turn
from qa.conversation import exchange
from qa.engine import Engine
from qa.index.build import build_index
from qa.subject import follow, names_in

RUPAUL = (
    "RuPaul Andre Charles was born in San Diego, California, on November 17, 1960. His parents "
    "were Ernestine \"Toni\" Charles and Irving Andre Charles, who divorced when he was seven. He "
    "moved to Atlanta as a teenager to study the performing arts.\n\n"
    "RuPaul started his career in 1982, performing in clubs in Atlanta and appearing on local "
    "television. He moved to New York in 1987 and became a fixture of the city's club scene. "
    "RuPaul signed with Tommy Boy Records in 1992.\n\n"
    "In 2009 he launched RuPaul's Drag Race, a competition series that has won many Emmy Awards.\n")
MADONNA = (
    "Madonna Louise Ciccone was born in Bay City, Michigan, on August 16, 1958. Her mother died "
    "of breast cancer when Madonna was five years old.\n\n"
    "Madonna started her career in 1978, when she moved to New York City to pursue a career in "
    "modern dance. Madonna signed her first record deal, with Sire Records, in 1982, and "
    "released her debut album in 1983.\n")


@pytest.fixture(scope="module")
def engine(tmp_path_factory, embedder) -> Engine:
    docs = tmp_path_factory.mktemp("subject-docs")
    (docs / "rupaul.txt").write_text(RUPAUL, encoding="utf-8")
    (docs / "madonna.txt").write_text(MADONNA, encoding="utf-8")
    index = tmp_path_factory.mktemp("subject-index")
    build_index([docs], index, embedder, report=lambda _: None)
    return Engine(Path(index))


def talk(engine: Engine, *questions: str) -> list[dict]:
    history: list[dict] = []
    results = []
    for question in questions:
        results.append(engine.ask(question, history))
        history += exchange(question, results[-1])
    return results


@pytest.mark.parametrize(("question", "names"), [
    ("Where was RuPaul born?", ("RuPaul",)),
    ("Was John Dewey a teacher?", ("John Dewey",)),
    ("What is FUNAI?", ("FUNAI",)),
    ("Who led the Russian delegation?", ()),  # a word for a people before a noun names nothing
    ("What did the US side want?", ()),
    ("Who were his parents?", ()),
    ("WHERE DID HE GO TO SCHOOL?", ()),  # shouting: capitals say nothing
])
def test_names_a_question_gives(question, names):
    assert names_in(question)[0] == names


def user(text: str) -> Turn:
    return Turn(role="user", content=text, short_answer="", source="")


def reply(text: str) -> Turn:
    return Turn(role="assistant", content=text, short_answer="", source="")


def test_only_questions_set_the_subject_and_a_new_name_releases_it():
    history = [user("Where was RuPaul born?"), reply("In San Diego."),
               user("Who were his parents?"), reply("Ernestine Charles and Irving Charles.")]
    mentioned = {"Atlanta"}  # what the subject's document mentions besides its subject

    def mentions(name: str, sources: tuple[str, ...]) -> bool:
        return sources == ("rupaul.txt",) and name in mentioned

    kept = follow(history, "When did he start his career?", ["rupaul.txt", "rupaul.txt"], mentions)
    assert kept.names == ("RuPaul",) and kept.sources == ("rupaul.txt",)
    assert follow(history, "Why did he move to Atlanta?", ["rupaul.txt"] * 2, mentions).names == ("RuPaul",)
    released = follow(history, "Where was Madonna born?", ["rupaul.txt"] * 2, mentions)
    assert released.names == ("Madonna",) and released.sources == ()


def test_pronouns_keep_to_the_subject_through_his_parents(engine):
    """The answer to "Who were his parents?" names the mother; "he" is still RuPaul."""
    born, parents, career = talk(engine, "Where was RuPaul born?", "Who were his parents?",
                                 "When did he start his career?")
    assert born["short_answer"]["text"] == "San Diego, California"
    assert "Ernestine" in parents["short_answer"]["text"]
    assert "When did RuPaul start RuPaul's career?" in career["query"]
    assert "Ernestine" not in career["follow_up"]
    assert career["short_answer"]["text"] == "1982"
    assert career["subject"] == {"names": ["RuPaul"], "sources": ["rupaul.txt"]}


def test_a_new_name_releases_the_subject(engine):
    *_, madonna, career = talk(engine, "Where was RuPaul born?", "Who were his parents?",
                               "Where was Madonna born?", "When did she start her career?")
    assert madonna["subject"] == {"names": ["Madonna"], "sources": ["madonna.txt"]}
    assert career["short_answer"]["text"] == "1978"
    assert career["citations"][0]["source"] == "madonna.txt"


def test_a_follow_up_stays_in_the_subjects_document(engine):
    """Asked alone, the question's words find Madonna's record deal; after a question about
    RuPaul, it is answered from RuPaul's document."""
    question = "When was the record deal signed?"
    alone = engine.ask(question)
    assert alone["citations"][0]["source"] == "madonna.txt"
    _, follow_up = talk(engine, "Where was RuPaul born?", question)
    assert follow_up["citations"][0]["source"] == "rupaul.txt"
    assert follow_up["short_answer"]["text"] == "1992"


def test_history_without_sources_finds_the_documents_quoted(engine):
    """A client that sends back only the text it showed keeps the subject all the same."""
    born = engine.ask("Where was RuPaul born?")
    history = [{"role": "user", "content": "Where was RuPaul born?"},
               {"role": "assistant", "content": born["answer"]}]
    result = engine.ask("When was the record deal signed?", history)
    assert result["subject"]["sources"] == ["rupaul.txt"]
    assert result["citations"][0]["source"] == "rupaul.txt"
