"""How retrieval weighs a question's words among the candidate passages."""

from __future__ import annotations

import numpy as np

from qa.retrieval import candidate_focus


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
