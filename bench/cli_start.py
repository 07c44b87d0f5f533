"""How fast the command line starts and stops, as a person at a terminal feels it.

Times, as the median of several runs of whole processes: importing what any answer needs
(``python -c "import numpy, onnxruntime, faiss, tokenizers"``), ``qa ask`` on an index of
the seeds (built once beforehand, with the question encoder exported), ``qa ask ""`` and
``qa index /nonexistent`` (refused before any model loads), and ``qa serve``'s exit after
SIGTERM once it has indexed an upload (PyTorch loaded). Prints a Markdown table.

    .venv/bin/python bench/cli_start.py [--runs 7]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
QUESTION = "When did Russia send troops into Ukraine?"
ENV = dict(os.environ, HF_HUB_OFFLINE="1")


def timed(args: list[str], cwd: Path) -> float:
    started = time.perf_counter()
    subprocess.run(args, cwd=cwd, env=ENV, capture_output=True, check=False)
    return time.perf_counter() - started


def median(args: list[str], cwd: Path, runs: int) -> float:
    timed(args, cwd)  # the file cache warm, as on a machine in use
    return statistics.median(timed(args, cwd) for _ in range(runs))


def serve_exit(index: Path, docs: Path) -> float:
    """Seconds from SIGTERM to exit of a `qa serve` that has indexed one upload."""
    proc = subprocess.Popen([sys.executable, "-m", "qa.cli", "serve", "--port", "0", "--index", str(index)],
                            cwd=docs.parent, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True)
    port = int(proc.stdout.readline().strip().rsplit(":", 1)[1])
    boundary = "qa-bench"
    name = f"note-{time.time_ns()}.txt"
    body = (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
            "Content-Type: text/plain\r\n\r\nThe Vellmar observatory opened in 1987.\n\r\n"
            f"--{boundary}--\r\n").encode()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    conn.request("POST", "/api/documents", body=body,
                 headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    job = json.loads(conn.getresponse().read())["job"]
    while True:
        conn.request("GET", f"/api/jobs/{job}")
        if json.loads(conn.getresponse().read())["state"] in ("done", "failed"):
            break
        time.sleep(0.2)
    conn.close()
    started = time.perf_counter()
    proc.send_signal(signal.SIGTERM)
    proc.wait(60)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    runs = parser.parse_args().runs
    python = sys.executable
    with tempfile.TemporaryDirectory(prefix="qa-cli-bench-") as tmp:
        work = Path(tmp)
        docs = work / "docs"
        docs.mkdir()
        for f in (ROOT / "seeds").iterdir():
            (docs / f.name).write_bytes(f.read_bytes())
        index = work / "index"
        subprocess.run([python, "-m", "qa.cli", "index", str(docs), "--index", str(index)], env=ENV,
                       check=True, capture_output=True)
        subprocess.run([python, "-m", "qa.cli", "ask", QUESTION, "--index", str(index)], env=ENV, check=True,
                       capture_output=True)  # exports the question encoder once, as a first ask does
        imports = median([python, "-c", "import numpy, onnxruntime, faiss, tokenizers"], work, runs)
        ask = median([python, "-m", "qa.cli", "ask", QUESTION, "--index", str(index)], work, runs)
        empty = median([python, "-m", "qa.cli", "ask", "", "--index", str(index)], work, runs)
        missing = median([python, "-m", "qa.cli", "index", "/nonexistent", "--index", str(work / "x")], work,
                         runs)
        stops = [serve_exit(index, docs) for _ in range(3)]
    print("| what | median seconds |")
    print("| --- | --- |")
    print(f"| `python -c \"import numpy, onnxruntime, faiss, tokenizers\"` | {imports:.2f} |")
    print(f"| `qa ask \"{QUESTION}\"` (seeds index) | {ask:.2f} ({ask / imports:.1f}x the imports) |")
    print(f"| `qa ask \"\"` (refused, exit 2) | {empty:.2f} |")
    print(f"| `qa index /nonexistent` (refused, exit 2) | {missing:.2f} |")
    stop = statistics.median(stops)
    print(f"| `qa serve` exit after SIGTERM, having indexed an upload (3 runs) | {stop:.2f} |")


if __name__ == "__main__":
    main()
