"""How retrieval weighs a question's words among the candidate passages."""

from __future__ import annotations

import numpy as np
import pytest

from qa.engine import Engine
from qa.index.build import build_index
from qa.retriever.hybrid import candidate_focus, lexical_search, make_query

TOPIC = ("CCL3L1 is a chemokine that binds CCR5, the co-receptor HIV-1 uses to enter cells, and the CCL3L1 "
         "gene varies in copy number between people. ")
PAPER = [  # every section repeats the paper's topic words; one answers the question
    "In adults, the role of CCL3L1 in HIV-1 acquisition has been studied in several cohorts. Higher "
    "CCL3L1 dose was linked to lower HIV-1 susceptibility in some of them, and the role of CCL3L1 in "
    "HIV-1 disease progression in adults remains debated among researchers.",
    "We measured CCL3L1 copy number by quantitative PCR in blood samples. Each CCL3L1 assay was run in "
    "triplicate, and the role of CCL3L1 copy number was modelled with regression adjusted for age, sex "
    "and HIV-1 viral load.",
    "Among infants born to mothers living with HIV-1, those with more copies than the population median "
    "had a 40% lower risk of mother-to-child transmission during breastfeeding, independent of the "
    "mother's viral load and of the duration of breastfeeding.",
    "CCL3L1 shares its receptor with CCL4 and CCL5, so the role of CCL3L1 in HIV-1 infection cannot be "
    "read without CCR5 genotype, and CCL3L1 expression did not differ between CCR5 genotypes.",
    "Limitations: CCL3L1 copy number assays have known measurement error, and the role of CCL3L1 in "
    "HIV-1 infection in other populations needs confirmation in larger cohorts.",
]


def test_in_a_long_paper_the_passage_that_answers_ranks_first(tmp_path, embedder):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "ccl3l1.txt").write_text("\n\n".join(TOPIC + p for p in PAPER) + "\n", encoding="utf-8")
    (docs / "towns.txt").write_text("\n\n".join(
        f"The museum of town {i} opened in {1800 + i}. Visitors come in spring, and the council keeps it "
        f"open every day; old maps and letters hang on the walls of its entrance hall." for i in range(30)),
        encoding="utf-8")
    build_index([docs], tmp_path / "index", embedder, report=lambda _: None)
    result = Engine(tmp_path / "index", reader="sentence").ask(
        "What is the role of CCL3L1 in mother-to-child transmission of HIV-1?")
    assert "mother-to-child transmission" in result["passages"][0]["text"]
    assert result["passages"][0]["source"] == "ccl3l1.txt"


def test_a_word_every_candidate_holds_does_not_tell_them_apart():
    # Four candidate chunks: word 0 is in all of them (twice in chunk 0), word 1 in one,
    # word 2 in none (the question asks about something no candidate mentions).
    terms = np.array([0, 0, 0, 0, 0, 1])
    chunks = np.array([0, 0, 1, 2, 3, 2])
    focus = candidate_focus(terms, chunks, term_count=3, chunk_count=4)
    assert focus[2] == 1.0
    assert focus[0] < 0.1 < focus[1] < focus[2]
    # a word held by more candidates tells them apart less, however often one repeats it
    more = candidate_focus(np.array([1, 1, 1]), np.array([2, 2, 2]), term_count=3, chunk_count=4)
    assert more[1] == focus[1]


def test_no_word_found_leaves_every_weight_whole():
    focus = candidate_focus(np.array([], dtype=np.int64), np.array([], dtype=np.int64), 2, 5)
    assert focus.tolist() == [1.0, 1.0]


@pytest.mark.parametrize("written, other, asked", [
    # "U.S." used to be no word at all to the word index (single letters are not words).
    ("The U.S. embassy in Moscow asked once again for more staff this year.",
     "The Paris embassy asked for more staff.", "Did the US embassy ask for staff?"),
    ("The US embassy in Moscow asked once again for more staff this year.",
     "The Paris embassy asked for more staff.", "Did the U.S. embassy ask for staff?"),
    # Accents: the embedder's tokenizer takes them off, and now the word index does too.
    ("The café in Zürich was opened once again by its new owners this year.",
     "The cafe in Bern was opened this year.", "When was the cafe in Zurich opened?"),
])
def test_a_word_written_another_way_is_the_same_word(tmp_path, embedder, written, other, asked):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "written.txt").write_text(written + "\n", encoding="utf-8")
    (docs / "other.txt").write_text(other + "\n", encoding="utf-8")
    build_index([docs], tmp_path / "index", embedder, report=lambda _: None)
    data = Engine(tmp_path / "index", reader="sentence").data
    query = make_query(data, asked, np.zeros(data.chunk_vectors.shape[1], np.float32))
    ids, _ = lexical_search(data, query, 2)
    assert data.chunk_span(ids[0])[0].source == "written.txt"
