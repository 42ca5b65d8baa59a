"""Annoy indexes over unit item vectors: build, query, save, load; scores are cosines."""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from annoy import AnnoyIndex

from recsys.errors import BundleError
from recsys.index.exact import nearest

__all__ = ["AnnIndex", "candidates_for", "measure_recall", "tune_search_effort", "MIN_CANDIDATES", "OVERFETCH"]

logger = logging.getLogger(__name__)

# queries gather OVERFETCH candidates per result wanted, at least MIN_CANDIDATES, before an exact
# re-rank (recsys.serve.candidates)
MIN_CANDIDATES, OVERFETCH = 50, 10


def candidates_for(k: int, overfetch: int = OVERFETCH) -> int:
    """How many candidates the service gathers for ``k`` results before re-scoring them exactly."""
    return max(MIN_CANDIDATES, overfetch * k)


class AnnIndex:
    """An angular Annoy index over a subset of item rows.

    Annoy only sees dense ids ``0..m-1``; ``rows[j]`` is the item row of Annoy id ``j``, so items
    without the modality are simply absent rather than zero vectors.

    Args:
        annoy: a built or loaded ``AnnoyIndex``.
        rows: ``(m,)`` int64 item rows.
        search_k: Annoy's ``search_k`` (-1: ``n_trees * n * search_effort``).
        search_effort: how many more nodes than Annoy's default a query inspects when ``search_k``
            is -1 (inner-product indexes need more, see :mod:`recsys.index.mips`).
    """

    def __init__(self, annoy: AnnoyIndex, rows: np.ndarray, dim: int, n_trees: int, search_k: int = -1,
                 search_effort: float = 1.0):
        self.annoy, self.rows, self.dim = annoy, np.asarray(rows, dtype=np.int64), dim
        self.n_trees, self.search_k, self.search_effort = n_trees, search_k, search_effort

    suffix = ".ann"

    def __len__(self) -> int:
        return len(self.rows)

    def describe(self) -> dict:
        """What the manifest records to load it again."""
        return {"backend": "annoy", "n_trees": self.n_trees, "search_k": self.search_k,
                "search_effort": self.search_effort}

    @classmethod
    def build(cls, vectors: np.ndarray, rows: np.ndarray | None = None, *, n_trees: int = 50,
              seed: int = 0, search_k: int = -1) -> AnnIndex:
        """Index ``vectors[rows]`` (all rows when ``rows`` is None).

        Example:
            >>> index = AnnIndex.build(np.eye(3, dtype=np.float32), n_trees=2)
            >>> index.query(np.array([1, 0, 0], np.float32), n=1)
            (array([0]), array([1.], dtype=float32))
        """
        rows = np.arange(len(vectors)) if rows is None else np.asarray(rows, dtype=np.int64)
        dim = int(vectors.shape[1])
        annoy = AnnoyIndex(dim, "angular")
        annoy.set_seed(seed)
        for j, row in enumerate(rows):
            annoy.add_item(j, vectors[row])
        annoy.build(n_trees, n_jobs=1)
        logger.debug("built angular index: %d x %d, %d trees", len(rows), dim, n_trees)
        return cls(annoy, rows, dim, n_trees, search_k)

    def inspects(self, n: int) -> int:
        """About how many items a query for ``n`` compares exactly (its ``search_k``, at most the
        index's size): what it costs, to weigh against scoring every item exactly."""
        k = self.search_k if self.search_k != -1 else int(self.n_trees * n * self.search_effort)
        return min(len(self), k)

    def query(self, vector: np.ndarray, n: int = 10, exclude: set[int] | np.ndarray | None = None,
              search_k: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The ``n`` nearest item rows to ``vector``, best first.

        Returns:
            (rows, scores): ``(<=n,)`` int64 item rows and float32 cosines
            (Annoy's angular distance ``d`` converted with ``1 - d**2 / 2``).
        """
        exclude = set() if exclude is None else {int(r) for r in exclude}
        k = search_k if search_k is not None else self.search_k
        if k == -1 and self.search_effort != 1.0:
            k = int(self.n_trees * (n + len(exclude)) * self.search_effort)
        ids, dist = self.annoy.get_nns_by_vector(vector, n + len(exclude), search_k=k,
                                                 include_distances=True)
        rows = self.rows[np.asarray(ids, dtype=np.int64)] if ids else np.zeros(0, np.int64)
        scores = 1.0 - np.asarray(dist, dtype=np.float32) ** 2 / 2.0
        keep = np.array([r not in exclude for r in rows], dtype=bool) if exclude else np.ones(len(rows), bool)
        return rows[keep][:n], scores[keep][:n]

    def save(self, path: str | Path) -> list[Path]:
        """Write ``path`` (the Annoy file) and ``path.rows.npy``; returns both paths."""
        path = Path(path)
        self.annoy.save(str(path))
        rows_path = path.with_suffix(".rows.npy")
        np.save(rows_path, self.rows, allow_pickle=False)
        return [path, rows_path]

    @classmethod
    def load(cls, path: str | Path, dim: int, n_trees: int, search_k: int = -1,
             search_effort: float = 1.0) -> AnnIndex:
        """mmap an index written by :meth:`save` (workers share one page cache)."""
        path = Path(path)
        annoy = AnnoyIndex(dim, "angular")
        try:
            annoy.load(str(path))
        except OSError as exc:
            raise BundleError(f"cannot load index {path}: {exc}") from exc
        rows = np.load(path.with_suffix(".rows.npy"), allow_pickle=False)
        if annoy.get_n_items() != len(rows):
            raise BundleError(f"index {path} holds {annoy.get_n_items()} items but its rows file "
                              f"{len(rows)}")
        return cls(annoy, rows, dim, n_trees, search_k, search_effort)


def measure_recall(index: AnnIndex, vectors: np.ndarray, *, k: int = 10, fetch: int | None = None,
                   sample: int = 200, seed: int = 0) -> float:
    """Mean recall@k of the index against exact inner-product search, over sampled queries.

    Queries are indexed items themselves (as "similar items" asks), the query excluded from
    both lists. ``fetch``: candidates asked per query and re-scored exactly, the best ``k`` kept,
    as the service asks (:func:`candidates_for`);
    by default ``k``, Annoy's own top ``k``.
    """
    if len(index) <= k or sample <= 0:
        return 1.0
    return _recall(index, vectors, _exact_neighbours(index, vectors, k, sample, seed), k, fetch or k)


def tune_search_effort(index: AnnIndex, vectors: np.ndarray, *, target: float, max_effort: float,
                       k: int = 10, fetch: int | None = None, sample: int = 200, seed: int = 0) -> float:
    """Double ``index.search_effort`` (the nodes a query inspects, as a multiple of Annoy's
    default) from its value until :func:`measure_recall` reaches ``target`` or the effort
    ``max_effort``: a large catalog needs more than the default. Returns the recall it reached."""
    if len(index) <= k or sample <= 0:
        return 1.0
    exact = _exact_neighbours(index, vectors, k, sample, seed)
    recall = _recall(index, vectors, exact, k, fetch or k)
    while recall < target and index.search_effort * 2 <= max_effort:
        index.search_effort *= 2
        recall = _recall(index, vectors, exact, k, fetch or k)
    return recall


def _exact_neighbours(index: AnnIndex, vectors: np.ndarray, k: int, sample: int, seed: int) -> dict[int, set[int]]:
    """Sampled indexed rows and the exact ``k`` best other indexed rows of each."""
    queries = np.random.default_rng(seed).choice(index.rows, size=min(sample, len(index)), replace=False)
    indexed = np.zeros(len(vectors), bool)
    indexed[index.rows] = True
    best, _ = nearest(vectors, indexed, k, only_with=True, queries=queries)
    return {int(q): set(row[row >= 0].tolist()) for q, row in zip(queries, best)}


def _recall(index: AnnIndex, vectors: np.ndarray, exact: dict[int, set[int]], k: int, fetch: int) -> float:
    hits = 0
    for q, best in exact.items():
        found, _ = index.query(vectors[q], n=max(k, fetch), exclude={q})
        found = found[np.argsort(-(np.asarray(vectors[found], np.float32) @ vectors[q]), kind="stable")[:k]]
        hits += len(best & set(found.tolist()))
    return hits / (k * len(exact))
