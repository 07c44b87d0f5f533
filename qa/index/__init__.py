"""The index pipeline: sources -> chunks -> vectors -> segments on disk (``build_index``)."""
