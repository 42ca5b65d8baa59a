"""Small sparse-matrix helpers the ranking stage shares: the best entries of each row, places in
a row, the largest value per cell, and the values at (row, column) pairs."""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from recsys.index.exact import top_k_rows

__all__ = ["top_per_row", "ranks_in_rows", "max_matrix", "pair_values"]


def top_per_row(scores: np.ndarray | sp.csr_matrix, n: int) -> sp.csr_matrix:
    """The ``n`` largest entries of each row as a sparse matrix (the others dropped)."""
    if sp.issparse(scores):
        m = sp.csr_matrix(scores)
        m.eliminate_zeros()
        keep = ranks_in_rows(m).data <= n  # the same pattern as m
        rows = np.repeat(np.arange(m.shape[0]), np.diff(m.indptr))
        return sp.csr_matrix((m.data[keep], (rows[keep], m.indices[keep])), shape=m.shape)
    cols, values = top_k_rows(np.asarray(scores, np.float32), n)
    keep = (cols >= 0) & np.isfinite(values) & (values != 0)
    rows = np.repeat(np.arange(len(cols)), cols.shape[1]).reshape(cols.shape)
    return sp.csr_matrix((values[keep], (rows[keep], cols[keep])), shape=scores.shape)


def ranks_in_rows(m: sp.csr_matrix) -> sp.csr_matrix:
    """The same pattern holding each entry's place in its row, 1 = the largest."""
    rows = np.repeat(np.arange(m.shape[0]), np.diff(m.indptr))
    order = np.lexsort((-m.data, rows))
    rank = np.empty(len(order), np.float32)
    rank[order] = np.arange(len(order)) - m.indptr[rows[order]] + 1
    return sp.csr_matrix((rank, m.indices.copy(), m.indptr.copy()), shape=m.shape)


def max_matrix(rows: np.ndarray, cols: np.ndarray, values: np.ndarray, shape: tuple[int, int]) -> sp.csr_matrix:
    """A sparse matrix holding the largest of the values given for each (row, column)."""
    if not len(rows):
        return sp.csr_matrix(shape, dtype=np.float32)
    key = rows.astype(np.int64) * shape[1] + cols
    order = np.lexsort((-values, key))
    first = np.ones(len(order), bool)
    first[1:] = key[order][1:] != key[order][:-1]
    pick = order[first]
    return sp.csr_matrix((values[pick].astype(np.float32), (rows[pick], cols[pick])), shape=shape)


def pair_values(m: sp.csr_matrix, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """``m[rows, cols]`` as a flat float32 array (0 where nothing is stored)."""
    if not len(rows):
        return np.zeros(0, np.float32)
    return np.asarray(m[rows, cols], dtype=np.float32).ravel()
