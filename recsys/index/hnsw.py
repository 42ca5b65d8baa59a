"""An HNSW graph (faiss) over item vectors: the serving index where Annoy's recall falls short
(``index.backend: hnsw``), with the same interface as :class:`~recsys.index.annoy.AnnIndex` and
exact float32 scores, and every item's nearest list of a large catalog in few dimensions
(:func:`hnsw_nearest`)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from recsys.errors import BundleError
from recsys.index.lists import empty_lists, take_reverse

__all__ = ["HnswIndex", "hnsw_nearest"]

_QUERY_BLOCK = 4096


class HnswIndex:
    """A faiss HNSW graph (``IndexHNSWFlat``, inner product) over a subset of item rows; scores
    are exact float32 dot products, the cosines of unit rows.

    Args:
        index: a built or loaded faiss index; its ids are positions in ``rows``.
        rows: ``(m,)`` int64 item rows.
        links: links per node (faiss's ``M``): more is better recall, more memory.
        ef_search: candidates a query keeps at least (more when it asks for more): more is
            better recall, slower queries.
    """

    suffix = ".hnsw"

    def __init__(self, index, rows: np.ndarray, dim: int, links: int, ef_search: int):
        self.index, self.rows, self.dim = index, np.asarray(rows, dtype=np.int64), dim
        self.links, self.ef_search = links, ef_search

    def __len__(self) -> int:
        return len(self.rows)

    @classmethod
    def build(cls, vectors: np.ndarray, rows: np.ndarray | None = None, *, links: int = 32,
              ef_construction: int = 100, ef_search: int = 64) -> HnswIndex:
        """Index ``vectors[rows]`` (all rows when ``rows`` is None)."""
        import faiss

        rows = np.arange(len(vectors)) if rows is None else np.asarray(rows, dtype=np.int64)
        dim = int(vectors.shape[1])
        index = faiss.IndexHNSWFlat(dim, links, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = ef_construction
        for start in range(0, len(rows), _QUERY_BLOCK):
            index.add(np.ascontiguousarray(vectors[rows[start:start + _QUERY_BLOCK]], dtype=np.float32))
        return cls(index, rows, dim, links, ef_search)

    def describe(self) -> dict:
        """What the manifest records to load it again."""
        return {"backend": "hnsw", "links": self.links, "ef_search": self.ef_search}

    def inspects(self, n: int) -> int:
        """About how many items a query for ``n`` compares exactly: each of the candidates it
        keeps opens up to ``links`` neighbours."""
        return min(len(self), max(self.ef_search, n) * self.links)

    def query(self, vector: np.ndarray, n: int = 10, exclude: set[int] | np.ndarray | None = None,
              search_k: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The ``n`` nearest item rows to ``vector``, best first: ``(rows, scores)``.
        ``search_k`` (Annoy's knob) is ignored."""
        import faiss

        exclude = set() if exclude is None else {int(r) for r in exclude}
        want = min(len(self), n + len(exclude))
        if want == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        params = faiss.SearchParametersHNSW()
        params.efSearch = max(self.ef_search, want)  # per call: workers' threads share the index
        scores, ids = self.index.search(np.asarray(vector, dtype=np.float32).reshape(1, -1), want, params=params)
        found = ids[0] >= 0
        rows, scores = self.rows[ids[0][found]], scores[0][found]
        keep = np.array([r not in exclude for r in rows], dtype=bool) if exclude else np.ones(len(rows), bool)
        return rows[keep][:n], scores[keep][:n]

    def save(self, path: str | Path) -> list[Path]:
        """Write ``path`` (the faiss file) and ``path.rows.npy``; returns both paths."""
        import faiss

        path = Path(path)
        faiss.write_index(self.index, str(path))
        rows_path = path.with_suffix(".rows.npy")
        np.save(rows_path, self.rows, allow_pickle=False)
        return [path, rows_path]

    @classmethod
    def load(cls, path: str | Path, dim: int, links: int, ef_search: int) -> HnswIndex:
        """Read an index written by :meth:`save`: the vectors memory-mapped (workers share one
        page cache, as with Annoy), the graph's links read in (a few hundred bytes per item)."""
        import faiss

        path = Path(path)
        try:
            index = faiss.read_index(str(path), faiss.IO_FLAG_MMAP_IFC)
        except RuntimeError as exc:
            raise BundleError(f"cannot load index {path}: {exc}") from exc
        rows = np.load(path.with_suffix(".rows.npy"), allow_pickle=False)
        if index.ntotal != len(rows) or index.d != dim:
            raise BundleError(f"index {path} holds {index.ntotal} items of {index.d} dimensions; its rows file "
                              f"has {len(rows)} and the bundle {dim} dimensions")
        return cls(index, rows, dim, links, ef_search)


def hnsw_nearest(matrix: np.ndarray, mask: np.ndarray, k: int, *, links: int = 16, ef_construction: int = 80,
                 ef_search: int = 128, desc: str = "nearest items (hnsw)",
                 show_progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Each ``mask`` row's ``k`` best other ``mask`` rows by dot product, as
    :func:`recsys.index.cells.cell_nearest` gives them, from an HNSW graph over the ``mask`` rows.
    The graph stores the vectors themselves, so every score is exact; a row the search does not
    reach can be missed, unless that row lists this one among its best
    (:func:`~recsys.index.lists.take_reverse`).

    Returns:
        ``(rows, scores)``, each ``(n, k)``, best first, ``-1`` where fewer than ``k`` qualify.
    """
    import faiss

    members = np.flatnonzero(mask)
    rows, scores = empty_lists(len(matrix), k)
    if len(members) < 2 or k == 0:
        return rows, scores
    graph = HnswIndex.build(matrix, members, links=links, ef_construction=ef_construction)
    params = faiss.SearchParametersHNSW()
    params.efSearch = max(ef_search, k + 1)
    want = min(k + 1, len(members))
    with tqdm(total=len(members), desc=desc, unit="row", disable=not show_progress) as bar:
        for start in range(0, len(members), _QUERY_BLOCK):
            part = np.arange(start, min(start + _QUERY_BLOCK, len(members)))
            found_scores, found = graph.index.search(
                np.ascontiguousarray(matrix[members[part]], dtype=np.float32), want, params=params)
            # a row finds itself, or, among identical rows, a twin first: drop itself, else the last
            itself = found == part[:, None]
            drop = np.where(itself.any(1), itself.argmax(1), want - 1)
            keep = np.ones_like(found, bool)
            keep[np.arange(len(part)), drop] = False
            found, found_scores = found[keep].reshape(len(part), -1), found_scores[keep].reshape(len(part), -1)
            ok = found >= 0
            width = found.shape[1]
            rows[members[part], :width] = np.where(ok, members[np.maximum(found, 0)], -1)
            scores[members[part], :width] = np.where(ok, found_scores, 0.0)
            bar.update(len(part))
    take_reverse(rows, scores)
    return rows, scores
