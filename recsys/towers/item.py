"""Step 3 of the flow: item vectors, the weighted concatenation of the modality blocks.

``x_i = concat_m(sqrt(w_m) * v_m(i)) / sqrt(sum of w_m over the modalities item i has)``, so
``x_i . x_j`` is the weighted mean of per-modality cosines when both items have the same
modalities, and every item with at least one modality is a unit vector (angular ANN ready).
"""
from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from recsys.errors import InvalidRequest
from recsys.towers.base import TowerOutput, weighted_concat

logger = logging.getLogger(__name__)

__all__ = ["MODALITIES", "ItemVectors", "combine", "check_weights", "parse_weights", "weighted_scores",
           "rows_dot", "Scan", "prune_scans"]

MODALITIES = ("image", "text", "tabular")


def check_weights(weights: dict[str, float], available: tuple[str, ...] = MODALITIES) -> dict[str, float]:
    """Validate modality weights: known names, finite and non-negative, positive sum.

    Raises:
        InvalidRequest: naming the bad key or value and the valid choices.
    """
    if not isinstance(weights, dict) or not weights:
        raise InvalidRequest(f"weights must name at least one modality of: {', '.join(available)}")
    out = {}
    for name, value in weights.items():
        if name not in available:
            raise InvalidRequest(f"unknown modality {name!r} in weights; choose from: "
                                 f"{', '.join(available)}", choices=list(available))
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise InvalidRequest(f"weight of {name!r} must be a number (got {value!r})") from None
        if not math.isfinite(value) or value < 0:
            raise InvalidRequest(f"weight of {name!r} must be a finite number >= 0 (got {value!r})")
        out[name] = value
    if sum(out.values()) <= 0:
        raise InvalidRequest("weights must have a positive sum")
    return out


def parse_weights(text: str, available: tuple[str, ...] = MODALITIES) -> dict[str, float]:
    """Parse ``"image:0.6,text:0.3,tabular:0.1"`` (the CLI and query-string form).

    Example:
        >>> parse_weights("image:1,text:0")
        {'image': 1.0, 'text': 0.0}
    """
    return dict(_parsed_weights(str(text), tuple(available)))


@lru_cache(maxsize=1024)  # a widget asks a few weightings over and over: parse each once
def _parsed_weights(text: str, available: tuple[str, ...]) -> tuple[tuple[str, float], ...]:
    weights: dict[str, float | str] = {}
    for part in filter(None, (p.strip() for p in str(text).split(","))):
        name, sep, value = part.partition(":")
        if not sep:
            raise InvalidRequest(f"weights must look like image:0.6,text:0.3,tabular:0.1 (got {part!r})")
        if name.strip() in weights:
            raise InvalidRequest(f"modality {name.strip()!r} appears twice in weights")
        weights[name.strip()] = value.strip()
    return tuple(check_weights(weights, available).items())


@dataclass(frozen=True)
class ItemVectors:
    """The item side of a bundle.

    Attributes:
        blocks: per-modality :class:`TowerOutput`, rows in item order.
        weights: the default weights the combined vectors were built with.
        combined: ``(n, sum of dims)`` float32, unit rows where ``mask``.
        mask: ``(n,)`` bool, items with at least one weighted modality.
    """

    blocks: dict[str, TowerOutput]
    weights: dict[str, float]
    combined: np.ndarray
    mask: np.ndarray


def combine(blocks: dict[str, TowerOutput], weights: dict[str, float]) -> ItemVectors:
    """Join modality blocks with ``weights`` (modalities missing from ``blocks`` are ignored).

    Returns:
        ItemVectors: see the module docstring for the formula.
    """
    names = [m for m in blocks if weights.get(m, 0.0) > 0]
    if not names:
        raise InvalidRequest(f"no weighted modality among those built ({', '.join(blocks)})")
    joined = weighted_concat([blocks[m] for m in names], [weights[m] for m in names])
    return ItemVectors(blocks=blocks, weights=dict(weights), combined=joined.vectors, mask=joined.mask)


def weighted_scores(
    blocks: dict[str, TowerOutput], query: dict[str, np.ndarray | None], rows: np.ndarray,
    weights: dict[str, float],
) -> np.ndarray:
    """Exact scores of candidate ``rows`` against a query under per-request ``weights``.

    Equals the dot product of both items' vectors rebuilt with ``weights``:
    ``sum_m w_m cos_m / sqrt(W_q * W_c)``, where ``W`` sums the weights of the modalities an item
    has; for items with the same modalities that is the weighted mean of the cosines.

    Args:
        blocks: per-modality outputs of the catalog.
        query: the query's unit vector per modality (None where it lacks it).
        rows: candidate item rows ``(c,)``.
        weights: modality weights.

    Returns:
        ``(c,)`` float32 scores; 0 for candidates that share no weighted modality with the query.
    """
    rows = np.asarray(rows, dtype=np.int64)
    total = np.zeros(len(rows), dtype=np.float32)
    w_c = np.zeros(len(rows), dtype=np.float32)
    w_q = 0.0
    for name, weight in weights.items():
        if weight <= 0 or name not in blocks:
            continue
        block = blocks[name]
        w_c += weight * block.mask[rows]
        if query.get(name) is not None:
            w_q += weight
            total += weight * rows_dot(block.vectors, rows, query[name])  # 0 where an item lacks it
    return total / np.sqrt(np.maximum(w_q * w_c, 1e-12), dtype=np.float32)


# a matrix up to this size is copied for full products (see Scan); a bigger one is read from its map
SCAN_COPY_BYTES = 256 * 2**20


class Scan:
    """Products of every row of a matrix with a vector: ``scan.dot(v) == matrix @ v``.

    A product with every row reads the whole matrix, and numpy's BLAS reads it faster stored
    column by column (the transpose, row-major) than as the bundle's row-major rows. Measured here
    (one thread, 10,000 x 445 float32; two processes at once, as two serving workers): 543 us from
    the bundle's map; 331 us from an in-memory transposed copy alone, but 547 us with each of two
    processes reading its own copy (together they overflow the 32 MB L3 cache); 243 us with both
    mapping one transposed file. So with ``folder`` the copy is a file there, named after the
    matrix's checksum (``key``) and shared by every process that maps it; without, an in-memory
    copy. A matrix over ``max_bytes`` is read from its own map (a catalog that big is searched
    through Annoy anyway).

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
    unless the file there already holds exactly those numbers (checked once, about 20 ms for
    10,000 x 445: a damaged or foreign file is rewritten, never served)."""
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


def rows_dot(matrix: np.ndarray, rows: np.ndarray, vector: np.ndarray, scan: Scan | None = None) -> np.ndarray:
    """``matrix[rows] @ vector``. For most of the rows one product over the whole (memory-mapped)
    matrix, or its ``scan`` copy when given, is cheaper than gathering the rows into a copy first."""
    if len(rows) * 2 > len(matrix):
        return (scan.dot(vector) if scan is not None else matrix @ vector)[rows]
    return matrix[rows] @ vector
