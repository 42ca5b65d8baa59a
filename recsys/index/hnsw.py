"""HNSW graphs (faiss) over item vectors: a serving index, and the build's nearest lists.

- :class:`HnswIndex`, the serving index where Annoy's recall falls short (``index.backend:
  hnsw``): the same interface as :class:`~recsys.index.annoy.AnnIndex`, with exact float32 scores.
- :func:`approximate_nearest`, the precomputed lists of catalogs too large for the exact blocks:
  a graph over float16 copies of the vectors proposes candidates for every row, each scored
  exactly in float32 against the original vectors, so the lists hold the same scores as the exact
  path and only a missed neighbour can differ. It grows with ``n log n`` instead of ``n ** 2``;
  :func:`list_recall` measures what is missed.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from recsys.errors import BundleError
from recsys.index.exact import nearest, row_blocks, top_k_rows

__all__ = ["HnswIndex", "approximate_nearest", "list_recall"]

# candidates asked beyond the k + 1 (the row itself) that the exact re-score chooses from
_SLACK = 16
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


def approximate_nearest(matrix: np.ndarray, mask: np.ndarray, k: int, *, links: int = 16,
                        ef_construction: int = 100, ef_search: int | None = None,
                        desc: str = "nearest items (HNSW)",
                        show_progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Each ``mask`` row's ``k`` best other ``mask`` rows by dot product, as
    :func:`recsys.index.exact.nearest` with ``only_with`` gives them, from HNSW candidates.

    Args:
        links: HNSW links per node (faiss's ``M``): more is better recall, more memory.
        ef_construction: candidates kept while the graph is built.
        ef_search: candidates kept per query (default: twice the ``k + 1 + 16`` asked for).

    Returns:
        ``(rows, scores)``, each ``(n, k)``, best first, ``-1`` where fewer than ``k`` qualify.
    """
    import faiss

    members = np.flatnonzero(mask)
    n, dim = matrix.shape
    rows = np.full((n, k), -1, np.int32)
    scores = np.zeros((n, k), np.float32)
    if len(members) < 2 or k == 0:
        return rows, scores
    index = faiss.IndexHNSWSQ(dim, faiss.ScalarQuantizer.QT_fp16, links, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = ef_construction
    index.train(np.ascontiguousarray(matrix[members[:1000]], dtype=np.float32))  # fp16 needs no data
    with tqdm(total=2 * len(members), desc=desc, unit="row", disable=not show_progress) as bar:
        for start in range(0, len(members), _QUERY_BLOCK):
            index.add(np.ascontiguousarray(matrix[members[start:start + _QUERY_BLOCK]], dtype=np.float32))
            bar.update(min(_QUERY_BLOCK, len(members) - start))
        asked = min(len(members), k + 1 + _SLACK)
        index.hnsw.efSearch = max(ef_search or 2 * asked, asked)
        for start in range(0, len(members), _QUERY_BLOCK):
            queries = members[start:start + _QUERY_BLOCK]
            q = np.ascontiguousarray(matrix[queries], dtype=np.float32)
            _, found = index.search(q, asked)
            candidates = np.where(found >= 0, members[np.maximum(found, 0)], -1)
            rows[queries], scores[queries] = _rescored(matrix, queries, candidates, k)
            bar.update(len(queries))
    return rows, scores


def _rescored(matrix: np.ndarray, queries: np.ndarray, candidates: np.ndarray,
              k: int) -> tuple[np.ndarray, np.ndarray]:
    """The best ``k`` of each query's ``candidates`` by exact float32 dot product, the query
    itself and missing candidates (``-1``) left out."""
    rows = np.full((len(queries), k), -1, np.int32)
    scores = np.zeros((len(queries), k), np.float32)
    width = candidates.shape[1]
    for part in row_blocks(len(queries), width * matrix.shape[1], "", False):
        cand = candidates[part]
        q = np.asarray(matrix[queries[part]], dtype=np.float32)
        s = np.einsum("bwd,bd->bw", np.asarray(matrix[np.maximum(cand, 0)], dtype=np.float32), q)
        s[(cand < 0) | (cand == queries[part, None])] = -np.inf
        best, top = top_k_rows(s, k)
        rows[part] = np.where(best >= 0, np.take_along_axis(cand, np.maximum(best, 0), axis=1), -1)
        scores[part] = top
    return rows, scores


def list_recall(matrix: np.ndarray, mask: np.ndarray, rows: np.ndarray, *, ks: tuple[int, ...] = (10,),
                sample: int = 200, seed: int = 0) -> dict[str, float]:
    """Recall of approximate lists ``rows`` against the exact ones on ``sample`` random ``mask``
    rows: for each ``k`` in ``ks``, the share of the exact top ``k`` that the list's top ``k``
    holds (``{"recall@10": ...}``)."""
    members = np.flatnonzero(mask)
    if not len(members) or not sample:
        return {}
    chosen = np.random.default_rng(seed).choice(members, min(sample, len(members)), replace=False)
    exact = nearest(matrix, mask, max(ks), only_with=True, queries=chosen)[0]
    out = {}
    for k in ks:
        hits = [len(set(exact[i, :k][exact[i, :k] >= 0]) & set(rows[r, :k][rows[r, :k] >= 0]))
                / max(1, int((exact[i, :k] >= 0).sum())) for i, r in enumerate(chosen)]
        out[f"recall@{k}"] = round(float(np.mean(hits)), 4)
    return out
