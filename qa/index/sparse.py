"""Compressed sparse matrices as plain numpy arrays, in scipy's ``.npz`` layout.

The index keeps two kinds: each segment's term counts (chunks x words, by column) and
which words each sentence holds (sentences x words, by row). Answering reads only their
arrays, so they are loaded and combined here without scipy, whose import took 0.15 s of
every ``qa ask``. Building them still uses scipy (``from_scipy``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass
class Compressed:
    """A CSR ("csr": ``indptr`` over rows) or CSC ("csc": over columns) matrix."""

    kind: str
    data: np.ndarray
    indices: np.ndarray
    indptr: np.ndarray
    shape: tuple[int, int]

    @classmethod
    def from_scipy(cls, matrix) -> Compressed:
        return cls(matrix.format, matrix.data, matrix.indices, matrix.indptr, tuple(matrix.shape))

    @classmethod
    def empty_rows(cls, columns: int) -> Compressed:
        return cls("csr", np.zeros(0, np.float32), np.zeros(0, np.int32), np.zeros(1, np.int64), (0, columns))

    @classmethod
    def load(cls, path: Path, kind: str) -> Compressed:
        """Read a matrix saved by ``save`` (or scipy's ``save_npz``) of this kind."""
        with np.load(path) as z:
            found = z["format"].item()
            found = found.decode("ascii") if isinstance(found, bytes) else str(found)
            if found != kind:
                raise ValueError(f"{path.name} holds a {found} matrix, not {kind}")
            return cls(kind, z["data"], z["indices"], z["indptr"], tuple(int(n) for n in z["shape"]))

    def save(self, path: Path) -> None:
        np.savez_compressed(path, data=self.data, indices=self.indices, indptr=self.indptr,
                            format=np.array(self.kind.encode("ascii")), shape=np.array(self.shape))

    def lines(self) -> np.ndarray:
        """For each stored value, its row (CSR) or column (CSC)."""
        return np.repeat(np.arange(len(self.indptr) - 1), np.diff(self.indptr))

    def gather(self, lines: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The stored values of these rows (CSR) or columns (CSC), in order: for each, its
        position in ``lines``, and its place in ``indices`` and ``data``."""
        starts, ends = self.indptr[lines], self.indptr[np.asarray(lines) + 1]
        lengths = ends - starts
        owner = np.repeat(np.arange(len(lengths)), lengths)
        at = np.arange(int(lengths.sum())) + np.repeat(starts - (np.cumsum(lengths) - lengths), lengths)
        return owner, at

    def rows(self, keep: np.ndarray) -> Compressed:
        """The CSR matrix of the rows where ``keep`` is true."""
        lines = np.flatnonzero(keep)
        _, at = self.gather(lines)
        indptr = np.concatenate([[0], np.cumsum(np.diff(self.indptr)[lines])]).astype(np.int64)
        return Compressed("csr", self.data[at], self.indices[at], indptr, (len(lines), self.shape[1]))

    def renumbered(self, to: np.ndarray, columns: int) -> Compressed:
        """The CSR matrix with its column ids mapped through ``to``, ``columns`` wide."""
        indices = to[self.indices] if len(to) else self.indices
        return Compressed("csr", self.data, indices, self.indptr, (self.shape[0], max(columns, 1)))


def stack_rows(parts: list[Compressed], columns: int) -> Compressed:
    """CSR matrices of one width, one under the other."""
    if not parts:
        return Compressed.empty_rows(max(columns, 1))
    offsets = np.cumsum([0] + [int(p.indptr[-1]) for p in parts[:-1]])
    indptr = np.concatenate([[0]] + [p.indptr[1:] + o for p, o in zip(parts, offsets)]).astype(np.int64)
    data, indices = np.concatenate([p.data for p in parts]), np.concatenate([p.indices for p in parts])
    return Compressed("csr", data, indices, indptr, (sum(p.shape[0] for p in parts), max(columns, 1)))
