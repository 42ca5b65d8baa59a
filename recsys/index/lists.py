"""What approximate nearest lists share: the repair that symmetry allows, and their recall.

A list of a row's nearest rows found approximately (:func:`recsys.index.cells.cell_nearest`,
:func:`recsys.index.hnsw.hnsw_nearest`) holds exact scores but may miss a neighbour. A score is
symmetric, so a row that another list holds among its best is that list's row's neighbour too
(:func:`take_reverse`); what is still missed, :func:`list_recall` measures on a sample against
exact search.
"""
from __future__ import annotations

import numpy as np

from recsys.index.exact import nearest

__all__ = ["empty_lists", "take_reverse", "list_recall"]


def empty_lists(n: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` lists of ``k`` with nothing listed yet: rows ``-1``, scores 0."""
    return np.full((n, k), -1, np.int32), np.zeros((n, k), np.float32)


def take_reverse(rows: np.ndarray, scores: np.ndarray, top: int = 10, block: int = 1 << 16) -> None:
    """Adds to each list, in place, the rows that list its row with a score above its ``top``-th
    and that it does not hold: they belong in its first ``top``. Lists run best first, ``-1`` at
    the end where short."""
    n, k = rows.shape
    top = min(top, k)
    floor = np.where(rows[:, top - 1] >= 0, scores[:, top - 1], -np.inf)
    offers = []
    for start in range(0, n, block):
        listed, listed_scores = rows[start:start + block], scores[start:start + block]
        lister = np.broadcast_to(np.arange(start, start + len(listed))[:, None], listed.shape)
        ok = listed >= 0
        ok[ok] = listed_scores[ok] > floor[listed[ok]]
        to, by, score = listed[ok], lister[ok], listed_scores[ok]
        # held anywhere in the list: the two sides' products round apart, so a row held just
        # below the floor can be offered just above it
        held = (rows[to] == by[:, None]).any(1)
        offers.append((to[~held], by[~held], score[~held]))
    to, by, score = (np.concatenate(a) for a in zip(*offers))
    order = np.argsort(to, kind="stable")
    to, by, score = to[order], by[order], score[order]
    taking = np.unique(to)
    for start in range(0, len(taking), block):
        q = taking[start:start + block]
        lo, hi = np.searchsorted(to, [q[0], q[-1] + 1])
        owner = np.concatenate([np.repeat(q, k), to[lo:hi]])
        row = np.concatenate([rows[q].ravel(), by[lo:hi]])
        value = np.concatenate([np.where(rows[q] >= 0, scores[q], -np.inf).ravel(), score[lo:hi]])
        ranked = np.lexsort((-value, owner))
        owner, row, value = owner[ranked], row[ranked], value[ranked]
        rank = np.arange(len(owner)) - np.searchsorted(owner, owner)
        best = rank < k
        owner, rank, row, value = owner[best], rank[best], row[best], value[best]
        rows[owner, rank] = np.where(np.isfinite(value), row, -1)
        scores[owner, rank] = np.where(np.isfinite(value), value, 0.0)


def list_recall(matrix: np.ndarray, mask: np.ndarray, rows: np.ndarray, *, ks: tuple[int, ...] = (10,),
                sample: int = 200, seed: int = 0) -> dict[str, float]:
    """Recall of approximate lists ``rows`` against the exact ones on ``sample`` random ``mask``
    rows: for each ``k`` in ``ks``, the share of the exact top ``k`` that the list's top ``k``
    holds (``{"recall@10": ...}``). A listed row that scores as high as the exact ``k``-th counts
    as one of them: where rows tie (items with the same colour, category and price), the exact
    top ``k`` holds an arbitrary few of them."""
    members = np.flatnonzero(mask)
    if not len(members) or not sample:
        return {}
    chosen = np.random.default_rng(seed).choice(members, min(sample, len(members)), replace=False)
    exact_rows, exact_scores = nearest(matrix, mask, max(ks), only_with=True, queries=chosen)
    out = {}
    for k in ks:
        hits = []
        for q, found, best in zip(chosen, exact_rows[:, :k], exact_scores[:, :k]):
            want = int((found >= 0).sum())
            listed = rows[q, :k][rows[q, :k] >= 0]
            scores = np.asarray(matrix[listed], np.float32) @ np.asarray(matrix[q], np.float32)
            hits.append(min(want, int((scores >= best[want - 1] - 1e-5).sum())) / want if want else 0.0)
        out[f"recall@{k}"] = round(float(np.mean(hits)), 4)
    return out
