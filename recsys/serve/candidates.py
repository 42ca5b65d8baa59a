"""The best ``k`` allowed items for a score: candidates from the ANN indexes re-scored exactly, or
every allowed item scored exactly when that is as cheap."""
from __future__ import annotations

import math
from collections.abc import Callable
from functools import cached_property
from pathlib import Path

import numpy as np

from recsys.bundle import Bundle, ItemIndex
from recsys.index.annoy import OVERFETCH, candidates_for
from recsys.serve.scan import Scan

__all__ = ["Candidates", "annoy_wants", "best", "ANNOY_ITEM_COST"]

# what Annoy spends per item it compares, in exact (numpy) item scorings of the same dimension,
# measured on the API benchmark's shop (docs/performance.md)
ANNOY_ITEM_COST = 3

Search = tuple[ItemIndex, np.ndarray]


class Candidates:
    """The exact-or-ANN choice for one bundle, and the full-product copies it scores with.

    Args:
        bundle: the loaded bundle.
        exact_budget: score every allowed item exactly, skipping Annoy, when allowed items x
            vector dimensions is at most this, or when Annoy would compare about as many items
            for the candidates a query needs; 0 = always Annoy.
        overfetch: candidates gathered per index, as a multiple of ``k`` (at least
            ``MIN_CANDIDATES``); a filter that keeps a share ``s`` of the items divides it by ``s``.
        scan_dir: where the transposed copies of the combined vectors and item factors go
            (:class:`~recsys.serve.scan.Scan`), shared by the processes that serve the bundle;
            ``None`` keeps them in this process's memory.
    """

    def __init__(self, bundle: Bundle, *, exact_budget: int = 4_000_000, overfetch: int = OVERFETCH,
                 scan_dir: Path | None = None):
        self.bundle = bundle
        self.exact_budget = exact_budget
        self.overfetch = overfetch
        self.scan_dir = scan_dir

    @cached_property
    def scans(self) -> dict[str, Scan]:
        """Copies for products with every item: ``"combined"`` (the combined vectors) and, with a
        user tower, ``"factors"`` (the item factors); files in ``scan_dir`` when it is set."""
        files = self.bundle.manifest.get("files", {})

        def scan(matrix: np.ndarray, name: str) -> Scan:
            key = files.get(name, {}).get("sha256")
            return Scan(matrix, folder=self.scan_dir if key else None, key=key)

        scans = {"combined": scan(self.bundle.vectors.combined, "vectors/combined.npy")}
        if self.bundle.collab is not None:
            scans["factors"] = scan(self.bundle.collab.item_factors, "collab/item_factors.npy")
        return scans

    def scan_keys(self) -> set[str]:
        """The names of the shared transposed files this bundle maps (see :attr:`scans`)."""
        return {scan.key for scan in self.scans.values() if scan.key}

    def top(self, k: int, searches: list[Search], allowed: np.ndarray,
            score: Callable[[np.ndarray], np.ndarray], dim: int) -> tuple[np.ndarray, np.ndarray]:
        """Best ``k`` allowed rows by ``score``: candidates from the ``(index, query vector)``
        searches re-scored exactly, or an exact search over the allowed set when that is cheap
        (``exact_budget``), when Annoy would compare about as many items, or when the candidates
        fall short of ``k``. ``dim``: the dimensions ``score`` reads per item."""
        wants = annoy_wants(k, int(allowed.sum()), len(allowed), [index for index, _ in searches], dim,
                            exact_budget=self.exact_budget, overfetch=self.overfetch)
        if not wants:
            rows = np.flatnonzero(allowed)
        else:
            found = [index.query(vector, want)[0] for (index, vector), want in zip(searches, wants)]
            rows = np.unique(np.concatenate(found))
            rows = rows[allowed[rows]]
            if len(rows) < k:  # the indexes came up short: search the filtered set exactly
                rows = np.flatnonzero(allowed)
        return best(k, rows, np.asarray(score(rows), dtype=np.float32))


def annoy_wants(k: int, n_allowed: int, n_items: int, indexes: list[ItemIndex], dim: int, *,
                exact_budget: int, overfetch: int) -> list[int]:
    """How many candidates to ask each index for to find the best ``k`` of ``n_allowed`` items
    (of ``n_items``), or ``[]`` when scoring every allowed item exactly (``dim`` dimensions) is
    cheaper: few allowed items, items x dimensions within ``exact_budget``, or Annoy comparing
    about as many items itself (a long list, a narrow filter). ``exact_budget`` 0: always Annoy.
    """
    fetch = candidates_for(k, overfetch)
    if not indexes or n_allowed <= fetch or n_allowed * dim <= exact_budget:
        return []
    share = n_allowed / n_items
    wants = [min(len(index), math.ceil(fetch / share)) for index in indexes]
    annoy = sum(index.inspects(want) * index.dim for index, want in zip(indexes, wants))
    if exact_budget and n_allowed * dim <= ANNOY_ITEM_COST * annoy:
        return []
    return wants


def best(k: int, rows: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` best rows by score, best first; ties keep the order of ``rows``."""
    if len(rows) > max(k, 256):  # (sorting a few hundred outright is cheaper)
        cut = np.partition(scores, len(scores) - k)[len(scores) - k]  # the k-th best score
        keep = np.flatnonzero(scores >= cut)  # every tie with it too, in order
        rows, scores = rows[keep], scores[keep]
    order = np.argsort(-scores, kind="stable")[:k]
    return rows[order], scores[order]
