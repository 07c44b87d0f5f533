"""Helpers for the web tests: schema checks against /openapi.json and a real server process."""

from __future__ import annotations

import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import jsonschema

from qa.index.build import build_index
from qa.index.embedding import Embedder

ROOT = Path(__file__).resolve().parents[2]
SEEDS = ROOT / "seeds"
SEED_FILE = SEEDS / "000_fdd6fe5acc3e6b5b.txt"
ARTIFACTS = ROOT / "test-artifacts"

SECURITY_HEADERS = ("Content-Security-Policy", "X-Content-Type-Options", "Referrer-Policy", "X-Frame-Options")


def make_index(sources: list[Path], index_dir: Path) -> Path:
    """Index the sources with the real model, as ``qa index`` does."""
    build_index(sources, index_dir, Embedder(), report=lambda _: None)
    return index_dir


# ---- checking responses against /openapi.json ----


def json_schema(schema: object) -> object:
    """OpenAPI 3.0's ``nullable: true`` as JSON Schema says it: also null."""
    if isinstance(schema, list):
        return [json_schema(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: json_schema(v) for k, v in schema.items() if k != "nullable"}
    return {"anyOf": [out, {"type": "null"}]} if schema.get("nullable") else out


def check_schema(spec: dict, name: str, instance: object) -> None:
    """Validate instance against components/schemas/NAME of the OpenAPI document."""
    schema = {"$ref": f"#/components/schemas/{name}", "components": json_schema(spec["components"])}
    jsonschema.Draft4Validator(schema).validate(instance)


def check_response(spec: dict, path: str, method: str, status: int, content_type: str, body: object) -> None:
    """The status is documented for this operation, and the JSON body matches its schema."""
    operation = spec["paths"][path][method.lower()]
    documented = operation["responses"]
    assert str(status) in documented, f"{method} {path} -> {status} is not in the OpenAPI document"
    content = documented[str(status)]["content"]
    media = content_type.split(";")[0].strip()
    assert media in content, f"{method} {path} -> {status} {media} is not documented"
    if media == "application/json":
        schema = dict(content[media]["schema"], components=json_schema(spec["components"]))
        jsonschema.Draft4Validator(schema).validate(body)


def assert_error(status: int, body: object, expected_status: int, code: str | None = None) -> None:
    assert status == expected_status, body
    assert isinstance(body, dict) and set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message"}, body
    assert body["error"]["message"], body
    if code:
        assert body["error"]["code"] == code, body


# ---- a real server in a subprocess ----


@dataclass
class Server:
    """``qa serve`` running in a subprocess on a port the OS chose."""

    proc: subprocess.Popen
    url: str
    log: Path
    lines: queue.Queue = field(default_factory=queue.Queue)
    token: str | None = None  # sent as a bearer token by get() and post_json()

    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def get(self, path: str, headers: dict[str, str] | None = None,
            **kw) -> tuple[int, dict[str, str], bytes]:
        return http(self.url + path, headers={**self.auth(), **(headers or {})}, **kw)

    def post_json(self, path: str, payload: object, **kw) -> tuple[int, dict[str, str], bytes]:
        return http(self.url + path, method="POST", data=json.dumps(payload).encode(),
                    headers={"Content-Type": "application/json", **self.auth()}, **kw)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def http(url: str, method: str = "GET", data: bytes | None = None,
         headers: dict[str, str] | None = None, timeout: float = 60) -> tuple[int, dict[str, str], bytes]:
    """One request with urllib; error statuses are returned, not raised."""
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, dict(exc.headers), exc.read()


def start_server(index: Path, log: Path, threads: int = 4, timeout: float = 180,
                 rate_limit: str | None = "off", token: str | None = None,
                 extra: tuple[str, ...] = ()) -> Server:
    """Start ``python -m qa.cli serve`` on 127.0.0.1, port 0; wait until /api/health answers.

    The rate limit is off unless asked for (tests fire requests faster than any person);
    None leaves ``--rate-limit`` out, so the server's own default applies.
    """
    cmd = [sys.executable, "-m", "qa.cli", "serve", "--index", str(index), "--host", "127.0.0.1",
           "--port", "0", "--threads", str(threads), *extra]
    if rate_limit is not None:
        cmd += ["--rate-limit", rate_limit]
    if token is not None:
        cmd += ["--token", token]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env.pop("QA_TOKEN", None)
    with open(log, "wb") as err:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=err,
                                stdin=subprocess.DEVNULL)
    lines: queue.Queue = queue.Queue()

    def pump() -> None:
        for raw in proc.stdout:  # type: ignore[union-attr]
            lines.put(raw.decode("utf-8", "replace").rstrip("\n"))
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    deadline = time.monotonic() + timeout
    url = None
    while url is None:
        try:
            line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
        except queue.Empty:
            line = None
        if line is None or time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            raise RuntimeError(f"server did not start: {log.read_text(errors='replace')[-2000:]}")
        if line.startswith("Serving on http://"):
            url = line.split(" ", 2)[2]
    server = Server(proc, url, log, lines, token)
    while True:
        try:
            if server.get("/api/health", timeout=5)[0] == 200:
                return server
        except OSError:
            pass
        if time.monotonic() > deadline or proc.poll() is not None:
            server.stop()
            raise RuntimeError(f"server never became healthy: {log.read_text(errors='replace')[-2000:]}")
        time.sleep(0.2)


# ---- raw HTTP, for what urllib would not send ----


def raw_exchange(server: Server, data: bytes, read_timeout: float = 30) -> tuple[int, dict[str, str], bytes]:
    """Send bytes as they are on one connection; parse the one response that comes back."""
    url = urllib.parse.urlsplit(server.url)
    with socket.create_connection((url.hostname, url.port), timeout=read_timeout) as sock:
        sock.sendall(data)
        received = b""
        while b"\r\n\r\n" not in received:
            chunk = sock.recv(65536)
            if not chunk:
                break
            received += chunk
        head, _, body = received.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        while len(body) < length:
            chunk = sock.recv(65536)
            if not chunk:
                break
            body += chunk
    return status, headers, body


def request_head(server: Server, method: str, path: str, headers: dict[str, str]) -> bytes:
    host = urllib.parse.urlsplit(server.url).netloc
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def expect_raw_json_error(status: int, headers: dict[str, str], body: bytes, expected: int,
                          code: str) -> None:
    assert status == expected, body
    assert headers["content-type"] == "application/json"
    assert_error(status, json.loads(body), expected, code)
    for name in SECURITY_HEADERS:
        assert name.lower() in headers, name
