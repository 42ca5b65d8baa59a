"""Products of every item with one vector, read from a transposed copy shared by the workers."""
from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import numpy as np

__all__ = ["Scan", "prune_scans"]

logger = logging.getLogger(__name__)

# a matrix up to this size is copied for full products (see Scan); a bigger one is read from its map
SCAN_COPY_BYTES = 256 * 2**20


class Scan:
    """Products of every row of a matrix with a vector: ``scan.dot(v) == matrix @ v``.

    A product with every row reads the whole matrix, and BLAS reads it faster stored column by
    column (the transpose, row-major) than as the bundle's row-major rows. Two serving workers that
    each keep their own copy overflow the CPU cache together, so with ``folder`` the copy is a file
    there, named after the matrix's checksum (``key``) and mapped by every process that serves
    it; without, an in-memory copy. A matrix over ``max_bytes`` is read from its own map (a
    catalog that big is searched through the ANN index anyway). ``benchmarks/bench_api.py``
    measures the effect.

    Args:
        matrix: ``(rows, dim)``.
        folder: where the shared transposed files live; ``None`` for an in-memory copy.
        key: names the file: the matrix's checksum (a file of that name holds the same numbers).
        max_bytes: the largest matrix copied.
    """

    def __init__(self, matrix: np.ndarray, *, folder: Path | None = None, key: str | None = None,
                 max_bytes: int = SCAN_COPY_BYTES):
        self.matrix = matrix
        self.columns: np.ndarray | None = None
        self.key = None  # set when the copy is a shared file
        if matrix.nbytes > max_bytes:
            return
        if folder is not None and key is not None:
            try:
                self.columns = _shared_transpose(matrix, Path(folder) / f"{key}.columns.npy")
                self.key = key
                return
            except OSError as exc:  # a read-only or full disk: this process keeps its own copy
                logger.warning("no shared copy of a %s matrix in %s (%s): using an in-memory one",
                               matrix.shape, folder, exc)
        self.columns = np.ascontiguousarray(matrix.T)

    def dot(self, vector: np.ndarray) -> np.ndarray:
        # the vector in the matrix's type: a float64 one would make numpy convert the whole matrix
        vector = np.asarray(vector, dtype=self.matrix.dtype)
        return vector @ self.columns if self.columns is not None else self.matrix @ vector


def _shared_transpose(matrix: np.ndarray, path: Path) -> np.ndarray:
    """``matrix.T`` mapped from ``path``, written there first (whole, then renamed into place)
    unless the file there already holds exactly those numbers (checked once per process: a damaged
    or foreign file is rewritten, never served)."""
    try:
        mapped = np.load(path, mmap_mode="r", allow_pickle=False)
        if mapped.dtype == matrix.dtype and np.array_equal(mapped, matrix.T):
            return np.asarray(mapped)
    except (OSError, ValueError):
        pass  # absent or unreadable: (re)written below
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:  # a file object: np.save would append .npy to a name
            np.save(f, np.ascontiguousarray(matrix.T), allow_pickle=False)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return np.asarray(np.load(path, mmap_mode="r", allow_pickle=False))


def prune_scans(folder: Path, keep: set[str], older_than: float = 3600.0) -> None:
    """Delete the transposed files in ``folder`` (see :class:`Scan`) other than the ``keep`` keys'
    that nobody wrote for ``older_than`` seconds (a process still mapping one keeps its pages)."""
    folder = Path(folder)
    if not folder.is_dir():
        return
    now = time.time()
    for path in folder.glob("*.columns.npy"):
        try:
            if path.name.split(".")[0] not in keep and now - path.stat().st_mtime > older_than:
                path.unlink()
        except OSError:
            pass  # removed by a sibling meanwhile
