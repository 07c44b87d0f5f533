"""Embedding: chunk vectors are the model's own, sentence vectors come from the same pass."""

import numpy as np


def test_text_vectors_match_the_model_and_spans_match_their_sentences(embedder):
    texts = [
        "  The lighthouse was repainted white in 1999. A bakery opened near the harbour in May.",
        "Ferries leave Pier 4 every hour.",
        "Short.",
    ]
    spans = [[(2, 46), (47, 87)], [(0, 32)], []]
    whole, parts = embedder.encode_with_spans(texts, spans)
    assert np.allclose(whole, embedder.encode(texts), atol=1e-5)
    assert [p.shape for p in parts] == [(n, embedder.dimension) for n in (2, 1, 0)]
    assert np.allclose(np.linalg.norm(parts[0], axis=1), 1.0, atol=1e-5)
    own = embedder.encode([texts[0][a:b] for a, b in spans[0]])
    similarity = parts[0] @ own.T
    assert similarity[0, 0] > similarity[0, 1] and similarity[1, 1] > similarity[1, 0]
    # A one-sentence text: its sentence vector is the text's, less the [CLS]/[SEP] tokens.
    assert float(parts[1][0] @ whole[1]) > 0.95


def test_empty_input_gives_empty_output(embedder):
    whole, parts = embedder.encode_with_spans([], [])
    assert whole.shape == (0, embedder.dimension) and parts == []
