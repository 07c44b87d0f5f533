"""Shared fixtures for the web tests: a real index of the seeds, one engine, real servers.

Loading the model and building the index take seconds, so both happen once
per session; servers run as subprocesses exactly as ``qa serve`` runs them.
Helpers live in web_support.py so test modules can import them by a unique name.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis.configuration import set_hypothesis_home_dir
from web_support import ARTIFACTS, SEED_FILE, SEEDS, Server, make_index, start_server

from qa.engine import Engine
from web.app import create_app

# Hypothesis (under schemathesis) keeps its caches out of the source tree.
set_hypothesis_home_dir(str(ARTIFACTS / "hypothesis"))


@pytest.fixture(scope="session")
def seed_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_index([SEEDS], tmp_path_factory.mktemp("seed-index"))


@pytest.fixture(scope="session")
def engine(seed_index: Path) -> Engine:
    return Engine(seed_index)


@pytest.fixture(scope="session")
def app(engine: Engine):
    app = create_app(engine)
    app.testing = True
    return app


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture(scope="session")
def seed_text() -> str:
    with open(SEED_FILE, encoding="utf-8") as fh:
        return fh.read()


@pytest.fixture(scope="session")
def server(seed_index: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = start_server(seed_index, tmp_path_factory.mktemp("server") / "server.log")
    yield srv
    srv.stop()
