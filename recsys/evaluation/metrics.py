"""Ranking and beyond-accuracy metrics, vectorised over users.

Rankings are ``(users, K)`` integer arrays of item rows, best first, ``-1`` padding a short list.
The held-out truth is a :class:`Truth`: for each user the set of relevant item rows (binary
relevance). Accuracy metrics come back per user (callers average them, or break them down by
segment); catalog metrics are one number per ranking.

Definitions at cut-off ``k`` for one user with relevant set ``R`` and hits ``h_1..h_k``:

* precision = hits / k; recall = hits / |R|; hit rate = 1 if any hit;
* NDCG = sum_r h_r / log2(r + 1), divided by the same sum for ``min(|R|, k)`` hits on top;
* MAP (AP@k) = sum_r h_r * precision@r / min(|R|, k);
* MRR = 1 / rank of the first hit (0 without one).
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import scipy.sparse as sp

__all__ = ["Truth", "ACCURACY", "accuracy", "drop_known", "paired_gain", "coverage", "novelty", "popularity_percentile",
           "exposure_gini", "intra_list_diversity", "hits_matrix", "recall_at_k", "ndcg_at_k"]

ACCURACY = ("precision", "recall", "ndcg", "map", "hitrate", "mrr")


class Truth:
    """Each user's relevant item rows, as a users x items sparse matrix.

    Args:
        relevant: per user, an iterable of item rows.
        n_items: catalog size.
    """

    def __init__(self, relevant: Sequence[Iterable[int]], n_items: int):
        rows = [np.unique(np.fromiter(r, dtype=np.int64)) for r in relevant]
        indptr = np.concatenate([[0], np.cumsum([len(r) for r in rows])])
        indices = np.concatenate(rows) if rows else np.zeros(0, np.int64)
        self.matrix = sp.csr_matrix((np.ones(len(indices), bool), indices, indptr),
                                    shape=(len(rows), n_items))
        self.sizes = np.diff(indptr)
        self._keys = np.repeat(np.arange(len(rows)), self.sizes) * n_items + indices  # sorted

    @property
    def n_items(self) -> int:
        return self.matrix.shape[1]

    def __len__(self) -> int:
        return self.matrix.shape[0]

    def hits(self, ranked: np.ndarray, k: int) -> np.ndarray:
        """``(users, k)`` bool: whether the item at each rank is relevant (padding never is)."""
        top = np.asarray(ranked)[:, :k]
        keys = np.arange(len(top))[:, None] * self.n_items + top
        found = np.searchsorted(self._keys, keys)
        found = np.minimum(found, max(len(self._keys) - 1, 0))
        hits = (self._keys[found] == keys) if len(self._keys) else np.zeros(top.shape, bool)
        hits &= top >= 0
        if top.shape[1] < k:  # a ranking shorter than k: the missing ranks are misses
            hits = np.pad(hits, ((0, 0), (0, k - top.shape[1])))
        return hits

    def subset(self, items: np.ndarray) -> Truth:
        """The same users with only the relevant items that ``items`` (bool over the catalog) keeps."""
        m = self.matrix
        keep = np.asarray(items, bool)[m.indices]
        bounds = np.concatenate([[0], np.cumsum(keep)])[m.indptr]
        indices = m.indices[keep]
        return Truth([indices[bounds[u]:bounds[u + 1]] for u in range(len(self))], self.n_items)

    def without(self, known: sp.csr_matrix) -> Truth:
        """The same users with only the relevant items that ``known`` (users x items) lacks:
        what each user found new (discovery)."""
        m = self.matrix.astype(np.float32)
        new = (m - m.multiply(known != 0)).tocsr()
        new.eliminate_zeros()
        return Truth([new.indices[new.indptr[u]:new.indptr[u + 1]] for u in range(len(self))], self.n_items)


def drop_known(ranked: np.ndarray, known: sp.csr_matrix) -> np.ndarray:
    """Each ranking without the items ``known`` (users x items) holds for its user, closed up
    (``-1`` pads the end)."""
    ranked = np.asarray(ranked)
    keep = ranked >= 0
    keep[keep] = np.asarray(known[np.nonzero(keep)[0], ranked[keep]]).ravel() == 0
    out = np.full_like(ranked, -1)
    place = np.cumsum(keep, axis=1) - 1
    out[np.nonzero(keep)[0], place[keep]] = ranked[keep]
    return out


def paired_gain(ours: np.ndarray, base: np.ndarray, *, resamples: int = 1000, seed: int = 0,
                chunk: int = 100) -> tuple[float, float, float]:
    """The relative gain ``mean(ours) / mean(base) - 1`` over the same users, with its 95%
    paired bootstrap interval (users resampled with replacement, both models together).

    Returns:
        ``(gain, low, high)``; NaN when the base's mean is 0.
    """
    ours, base = np.asarray(ours, np.float64), np.asarray(base, np.float64)
    if not len(ours) or base.mean() == 0:
        return float("nan"), float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    gains = []
    for start in range(0, resamples, chunk):
        picks = rng.integers(0, len(ours), (min(chunk, resamples - start), len(ours)))
        b = base[picks].mean(axis=1)
        gains.append(np.divide(ours[picks].mean(axis=1), b, out=np.full(len(b), np.nan), where=b > 0) - 1)
    low, high = np.nanpercentile(np.concatenate(gains), [2.5, 97.5])
    return float(ours.mean() / base.mean() - 1), float(low), float(high)


def accuracy(ranked: np.ndarray, truth: Truth, k: int) -> dict[str, np.ndarray]:
    """Precision, recall, NDCG, MAP, hit rate and MRR at ``k``, one value per user.

    Users without relevant items get 0 for every metric (callers usually leave them out).
    """
    hits = truth.hits(ranked, k)
    n_hits = hits.sum(axis=1)
    sizes = truth.sizes.astype(np.float64)
    ranks = np.arange(1, k + 1)
    discounts = 1.0 / np.log2(ranks + 1)
    ideal = np.concatenate([[0.0], np.cumsum(discounts)])[np.minimum(truth.sizes, k)]
    precision_at = np.cumsum(hits, axis=1) / ranks
    first = np.where(hits.any(axis=1), hits.argmax(axis=1) + 1, 0)
    return {
        "precision": n_hits / k,
        "recall": _ratio(n_hits, sizes),
        "ndcg": _ratio(hits @ discounts, ideal),
        "map": _ratio((precision_at * hits).sum(axis=1), np.minimum(sizes, k)),
        "hitrate": (n_hits > 0).astype(np.float64),
        "mrr": _ratio(np.ones(len(first)), first.astype(np.float64)),
    }


def _ratio(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.divide(a, b, out=np.zeros(len(b)), where=b > 0)


def _listed(ranked: np.ndarray, k: int) -> np.ndarray:
    top = np.asarray(ranked)[:, :k].ravel()
    return top[top >= 0]


def coverage(ranked: np.ndarray, n_items: int, k: int) -> float:
    """Share of the catalog that appears in at least one top-``k`` list."""
    return len(np.unique(_listed(ranked, k))) / n_items


def novelty(ranked: np.ndarray, item_users: np.ndarray, n_users: int, k: int) -> float:
    """Mean self-information ``-log2 p(i)`` of the recommended items, where ``p(i)`` is the share
    of training users who interacted with ``i`` (an unseen item counts as one user)."""
    p = np.maximum(item_users, 1) / max(n_users, 1)
    listed = _listed(ranked, k)
    return float(-np.log2(p[listed]).mean()) if len(listed) else 0.0


def popularity_percentile(ranked: np.ndarray, item_users: np.ndarray, k: int) -> float:
    """Mean popularity percentile of the recommended items: 1 = the most popular item, 0 = the
    least (ties share their mean rank)."""
    from scipy.stats import rankdata

    pct = (rankdata(item_users) - 1) / max(len(item_users) - 1, 1)
    listed = _listed(ranked, k)
    return float(pct[listed].mean()) if len(listed) else 0.0


def exposure_gini(ranked: np.ndarray, n_items: int, k: int) -> float:
    """Gini coefficient of how often each catalog item is recommended (0 = every item equally,
    towards 1 = a few items take all the exposure)."""
    counts = np.sort(np.bincount(_listed(ranked, k), minlength=n_items).astype(np.float64))
    total = counts.sum()
    if total == 0:
        return 0.0
    n = len(counts)
    return float((2 * np.arange(1, n + 1) - n - 1) @ counts / (n * total))


def intra_list_diversity(ranked: np.ndarray, vectors: np.ndarray, mask: np.ndarray, k: int,
                         block: int = 512) -> float:
    """Mean pairwise cosine distance ``1 - cos`` between the items of each top-``k`` list, in the
    content space (unit vectors), averaged over lists with at least two items that have vectors."""
    top = np.asarray(ranked)[:, :k]
    per_list = []
    for start in range(0, len(top), block):
        rows = top[start:start + block]
        valid = (rows >= 0) & mask[np.maximum(rows, 0)]
        v = np.asarray(vectors, dtype=np.float32)[np.maximum(rows, 0)] * valid[..., None]
        sims = np.einsum("bid,bjd->bij", v, v)
        n = valid.sum(axis=1).astype(np.float64)
        pairs = n * (n - 1)
        # sum over ordered pairs i != j of (1 - cos): all pairs minus the diagonal (cos = 1)
        total = pairs - (sims.sum(axis=(1, 2)) - n)
        per_list.append(np.divide(total, pairs, out=np.full(len(n), np.nan), where=pairs > 0))
    values = np.concatenate(per_list) if per_list else np.zeros(0)
    values = values[~np.isnan(values)]
    return float(values.mean()) if len(values) else 0.0


# -- list-of-ids conveniences (any hashable ids) ----------------------------------------------


def _encode(ranked: Sequence[Sequence], relevant: Sequence[set], k: int) -> tuple[np.ndarray, Truth]:
    codes: dict = {}
    rows = np.full((len(ranked), k), -1, np.int64)
    for u, items in enumerate(ranked):
        for r, item in enumerate(list(items)[:k]):
            rows[u, r] = codes.setdefault(item, len(codes))
    truth = [[codes.setdefault(i, len(codes)) for i in t] for t in relevant]
    return rows, Truth(truth, max(len(codes), 1))


def hits_matrix(ranked: Sequence[Sequence], relevant: Sequence[set], k: int) -> np.ndarray:
    """``(users, k)`` bool for lists of any ids; lists shorter than ``k`` count their missing
    ranks as misses."""
    rows, truth = _encode(ranked, relevant, k)
    return truth.hits(rows, k)


def recall_at_k(ranked: Sequence[Sequence], relevant: Sequence[set], k: int) -> np.ndarray:
    """Share of each user's relevant items found in the top ``k``: ``(users,)`` float64.

    Example:
        >>> recall_at_k([["a", "b", "c"]], [{"a", "c", "z"}], k=2)
        array([0.33333333])
    """
    rows, truth = _encode(ranked, relevant, k)
    return accuracy(rows, truth, k)["recall"]


def ndcg_at_k(ranked: Sequence[Sequence], relevant: Sequence[set], k: int) -> np.ndarray:
    """NDCG with binary relevance for lists of any ids: ``(users,)`` float64 in [0, 1].

    Example:
        >>> ndcg_at_k([["x", "a"]], [{"a"}], k=2).round(4)
        array([0.6309])
    """
    rows, truth = _encode(ranked, relevant, k)
    return accuracy(rows, truth, k)["ndcg"]
