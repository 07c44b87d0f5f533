"""Pick up a rebuilt index without a restart, and keep serving while it loads.

``qa index`` publishes a build by replacing ``INDEX/current`` (a symlink) in one
rename. The watcher notices that cheaply — at most once per ``interval`` seconds,
on a request, it compares ``lstat``/``readlink`` of the link and ``stat`` of the
manifest with what it saw last — and on SIGHUP. Either way the index is loaded in a
background thread by ``Engine.reload()``, which swaps ``engine.data`` in one
assignment: requests already running finish on the build they started with, later
ones use the new one. A build that cannot be loaded (damaged, missing, other model)
leaves the old one serving and is logged in one line; it is retried when ``current``
changes again or on the next SIGHUP.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable

from qa.engine import Engine
from qa.library import plural

Signature = tuple | None  # as Engine.build_signature gives it


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


class IndexWatcher:
    """Reloads ``engine`` when its index's ``current`` build changes, or when asked to."""

    def __init__(self, engine: Engine, interval: float = 1.0, log: Callable[[str], None] = _stderr) -> None:
        self.engine = engine
        self.interval = interval
        self.log = log
        self._lock = threading.Lock()  # guards everything below
        self._seen = self.signature()
        self._checked = time.monotonic()
        self._running = False
        self._again: str | None = None  # a reload asked for while one was running
        self.reloads = 0  # loaded successfully
        self.failures = 0  # could not be loaded; the previous build kept serving

    def signature(self) -> Signature:
        """What identifies the current build on disk (None: there is none)."""
        return self.engine.build_signature()

    def poll(self) -> None:
        """Called on requests: look at the disk at most once per interval; never blocks on a load."""
        now = time.monotonic()
        with self._lock:
            if now - self._checked < self.interval:
                return
            self._checked = now
            seen = self._seen
        if self.signature() != seen:
            self.request("the index changed on disk")

    def request(self, reason: str) -> None:
        """Reload in the background (one load at a time; a request during a load queues one more)."""
        with self._lock:
            if self._running:
                self._again = reason
                return
            self._running = True
        threading.Thread(target=self._run, args=(reason,), name="qa-reload", daemon=True).start()

    def _run(self, reason: str) -> None:
        while True:
            try:
                self.reload(reason)
            finally:
                with self._lock:
                    again, self._again = self._again, None
                    if again is None:
                        self._running = False
            if again is None:
                return
            reason = again

    def reload(self, reason: str) -> bool:
        """Load the current build now; on any error keep the old one and log one line."""
        signature = self.signature()
        with self._lock:
            self._seen = signature  # a build that fails to load is not retried until it changes
        started = time.perf_counter()
        try:
            self.engine.reload()
        except Exception as exc:  # whatever went wrong, the old index keeps serving
            self.failures += 1
            message = " ".join(str(exc).split()) or type(exc).__name__
            self.log(f"qa: reload ({reason}) failed, still serving the previous index: {message}")
            return False
        self.reloads += 1
        health = self.engine.health()
        self.log(f"qa: index reloaded ({reason}): {plural(health['documents'], 'document')}, "
                 f"{plural(health['chunks'], 'passage')}, {time.perf_counter() - started:.2f} s")
        return True

    def wait(self, timeout: float = 30) -> bool:
        """For tests: wait until no reload is running; False on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if not self._running:
                    return True
            time.sleep(0.01)
        return False
