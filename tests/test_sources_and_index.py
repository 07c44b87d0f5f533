"""Input formats, incremental re-indexing, and damaged or mismatched indexes."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pytest

from qa.engine import Engine
from qa.errors import IndexBusy, IndexInvalid, IndexMissing, NoDocuments
from qa.index import store
from qa.index.build import build_index
from qa.index.manifest import manifest_checksum


def make_pdf(path: Path, pages: list[str]) -> None:
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas

    c = canvas.Canvas(str(path), pagesize=A4)
    for text in pages:
        c.drawString(72, 760, text)
        c.showPage()
    c.save()


@pytest.fixture()
def corpus(tmp_path: Path) -> Path:
    root = tmp_path / "docs"
    (root / "sub").mkdir(parents=True)
    (root / "notes.txt").write_text(
        "The lighthouse of Varnholm was built in 1871 by the engineer Ilse Brandt.\r\n"
        "It stands 42 metres tall on the northern cliff.\n",
        encoding="utf-8", newline="",
    )
    (root / "sub" / "guide.md").write_text(
        "# Ferry guide\n\nThe ferry to Varnholm leaves every morning at seven from Pier 4.\n",
        encoding="utf-8",
    )
    (root / "page.html").write_text(
        "<html><head><title>Hidden title</title><style>body{color:red}</style>"
        "<script>var secret = 'do not index me';</script></head><body>"
        "<h1>Varnholm market</h1><p>The fish market opens on <b>Saturdays</b> only.</p>"
        "<noscript>enable javascript</noscript></body></html>",
        encoding="utf-8",
    )
    make_pdf(root / "report.pdf", ["This report covers the work of the past year.",
                                   "The island council has nine members elected for four years."])
    (root / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    (root / "broken.txt").write_bytes(b"caf\xe9 latin-1 text that is not UTF-8")
    return root


def test_every_format_is_indexed_and_quotes_are_exact(corpus, tmp_path, embedder):
    notes: list[str] = []
    report = build_index([corpus], tmp_path / "idx", embedder, report=notes.append)
    assert report.documents == 4
    assert any("image.png" in n and "unsupported" in n for n in notes)
    assert any("broken.txt" in n for n in notes)
    engine = Engine(tmp_path / "idx")
    assert sorted(d.source for d in engine.data.documents) == [
        "notes.txt", "page.html", "report.pdf", "sub/guide.md"]
    html = engine.source_text("page.html")
    assert "fish market opens on Saturdays only" in html
    assert "secret" not in html and "color:red" not in html and "Hidden title" not in html
    assert "enable javascript" not in html

    answer = engine.ask("Who built the lighthouse of Varnholm?")
    assert answer["answerable"] and "Ilse Brandt" in answer["answer"]
    cite = answer["citations"][0]
    assert cite["source"] == "notes.txt"
    with open(corpus / "notes.txt", encoding="utf-8") as fh:
        assert fh.read()[cite["start"] : cite["end"]] == cite["quote"]

    answer = engine.ask("How many members does the island council have?")
    cite = answer["citations"][0]
    assert cite["source"] == "report.pdf" and cite["page"] == 2
    assert "nine members" in cite["quote"]
    assert engine.source_text("report.pdf")[cite["start"] : cite["end"]] == cite["quote"]

    answer = engine.ask("When does the ferry leave?")
    assert answer["citations"][0]["source"] == "sub/guide.md"


def test_no_readable_documents_is_an_error(tmp_path, embedder):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "a.bin").write_bytes(b"\x00\x01")
    with pytest.raises(NoDocuments):
        build_index([tmp_path / "empty"], tmp_path / "idx", embedder, report=lambda _: None)
    assert not store.exists(tmp_path / "idx")


def test_incremental_reindex_embeds_only_changes(corpus, tmp_path, embedder, monkeypatch):
    idx = tmp_path / "idx"
    build_index([corpus], idx, embedder, report=lambda _: None)
    before = store.load(idx)

    (corpus / "notes.txt").write_text("The lighthouse was repainted white in 1999.\n", encoding="utf-8")
    (corpus / "page.html").unlink()
    (corpus / "new.txt").write_text("A new bakery opened near the harbour in May.\n", encoding="utf-8")

    encoded: list[str] = []
    original = embedder.encode_with_spans
    monkeypatch.setattr(embedder, "encode_with_spans",
                        lambda texts, spans, **kw: encoded.extend(texts) or original(texts, spans, **kw))
    report = build_index([corpus], idx, embedder, report=lambda _: None)
    assert (report.added, report.changed, report.removed, report.unchanged) == (1, 1, 1, 2)
    assert all("Varnholm" not in t and "Pier 4" not in t for t in encoded)  # unchanged: not re-embedded
    assert any("bakery" in t for t in encoded) and any("repainted" in t for t in encoded)

    after = store.load(idx)
    assert sorted(d.source for d in after.documents) == ["new.txt", "notes.txt", "report.pdf", "sub/guide.md"]
    guide_before = before.documents.index(before.document("sub/guide.md"))
    guide_after = after.documents.index(after.document("sub/guide.md"))
    rows_before = before.spans["chunk_doc"] == guide_before
    rows_after = after.spans["chunk_doc"] == guide_after
    assert np.array_equal(before.chunk_vectors[rows_before], after.chunk_vectors[rows_after])
    engine = Engine(idx)
    assert "repainted" in engine.ask("When was the lighthouse repainted?")["answer"]


def test_damaged_index_is_refused_with_rebuild_hint(seed_index, tmp_path, embedder):
    import shutil

    idx = tmp_path / "copy"
    shutil.copytree(seed_index, idx, symlinks=True)
    (build,) = store.segment_folders(idx)
    target = build / "chunk_vectors.npy"
    data = bytearray(target.read_bytes())
    data[-5] ^= 0xFF
    target.write_bytes(bytes(data))
    with pytest.raises(IndexInvalid) as err:
        Engine(idx)
    assert "chunk_vectors.npy" in str(err.value) and "qa index" in str(err.value)

    (build / "dense.faiss").write_bytes(b"")  # truncated
    with pytest.raises(IndexInvalid):
        store.load(idx)


def test_other_model_or_older_format_is_refused(seed_index, tmp_path):
    import shutil

    idx = tmp_path / "copy"
    shutil.copytree(seed_index, idx, symlinks=True)
    with pytest.raises(IndexInvalid, match="built with model"):
        store.load(idx, model_name="some-other-model")
    with pytest.raises(IndexInvalid, match="384-dimensional"):
        store.load(idx, dimension=768)
    manifest = idx / "current" / "manifest.json"
    data = json.loads(manifest.read_text())
    data["format_version"] = 0  # an older build: consistent, but another format
    data["checksum"] = manifest_checksum(data)
    manifest.write_text(json.dumps(data))
    with pytest.raises(IndexInvalid, match="format"):
        Engine(idx)
    with pytest.raises(IndexMissing):
        store.load(tmp_path / "nowhere")


def test_failed_build_leaves_previous_index(corpus, tmp_path, embedder, monkeypatch):
    idx = tmp_path / "idx"
    build_index([corpus], idx, embedder, report=lambda _: None)
    first = (idx / "current").resolve()
    (corpus / "extra.txt").write_text("Something new about the island.\n", encoding="utf-8")

    def boom(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(store.faiss, "write_index", boom)
    with pytest.raises(OSError):
        build_index([corpus], idx, embedder, report=lambda _: None)
    assert (idx / "current").resolve() == first
    assert [p.name for p in idx.iterdir() if p.name.startswith("gen-")] == [first.name]
    segments = {p.name for p in idx.iterdir() if p.name.startswith("seg-")}
    assert segments == {p.name for p in store.segment_folders(idx)}  # the failed one is gone
    assert Engine(idx).ask("Who built the lighthouse of Varnholm?")["answerable"]


def test_second_concurrent_build_is_refused(corpus, tmp_path, embedder):
    idx = tmp_path / "idx"
    with store.build_lock(idx):
        errors: list[Exception] = []

        def second() -> None:
            try:
                build_index([corpus], idx, embedder, report=lambda _: None)
            except IndexBusy as exc:
                errors.append(exc)

        t = threading.Thread(target=second)
        t.start()
        t.join()
    assert errors and "already building" in str(errors[0])
