"""Load run for ``qa serve``: N client threads ask many questions; prints a markdown summary.

Not a test: run it by hand to measure throughput and latency, e.g.

    .venv/bin/python bench/load.py --clients 8 --requests 3200

(--requests is the total over all clients: 8 x 400 here.)

Without --url it indexes the seeds into a temporary folder, starts ``qa serve``
on 127.0.0.1 with a free port, and stops it (SIGTERM) at the end. It only
ever targets loopback addresses. Exit code 1 when any request failed.
"""

from __future__ import annotations

import argparse
import http.client
import ipaddress
import itertools
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DELEGATION = "Who led the U.S. delegation?"
DELEGATION_ANSWER_START = "Sonata Coulter"

# (question, history): seed questions, two follow-ups and off-topic ones that should abstain.
QUESTIONS: list[tuple[str, list[dict[str, str]]]] = [
    (DELEGATION, []),
    ("Where did the consultations take place?", []),
    ("What did Russia offer the United States?", []),
    ("When did the consultations take place?", []),
    ("Who headed Moscow's team of negotiators?", []),
    ("What did Putin hail?", []),
    ("What did the U.S. delegation raise concerns about?", []),
    ("How many premises were seized?", []),
    ("Why did Western nations cut air links with Russia?", []),
    ("What did Moscow and Washington agree to in Riyadh?", []),
    ("How did the ministry describe the talks?", []),
    ("What was agreed upon to ensure financing of diplomatic missions?", []),
    ("What is her title?", [
        {"role": "user", "content": DELEGATION},
        {"role": "assistant", "content": "Sonata Coulter, U.S. deputy assistant secretary of state "
                                         "for Russia and Central Europe who led the U.S. delegation"},
    ]),
    ("When was it?", [{"role": "user", "content": "Where did the consultations take place?"},
                      {"role": "assistant", "content": "in Istanbul"}]),
    ("How tall is Mount Everest?", []),
    ("What is the boiling point of water at sea level?", []),
    ("Who wrote Pride and Prejudice?", []),
    ("What is the capital of Australia?", []),
    ("How do I bake sourdough bread?", []),
    ("What is the speed of light?", []),
]


@dataclass
class Tally:
    """What the clients saw; shared, so every update holds the lock."""

    latencies_ms: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    answered: int = 0
    abstained: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


def check_loopback(url: str) -> urllib.parse.SplitResult:
    """Load goes to this machine only."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    loopback = host == "localhost"
    if not loopback:
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
    if parts.scheme != "http" or not loopback:
        raise SystemExit(f"refusing {url}: only http:// on a loopback address (127.0.0.1, ::1, localhost)")
    return parts


def client(target: urllib.parse.SplitResult, tickets: itertools.count, total: int | None,
           deadline: float, tally: Tally, timeout: float) -> None:
    """One simulated user: ask questions back to back on one keep-alive connection."""
    conn = http.client.HTTPConnection(target.hostname, target.port or 80, timeout=timeout)
    while True:
        i = next(tickets)
        if (total is not None and i >= total) or time.monotonic() > deadline:
            break
        question, history = QUESTIONS[i % len(QUESTIONS)]
        body = json.dumps({"question": question, "history": history})
        started = time.perf_counter()
        try:
            conn.request("POST", "/api/ask", body=body, headers={"Content-Type": "application/json"})
            response = conn.getresponse()
            raw = response.read()
            elapsed = (time.perf_counter() - started) * 1000
            problem = judge(question, response.status, raw)
        except (OSError, http.client.HTTPException) as exc:
            elapsed = (time.perf_counter() - started) * 1000
            problem = f"{type(exc).__name__}: {exc}"
            conn.close()
            conn = http.client.HTTPConnection(target.hostname, target.port or 80, timeout=timeout)
        with tally.lock:
            tally.latencies_ms.append(elapsed)
            if problem:
                tally.errors.append(f"{question!r}: {problem}")
            elif json.loads(raw)["answerable"]:
                tally.answered += 1
            else:
                tally.abstained += 1
    conn.close()


def judge(question: str, status: int, raw: bytes) -> str | None:
    """None when the response is a well-formed answer to this question, else what is wrong."""
    if status != 200:
        return f"HTTP {status}: {raw[:200]!r}"
    try:
        result = json.loads(raw)
    except ValueError:
        return "response is not JSON"
    if result.get("question") != question or not isinstance(result.get("passages"), list):
        return "response is not an answer to the question asked"
    if question == DELEGATION and not result["answer"].startswith(DELEGATION_ANSWER_START):
        return f"wrong answer: {result['answer'][:80]!r}"
    return None


def percentile(sorted_values: list[float], p: float) -> float:
    """Nearest-rank percentile of already sorted values."""
    if not sorted_values:
        return float("nan")
    rank = max(1, min(len(sorted_values), round(p / 100 * len(sorted_values) + 0.5)))
    return sorted_values[rank - 1]


def start_server(index: Path, threads: int, log: Path) -> tuple[subprocess.Popen, str]:
    """``qa serve`` on a free loopback port; its stderr (waitress's queue warnings) goes to log.

    Without a rate limit: every simulated client comes from 127.0.0.1, which the default
    per-address limit (20 questions a second) would throttle.
    """
    cmd = [sys.executable, "-m", "qa.cli", "serve", "--index", str(index), "--host", "127.0.0.1",
           "--port", "0", "--threads", str(threads), "--rate-limit", "off"]
    with open(log, "w") as err:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL,
                                env=server_env(), text=True)
    for line in proc.stdout:  # type: ignore[union-attr]
        if line.startswith("Serving on "):
            return proc, line.split()[-1]
    raise SystemExit(f"the server did not start (exit code {proc.wait()})")


def server_env() -> dict[str, str]:
    """The environment for the started server: no QA_TOKEN, so the clients need none."""
    env = {k: v for k, v in os.environ.items() if k != "QA_TOKEN"}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def build_seed_index(folder: Path) -> Path:
    index = folder / "index"
    subprocess.run([sys.executable, "-m", "qa.cli", "index", str(ROOT / "seeds"), "--index", str(index)],
                   cwd=ROOT, check=True, stdin=subprocess.DEVNULL)
    return index


def run(url: str, clients: int, total: int | None, duration: float | None,
        timeout: float) -> tuple[Tally, float]:
    """Warm up with one request, then let the clients loose; the tally and the wall time."""
    target = check_loopback(url)
    tally = Tally()
    warm = Tally()  # one untimed request first: the first encode is slower
    client(target, itertools.count(), 1, time.monotonic() + timeout, warm, timeout)
    if warm.errors:
        raise SystemExit(f"warm-up request failed: {warm.errors[0]}")
    tickets = itertools.count()
    deadline = time.monotonic() + (duration if duration else 24 * 3600)
    workers = [threading.Thread(target=client, args=(target, tickets, total, deadline, tally, timeout))
               for _ in range(clients)]
    started = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return tally, time.perf_counter() - started


def report(tally: Tally, seconds: float, clients: int, server_threads: str, url: str) -> str:
    lat = sorted(tally.latencies_ms)
    n = len(lat)
    lines = [
        f"### Load run: {clients} clients against {url}",
        "",
        "| measure | value |",
        "| --- | --- |",
        f"| clients (threads) | {clients} |",
        f"| server threads | {server_threads} |",
        f"| requests | {n} |",
        f"| errors | {len(tally.errors)} |",
        f"| answered / abstained | {tally.answered} / {tally.abstained} |",
        f"| wall time | {seconds:.2f} s |",
        f"| throughput | {n / seconds if seconds else 0:.1f} req/s |",
        f"| latency p50 | {percentile(lat, 50):.1f} ms |",
        f"| latency p95 | {percentile(lat, 95):.1f} ms |",
        f"| latency p99 | {percentile(lat, 99):.1f} ms |",
        f"| latency max | {lat[-1] if lat else float('nan'):.1f} ms |",
    ]
    if tally.errors:
        lines += ["", "First errors:", *[f"- {e}" for e in tally.errors[:5]]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--url", help="a running server (loopback only); default: start one")
    p.add_argument("--index", type=Path,
                   help="index for the started server (default: the seeds, freshly built)")
    p.add_argument("--threads", type=int, default=8, help="threads of the started server (default 8)")
    p.add_argument("--clients", type=int, default=8, help="concurrent clients (default 8)")
    p.add_argument("--requests", type=int, default=400, help="total requests (default 400)")
    p.add_argument("--duration", type=float, help="or: seconds to run instead of a request count")
    p.add_argument("--timeout", type=float, default=60, help="seconds per request (default 60)")
    args = p.parse_args(argv)
    if args.clients < 1 or args.requests < 1 or (args.duration is not None and not 0 < args.duration <= 3600):
        p.error("clients and requests must be at least 1; duration from 0 to 3600 seconds")
    total = None if args.duration else args.requests

    if args.url:
        tally, seconds = run(args.url, args.clients, total, args.duration, args.timeout)
        print(report(tally, seconds, args.clients, "(not started here)", args.url))
        return 1 if tally.errors else 0

    with tempfile.TemporaryDirectory(prefix="qa-load-") as tmp:
        index = args.index or build_seed_index(Path(tmp))
        log = Path(tmp) / "server.log"
        proc, url = start_server(index, args.threads, log)
        try:
            tally, seconds = run(url, args.clients, total, args.duration, args.timeout)
        finally:
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(30)
        server_log = log.read_text(errors="replace").splitlines()
    print(report(tally, seconds, args.clients, str(args.threads), url))
    queued = sum("Task queue depth" in line for line in server_log)
    print(f"\nserver stopped with SIGTERM, exit code {code}; "
          f"{queued} waitress 'task queue depth' warnings (all its threads were busy)")
    if code != 0:
        print("\n".join(server_log[-20:]), file=sys.stderr)
    return 1 if tally.errors or code != 0 else 0


if __name__ == "__main__":
    sys.exit(main())
