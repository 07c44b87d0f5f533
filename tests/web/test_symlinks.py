"""Symlinks in the corpus cannot make anything outside it readable through /api/sources or answers.

What indexing does (qa/index/sources.py): a symlink that resolves to a file or folder outside
the indexed folder is skipped with a one-line note, as are broken links and links
through a chain that ends outside; a symlink to a file inside the folder is indexed
under its own name. The server only ever serves the text stored in the index at
index time: it never opens a source file, so a file swapped for a symlink later
changes nothing.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from web_support import assert_error

from qa.engine import Engine
from qa.index.build import build_index
from qa.index.embedding import Embedder
from web.app import create_app

PUBLIC = "The lighthouse keeper of Port Ellery is Margaret Oduya. She has kept the light since 1998.\n"
SECRET = "The vault combination is 31-41-59. The administrator password is swordfish.\n"
SECRET_WORDS = ("swordfish", "31-41-59", "vault")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    base = tmp_path_factory.mktemp("symlinks")
    outside = base / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text(SECRET, encoding="utf-8")
    docs = base / "corpus"
    (docs / "sub").mkdir(parents=True)
    (docs / "public.txt").write_text(PUBLIC, encoding="utf-8")
    links = {
        "alias.txt": "public.txt",  # inside: indexed under its own name
        "secret-link.txt": "../outside/secret.txt",  # relative, outside
        "absolute-link.txt": str(outside / "secret.txt"),  # absolute, outside
        "outside-folder": "../outside",  # a folder outside
        "sub/chain.txt": "../secret-link.txt",  # a chain of links that ends outside
        "sub/up.txt": "../../outside/secret.txt",
        "broken.txt": "../outside/missing.txt",
        "loop.txt": "loop.txt",
        "etc-passwd.txt": "/etc/passwd",
    }
    for name, target in links.items():
        os.symlink(target, docs / name)
    notes: list[str] = []
    index = base / "index"
    build_index([docs], index, Embedder(), report=notes.append)
    yield {"docs": docs, "outside": outside, "index": index, "notes": notes, "links": links}


@pytest.fixture(scope="module")
def engine(corpus) -> Engine:
    return Engine(corpus["index"])


@pytest.fixture(scope="module")
def client(engine):
    return create_app(engine).test_client()


def test_indexing_keeps_only_documents_inside_the_corpus(corpus, engine):
    assert sorted(d.source for d in engine.data.documents) == ["alias.txt", "public.txt"]
    notes = "\n".join(corpus["notes"])
    for name in ("secret-link.txt", "absolute-link.txt", "sub/chain.txt", "sub/up.txt", "etc-passwd.txt"):
        assert f"{name}: symlink to a file outside" in notes, notes
    assert "outside-folder: symlink to a folder outside" in notes, notes
    assert "broken.txt: broken symlink" in notes, notes
    assert "loop.txt: symlink loop" in notes, notes
    for doc in engine.data.documents:
        assert not any(word in doc.text for word in SECRET_WORDS)


@pytest.mark.parametrize("name", [
    "secret-link.txt", "absolute-link.txt", "outside-folder/secret.txt", "sub/chain.txt", "sub/up.txt",
    "broken.txt", "loop.txt", "etc-passwd.txt", "../outside/secret.txt", "outside/secret.txt",
    "%2e%2e/outside/secret.txt", "secret.txt",
])
def test_links_out_of_the_corpus_are_not_served(client, name):
    response = client.get(f"/api/sources/{name}")
    assert_error(response.status_code, response.get_json(), 404)
    text = response.get_data(as_text=True)
    assert not any(word in text for word in SECRET_WORDS) and "root:" not in text


def test_a_link_inside_the_corpus_is_served_by_its_own_name(client):
    for name in ("public.txt", "alias.txt"):
        response = client.get(f"/api/sources/{name}")
        assert response.status_code == 200 and response.get_json() == {"source": name, "text": PUBLIC}


def test_answers_never_quote_what_is_outside(client):
    for question in ("What is the vault combination?", "What is the administrator password?",
                     "Who is the lighthouse keeper of Port Ellery?"):
        result = client.post("/api/ask", json={"question": question, "top_k": 20}).get_json()
        quoted = [result["answer"]] + [c["quote"] for c in result["citations"]] + \
                 [p["text"] for p in result["passages"]]
        assert not any(word in q for q in quoted for word in SECRET_WORDS), result
        assert {p["source"] for p in result["passages"]} <= {"public.txt", "alias.txt"}


def test_files_swapped_for_links_after_indexing_change_nothing(corpus, client):
    """The server serves stored text: it never opens the file a source name points at."""
    public: Path = corpus["docs"] / "public.txt"
    public.unlink()
    os.symlink(corpus["outside"] / "secret.txt", public)
    try:
        for name in ("public.txt", "alias.txt"):
            body = client.get(f"/api/sources/{name}").get_json()
            assert body["text"] == PUBLIC
        result = client.post("/api/ask", json={"question": "What is the vault combination?"}).get_json()
        assert "swordfish" not in str(result)
    finally:
        public.unlink()
        public.write_text(PUBLIC, encoding="utf-8")
