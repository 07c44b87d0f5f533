"""Soak run for ``qa serve``: many clients for minutes; errors, latency and the server's memory over time.

Not a test: run it by hand, e.g.

    .venv/bin/python bench/soak.py                      # 16 clients, 3 minutes
    .venv/bin/python bench/soak.py --clients 16 --duration 600

It indexes the seeds into a temporary folder, starts ``qa serve`` on 127.0.0.1 with a
free port (rate limit off: every client comes from the same address), lets the clients
ask back to back on keep-alive connections (the questions and checks of bench/load.py),
and samples the server's resident memory (VmRSS in /proc/PID/status) every few seconds.
The report gives p50/p95/p99 latency and the memory at the start, the middle and the
end. Exit code 1 when any request failed, or when memory grew by more than
--max-growth-mb from the middle of the run to its end (a leak would keep growing;
the first seconds only warm caches up). With --url it soaks a running server and
needs --pid to read its memory. Loopback addresses only.
"""

from __future__ import annotations

import argparse
import itertools
import signal
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import load  # bench/load.py: questions, clients, checks, server start


@dataclass
class Sample:
    seconds: float
    requests: int
    errors: int
    rss_kib: int


def rss_kib(pid: int) -> int:
    """Resident memory of a process (VmRSS), in KiB."""
    with open(f"/proc/{pid}/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for process {pid}")


def sample_memory(pid: int, tally: load.Tally, started: float, every: float, stop: threading.Event,
                  samples: list[Sample]) -> None:
    """Every `every` seconds until stopped: elapsed time, requests and errors so far, RSS."""
    while True:
        with tally.lock:
            done, failed = len(tally.latencies_ms), len(tally.errors)
        samples.append(Sample(time.perf_counter() - started, done, failed, rss_kib(pid)))
        if stop.wait(every):
            with tally.lock:
                done, failed = len(tally.latencies_ms), len(tally.errors)
            samples.append(Sample(time.perf_counter() - started, done, failed, rss_kib(pid)))
            return


def soak(url: str, pid: int | None, clients: int, duration: float, every: float,
         timeout: float) -> tuple[load.Tally, float, list[Sample]]:
    target = load.check_loopback(url)
    warm = load.Tally()
    load.client(target, itertools.count(), len(load.QUESTIONS), time.monotonic() + timeout, warm, timeout)
    if warm.errors:
        raise SystemExit(f"warm-up failed: {warm.errors[0]}")
    tally = load.Tally()
    tickets = itertools.count()
    deadline = time.monotonic() + duration
    workers = [threading.Thread(target=load.client, args=(target, tickets, None, deadline, tally, timeout))
               for _ in range(clients)]
    samples: list[Sample] = []
    stop = threading.Event()
    started = time.perf_counter()
    sampler = None
    if pid is not None:
        sampler = threading.Thread(target=sample_memory, args=(pid, tally, started, every, stop, samples))
        sampler.start()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    seconds = time.perf_counter() - started
    stop.set()
    if sampler is not None:
        sampler.join()
    return tally, seconds, samples


def mib(kib: int) -> str:
    return f"{kib / 1024:.1f} MiB"


def nearest(samples: list[Sample], seconds: float) -> Sample:
    return min(samples, key=lambda s: abs(s.seconds - seconds))


def every_30_seconds(samples: list[Sample]) -> list[Sample]:
    """The sample nearest each half minute, and the last one."""
    marks = [nearest(samples, t) for t in range(0, int(samples[-1].seconds) + 1, 30)] + [samples[-1]]
    return [s for i, s in enumerate(marks) if s not in marks[:i]]


def report(tally: load.Tally, seconds: float, samples: list[Sample], clients: int, threads: str,
           url: str, every: float) -> tuple[str, float | None]:
    """The markdown summary, and the memory growth from the middle to the end (MiB) if sampled."""
    text = load.report(tally, seconds, clients, threads, url).replace("### Load run", "### Soak run", 1)
    lines = [text]
    growth = None
    if samples:
        start, middle, end = samples[0], nearest(samples, seconds / 2), samples[-1]
        growth = (end.rss_kib - middle.rss_kib) / 1024
        peak = max(samples, key=lambda s: s.rss_kib)
        lines += [
            "",
            f"Server memory (VmRSS), sampled every {every:g} s ({len(samples)} samples):",
            "",
            "| when | elapsed | requests so far | errors so far | RSS |",
            "| --- | --- | --- | --- | --- |",
        ]
        for name, s in (("start", start), ("middle", middle), ("end", end), ("peak", peak)):
            lines.append(f"| {name} | {s.seconds:.0f} s | {s.requests} | {s.errors} | {mib(s.rss_kib)} |")
        lines += ["", f"Growth start -> end: {(end.rss_kib - start.rss_kib) / 1024:+.1f} MiB; "
                      f"middle -> end: {growth:+.1f} MiB.", "",
                  "Every 30 s: " + ", ".join(f"{s.seconds:.0f} s {s.rss_kib / 1024:.0f}"
                                             for s in every_30_seconds(samples)) + " (MiB)"]
    return "\n".join(lines), growth


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--duration", type=float, default=180, help="seconds of load (default 180)")
    p.add_argument("--clients", type=int, default=16, help="concurrent clients (default 16)")
    p.add_argument("--threads", type=int, default=8, help="threads of the started server (default 8)")
    p.add_argument("--every", type=float, default=5, help="seconds between memory samples (default 5)")
    p.add_argument("--max-growth-mb", type=float, default=50,
                   help="fail when RSS grows more than this from the middle to the end (default 50)")
    p.add_argument("--index", type=Path, help="index for the started server (default: the seeds)")
    p.add_argument("--url", help="soak a running server instead (loopback only)")
    p.add_argument("--pid", type=int, help="with --url: the server's process id, to read its memory")
    p.add_argument("--timeout", type=float, default=60, help="seconds per request (default 60)")
    args = p.parse_args(argv)
    if args.clients < 1 or not 0 < args.duration <= 24 * 3600 or args.every <= 0:
        p.error("clients must be at least 1, duration from 0 to 86400 seconds, --every above 0")

    if args.url:
        tally, seconds, samples = soak(args.url, args.pid, args.clients, args.duration, args.every,
                                       args.timeout)
        text, growth = report(tally, seconds, samples, args.clients, "(not started here)", args.url,
                              args.every)
        print(text)
        return verdict(tally, growth, args.max_growth_mb)

    with tempfile.TemporaryDirectory(prefix="qa-soak-") as tmp:
        index = args.index or load.build_seed_index(Path(tmp))
        log = Path(tmp) / "server.log"
        proc, url = load.start_server(index, args.threads, log)
        try:
            tally, seconds, samples = soak(url, proc.pid, args.clients, args.duration, args.every,
                                           args.timeout)
        finally:
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(30)
        server_log = log.read_text(errors="replace").splitlines()
    text, growth = report(tally, seconds, samples, args.clients, str(args.threads), url, args.every)
    print(text)
    tracebacks = sum("Traceback" in line for line in server_log)
    print(f"\nserver stopped with SIGTERM, exit code {code}; {tracebacks} tracebacks in its log")
    if code != 0 or tracebacks:
        print("\n".join(server_log[-20:]), file=sys.stderr)
        return 1
    return verdict(tally, growth, args.max_growth_mb)


def verdict(tally: load.Tally, growth: float | None, limit: float) -> int:
    if tally.errors:
        print(f"\nFAILED: {len(tally.errors)} requests failed")
        return 1
    if growth is not None and growth > limit:
        print(f"\nFAILED: memory grew {growth:.1f} MiB from the middle to the end (limit {limit:g})")
        return 1
    print("\nOK: no errors" + ("" if growth is None else f", memory flat within {limit:g} MiB"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
