"""Faults during and after `qa index`: SIGKILL mid-build, two builds at once, damaged index files.

Nothing here is mocked: builds run the real model, and are killed for real with SIGKILL.
A fresh `python -m qa.cli` costs about 5-7 s just to import torch and load the model, so
the builds that get killed run in processes forked from one helper that has loaded the model
once (`Forker` below). Each forked process runs `qa.cli.main(argv)` exactly as the `qa`
command does, from argument parsing to exit code; only the import is shared. The damaged
index checks use one fresh `python -m qa.cli serve` as well.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest

from qa.cli import main
from qa.engine import Engine
from qa.index import store

ROOT = Path(__file__).resolve().parent.parent
SEED = 20250527

# ---------------------------------------------------------------------------------------------
# A helper process that loads the model once and forks one child per `qa` command.

HELPER = textwrap.dedent(
    """
    import json, os, sys, traceback
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from qa.cli import main
    from qa.index.embedding import Embedder
    import web.server  # what `qa serve` imports, so a forked serve starts at once too
    Embedder()  # loaded once here; it is never run here, so no thread pool is forked
    print(json.dumps({"ready": os.getpid()}), flush=True)
    for line in sys.stdin:
        cmd = json.loads(line)
        if "argv" in cmd:
            pid = os.fork()
            if pid == 0:
                code = 99
                try:
                    fd = os.open(cmd["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
                    os.dup2(fd, 1)
                    os.dup2(fd, 2)
                    os.close(fd)
                    code = main(cmd["argv"])
                except SystemExit as exc:
                    code = exc.code if isinstance(exc.code, int) else 1
                except BaseException:
                    traceback.print_exc()
                finally:
                    sys.stdout.flush()
                    sys.stderr.flush()
                    os._exit(code)
            print(json.dumps({"pid": pid}), flush=True)
        elif "wait" in cmd:
            _, status = os.waitpid(cmd["wait"], 0)
            print(json.dumps({"code": os.waitstatus_to_exitcode(status)}), flush=True)
    """
)


class Forker:
    """Start `qa` commands as forks of a helper that has the model loaded; kill them for real."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        script = workdir / "helper.py"
        script.write_text(HELPER, encoding="utf-8")
        env = dict(os.environ, HF_HUB_OFFLINE="1")
        self.proc = subprocess.Popen(
            [sys.executable, str(script)], cwd=ROOT, env=env, text=True,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        )
        self.ready = 0  # its pid once it has loaded the model (it loads while tests set up)
        self.count = 0

    def _reply(self) -> dict:
        line = self.proc.stdout.readline()
        assert line, f"helper exited with {self.proc.wait()}"
        return json.loads(line)

    def start(self, argv: list[str]) -> tuple[int, Path]:
        if not self.ready:
            self.ready = self._reply()["ready"]
        self.count += 1
        log = self.workdir / f"run-{self.count}.log"
        self.proc.stdin.write(json.dumps({"argv": argv, "log": str(log)}) + "\n")
        self.proc.stdin.flush()
        return self._reply()["pid"], log

    def wait(self, pid: int) -> int:
        """Exit code of a started command; -9 when SIGKILL ended it."""
        self.proc.stdin.write(json.dumps({"wait": pid}) + "\n")
        self.proc.stdin.flush()
        return self._reply()["code"]

    def run(self, argv: list[str], timeout: float = 120) -> tuple[int, str]:
        """Run a command to its end (SIGKILLed and failed if it outlives the timeout)."""
        pid, log = self.start(argv)
        deadline = time.monotonic() + timeout
        while not finished(pid) and time.monotonic() < deadline:
            time.sleep(0.01)
        if not finished(pid):
            os.kill(pid, signal.SIGKILL)
            self.wait(pid)
            pytest.fail(f"qa {' '.join(argv)} still running after {timeout} s: {log.read_text()}")
        code = self.wait(pid)
        return code, log.read_text(encoding="utf-8", errors="replace")

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


def finished(pid: int) -> bool:
    """Whether a (not yet reaped) process has exited: it is a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


@pytest.fixture(scope="module")
def forker(tmp_path_factory):
    helper = Forker(tmp_path_factory.mktemp("forker"))
    yield helper
    helper.close()


# ---------------------------------------------------------------------------------------------
# A corpus of short generated documents, one of which holds the fact every check asks about.

SUBJECTS = ["The council", "A local farmer", "The old miller", "Our neighbour", "The harbour master",
            "A young teacher", "The choir", "The fishing cooperative", "A visiting botanist",
            "The night watchman", "The county surveyor", "A retired sailor", "The bakery owner",
            "The village doctor", "A travelling painter", "The school board"]
VERBS = ["repaired", "measured", "painted", "described", "visited", "photographed", "sold",
         "inspected", "cleaned", "mapped", "praised", "rebuilt", "moved", "counted", "planted"]
OBJECTS = ["the stone bridge", "the northern orchard", "a wooden barn", "the copper kettle",
           "the windmill", "the chapel roof", "a flock of sheep", "the market square",
           "the canal locks", "an iron gate", "the granary", "the ferry landing", "a walled garden",
           "the salt marsh", "the railway halt", "the linen mill"]
WHEN = ["in the spring of {y}", "during the winter of {y}", "before the flood of {y}",
        "after the harvest of {y}", "one evening in {y}", "in late summer {y}"]
WHY = ["because the weather had turned", "to please the mayor", "for the autumn fair",
       "after many complaints", "with help from two cousins", "without telling anyone",
       "using timber from the forest", "as the guidebook suggested"]

FACT_FILE = "doc00.txt"
FACT = "The lighthouse of Varnholm was built in 1871 by the engineer Ilse Brandt."
QUESTION = "Who built the lighthouse of Varnholm?"
FILES = 60
SENTENCES = 6


def sentence(rng: random.Random) -> str:
    when = rng.choice(WHEN).format(y=rng.randint(1700, 2020))
    return f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)} {when} {rng.choice(WHY)}."


def document(rng: random.Random, name: str) -> str:
    lines = [sentence(rng) for _ in range(SENTENCES)]
    if name == FACT_FILE:  # the fact moves around, so its offsets differ between versions
        lines.insert(rng.randint(0, len(lines)), FACT)
    return " ".join(lines[:2]) + "\n\n" + " ".join(lines[2:]) + "\n"  # two paragraphs


class Corpus:
    """Files on disk plus every version ever written, by SHA-256, to check quotes against."""

    def __init__(self, root: Path, rng: random.Random, files: int = FILES) -> None:
        self.root, self.rng = root, rng
        self.texts: dict[str, str] = {}
        root.mkdir(parents=True)
        self.names = [f"doc{i:02d}.txt" for i in range(files)]
        for name in self.names:
            self.write(name)

    def write(self, name: str) -> None:
        text = document(self.rng, name)
        data = text.encode("utf-8")
        (self.root / name).write_bytes(data)
        self.texts[hashlib.sha256(data).hexdigest()] = text

    def change(self, share: float) -> None:
        """Rewrite a share of the files (always the fact file), so a build must re-embed them."""
        picked = {FACT_FILE, *self.rng.sample(self.names, int(len(self.names) * share))}
        for name in sorted(picked):
            self.write(name)

    def snapshot(self) -> dict[str, str]:
        """What a complete build of the files as they are now must record: source -> SHA-256."""
        return {n: hashlib.sha256((self.root / n).read_bytes()).hexdigest() for n in self.names}


def manifest_documents(idx: Path) -> dict[str, str]:
    return json.loads((idx / "current" / "manifest.json").read_text(encoding="utf-8"))["documents"]


def check_index(idx: Path, corpus: Corpus) -> None:
    """The index loads, every stored text is exactly one version of its file, and the known
    question is answered with a quote that is that version's text at [start:end]."""
    engine = Engine(idx)
    documents = manifest_documents(idx)
    assert sorted(documents) == corpus.names
    for doc in engine.data.documents:
        assert documents[doc.source] == doc.sha256
        assert corpus.texts[doc.sha256] == doc.text  # stored text is that version, exactly
    result = engine.ask(QUESTION)
    assert result["answerable"], result
    cite = result["citations"][0]
    assert cite["source"] == FACT_FILE and "Ilse Brandt" in cite["quote"]
    version = corpus.texts[documents[FACT_FILE]]
    assert version[cite["start"] : cite["end"]] == cite["quote"]
    assert engine.source_text(FACT_FILE)[cite["start"] : cite["end"]] == cite["quote"]


def leftovers(idx: Path) -> list[str]:
    """Segments, manifest folders and publish links that the current manifest does not use."""
    keep = {(idx / "current").resolve().name, *(p.name for p in store.segment_folders(idx))}
    return sorted(p.name for p in idx.iterdir()
                  if p.name.startswith(("seg-", "gen-", ".current-")) and p.name not in keep)


# ---------------------------------------------------------------------------------------------
# SIGKILL at random points of a build.

RANDOM_KILLS = 7  # at random points of a build
MID_WRITE_KILLS = 2  # the moment the new segment's folder appears: while it is being written
AT_PUBLISH_KILLS = 1  # the moment `current` points to the new manifest: before old ones are removed
SHARE_CHANGED = 0.4  # of the files rewritten before every run, so every run re-embeds


def _kill_when(idx: Path, kind: str, before: set[str], old_target: str, deadline: float) -> None:
    """Wait for the moment a targeted kill is due."""
    while time.monotonic() < deadline:
        if kind == "mid-write" and any(n.startswith("seg-") and n not in before
                                       for n in os.listdir(idx)):
            return
        if kind == "at publish" and os.readlink(idx / "current") != old_target:
            return
        time.sleep(0.0005)
    pytest.fail(f"no {kind} moment came")


def test_sigkill_during_build_loses_nothing(forker, tmp_path, embedder):
    rng = random.Random(SEED)
    corpus = Corpus(tmp_path / "corpus", rng)
    idx = tmp_path / "index"
    argv = ["index", str(corpus.root), "--index", str(idx)]

    code, log = forker.run(argv)  # the first, full build
    assert code == 0, log
    published = corpus.snapshot()
    check_index(idx, corpus)

    corpus.change(SHARE_CHANGED)
    started = time.monotonic()
    code, log = forker.run(argv)  # an incremental build like the ones that get killed
    typical = time.monotonic() - started
    assert code == 0 and " changed" in log, log
    published = corpus.snapshot()

    # One random point in each of RANDOM_KILLS equal slices of (most of) the usual build time.
    delays = [0.9 * typical * (i + rng.random()) / RANDOM_KILLS for i in range(RANDOM_KILLS)]
    rng.shuffle(delays)
    plan: list[tuple[str, float | None]] = [("random", d) for d in delays]
    plan[2:2] = [("mid-write", None)]
    plan[5:5] = [("at publish", None)]
    plan[8:8] = [("mid-write", None)]
    assert len(plan) == RANDOM_KILLS + MID_WRITE_KILLS + AT_PUBLISH_KILLS
    outcomes = {"killed before publishing": 0, "killed after publishing": 0,
                "finished before the kill": 0, "left a partial build": 0, "completed runs": 2}
    for n, (kind, delay) in enumerate(plan, 1):
        corpus.change(SHARE_CHANGED)
        attempt = corpus.snapshot()
        before = set(os.listdir(idx))
        old_target = os.readlink(idx / "current")
        pid, log = forker.start(argv)
        if delay is not None:
            time.sleep(delay)
        else:
            _kill_when(idx, kind, before, old_target, time.monotonic() + 60)
        os.kill(pid, signal.SIGKILL)
        code = forker.wait(pid)
        assert code in (-signal.SIGKILL, 0), log.read_text()
        documents = manifest_documents(idx)
        if documents == attempt:
            published = attempt
            outcomes["finished before the kill" if code == 0 else "killed after publishing"] += 1
        else:
            assert code == -signal.SIGKILL
            assert documents == published  # the previous build, whole: never a mixture
            outcomes["killed before publishing"] += 1
        if {n for n in leftovers(idx) if n.startswith("seg-")} - before:
            outcomes["left a partial build"] += 1
        check_index(idx, corpus)
        if n in (5, len(plan)):  # the next run without a kill completes and clears what kills left
            code, text = forker.run(argv)
            assert code == 0 and "Traceback" not in text, text
            published = corpus.snapshot()
            assert manifest_documents(idx) == published
            check_index(idx, corpus)
            assert leftovers(idx) == []
            outcomes["completed runs"] += 1

    assert outcomes["killed before publishing"] >= 1 and outcomes["left a partial build"] >= 1
    print(f"\nSIGKILL: {len(plan)} kills, usual build {typical:.1f} s: {outcomes}")


# ---------------------------------------------------------------------------------------------
# Two builds of one index at once.


def _holds_lock(pid: int, lock: Path) -> bool:
    """Whether pid holds a flock on the file (from /proc/locks: no probing of the lock itself)."""
    try:
        inode = lock.stat().st_ino
        lines = Path("/proc/locks").read_text().splitlines()
    except OSError:
        return False
    for line in lines:
        fields = line.split()
        if "FLOCK" in fields and str(pid) in fields and any(f.endswith(f":{inode}") for f in fields):
            return True
    return False


def test_two_builds_at_once_never_mix(forker, tmp_path):
    rng = random.Random(SEED + 1)
    first = Corpus(tmp_path / "first", rng)
    second = Corpus(tmp_path / "second", rng, files=5)
    idx = tmp_path / "index"

    pid, log = forker.start(["index", str(first.root), "--index", str(idx)])
    deadline = time.monotonic() + 60
    while not _holds_lock(pid, idx / ".lock"):
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.005)
    code, refused = forker.run(["index", str(second.root), "--index", str(idx)])
    assert code == 1, refused
    assert refused.count("\n") == 1 and "already building" in refused and "Traceback" not in refused
    assert forker.wait(pid) == 0, log.read_text()

    assert manifest_documents(idx) == first.snapshot()  # the first build, and nothing of the second
    check_index(idx, first)
    assert leftovers(idx) == []

    code, text = forker.run(["index", str(second.root), "--index", str(idx)])  # now it may
    assert code == 0, text
    assert manifest_documents(idx) == second.snapshot()


# ---------------------------------------------------------------------------------------------
# Damaged index files.


def _ask(idx: Path) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(["ask", QUESTION, "--index", str(idx), "--json"])
    return code, out.getvalue(), err.getvalue()


def _damages(data: bytes) -> list[tuple[str, bytes | None]]:
    """Ways to damage one file: deleted (None), truncated (to nothing, to half) and a byte
    flipped (first, middle, last)."""
    out: list[tuple[str, bytes | None]] = [
        ("deleted", None), ("emptied", b""), ("truncated to half", data[: len(data) // 2])]
    for where, pos in (("first", 0), ("middle", len(data) // 2), ("last", len(data) - 1)):
        flipped = bytearray(data)
        flipped[pos] ^= 0xFF
        out.append((f"{where} byte flipped", bytes(flipped)))
    return out


DAMAGES = len(_damages(b"x"))


@pytest.fixture(scope="module")
def small_index(tmp_path_factory, embedder) -> tuple[Path, Corpus]:
    from qa.index.build import build_index

    tmp = tmp_path_factory.mktemp("small")
    corpus = Corpus(tmp / "corpus", random.Random(SEED + 2), files=6)
    build_index([corpus.root], tmp / "index", embedder, report=lambda _: None)
    return tmp / "index", corpus


def index_files(idx: Path) -> list[str]:
    """Every file the current index reads, relative to its folder: the manifest and each
    segment's files."""
    folders = [(idx / "current").resolve(), *store.segment_folders(idx)]
    return sorted(p.relative_to(idx).as_posix() for f in folders for p in f.rglob("*") if p.is_file())


def test_every_damaged_index_file_is_refused_by_ask(small_index, tmp_path):
    good, corpus = small_index
    build = good
    files = index_files(good)
    assert {"manifest.json", "documents.jsonl", "spans.npz", "dense.faiss", "terms.npz"} <= {
        f.split("/")[-1] for f in files}
    refused = 0
    for name in files:
        original = (build / name).read_bytes()
        for how, data in _damages(original):
            if data is None:
                (build / name).unlink()
            else:
                (build / name).write_bytes(data)
            code, out, err = _ask(good)
            (build / name).write_bytes(original)
            what = f"{name} {how}: {err!r}"
            assert code == 1 and out == "", what
            assert err.count("\n") == 1 and err.startswith("qa: error: "), what
            if name.endswith("manifest.json") and data is None:  # no manifest: no index, build one
                assert f"no index at {good}; build one with: qa index SOURCES --index {good}" in err
            else:
                assert name.split("/")[-1] in err, what  # names the damaged file
                assert f"qa index SOURCES --index {good} --rebuild" in err, what
            refused += 1
    assert refused == DAMAGES * len(files)
    check_index(good, corpus)  # restored: answers again
    print(f"\ndamaged index: {len(files)} files x {DAMAGES} damages, {refused} refused")


def _manifest_bit_flips(text: str) -> list[tuple[str, int]]:
    """Single-bit flips that leave the manifest valid JSON (a flipped byte in general does not:
    XOR 0xFF of ASCII is never UTF-8): in the model name, in a document hash, in a chunking
    setting, in a file name, in a file checksum and in the manifest's own checksum."""
    first_doc = text.index('"documents": {')
    files = text.index('"files": {')
    places = {
        "model name": text.index('"model": "') + len('"model": "') + 4,
        "document hash": text.index('": "', first_doc) + 10,
        "chunking setting": text.index('"max_tokens": ') + len('"max_tokens": ') + 2,
        "file name in the checksum list": text.index('"', files + len('"files": {')) + 3,
        "file checksum": text.index('"sha256": "', files) + 20,
        "manifest checksum": text.index('"checksum": "') + len('"checksum": "') + 7,
    }
    return list(places.items())


def _flip_bit(data: bytes, pos: int) -> bytes:
    out = bytearray(data)
    out[pos] ^= 0x01
    return bytes(out)


def test_manifest_bit_flips_are_refused_naming_the_manifest(small_index):
    """The manifest carries its own checksum, so even a flip that leaves valid JSON (and that
    nothing else would notice, as in a document hash) is refused, naming the manifest."""
    good, _ = small_index
    manifest = good / "current" / "manifest.json"
    original = manifest.read_bytes()
    missed = []
    for where, pos in _manifest_bit_flips(original.decode("utf-8")):
        manifest.write_bytes(_flip_bit(original, pos))
        try:
            code, _, err = _ask(good)
        finally:
            manifest.write_bytes(original)
        if not (code == 1 and err.count("\n") == 1 and "manifest.json" in err and "--rebuild" in err):
            missed.append((where, code, err.strip()))
    assert missed == []


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_serve_refuses_a_damaged_index(small_index, forker, tmp_path):
    good, _ = small_index
    idx = tmp_path / "index"
    shutil.copytree(good, idx, symlinks=True)
    build = idx
    files = index_files(idx)
    for name in files:  # every file, one flipped byte each, forked serve
        original = (build / name).read_bytes()
        _, flipped = _damages(original)[4]
        (build / name).write_bytes(flipped)
        port = _free_port()
        code, text = forker.run(["serve", "--index", str(idx), "--port", str(port)])
        (build / name).write_bytes(original)
        assert code == 1, text
        assert text.count("\n") == 1 and name.split("/")[-1] in text and "--rebuild" in text, text
        assert not _listening(port)

    # And once as a user starts it: a fresh process, the chunk vectors truncated.
    vectors = store.segment_folders(idx)[0] / "chunk_vectors.npy"
    vectors.write_bytes(vectors.read_bytes()[:100])
    port = _free_port()
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    proc = subprocess.run([sys.executable, "-m", "qa.cli", "serve", "--index", str(idx), "--port",
                           str(port)], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 1, proc.stderr
    assert proc.stdout == "" and "Serving" not in proc.stderr and "Traceback" not in proc.stderr
    assert proc.stderr.count("\n") == 1 and "chunk_vectors.npy" in proc.stderr
    assert "qa index SOURCES --index" in proc.stderr and "--rebuild" in proc.stderr
    assert not _listening(port)
