"""The manifest: which segments make the index, with what model, format and checksums.

It is the one file a reader of the index trusts first: its own checksum, the format
and the model are checked before anything else is read, and every segment file is
checked against the SHA-256 it records, so damage or a mismatch is refused with the
command that rebuilds the index.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import stat
from pathlib import Path
from typing import TypedDict

from ..errors import IndexInvalid, IndexMissing

# 4: BM25 words without accents, and initials with full stops ("U.S.") one word;
# 5: PDF text from PDFium, with every character's box on its page (boxes.npy)
FORMAT_VERSION = 5
CURRENT = "current"


class FileDigest(TypedDict):
    sha256: str
    bytes: int


class SegmentEntry(TypedDict, total=False):
    """One live segment: its folder, documents, size, search index and files."""

    name: str
    sources: list[str]
    chunks: int
    dense_index: dict  # type, exact, nprobe (approximate indexes)
    deleted: list[str]  # documents later segments replaced or deleted (tombstones)
    files: dict[str, FileDigest]


class DocumentInfo(TypedDict, total=False):
    path: str
    bytes: int
    indexed_at: str


class Manifest(TypedDict, total=False):
    """What ``manifest.json`` holds."""

    format_version: int
    model: str
    dimension: int
    chunking: dict
    sources: list[str]  # the folders and files indexed
    segments: list[SegmentEntry]
    document_info: dict[str, DocumentInfo]
    checksum: str


def rebuild_hint(index_dir: Path) -> str:
    return f"rebuild it with: qa index SOURCES --index {index_dir} --rebuild"


def file_digest(path: Path) -> FileDigest:
    """SHA-256 and size, read in blocks; a FIFO or device is refused, never waited on."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(errno.EINVAL, "not a regular file", str(path))
    h = hashlib.sha256()
    size = 0
    with open(fd, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
            size += len(block)
    return {"sha256": h.hexdigest(), "bytes": size}


def read_manifest(index_dir: Path) -> Manifest:
    """The manifest of the current build, checked for format."""
    path = index_dir / CURRENT / "manifest.json"
    if not path.is_file():
        raise IndexMissing(f"no index at {index_dir}; build one with: qa index SOURCES --index {index_dir}")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise IndexInvalid(f"index manifest {path} is damaged ({exc}); {rebuild_hint(index_dir)}") from None
    if not isinstance(manifest, dict) or manifest.get("format_version") != FORMAT_VERSION:
        found = manifest.get("format_version") if isinstance(manifest, dict) else None
        raise IndexInvalid(
            f"index manifest {path} has format {found!r}, this version reads format "
            f"{FORMAT_VERSION}; {rebuild_hint(index_dir)}"
        )
    if manifest.get("checksum") != manifest_checksum(manifest):
        raise IndexInvalid(f"index manifest {path} is damaged (checksum mismatch); {rebuild_hint(index_dir)}")
    return manifest


def manifest_checksum(manifest: Manifest) -> str:
    """SHA-256 of the manifest's content without its own checksum field."""
    body = {k: v for k, v in manifest.items() if k != "checksum"}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode("utf-8")).hexdigest()


def verify_files(index_dir: Path, manifest: Manifest) -> Path:
    """Every file of every segment the manifest names is present with its recorded
    checksum; the manifest's folder, checked."""
    folder = (index_dir / CURRENT).resolve()
    for entry in manifest.get("segments", []):
        verify_segment(index_dir, entry)
    return folder


def verify_segment(index_dir: Path, entry: SegmentEntry) -> None:
    """Every file of this segment is present with its recorded checksum, or IndexInvalid."""
    for name, expected in entry.get("files", {}).items():
        path = index_dir / entry["name"] / name
        try:
            intact = path.is_file() and file_digest(path) == expected
        except OSError:
            intact = False
        if not intact:
            raise IndexInvalid(f"index file {path} is missing or damaged; {rebuild_hint(index_dir)}")


def file_sha256(path: Path) -> str:
    """Content hash of a source file, read in blocks (never the whole file at once)."""
    return file_digest(path)["sha256"]
