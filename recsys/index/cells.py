"""Nearest lists of a large catalog from k-means cells, scored exactly.

The exact lists (:func:`recsys.index.exact.nearest`) score every row against every other, which
grows with ``n ** 2``. Here the rows are grouped into cells by spherical k-means, and the rows of
one cell are scored exactly, in float32, against the rows of the ``probe`` cells that they vote
for (each row votes for the ``votes`` centres nearest to it; its own cell always counts). A cell
then costs one matrix product, the fastest thing a CPU does, and the whole build grows with
``n * probe * (n / cells)`` instead of ``n ** 2``.

A row far from its cell's centre is where k-means fails: its neighbours sit in a cell that its own
cell's majority does not vote for. Two cheap repairs, which need no more products, cover it:

* a row is also a candidate in every other cell it votes for, so the cells it nearly joined find it;
* a list then takes in the rows that list it among their best (:func:`_take_reverse`): a score is
  symmetric, so what the other cell found is this row's neighbour too.

Only a neighbour that neither side reached can be missed; :func:`list_recall` measures how often.
"""
from __future__ import annotations

import warnings

import numpy as np
import torch
from tqdm.auto import tqdm

from recsys.index.exact import nearest

__all__ = ["cell_nearest", "list_recall"]

# scores held at once while a cell's rows meet their candidates: float32 values
_BLOCK_VALUES = 1 << 25
# k-means learns its centres from a sample of at most this many rows per cell
_TRAIN_PER_CELL = 16


def cell_nearest(matrix: np.ndarray, mask: np.ndarray, k: int, *, cell_items: int = 100,
                 max_cells: int = 16384, probe: int = 160, votes: int = 8, seed: int = 0,
                 desc: str = "nearest items (cells)",
                 show_progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Each ``mask`` row's ``k`` best other ``mask`` rows by dot product, as
    :func:`recsys.index.exact.nearest` with ``only_with`` gives them, from the rows of the
    ``probe`` k-means cells its cell probes.

    Args:
        cell_items: rows per cell on average (up to ``max_cells`` cells, which bounds k-means).
        probe: cells whose rows a cell's rows are compared with: more is better recall, slower.
        votes: centres nearest to each row that it votes for (and whose cells it is a candidate in).

    Returns:
        ``(rows, scores)``, each ``(n, k)``, best first, ``-1`` where fewer than ``k`` qualify.
    """
    members = np.flatnonzero(mask)
    n = len(matrix)
    rows = np.full((n, k), -1, np.int32)
    scores = np.zeros((n, k), np.float32)
    if len(members) < 2 or k == 0:
        return rows, scores
    # every row present, as is usual, needs no copy: the matrix itself is read, never written,
    # so a read-only (memory-mapped) one is fine
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        x = torch.from_numpy(np.ascontiguousarray(matrix if len(members) == n else matrix[members],
                                                  dtype=np.float32))
    n_cells = int(np.clip(len(members) // cell_items, 1, max_cells))
    votes, probe = min(votes, n_cells), min(probe, n_cells)
    want = min(k, len(members) - 1)
    with tqdm(total=2 * len(members), desc=desc, unit="row", disable=not show_progress) as bar:
        centres = _centres(x, n_cells, seed)
        nearest_cells = np.empty((len(members), votes), np.int64)
        step = max(1, _BLOCK_VALUES // n_cells)
        for start in range(0, len(members), step):
            nearest_cells[start:start + step] = torch.topk(x[start:start + step] @ centres.T, votes).indices.numpy()
            bar.update(min(step, len(members) - start))
        own = nearest_cells[:, 0]
        order = np.argsort(own, kind="stable")
        bounds = np.searchsorted(own[order], np.arange(n_cells + 1))
        # the rows that vote for each cell other than their own
        visits = nearest_cells[:, 1:].ravel()
        by_cell = np.argsort(visits, kind="stable")
        visitor_rows = by_cell // max(1, votes - 1)
        visitor_bounds = np.searchsorted(visits[by_cell], np.arange(n_cells + 1))
        for c in np.flatnonzero(np.diff(bounds)):
            queries = order[bounds[c]:bounds[c + 1]]
            tally = np.bincount(nearest_cells[queries].ravel(), minlength=n_cells)
            tally[c] = len(queries) * votes + 1  # its own cell first
            probed = np.argsort(-tally, kind="stable")[:probe]
            visitors = visitor_rows[visitor_bounds[c]:visitor_bounds[c + 1]]
            candidates = np.concatenate([order[bounds[p]:bounds[p + 1]] for p in probed]
                                        + [visitors[~np.isin(own[visitors], probed)]])
            cand = x[candidates]
            step = max(1, _BLOCK_VALUES // len(candidates))
            for start in range(0, len(queries), step):
                part = queries[start:start + step]
                s = x[part] @ cand.T
                # the cell's own rows open the candidates, in query order: leave each row itself out
                s[torch.arange(len(part)), torch.arange(start, start + len(part))] = -torch.inf
                width = min(want, len(candidates) - 1)
                top = torch.topk(s, width)
                values, found = top.values.numpy(), candidates[top.indices.numpy()]
                ok = np.isfinite(values)
                rows[members[part], :width] = np.where(ok, members[found], -1)
                scores[members[part], :width] = np.where(ok, values, 0.0)
            bar.update(len(queries))
    _take_reverse(rows, scores)
    return rows, scores


def _take_reverse(rows: np.ndarray, scores: np.ndarray, top: int = 10, block: int = 1 << 16) -> None:
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


def _centres(x: torch.Tensor, n_cells: int, seed: int, iterations: int = 5) -> torch.Tensor:
    """Spherical k-means centres (unit rows) of ``x``'s rows, by faiss on a sample of them."""
    import faiss

    kmeans = faiss.Kmeans(x.shape[1], n_cells, niter=iterations, spherical=True, seed=seed,
                          max_points_per_centroid=_TRAIN_PER_CELL, min_points_per_centroid=1)
    # faiss samples the rows itself: a fancy-indexed copy of a million rows would cost gigabytes
    kmeans.train(x.numpy())
    return torch.from_numpy(kmeans.centroids)


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
