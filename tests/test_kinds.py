"""The kind of answer a question asks for, and whether a short answer is of it: the rules the
span reader prefers spans by and `qa eval` counts wrong kinds with."""

import pytest

from qa.readers.kinds import PERSON, PLACE, QUANTITY, STATEMENT, TIME, asked_kind, is_kind, whole_expression


@pytest.mark.parametrize(("question", "kind"), [
    ("When did the talks take place?", TIME),
    ("And when did they meet?", TIME),  # words before the question's own say nothing
    ("In what year was it built?", TIME),
    ("In what country is Normandy located?", PLACE),
    ("Which city hosted the talks?", PLACE),
    ("How tall is Mount Everest?", QUANTITY),
    ("And its population?", QUANTITY),
    ("What is the number of members?", QUANTITY),
    ("Who led the delegation?", PERSON),
    ("What did they discuss?", STATEMENT),
    ("What was the number one hit?", None),  # "number one" is no amount
    ("What area has the most diversity?", None),  # an area may be a place
    ("What was the age of enlightenment about?", None),
])
def test_the_kind_asked(question, kind):
    assert asked_kind(question) == kind


@pytest.mark.parametrize(("kind", "text", "fits"), [
    (QUANTITY, "six premises", True),
    (QUANTITY, "1,307,402", True),
    (QUANTITY, "27, 2025", False),  # what is left of a date cut into
    (QUANTITY, "February 27, 2025", False),
    (TIME, "after their second album", True),  # a time told by what it followed
    (TIME, "Alexander Darchiyev", False),
    (STATEMENT, "Alexander Darchiyev", False),
    (STATEMENT, "access to banking and contracted services", True),
    (PLACE, "1987", False),
])
def test_an_answer_of_the_kind(kind, text, fits):
    assert is_kind(kind, text) is fits


def test_a_date_cut_into_is_widened_to_the_whole_date():
    text = "On February 27, 2025 consultations convened in Istanbul."
    start = text.index("February")
    widened = whole_expression(TIME, text, start, start + len("February"))
    assert widened == (start, start + len("February 27, 2025"))
