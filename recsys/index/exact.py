"""Exact nearest rows by dot product, in blocks of rows so that no ``n x n`` matrix is held: the
precomputed lists of a bundle and the neighbourhoods curation reads."""
from __future__ import annotations

import warnings
from collections.abc import Iterator

import numpy as np
import torch
from tqdm.auto import tqdm

__all__ = ["nearest", "top_k_rows", "row_blocks", "tensor_view"]

# scores of one block of queries against every item: at most this many float32 values at once
_BLOCK_VALUES = 1 << 24


def tensor_view(array: np.ndarray) -> torch.Tensor:
    """``array`` as a contiguous torch tensor, sharing its memory where it already is one. The
    tensor is only read, so a read-only (memory-mapped) array is fine: torch's warning about
    those is silenced."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return torch.from_numpy(np.ascontiguousarray(array))


def top_k_rows(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Row-wise best ``k`` columns of ``scores`` (``-inf`` marks excluded ones), best first, ties
    by column order; excluded columns come back as ``-1``."""
    b, n = scores.shape
    k_eff = min(k, n)
    if k_eff < n:
        # torch's top-k selects several times faster than argpartition over wide rows
        cols = torch.topk(tensor_view(scores), k_eff, dim=1, sorted=False).indices.numpy()
    else:
        cols = np.tile(np.arange(n), (b, 1))
    cols.sort(axis=1)
    picked = np.take_along_axis(scores, cols, axis=1)
    order = np.argsort(-picked, axis=1, kind="stable")
    cols = np.take_along_axis(cols, order, axis=1)
    picked = np.take_along_axis(picked, order, axis=1)
    rows = np.full((b, k), -1, np.int32)
    out = np.zeros((b, k), np.float32)
    valid = np.isfinite(picked)
    rows[:, :k_eff] = np.where(valid, cols, -1)
    out[:, :k_eff] = np.where(valid, picked, 0.0)
    return rows, out


def row_blocks(n_queries: int, n_items: int, desc: str, show_progress: bool, *,
               values: int = _BLOCK_VALUES) -> Iterator[slice]:
    """Consecutive query rows, as many at once as keep ``n_items`` scores each within ``values``."""
    size = max(1, min(4096, values // max(1, n_items)))
    with tqdm(total=n_queries, desc=desc, unit="row", disable=not show_progress) as bar:
        for start in range(0, n_queries, size):
            stop = min(n_queries, start + size)
            yield slice(start, stop)
            bar.update(stop - start)


def nearest(matrix: np.ndarray, mask: np.ndarray, k: int, *, desc: str = "nearest items",
            show_progress: bool = False, only_with: bool = False,
            queries: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Each ``mask`` row's ``k`` best other rows by dot product (``only_with``: among the ``mask``
    rows; otherwise rows without a vector may be listed, with score 0, as the service scores
    them): ``(rows, scores)``, each ``(n, k)``, best first, ``-1`` where fewer than ``k`` qualify.
    ``queries``: only these rows' neighbours, ``(len(queries), k)`` each."""
    matrix = np.asarray(matrix, dtype=np.float32)
    n = len(matrix)
    queries = np.arange(n) if queries is None else np.asarray(queries, dtype=np.int64)
    rows = np.full((len(queries), k), -1, np.int32)
    scores = np.zeros((len(queries), k), np.float32)
    for block in row_blocks(len(queries), n, desc, show_progress):
        own = queries[block]
        s = matrix[own] @ matrix.T
        s[np.arange(len(own)), own] = -np.inf
        s[~mask[own]] = -np.inf
        if only_with:
            s[:, ~mask] = -np.inf
        rows[block], scores[block] = top_k_rows(s, k)
    return rows, scores
