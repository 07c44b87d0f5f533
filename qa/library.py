"""The documents of a served index: listing them, adding uploads, removing them again.

Uploads follow the rules of ``qa index``: the same formats and size limits, checked
before anything is written, and the same text extraction, tried on a hidden temporary
copy before the file is renamed into place, so the corpus never holds a half-written
or unreadable upload. Only files inside the uploads folder can be deleted.

Changes are indexed by one background job at a time (later ones queue): ``build_index``
over the source roots the index recorded, plus the uploads folder, so the update is
incremental and published atomically while questions are answered from the last
published build. The web layer and any other front end only translate to these calls.
"""

from __future__ import annotations

import os
import queue
import shutil
import sys
import threading
import unicodedata
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from .engine import Engine
from .errors import QAError
from .index.build import Progress, build_index, plural
from .index.sources import (
    MAX_BYTES,
    SUPPORTED,
    SourceFile,
    is_within,
    name_problem,
    read_document,
    size_limit,
    too_large,
)

DEFAULT_FOLDER = "uploads"
MAX_FILES = 20  # per request
MAX_FILE_BYTES = MAX_BYTES  # the largest file of any format an upload may hold
MAX_NAME_BYTES = 255  # what most file systems allow
KEEP_JOBS = 200  # finished jobs remembered for GET /api/jobs/<id>


class Refused(QAError):
    """A change that is not made; ``code`` says why (the web maps it to a status)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class Upload:
    """One file as received: the name the client gave and its bytes (a seekable stream)."""

    name: str
    stream: BinaryIO


@dataclass
class Job:
    """One indexing run after an upload or a delete."""

    id: str
    action: str  # "add" or "delete"
    files: list[str]
    state: str = "queued"  # queued, running, done, failed
    progress: Progress = field(default_factory=Progress)
    messages: list[str] = field(default_factory=list)  # per file, as `qa index` prints them
    summary: str | None = None  # the build's one-line summary, for the server log
    message: str | None = None  # what the job did, for a person: "Added notes.txt: 2 passages"
    error: str | None = None
    replaced: list[str] = field(default_factory=list)  # files of ``files`` that were there before
    shown: list[str] = field(default_factory=list)  # the files as a person knows them (default: files)
    finished: threading.Event = field(default_factory=threading.Event, repr=False)

    def as_dict(self) -> dict:
        return {"id": self.id, "action": self.action, "files": list(self.files), "state": self.state,
                "progress": self.progress.as_dict(), "messages": list(self.messages),
                "summary": self.summary, "message": self.message, "error": self.error}


def listing(items: list[str]) -> str:
    """"a", "a and b", "a, b and c"."""
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


def changed(verb: str, files: list[tuple[str, int | None]]) -> str:
    """"Added zephyr.docx: 2 passages", "Added a.docx (3 passages) and b.txt (1 passage)",
    "Added 5 files: 12 passages"; a file that is not in the index (skipped) is "not indexed"."""
    def passages(n: int | None) -> str:
        return "not indexed" if n is None else plural(n, "passage")
    if len(files) == 1:
        return f"{verb} {files[0][0]}: {passages(files[0][1])}"
    if len(files) <= 3:
        return f"{verb} {listing([f'{name} ({passages(n)})' for name, n in files])}"
    return f"{verb} {plural(len(files), 'file')}: {plural(sum(n or 0 for _, n in files), 'passage')}"


def safe_name(name: object) -> str:
    """The client's file name reduced to a plain base name, or Refused.

    Folders ("../../x", "C:\\x", "/etc/x") are dropped, leading dots and spaces too (no
    hidden files), and a name left empty or unusable is refused rather than invented.
    """
    if not isinstance(name, str) or not name:
        raise Refused("invalid_upload", "every file needs a name")
    base = unicodedata.normalize("NFC", name.replace("\\", "/").rsplit("/", 1)[-1]).strip().lstrip(". ")
    problem = name_problem(base)
    if problem or "\x00" in base:
        raise Refused("invalid_upload", f"{name!r}: {problem or 'file name contains a null character'}")
    if not base or not Path(base).stem:
        raise Refused("invalid_upload", f"{name!r} is not a usable file name")
    if len(base.encode("utf-8")) > MAX_NAME_BYTES:
        raise Refused("invalid_upload", f"file name is longer than {MAX_NAME_BYTES} bytes")
    return base


def _size(stream: BinaryIO) -> int:
    stream.seek(0, os.SEEK_END)
    size = stream.tell()
    stream.seek(0)
    return size


class Library:
    """An engine's documents, and the uploads folder and job queue that change them."""

    def __init__(self, engine: Engine, folder: Path | None = None, read_only: bool = False,
                 published: Callable[[], None] | None = None,
                 log: Callable[[str], None] = lambda line: print(line, file=sys.stderr, flush=True)) -> None:
        self.engine = engine
        self.read_only = read_only
        self.published = published or engine.reload
        self.log = log
        self.roots, self.folder, self.unavailable = self._locate(folder)
        self._jobs: dict[str, Job] = {}
        self._queue: queue.Queue[Job] = queue.Queue()
        self._lock = threading.Lock()  # jobs dict, and name checks with their renames
        self._worker: threading.Thread | None = None

    def _locate(self, folder: Path | None) -> tuple[list[str], Path | None, str | None]:
        """The corpus roots the index was built from, the uploads folder, or why uploads are off."""
        roots = self.engine.data.manifest.get("sources")
        if not isinstance(roots, list) or not roots:
            return [], None, ("this index does not record the folder it was built from; "
                              f"rebuild it once with: qa index SOURCES --index {self.engine.index_dir}")
        if folder is None:
            folders = [r for r in roots if os.path.isdir(r)]
            if not folders:
                return roots, None, ("the index was built from single files, not a folder: "
                                     "start qa serve with --uploads DIR")
            folder = Path(folders[0]) / DEFAULT_FOLDER
        return roots, Path(os.path.abspath(folder)), None

    # ---- reading ----

    def status(self) -> dict:
        """What the page needs to say where uploads go and what is accepted."""
        return {"uploads": self.folder is not None and not self.read_only, "read_only": self.read_only,
                "folder": self._shown_folder(), "reason": self._why_not(),
                "formats": sorted(SUPPORTED), "max_bytes": size_limit(Path("x.txt")), "max_files": MAX_FILES}

    def _shown_folder(self) -> str | None:
        """The uploads folder as it is on disk (absolute: as configured, wherever the server runs)."""
        return None if self.folder is None else os.path.join(self.folder, "")

    def _why_not(self) -> str | None:
        if self.read_only:
            return "this server is read-only (--read-only): documents cannot be added or removed here"
        return self.unavailable

    def documents(self) -> list[dict]:
        """Every indexed document: its name, size, passages, when indexed, whether uploaded."""
        data = self.engine.data
        chunks = data.chunks_per_document()
        info = data.manifest.get("document_info", {})
        out = []
        for i, doc in enumerate(data.documents):
            meta = info.get(doc.source, {})
            out.append({"source": doc.source, "bytes": meta.get("bytes"), "chunks": int(chunks[i]),
                        "indexed_at": meta.get("indexed_at"), "uploaded": self._uploaded(meta)})
        return out

    def _uploaded(self, meta: dict) -> bool:
        path = meta.get("path")
        return self.folder is not None and isinstance(path, str) and is_within(path, str(self.folder))

    def job(self, job_id: str) -> Job:
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None:
            raise Refused("unknown_job", f"no job {job_id!r} (finished jobs are kept for a while only)")
        return job

    # ---- changing ----

    def _writable(self) -> Path:
        reason = self._why_not()
        if reason:
            raise Refused("read_only" if self.read_only else "uploads_unavailable", reason)
        assert self.folder is not None
        return self.folder

    def add(self, uploads: list[Upload], replace: bool = False) -> Job:
        """Check every file, write them in place, and queue the job that indexes them.

        All or nothing: one refused file refuses the request, and nothing is written.
        """
        folder = self._writable()
        if not uploads:
            raise Refused("invalid_upload", "send one or more files in the form field 'file'")
        if len(uploads) > MAX_FILES:
            raise Refused("invalid_upload", f"at most {MAX_FILES} files at a time")
        names = [self._check(upload) for upload in uploads]
        if len(set(names)) != len(names):
            raise Refused("invalid_upload", "two files in this request have the same name")
        folder.mkdir(parents=True, exist_ok=True)
        temps: list[Path] = []
        try:
            for upload, name in zip(uploads, names):
                temps.append(self._write_aside(folder, upload, name))
            with self._lock:
                replaced = [n for n in names if os.path.lexists(folder / n)]
                if not replace:
                    taken = [n for n in names if os.path.lexists(folder / n)]
                    if taken:
                        raise Refused("exists", f"{taken[0]} is already in {self._shown_folder()}; "
                                      "send replace=true to replace it")
                odd = [n for n in names if (folder / n).is_dir() or (folder / n).is_symlink()]
                if odd:
                    raise Refused("exists", f"{odd[0]} is a folder or a link here; rename the file")
                for temp, name in zip(temps, names):
                    os.replace(temp, folder / name)
        finally:
            for temp in temps:
                temp.unlink(missing_ok=True)
        return self._queue_job(Job(uuid.uuid4().hex[:16], "add", names, replaced=replaced))

    def _check(self, upload: Upload) -> str:
        """Name, format and size, before a byte is written."""
        name = safe_name(upload.name)
        suffix = Path(name).suffix.lower()
        if suffix not in SUPPORTED:
            raise Refused("unsupported_type", f"{name}: unsupported file type (accepted: "
                          f"{' '.join(sorted(SUPPORTED))})")
        size, limit = _size(upload.stream), size_limit(Path(name))
        if size > limit:
            raise Refused("too_large", f"{name}: {too_large(limit)}")
        if size == 0:
            raise Refused("unreadable", f"{name}: empty file")
        return name

    def _write_aside(self, folder: Path, upload: Upload, name: str) -> Path:
        """The upload under a hidden temporary name (never indexed), read as `qa index` would."""
        temp = folder / f".upload-{uuid.uuid4().hex}-{name}"
        with open(temp, "xb") as out:
            shutil.copyfileobj(upload.stream, out)
            out.flush()
            os.fsync(out.fileno())
        try:
            read_document(SourceFile(temp, name))
        except (OSError, ValueError) as exc:
            temp.unlink(missing_ok=True)
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise Refused("unreadable", f"{name}: {reason}") from None
        return temp

    def remove(self, source: str) -> Job:
        """Delete an uploaded document's file and queue the job that drops it from the index."""
        data = self.engine.data
        if data.document(source) is None:
            raise Refused("unknown_source", f"no indexed document is called {source!r}")
        meta = data.manifest.get("document_info", {}).get(source, {})
        if not self._uploaded(meta):
            raise Refused("not_uploaded", f"{source} was not uploaded through this server, so it is not "
                          "deleted from disk here; remove it from the folder and run qa index")
        self._writable()
        path = Path(meta["path"])
        path.unlink(missing_ok=True)
        shown = path.relative_to(self.folder).as_posix() if is_within(str(path), str(self.folder)) else source
        return self._queue_job(Job(uuid.uuid4().hex[:16], "delete", [source], shown=[shown]))

    # ---- the job queue ----

    def _queue_job(self, job: Job) -> Job:
        with self._lock:
            self._jobs[job.id] = job
            while len(self._jobs) > KEEP_JOBS:
                oldest = next(iter(self._jobs))
                if self._jobs[oldest].state in ("queued", "running"):
                    break
                del self._jobs[oldest]
            if self._worker is None:
                self._worker = threading.Thread(target=self._work, name="qa-index-jobs", daemon=True)
                self._worker.start()
        self._queue.put(job)
        return job

    def _work(self) -> None:
        while True:
            self._run(self._queue.get())

    def _run(self, job: Job) -> None:
        try:
            self._index(job)
        finally:
            job.finished.set()

    def _index(self, job: Job) -> None:
        job.state = "running"
        roots = self.engine.data.manifest.get("sources") or self.roots  # `qa index` may have changed them
        sources = [Path(r) for r in roots]
        if self.folder is not None and not any(is_within(str(self.folder), r) for r in roots):
            sources.append(self.folder)
        try:
            report = build_index(sources, self.engine.index_dir, self.engine.embedder,
                                 report=job.messages.append, progress=False, tracker=job.progress)
            self.published()
        except Exception as exc:  # the job fails, the worker and the published index stay
            job.error = " ".join(str(exc).split()) or type(exc).__name__
            job.message = f"Indexing failed, the documents as they were are still answered: {job.error}"
            job.state = "failed"
            self.log(f"qa: indexing job {job.id} failed: {job.error}")
            return
        job.summary = report.summary()
        job.message = self._said(job, report.added + report.changed + report.removed)
        job.state = "done"
        self.log(f"qa: {job.action} {', '.join(job.files)}: {job.summary}")

    def _said(self, job: Job, changes: int) -> str:
        """What the job did, for a person, from the index as published after it."""
        others = changes - len(job.files)
        also = f" (the folder had {plural(others, 'other change')}, indexed too)" if others > 0 else ""
        if job.action == "delete":
            return f"Removed {listing(job.shown or job.files)}{also}"
        data = self.engine.data
        position = {doc.source: i for i, doc in enumerate(data.documents)}
        chunks = data.chunks_per_document()
        info = data.manifest.get("document_info", {})
        by_path = {meta.get("path"): source for source, meta in info.items()}
        assert self.folder is not None
        counts = []
        for name in job.files:
            i = position.get(by_path.get(str(self.folder / name)))
            counts.append((name, None if i is None else int(chunks[i]), name in job.replaced))
        parts = [changed(verb, [(name, n) for name, n, was in counts if was == replaced])
                 for verb, replaced in (("Added", False), ("replaced", True))
                 if any(was == replaced for *_, was in counts)]
        said = "; ".join(parts)
        return said[0].upper() + said[1:] + also

    @staticmethod
    def wait(job: Job, timeout: float = 120) -> bool:
        """For tests and scripts: wait until the job has finished; False on timeout."""
        return job.finished.wait(timeout)
