"""Shared fixtures: one real model and one real index of the seeds per test session."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# Exported models go to a fresh cache per test session (servers started by tests inherit it).
os.environ["QA_CACHE"] = tempfile.mkdtemp(prefix="qa-test-cache-")
atexit.register(shutil.rmtree, os.environ["QA_CACHE"], ignore_errors=True)

ROOT = Path(__file__).resolve().parent.parent
SEEDS = ROOT / "seeds"
SEED_FILE = SEEDS / "000_fdd6fe5acc3e6b5b.txt"


@pytest.fixture(scope="session")
def embedder():
    from qa.index.embedding import Embedder

    return Embedder()


@pytest.fixture(scope="session")
def seed_index(tmp_path_factory, embedder) -> Path:
    from qa.index.build import build_index

    index = tmp_path_factory.mktemp("seed-index")
    build_index([SEEDS], index, embedder, report=lambda _: None)
    return index


@pytest.fixture(scope="session")
def engine(seed_index):
    from qa.engine import Engine

    return Engine(seed_index)


@pytest.fixture(scope="session")
def seed_text() -> str:
    """The seed document exactly as a user's program would read it."""
    with open(SEED_FILE, encoding="utf-8") as fh:
        return fh.read()
