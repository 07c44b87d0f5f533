"""Sentence splitting and chunking: abbreviations, exact offsets, the model's length limit."""

from qa.index.chunking import ChunkSettings, chunk_text, paragraphs, split_sentences


def test_abbreviations_do_not_end_sentences(embedder, seed_text):
    text = seed_text
    sentences, _ = chunk_text(text, embedder.count_tokens, ChunkSettings())
    quotes = [text[s.start : s.end] for s in sentences]
    troops = [q for q in quotes if "sent troops into Ukraine" in q]
    assert troops == [
        "U.S. and other Western nations cut air links with Russia as part of a slew of sanctions "
        "imposed on Moscow after it sent troops into Ukraine on Feb. 24, 2022."
    ]
    assert not any(q.endswith(("U.S.", "Feb.")) for q in quotes)


def test_sentence_and_chunk_offsets_are_exact(embedder, seed_text):
    text = seed_text
    sentences, chunks = chunk_text(text, embedder.count_tokens, ChunkSettings())
    for s in sentences:
        piece = text[s.start : s.end]
        assert piece == piece.strip() and piece
    for c in chunks:
        first = sentences[c.first_sentence]
        assert c.start == first.start
        assert c.end == sentences[c.last_sentence - 1].end
    # Every non-space character of the document is inside some sentence.
    covered = set()
    for s in sentences:
        covered.update(range(s.start, s.end))
    assert all(i in covered for i, ch in enumerate(text) if not ch.isspace())


def test_chunks_never_exceed_the_model_limit(embedder):
    long_sentence = " ".join(f"word{i} alpha-beta gamma" for i in range(400)) + "."
    text = "Short opening sentence. " + long_sentence + "\n\nA new paragraph. " + "x" * 3000
    settings = ChunkSettings(max_tokens=100, limit_tokens=embedder.max_tokens - 2)
    _, chunks = chunk_text(text, embedder.count_tokens, settings)
    tokenizer = embedder.tokenizer
    for c in chunks:
        ids = tokenizer(text[c.start : c.end])["input_ids"]  # with [CLS] and [SEP]
        assert len(ids) <= embedder.max_tokens
    # Nothing is dropped: all words survive somewhere in a chunk.
    joined = " ".join(text[c.start : c.end] for c in chunks)
    assert "word399" in joined and "word0" in joined and "x" * 100 in joined


def test_blank_lines_separate_paragraphs_and_chunks(embedder):
    text = "First paragraph here. It has two sentences.\n\n  \nSecond paragraph, one sentence."
    assert [text[p.start : p.end] for p in paragraphs(text)] == [
        "First paragraph here. It has two sentences.",
        "Second paragraph, one sentence.",
    ]
    _, chunks = chunk_text(text, embedder.count_tokens, ChunkSettings())
    assert [text[c.start : c.end] for c in chunks] == [
        "First paragraph here. It has two sentences.",
        "Second paragraph, one sentence.",
    ]
    para = paragraphs(text)[0]
    assert [text[s.start : s.end] for s in split_sentences(text, para)] == [
        "First paragraph here.",
        "It has two sentences.",
    ]


def test_a_long_paragraph_splits_like_its_parts(seed_text):
    one = " ".join(seed_text.split("\n"))  # the seed as a single paragraph, about 4.5 KB
    sentences = split_sentences(one, paragraphs(one)[0])
    text = " ".join([one.strip()] * 12)  # about 54 KB
    long = split_sentences(text, paragraphs(text)[0])
    expected = [one[s.start : s.end] for s in sentences] * 12
    assert [text[s.start : s.end] for s in long] == expected


def test_a_semicolon_does_not_end_a_sentence():
    text = "They met in Istanbul; Russia offered flights. Then it ended. Items: A; B; C."
    assert [text[s.start : s.end] for s in split_sentences(text, paragraphs(text)[0])] == [
        "They met in Istanbul; Russia offered flights.",
        "Then it ended.",
        "Items: A; B; C.",
    ]


def test_every_character_of_a_paragraph_is_in_one_sentence():
    text = 'Dr. Smith said "Hi." Then he left!  (See Fig. 3.) Ünïcödé ☃ 𝄞 ok… a.b.c. Done?'
    sentences = split_sentences(text, paragraphs(text)[0])
    assert sentences[0].start == 0 and sentences[-1].end == len(text)
    assert all(text[a.end : b.start].isspace() for a, b in zip(sentences, sentences[1:]))
    assert "Dr. Smith" in text[sentences[0].start : sentences[0].end]


def test_many_documents_chunk_the_same_in_worker_processes(embedder, seed_text):
    from qa.index.chunking import PARALLEL_MIN_CHARS, chunk_many, chunk_text

    texts = [f"Document {i}.\n\n{seed_text}" for i in range(PARALLEL_MIN_CHARS // len(seed_text) + 2)]
    settings = ChunkSettings(limit_tokens=embedder.max_tokens - 2)
    assert sum(map(len, texts)) >= PARALLEL_MIN_CHARS  # the parallel path is taken
    assert chunk_many(texts, embedder.count_tokens, settings) == [
        chunk_text(t, embedder.count_tokens, settings) for t in texts
    ]
