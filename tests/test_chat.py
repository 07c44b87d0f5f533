"""``qa chat`` in a real terminal (a pseudo-terminal), typed into as a person types: line
editing, history recall, an empty line, Ctrl-C on a half-typed line, and leaving."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import subprocess
import sys
import termios
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
UP, LEFT, CTRL_C, CTRL_D = "\x1b[A", "\x1b[D", "\x03", "\x04"


def _own_terminal() -> None:
    """In the child: a session of its own whose controlling terminal is the pseudo-terminal,
    so Ctrl-C there interrupts it as a terminal's Ctrl-C does."""
    os.setsid()
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


class Terminal:
    """A process on a pseudo-terminal: keys in, everything it printed out."""

    def __init__(self, args: list[str]) -> None:
        self.master, slave = pty.openpty()
        self.proc = subprocess.Popen(args, stdin=slave, stdout=slave, stderr=slave, cwd=ROOT,
                                     env=dict(os.environ, HF_HUB_OFFLINE="1", TERM="xterm"),
                                     preexec_fn=_own_terminal)
        os.close(slave)
        self.seen = ""

    def read_until(self, text: str, timeout: float = 120) -> str:
        """Everything printed until ``text`` appears after what was read before."""
        start, deadline = len(self.seen), time.monotonic() + timeout
        while text not in self.seen[start:]:
            left = deadline - time.monotonic()
            assert left > 0, f"waited for {text!r}; saw {self.seen[start:]!r}"
            ready, _, _ = select.select([self.master], [], [], left)
            if ready:
                try:
                    self.seen += os.read(self.master, 4096).decode("utf-8", "replace")
                except OSError:  # the process closed the terminal
                    break
        return self.seen[start:]

    def type(self, keys: str) -> None:
        os.write(self.master, keys.encode())


def test_chat_edits_lines_recalls_history_and_leaves_cleanly(seed_index):
    term = Terminal([sys.executable, "-m", "qa.cli", "chat", "--index", str(seed_index)])
    try:
        term.read_until("you> ")
        # A typo fixed with the arrow keys: "Who led the U.S. delegatio?" -> "...delegation?"
        term.type("Who led the U.S. delegatio?" + LEFT + "n\r")
        assert "Sonata Coulter" in term.read_until("you> ")
        term.type("\r")  # an empty line does nothing: the prompt again, the session goes on
        assert term.read_until("you> ").replace("you>", "").strip() == ""
        term.type("How tall is")
        term.read_until("How tall is")  # echoed: readline has the half-typed line
        # A person pauses before Ctrl-C; a signal that lands while readline is still handling
        # the last key, before it waits again, waits for the next key (CPython's readline loop).
        time.sleep(0.5)
        term.type(CTRL_C)  # Ctrl-C drops it
        term.read_until("you> ")
        term.type(UP + "\r")  # the last question again, recalled with the up arrow
        again = term.read_until("you> ")
        assert "Who led the U.S. delegation?" in again and "Sonata Coulter" in again
        assert "^[[A" not in term.seen and "^[[D" not in term.seen
        term.type("exit\r")
        assert term.proc.wait(30) == 0
    finally:
        if term.proc.poll() is None:
            term.proc.kill()
        os.close(term.master)


def test_chat_leaves_on_ctrl_d(seed_index):
    term = Terminal([sys.executable, "-m", "qa.cli", "chat", "--index", str(seed_index)])
    try:
        term.read_until("you> ")
        term.type(CTRL_D)
        assert term.proc.wait(30) == 0
        assert "Traceback" not in term.seen
    finally:
        if term.proc.poll() is None:
            term.proc.kill()
        os.close(term.master)
