"""The server keeps answering while its index is rebuilt, and picks up the new build without a restart.

In-process: the watcher on a copy of the seeds index (rebuilt, damaged, removed).
Over a real server: ``qa index`` in a subprocess while a client keeps asking, then SIGHUP.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from web_support import ROOT, SEED_FILE, make_index, start_server

from qa.engine import Engine
from qa.index import store
from qa.index.manifest import CURRENT, read_manifest
from web.app import create_app
from web.reloading import IndexWatcher

DELEGATION = "Who led the U.S. delegation?"
NEW_DOC = "lighthouse.txt"
NEW_TEXT = ("Port Ellery lighthouse.\n\nThe lighthouse keeper of Port Ellery is Margaret Oduya. "
            "She has kept the light burning every night since 1998, through storms and strikes.\n")
NEW_QUESTION = "Who is the lighthouse keeper of Port Ellery?"


def corpus(folder: Path, with_new_doc: bool) -> Path:
    """The seed document, plus the new one when asked."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(SEED_FILE, folder / SEED_FILE.name)
    new = folder / NEW_DOC
    if with_new_doc:
        new.write_text(NEW_TEXT, encoding="utf-8")
    else:
        new.unlink(missing_ok=True)
    return folder


def copy_index(seed_index: Path, to: Path) -> Path:
    shutil.copytree(seed_index, to, symlinks=True)  # `current` stays a link to the copied build
    return to


def answers_new_doc(result: dict) -> bool:
    return result["answerable"] and result["citations"][0]["source"] == NEW_DOC


# ---- in-process ----


@pytest.fixture
def watched(seed_index, tmp_path):
    index = copy_index(seed_index, tmp_path / "index")
    engine = Engine(index)
    lines: list[str] = []
    watcher = IndexWatcher(engine, interval=0, log=lines.append)
    client = create_app(engine, watcher=watcher).test_client()
    return engine, watcher, client, lines, index, tmp_path


def test_rebuilt_index_is_picked_up_on_the_next_request(watched):
    engine, watcher, client, lines, index, tmp = watched
    assert not answers_new_doc(client.post("/api/ask", json={"question": NEW_QUESTION}).get_json())
    old = engine.data
    make_index([corpus(tmp / "docs", True)], index)
    assert client.get("/api/health").status_code == 200  # notices the change, reloads in the background
    assert watcher.wait()
    assert engine.data is not old and watcher.reloads == 1 and watcher.failures == 0
    assert client.get("/api/health").get_json()["documents"] == 2
    assert answers_new_doc(client.post("/api/ask", json={"question": NEW_QUESTION}).get_json())
    assert len(lines) == 1
    assert lines[0].startswith("qa: index reloaded (the index changed on disk): 2 documents")
    client.get("/api/health")
    assert watcher.wait() and watcher.reloads == 1  # nothing changed since: no second load


def test_damaged_build_keeps_the_old_index_serving(watched):
    engine, watcher, client, lines, index, tmp = watched
    make_index([corpus(tmp / "docs", True)], index)
    assert watcher.reload("test")
    good = engine.data
    with open(store.segment_folders(index)[-1] / "documents.jsonl", "a", encoding="utf-8") as fh:
        fh.write("garbage\n")
    assert watcher.reload("SIGHUP") is False
    assert engine.data is good and watcher.failures == 1
    assert len(lines) == 2 and "\n" not in lines[1]
    assert lines[1].startswith("qa: reload (SIGHUP) failed, still serving the previous index: ")
    assert "damaged" in lines[1]
    assert answers_new_doc(client.post("/api/ask", json={"question": NEW_QUESTION}).get_json())


def test_missing_index_keeps_the_old_index_serving_and_logs_once(watched):
    engine, watcher, client, lines, index, _ = watched
    good = engine.data
    (index / CURRENT).unlink()
    for _ in range(5):  # a broken state is reported once, not on every request
        assert client.get("/api/health").status_code == 200
        assert watcher.wait()
    assert engine.data is good and watcher.failures == 1
    assert len(lines) == 1 and "failed, still serving the previous index" in lines[0], lines
    assert client.post("/api/ask", json={"question": DELEGATION}).get_json()["answerable"] is True


def test_checks_the_disk_at_most_once_per_interval(seed_index, tmp_path, monkeypatch):
    engine = Engine(copy_index(seed_index, tmp_path / "index"))
    watcher = IndexWatcher(engine, interval=3600, log=lambda line: None)
    looked = []
    monkeypatch.setattr(watcher, "signature", lambda: looked.append(1))
    client = create_app(engine, watcher=watcher).test_client()
    for _ in range(20):
        client.get("/api/health")
    assert looked == []  # the first look is an hour away


# ---- over a real server ----


def index_in_subprocess(folder: Path, index: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "qa.cli", "index", str(folder), "--index", str(index)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr


def wait_for_log(log: Path, text: str, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        content = log.read_text(errors="replace")
        if text in content:
            return content
        time.sleep(0.1)
    raise AssertionError(f"{text!r} never appeared in the server log:\n{log.read_text(errors='replace')}")


def test_rebuild_while_serving_then_sighup(seed_index, tmp_path):
    index = copy_index(seed_index, tmp_path / "index")
    server = start_server(index, tmp_path / "server.log", threads=4)
    stop = threading.Event()
    seen = {"ok": 0, "errors": []}

    def keep_asking() -> None:
        while not stop.is_set():
            try:
                status, _, body = server.post_json("/api/ask", {"question": DELEGATION}, timeout=30)
                result = json.loads(body)
                if status != 200 or not result["answer"].startswith("Sonata Coulter"):
                    seen["errors"].append(f"{status}: {body[:200]!r}")
                else:
                    seen["ok"] += 1
            except Exception as exc:  # a refused or dropped connection is an error too
                seen["errors"].append(repr(exc))

    asker = threading.Thread(target=keep_asking, daemon=True)
    try:
        asker.start()
        index_in_subprocess(corpus(tmp_path / "docs", True), index)
        deadline = time.monotonic() + 30
        while True:  # picked up without a restart, within about a second of a request
            status, _, body = server.post_json("/api/ask", {"question": NEW_QUESTION})
            if status == 200 and answers_new_doc(json.loads(body)):
                break
            assert time.monotonic() < deadline, body
            time.sleep(0.2)
        stop.set()
        asker.join(60)
        assert seen["errors"] == [] and seen["ok"] >= 10, seen
        print(f"answered {seen['ok']} questions during the rebuild, 0 errors")
        wait_for_log(server.log, "qa: index reloaded (the index changed on disk): 2 documents")

        # SIGHUP: rebuild without the new document and send no request, so only the signal reloads.
        index_in_subprocess(corpus(tmp_path / "docs", False), index)
        server.proc.send_signal(signal.SIGHUP)
        wait_for_log(server.log, "qa: index reloaded (SIGHUP): 1 document,")
        status, _, body = server.get("/api/health")
        assert status == 200 and json.loads(body)["documents"] == 1
        status, _, body = server.post_json("/api/ask", {"question": NEW_QUESTION})
        assert status == 200 and not answers_new_doc(json.loads(body))

        # A damaged build on SIGHUP: one line in the log, and the loaded index keeps answering.
        with open(store.segment_folders(index)[-1] / "documents.jsonl", "a", encoding="utf-8") as fh:
            fh.write("garbage\n")
        server.proc.send_signal(signal.SIGHUP)
        log = wait_for_log(server.log, "qa: reload (SIGHUP) failed, still serving the previous index")
        status, _, body = server.post_json("/api/ask", {"question": DELEGATION})
        assert status == 200 and json.loads(body)["answerable"] is True
        assert "Traceback" not in log
        assert server.proc.poll() is None
    finally:
        stop.set()
        assert server.stop() == 0


def test_two_read_only_servers_share_one_index(seed_index, tmp_path):
    """Scale-out as docs/scale.md describes it: two `qa serve --read-only` processes on one index
    folder answer alike, and each picks up on its own the build that `qa index` publishes (the
    new document in a segment of its own, so both then search two segments side by side)."""
    index = copy_index(seed_index, tmp_path / "index")
    servers = [start_server(index, tmp_path / f"server{i}.log", threads=2, extra=("--read-only",))
               for i in range(2)]
    try:
        said = [answer_of(s) for s in servers]
        assert said[0]["answer"].startswith("Sonata Coulter") and said[0] == said[1]
        index_in_subprocess(corpus(tmp_path / "docs", True), index)
        assert len(read_manifest(index)["segments"]) == 2
        for server in servers:
            deadline = time.monotonic() + 30
            while True:
                status, _, body = server.post_json("/api/ask", {"question": NEW_QUESTION})
                if status == 200 and answers_new_doc(json.loads(body)):
                    break
                assert time.monotonic() < deadline, body
                time.sleep(0.2)
        said = [answer_of(s) for s in servers]
        assert said[0]["answer"].startswith("Sonata Coulter") and said[0] == said[1]
    finally:
        assert [s.stop() for s in servers] == [0, 0]


def answer_of(server) -> dict:
    """The server's answer to DELEGATION, without the time it took."""
    result = json.loads(server.post_json("/api/ask", {"question": DELEGATION})[2])
    result.pop("took_ms")
    return result
