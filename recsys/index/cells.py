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
* a list then takes in the rows that list it among their best
  (:func:`~recsys.index.lists.take_reverse`): a score is symmetric, so what the other cell found
  is this row's neighbour too.

Only a neighbour that neither side reached can be missed; :func:`~recsys.index.lists.list_recall`
measures how often.
"""
from __future__ import annotations

import numpy as np
import torch
from tqdm.auto import tqdm

from recsys.index.exact import tensor_view
from recsys.index.lists import empty_lists, take_reverse
from recsys.towers.inference import resolve_precision

__all__ = ["cell_nearest"]

# scores held at once while a cell's rows meet their candidates: float32 values
_BLOCK_VALUES = 1 << 25
# k-means learns its centres from a sample of at most this many rows per cell
_TRAIN_PER_CELL = 16


def cell_nearest(matrix: np.ndarray, mask: np.ndarray, k: int, *, cell_items: int = 100,
                 max_cells: int = 16384, probe: int = 160, votes: int = 8, seed: int = 0,
                 precision: str = "auto", desc: str = "nearest items (cells)",
                 show_progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Each ``mask`` row's ``k`` best other ``mask`` rows by dot product, as
    :func:`recsys.index.exact.nearest` with ``only_with`` gives them, from the rows of the
    ``probe`` k-means cells its cell probes.

    Args:
        cell_items: rows per cell on average (up to ``max_cells`` cells, which bounds k-means).
        probe: cells whose rows a cell's rows are compared with: more is better recall, slower.
        votes: centres nearest to each row that it votes for (and whose cells it is a candidate in).
        precision: what the votes are computed in: ``"bf16"`` is several times faster where the
            CPU has it natively, and a vote only picks cells, so it need not be exact; ``"auto"``
            picks it there. The listed scores are float32 either way.

    Returns:
        ``(rows, scores)``, each ``(n, k)``, best first, ``-1`` where fewer than ``k`` qualify.
    """
    members = np.flatnonzero(mask)
    n = len(matrix)
    rows, scores = empty_lists(n, k)
    if len(members) < 2 or k == 0:
        return rows, scores
    # every row present, as is usual, needs no copy: the matrix itself is read, never written
    x = tensor_view(np.asarray(matrix if len(members) == n else matrix[members], dtype=np.float32))
    n_cells = int(np.clip(len(members) // cell_items, 1, max_cells))
    votes, probe = min(votes, n_cells), min(probe, n_cells)
    want = min(k, len(members) - 1)
    with tqdm(total=2 * len(members), desc=desc, unit="row", disable=not show_progress) as bar:
        dtype = torch.bfloat16 if resolve_precision(precision) == "bf16" else torch.float32
        centres = _centres(x, n_cells, seed).to(dtype)
        nearest_cells = np.empty((len(members), votes), np.int64)
        step = max(1, _BLOCK_VALUES // n_cells)
        for start in range(0, len(members), step):
            votes_of = x[start:start + step].to(dtype) @ centres.T
            nearest_cells[start:start + step] = torch.topk(votes_of, votes).indices.numpy()
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
            # index_select copies rows several times faster than indexing with an array
            cand = torch.index_select(x, 0, torch.from_numpy(candidates))
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
    take_reverse(rows, scores)
    return rows, scores


def _centres(x: torch.Tensor, n_cells: int, seed: int, iterations: int = 5) -> torch.Tensor:
    """Spherical k-means centres (unit rows) of ``x``'s rows, by faiss on a sample of them."""
    import faiss

    kmeans = faiss.Kmeans(x.shape[1], n_cells, niter=iterations, spherical=True, seed=seed,
                          max_points_per_centroid=_TRAIN_PER_CELL, min_points_per_centroid=1)
    # faiss samples the rows itself: a fancy-indexed copy of a million rows would cost gigabytes
    kmeans.train(x.numpy())
    return torch.from_numpy(kmeans.centroids)
