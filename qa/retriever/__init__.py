"""Retrieval: the chunks of a loaded index that best match a question (dense and BM25)."""
