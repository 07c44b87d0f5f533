"""Documents managed through the API: list, upload, follow the job, ask, delete.

In-process through Flask's test client, on a real index of a copy of the seeds (uploads
go into that copy's uploads/ folder), with the real model and the real indexing job.
"""

from __future__ import annotations

import io
import json
import re
import shutil
import threading
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from web_support import (
    SEED_FILE,
    SEEDS,
    Server,
    assert_error,
    check_response,
    expect_raw_json_error,
    http,
    make_index,
    raw_exchange,
    request_head,
    start_server,
)

from qa.engine import Engine
from qa.index import sources, store
from qa.library import Library, Refused, changed, safe_name
from web.app import create_app
from web.errors import MAX_UPLOAD_BYTES

FACT = "The Zorvath lighthouse on Kemmer Island was painted green in 1911 by Ada Thornquist."
QUESTION = "Who painted the Zorvath lighthouse?"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("corpus") / "docs"
    shutil.copytree(SEEDS, folder)
    return folder


@pytest.fixture(scope="module")
def doc_engine(corpus: Path, tmp_path_factory) -> Engine:
    return Engine(make_index([corpus], tmp_path_factory.mktemp("doc-index")))


@pytest.fixture(scope="module")
def library(doc_engine: Engine) -> Library:
    return Library(doc_engine)


@pytest.fixture(scope="module")
def doc_client(doc_engine: Engine, library: Library):
    app = create_app(doc_engine, library=library)
    app.testing = True
    return app.test_client()


@pytest.fixture(scope="module")
def spec(doc_client) -> dict:
    return doc_client.get("/openapi.json").get_json()


def upload(client, *files: tuple[str, bytes], **form):
    data = {"file": [(io.BytesIO(raw), name) for name, raw in files], **form}
    return client.post("/api/documents", data=data, content_type="multipart/form-data")


def finish(client, response, spec: dict | None = None) -> dict:
    """Follow the job a 202 started until it has finished; its last state."""
    assert response.status_code == 202, response.get_json()
    job_id = response.get_json()["job"]
    assert response.headers["Location"] == f"/api/jobs/{job_id}"
    deadline = time.monotonic() + 120
    while True:
        state = client.get(f"/api/jobs/{job_id}")
        assert state.status_code == 200
        job = state.get_json()
        if spec is not None:
            check_response(spec, "/api/jobs/{job_id}", "GET", 200, state.content_type, job)
        if job["state"] in ("done", "failed") or time.monotonic() > deadline:
            return job
        time.sleep(0.1)


def listed(client) -> dict[str, dict]:
    body = client.get("/api/documents").get_json()
    return {d["source"]: d for d in body["documents"]}


def files_in(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_documents_are_listed_with_size_chunks_and_time(doc_client, spec, corpus):
    response = doc_client.get("/api/documents")
    body = response.get_json()
    check_response(spec, "/api/documents", "GET", 200, response.content_type, body)
    assert body["uploads"] is True and body["reason"] is None
    assert body["folder"] == f"{corpus / 'uploads'}/"  # the real folder, wherever the server runs
    assert ".txt" in body["formats"]
    (doc,) = body["documents"]
    assert doc["source"] == SEED_FILE.name and doc["uploaded"] is False
    assert doc["bytes"] == SEED_FILE.stat().st_size and doc["chunks"] > 1
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", doc["indexed_at"])


def test_upload_is_indexed_and_answers_with_exact_citations(doc_client, spec, corpus):
    before = doc_client.post("/api/ask", json={"question": QUESTION}).get_json()
    assert before["answerable"] is False
    job = finish(doc_client, upload(doc_client, ("lighthouse.txt", f"Island notes.\n\n{FACT}\n".encode())),
                 spec)
    assert job["state"] == "done", job
    assert job["action"] == "add" and job["files"] == ["lighthouse.txt"]
    assert job["progress"]["documents_done"] == job["progress"]["documents_total"] == 2
    new_chunks = job["progress"]["chunks_total"]
    assert job["progress"]["chunks_done"] == new_chunks >= 1
    assert new_chunks < doc_client.get("/api/health").get_json()["chunks"]  # the seed was not re-embedded
    assert (corpus / "uploads" / "lighthouse.txt").read_text() == f"Island notes.\n\n{FACT}\n"
    result = doc_client.post("/api/ask", json={"question": QUESTION}).get_json()
    assert result["answerable"] is True
    assert "Ada Thornquist" in result["short_answer"]["text"]
    citation = result["citations"][0]
    assert citation["source"] == "uploads/lighthouse.txt"
    stored = doc_client.get("/api/sources/uploads/lighthouse.txt").get_json()["text"]
    assert stored[citation["start"]:citation["end"]] == citation["quote"] == FACT
    entry = listed(doc_client)["uploads/lighthouse.txt"]
    assert entry["uploaded"] is True and entry["chunks"] == new_chunks
    assert job["message"] == f"Added lighthouse.txt: {new_chunks} passage{'' if new_chunks == 1 else 's'}"
    assert "indexed" in job["summary"]  # the build's own summary stays, for the log


def test_a_file_larger_than_a_json_body_is_taken(doc_client):
    """Uploads have their own body limit: a 100 KB file is not refused like a 100 KB question."""
    text = "".join(f"Line {i} of the long register lists berth {i % 97} as free.\n" for i in range(2000))
    assert len(text) > 100_000
    job = finish(doc_client, upload(doc_client, ("register.txt", text.encode())))
    assert job["state"] == "done"
    assert doc_client.get("/api/sources/uploads/register.txt").get_json()["text"] == text


def test_same_name_is_replaced_only_when_asked(doc_client, corpus):
    first = finish(doc_client, upload(doc_client, ("twice.txt", b"The first version says the gate is red.")))
    assert first["state"] == "done"
    again = upload(doc_client, ("twice.txt", b"The second version says the gate is blue."))
    assert_error(again.status_code, again.get_json(), 409, "exists")
    assert "replace=true" in again.get_json()["error"]["message"]
    assert (corpus / "uploads" / "twice.txt").read_text() == "The first version says the gate is red."
    job = finish(doc_client, upload(doc_client, ("twice.txt", b"The second version says the gate is blue."),
                                    replace="true"))
    assert job["state"] == "done" and job["message"] == "Replaced twice.txt: 1 passage"
    stored = doc_client.get("/api/sources/uploads/twice.txt").get_json()["text"]
    assert stored == "The second version says the gate is blue."


@pytest.mark.parametrize(("name", "kept"), [
    ("../../escape.txt", "escape.txt"),
    ("/etc/cron.d/absolute.txt", "absolute.txt"),
    (".hidden.txt", "hidden.txt"),
    ("uploads/../../../nested.md", "nested.md"),
])
def test_names_are_reduced_to_a_safe_base_name(doc_client, corpus, name, kept):
    job = finish(doc_client, upload(doc_client, (name, b"A note about the harbour master's boat.")))
    assert job["state"] == "done" and job["files"] == [kept]
    assert (corpus / "uploads" / kept).is_file()
    assert not (corpus.parent / kept).exists() and not (corpus / kept).exists()


@pytest.mark.parametrize(("name", "kept"), [
    ("C:\\Users\\me\\report.txt", "report.txt"), ("..\\..\\up.md", "up.md"),
    ("  . .spaced.txt", "spaced.txt"), ("Доклад 2026.txt", "Доклад 2026.txt"),
])
def test_safe_name(name, kept):
    assert safe_name(name) == kept


@pytest.mark.parametrize("name", ["", "..", "/", "C:\\", "a/\x00.txt", "x" * 300 + ".txt", 7])
def test_unsafe_names_are_refused(name):
    with pytest.raises(Refused):
        safe_name(name)


@pytest.mark.parametrize(("files", "status", "code"), [
    ([("..", b"text")], 400, "invalid_upload"),
    ([("", b"text")], 400, "invalid_upload"),
    ([("....txt", b"text")], 415, "unsupported_type"),  # reduced to "txt"
    ([("bad\x01name.txt", b"text")], 400, "invalid_upload"),
    ([("program.exe", b"MZ\x90\x00")], 415, "unsupported_type"),
    ([("no-suffix", b"text")], 415, "unsupported_type"),
    ([("empty.txt", b"")], 422, "unreadable"),
    ([("binary.txt", bytes(range(256)) * 64)], 422, "unreadable"),
    ([("a.txt", b"one"), ("a.txt", b"two")], 400, "invalid_upload"),
    ([("good.txt", b"Fine text."), ("bad.exe", b"x")], 415, "unsupported_type"),
])
def test_hostile_uploads_are_refused_and_nothing_is_written(doc_client, corpus, files, status, code):
    before = files_in(corpus / "uploads")
    documents = listed(doc_client)
    response = upload(doc_client, *files)
    assert_error(response.status_code, response.get_json(), status, code)
    assert files_in(corpus / "uploads") == before
    assert listed(doc_client) == documents


def test_a_zip_renamed_docx_is_refused(doc_client, corpus):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("notes.txt", "not a Word document")
    before = files_in(corpus / "uploads")
    response = upload(doc_client, ("report.docx", buffer.getvalue()))
    assert_error(response.status_code, response.get_json(), 422, "unreadable")
    assert response.get_json()["error"]["message"].startswith("report.docx: ")
    assert files_in(corpus / "uploads") == before


def test_oversized_file_is_refused_before_it_is_written(doc_client, corpus, monkeypatch):
    monkeypatch.setattr(sources, "MAX_BYTES", 1000)
    before = files_in(corpus / "uploads")
    response = upload(doc_client, ("big.txt", b"word " * 400))
    assert_error(response.status_code, response.get_json(), 413, "too_large")
    assert "1000 bytes" in response.get_json()["error"]["message"]
    assert files_in(corpus / "uploads") == before


@pytest.mark.parametrize(("kwargs", "status", "code"), [
    ({"json": {"file": "x"}}, 415, "unsupported_media_type"),
    ({"data": {"other": "x"}, "content_type": "multipart/form-data"}, 400, "invalid_upload"),
    ({"data": {"file": "text, not a file"}, "content_type": "multipart/form-data"}, 400, "invalid_upload"),
    ({"data": {}, "content_type": "multipart/form-data"}, 400, "invalid_upload"),
    ({"data": {"file": (io.BytesIO(b"x y z"), "r.txt"), "replace": "maybe"},
      "content_type": "multipart/form-data"}, 400, "invalid_upload"),
])
def test_malformed_upload_requests_are_4xx(doc_client, spec, kwargs, status, code):
    response = doc_client.post("/api/documents", **kwargs)
    assert_error(response.status_code, response.get_json(), status, code)
    check_response(spec, "/api/documents", "POST", status, response.content_type, response.get_json())


@pytest.mark.parametrize("disposition", ['form-data', 'form-data; filename="r.txt"'])
def test_a_part_without_a_name_is_refused_clearly(doc_client, spec, corpus, disposition):
    """A multipart part with no field name (found by the schema fuzzer: it was a 500)."""
    before = files_in(corpus / "uploads")
    body = (f"--XX\r\nContent-Disposition: {disposition}\r\n\r\nx y z\r\n--XX--\r\n").encode()
    response = doc_client.post("/api/documents", data=body, content_type="multipart/form-data; boundary=XX")
    assert_error(response.status_code, response.get_json(), 400, "invalid_upload")
    assert "a part without a name" in response.get_json()["error"]["message"]
    check_response(spec, "/api/documents", "POST", 400, response.content_type, response.get_json())
    assert files_in(corpus / "uploads") == before


def test_delete_removes_an_upload_from_disk_answers_and_list(doc_client, corpus):
    fact = "The Brindlewick ferry leaves at dawn from the north pier."
    assert finish(doc_client, upload(doc_client, ("ferry.txt", fact.encode())))["state"] == "done"
    assert doc_client.post("/api/ask", json={"question": "When does the Brindlewick ferry leave?"}
                           ).get_json()["citations"][0]["source"] == "uploads/ferry.txt"
    job = finish(doc_client, doc_client.delete("/api/documents/uploads/ferry.txt"))
    assert job["state"] == "done" and job["action"] == "delete"
    assert job["message"] == "Removed ferry.txt" and job["files"] == ["uploads/ferry.txt"]
    assert not (corpus / "uploads" / "ferry.txt").exists()
    assert "uploads/ferry.txt" not in listed(doc_client)
    result = doc_client.post("/api/ask", json={"question": "When does the Brindlewick ferry leave?"}
                             ).get_json()
    assert all(c["source"] != "uploads/ferry.txt" for c in result["citations"])
    assert all(p["source"] != "uploads/ferry.txt" for p in result["passages"])
    gone = doc_client.get("/api/sources/uploads/ferry.txt")
    assert_error(gone.status_code, gone.get_json(), 404)


def test_documents_not_uploaded_are_never_deleted(doc_client, corpus, spec):
    response = doc_client.delete(f"/api/documents/{SEED_FILE.name}")
    assert_error(response.status_code, response.get_json(), 403, "not_uploaded")
    check_response(spec, "/api/documents/{source}", "DELETE", 403, response.content_type,
                   response.get_json())
    assert (corpus / SEED_FILE.name).is_file()
    for path in ("no-such.txt", "../docs/" + SEED_FILE.name, "uploads/../" + SEED_FILE.name):
        response = doc_client.delete(f"/api/documents/{path}")
        assert response.status_code == 404, path
    assert (corpus / SEED_FILE.name).is_file()


def test_a_job_that_cannot_build_fails_and_the_index_keeps_answering(doc_client, doc_engine, corpus):
    """While `qa index` holds the index, the job fails with its reason; the next job catches up."""
    documents = listed(doc_client)
    with store.build_lock(doc_engine.index_dir):
        job = finish(doc_client, upload(doc_client, ("blocked.txt", b"The blocked note names the Orrin.")))
    assert job["state"] == "failed" and "already building" in job["error"]
    assert job["message"].startswith("Indexing failed, the documents as they were are still answered: ")
    assert listed(doc_client) == documents
    assert doc_client.post("/api/ask", json={"question": "Who led the U.S. delegation?"}).status_code == 200
    assert (corpus / "uploads" / "blocked.txt").is_file()  # kept, and indexed by the next job
    job = finish(doc_client, upload(doc_client, ("after.txt", b"A later note about the Orrin weir.")))
    assert job["state"] == "done"
    assert job["message"] == "Added after.txt: 1 passage (the folder had 1 other change, indexed too)"
    assert {"uploads/blocked.txt", "uploads/after.txt"} <= set(listed(doc_client))


LONG = "".join(f"Entry {i}: the tide table for berth {i} lists high water at {i % 12 + 1} o'clock.\n\n"
               for i in range(60))


def test_a_job_says_what_it_did_in_words_for_people(doc_client, corpus):
    """One message per job, from the published index: each file and its passages, singular
    and plural, added and replaced apart; never "chunks" or "segments"."""
    first = finish(doc_client, upload(doc_client, ("harbour.txt", b"The harbour opens at six.")))
    assert first["message"] == "Added harbour.txt: 1 passage"
    job = finish(doc_client, upload(doc_client, ("tides.txt", LONG.encode()),
                                    ("harbour.txt", b"The harbour opens at seven."), replace="true"))
    tides = listed(doc_client)["uploads/tides.txt"]["chunks"]
    assert tides > 1
    assert job["message"] == f"Added tides.txt: {tides} passages; replaced harbour.txt: 1 passage"
    job = finish(doc_client, upload(doc_client, *[(f"bay{i}.md", f"Bay {i} is dredged in May.".encode())
                                                  for i in range(2)]))
    assert job["message"] == "Added bay0.md (1 passage) and bay1.md (1 passage)"
    job = finish(doc_client, upload(doc_client, *[(f"pier{i}.md", f"Pier {i} is closed.".encode())
                                                  for i in range(5)]))
    assert job["message"] == "Added 5 files: 5 passages"
    for name in ("tides.txt", "bay0.md"):
        job = finish(doc_client, doc_client.delete(f"/api/documents/uploads/{name}"))
        assert job["message"] == f"Removed {name}"


@pytest.mark.parametrize(("verb", "files", "said"), [
    ("Added", [("zephyr.docx", 2)], "Added zephyr.docx: 2 passages"),
    ("Added", [("a.txt", 1)], "Added a.txt: 1 passage"),
    ("Added", [("a.txt", 0)], "Added a.txt: 0 passages"),
    ("Added", [("a.txt", None)], "Added a.txt: not indexed"),
    ("Added", [("minutes.docx", 3), ("notes.txt", 1)],
     "Added minutes.docx (3 passages) and notes.txt (1 passage)"),
    ("replaced", [("a", 1), ("b", 2), ("c", 1)], "replaced a (1 passage), b (2 passages) and c (1 passage)"),
    ("Added", [(f"f{i}", 1) for i in range(4)], "Added 4 files: 4 passages"),
])
def test_changes_are_said_in_plain_words(verb, files, said):
    assert changed(verb, files) == said


def test_the_uploads_folder_is_the_one_given(doc_engine, tmp_path):
    """--uploads DIR outside the indexed folder: the folder shown is that one, not a name made up."""
    assert Library(doc_engine, tmp_path / "up").status()["folder"] == f"{tmp_path / 'up'}/"


def test_unknown_job_is_404(doc_client):
    response = doc_client.get("/api/jobs/0123456789abcdef")
    assert_error(response.status_code, response.get_json(), 404, "unknown_job")


def test_questions_are_answered_while_uploads_are_indexed(doc_client):
    """Uploads in parallel, each queued as a job, while questions keep getting answers."""
    answers: list[int] = []
    stop = threading.Event()

    def ask_meanwhile() -> None:
        while not stop.is_set():
            answers.append(doc_client.post("/api/ask", json={"question": "Who led the U.S. delegation?"}
                                           ).status_code)

    asker = threading.Thread(target=ask_meanwhile)
    asker.start()
    try:
        results: list = [None] * 3

        def send(i: int) -> None:
            note = f"Parallel note {i} on pier {i}.".encode()
            results[i] = upload(doc_client, (f"parallel-{i}.txt", note))

        senders = [threading.Thread(target=send, args=(i,)) for i in range(3)]
        for t in senders:
            t.start()
        for t in senders:
            t.join()
        jobs = [finish(doc_client, r) for r in results]
    finally:
        stop.set()
        asker.join()
    assert [j["state"] for j in jobs] == ["done"] * 3
    assert answers and set(answers) == {200}
    assert {f"uploads/parallel-{i}.txt" for i in range(3)} <= set(listed(doc_client))


def test_read_only_server_lists_but_never_changes(doc_client, doc_engine, corpus):
    assert finish(doc_client, upload(doc_client, ("kept.txt", b"Kept through read-only.")))["state"] == "done"
    client = create_app(doc_engine, library=Library(doc_engine, read_only=True)).test_client()
    body = client.get("/api/documents").get_json()
    assert body["uploads"] is False and body["read_only"] is True and "read-only" in body["reason"]
    response = upload(client, ("new.txt", b"Some text."))
    assert_error(response.status_code, response.get_json(), 403, "read_only")
    assert not (corpus / "uploads" / "new.txt").exists()
    for source in (SEED_FILE.name, "uploads/kept.txt"):
        response = client.delete(f"/api/documents/{source}")
        assert response.status_code == 403, json.dumps(response.get_json())
    assert (corpus / "uploads" / "kept.txt").exists()


def test_an_index_without_recorded_sources_takes_no_uploads(tmp_path):
    """Indexes built before the manifest recorded its folder say how to fix it."""
    index = make_index([SEEDS], tmp_path / "index")
    engine = Engine(index)
    engine.data.manifest.pop("sources")
    client = create_app(engine, library=Library(engine)).test_client()
    body = client.get("/api/documents").get_json()
    assert body["uploads"] is False and "qa index" in body["reason"]
    response = upload(client, ("new.txt", b"Some text."))
    assert_error(response.status_code, response.get_json(), 409, "uploads_unavailable")


# ---- over HTTP: the token, --read-only, and the upload's body limit ----

TOKEN = "documents-token-0123456789abcdef"


def multipart(files: list[tuple[str, bytes]]) -> tuple[bytes, str]:
    boundary = "qa-test-boundary-7f3a"
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
             f"Content-Type: application/octet-stream\r\n\r\n".encode() + raw + b"\r\n"
             for name, raw in files]
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def send_upload(server: Server, files: list[tuple[str, bytes]], headers: dict[str, str] | None = None):
    body, content_type = multipart(files)
    return http(server.url + "/api/documents", method="POST", data=body,
                headers={"Content-Type": content_type, **(headers or {})})


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> Iterator[tuple[Server, Path]]:
    """A real server with a token, over a corpus of its own."""
    corpus = tmp_path_factory.mktemp("served") / "docs"
    shutil.copytree(SEEDS, corpus)
    index = make_index([corpus], tmp_path_factory.mktemp("served-index"))
    srv = start_server(index, tmp_path_factory.mktemp("served-log") / "server.log", threads=4, token=TOKEN)
    yield srv, corpus
    srv.stop()


def test_document_calls_need_the_token(served):
    server, corpus = served
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    for method, path in [("GET", "/api/documents"), ("POST", "/api/documents"),
                         ("DELETE", f"/api/documents/{SEED_FILE.name}"), ("GET", "/api/jobs/abc")]:
        status, _, body = http(server.url + path, method=method, data=b"" if method == "POST" else None)
        assert_error(status, json.loads(body), 401, "unauthorized")
    status, _, body = send_upload(server, [("no-token.txt", b"Written without the token.")])
    assert status == 401 and not (corpus / "uploads").exists()
    filler = "".join(f"Entry {i}: the tide table for week {i} is unchanged.\n" for i in range(2000))
    fact = f"The Quillon bridge is made of basalt.\n\n{filler}".encode()  # past the JSON body limit
    status, _, body = send_upload(server, [("with-token.txt", fact)], bearer)
    assert status == 202, body
    job = json.loads(body)["job"]
    deadline = time.monotonic() + 120
    while (state := json.loads(server.get(f"/api/jobs/{job}")[2]))["state"] not in ("done", "failed"):
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert state["state"] == "done", state
    answer = json.loads(server.post_json("/api/ask", {"question": "What is the Quillon bridge made of?"})[2])
    assert answer["citations"][0]["source"] == "uploads/with-token.txt"


def test_upload_bodies_over_the_limit_are_refused_before_they_are_sent(served):
    server, _ = served
    head = request_head(server, "POST", "/api/documents", {
        "Authorization": f"Bearer {TOKEN}", "Content-Type": "multipart/form-data; boundary=x",
        "Content-Length": str(MAX_UPLOAD_BYTES + 1)})
    expect_raw_json_error(*raw_exchange(server, head), 413, "payload_too_large")
    # The uploads' limit is for uploads only: a JSON body of 1 MiB is still refused at once.
    head = request_head(server, "POST", "/api/ask", {
        "Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json", "Content-Length": str(2**20)})
    expect_raw_json_error(*raw_exchange(server, head), 413, "payload_too_large")


def test_read_only_server_refuses_changes_over_http(tmp_path):
    corpus = tmp_path / "docs"
    shutil.copytree(SEEDS, corpus)
    index = make_index([corpus], tmp_path / "index")
    server = start_server(index, tmp_path / "server.log", threads=2, extra=("--read-only",))
    try:
        status, _, body = send_upload(server, [("new.txt", b"Some text.")])
        assert_error(status, json.loads(body), 403, "read_only")
        status, _, body = http(server.url + f"/api/documents/{SEED_FILE.name}", method="DELETE")
        assert status == 403
        listing = json.loads(server.get("/api/documents")[2])
        assert listing["read_only"] is True and len(listing["documents"]) == 1
    finally:
        server.stop()
    assert sorted(p.name for p in corpus.iterdir()) == [SEED_FILE.name]
