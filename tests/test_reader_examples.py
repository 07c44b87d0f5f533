"""The reader's training examples: built no-answer questions are labelled as such."""

import json

from qa.training.examples import load_articles, negated, opposite, validation_examples

CONTEXT = ("Rollo was the first ruler of Normandy. He agreed to defend the lower Seine. "
           "The duchy was the largest fief of the French crown.")


def test_a_question_is_negated_at_its_auxiliary():
    assert negated("Who was the first ruler of Normandy?") == "Who wasn't the first ruler of Normandy?"
    assert negated("What did Rollo agree to defend?") == "What didn't Rollo agree to defend?"
    assert negated("How many people live in Fresno?") is None  # no auxiliary to negate


def test_a_question_gets_the_opposite_of_its_first_word_that_has_one():
    assert opposite("Who was the first ruler of Normandy?") == "Who was the last ruler of Normandy?"
    assert opposite("Which fief was the largest?") == "Which fief was the smallest?"
    assert opposite("Who ruled Normandy?") is None


def one_question(tmp_path):
    """A SQuAD file of one paragraph and one question, loaded."""
    squad = {"data": [{"title": "Normandy", "paragraphs": [{"context": CONTEXT, "qas": [{
        "id": "q1", "question": "Who was the first ruler of Normandy?",
        "answers": [{"text": "Rollo", "answer_start": 0}]}]}]}]}
    path = tmp_path / "squad.json"
    path.write_text(json.dumps(squad), encoding="utf-8")
    return load_articles(path)


def test_reworded_questions_are_not_answered_by_the_window_that_answers_the_original(tmp_path):
    examples = validation_examples(one_question(tmp_path), seed=1, reword=True)
    answered = [e for e in examples if e.answer is not None]
    assert [e.window.text[slice(*e.answer)] for e in answered] == ["Rollo"]
    reworded = {e.question: e for e in examples if e.window == answered[0].window and e.answer is None}
    assert set(reworded) == {"Who wasn't the first ruler of Normandy?", "Who was the last ruler of Normandy?"}


def test_without_rewording_only_the_asked_question_is_read(tmp_path):
    questions = {e.question for e in validation_examples(one_question(tmp_path), seed=1)}
    assert questions == {"Who was the first ruler of Normandy?"}


def test_squad2_unanswerable_questions_are_read_against_the_window_that_matches_them(tmp_path):
    """SQuAD 2.0's unanswerable questions are written to look answered by their paragraph:
    each is read, unanswered, against the window a retriever would give the reader."""
    other = "Paris is the capital of France. The Seine runs through it. " * 3
    squad = {"data": [{"title": "Normandy", "paragraphs": [
        {"context": other, "qas": []},
        {"context": CONTEXT, "qas": [
            {"id": "q1", "question": "Who was the first ruler of Normandy?",
             "answers": [{"text": "Rollo", "answer_start": 0}], "is_impossible": False},
            {"id": "q2", "question": "Who was the last ruler of the French crown?", "answers": [],
             "is_impossible": True}]}]}]}
    path = tmp_path / "squad2.json"
    path.write_text(json.dumps(squad), encoding="utf-8")
    articles = load_articles(path)
    assert [q.answerable for q in articles[0].questions] == [True, False]
    examples = validation_examples(articles, seed=1)
    unanswered = [e for e in examples if e.question == "Who was the last ruler of the French crown?"]
    assert len(unanswered) == 1 and unanswered[0].answer is None
    assert "French crown" in unanswered[0].window.text
