"""Ranking metrics on held-out items, one value per user (callers take ``.mean()``)."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["hits_matrix", "ndcg_at_k", "recall_at_k"]


def hits_matrix(ranked: Sequence[Sequence], relevant: Sequence[set], k: int) -> np.ndarray:
    """``(users, k)`` bool: whether the item at each rank of each user's list is relevant.

    Lists shorter than ``k`` count their missing ranks as misses.
    """
    hits = np.zeros((len(ranked), k), dtype=bool)
    for u, (items, truth) in enumerate(zip(ranked, relevant)):
        for r, item in enumerate(list(items)[:k]):
            hits[u, r] = item in truth
    return hits


def recall_at_k(ranked: Sequence[Sequence], relevant: Sequence[set], k: int) -> np.ndarray:
    """Share of each user's relevant items found in the top ``k``: ``(users,)`` float64.

    Example:
        >>> recall_at_k([["a", "b", "c"]], [{"a", "c", "z"}], k=2)
        array([0.33333333])
    """
    hits = hits_matrix(ranked, relevant, k).sum(axis=1)
    sizes = np.array([len(t) for t in relevant], dtype=np.float64)
    return np.divide(hits, sizes, out=np.zeros(len(sizes)), where=sizes > 0)


def ndcg_at_k(ranked: Sequence[Sequence], relevant: Sequence[set], k: int) -> np.ndarray:
    """Normalised discounted cumulative gain with binary relevance: ``(users,)`` float64 in [0, 1].

    ``DCG = sum over hits at rank r (1-based) of 1 / log2(r + 1)``, divided by the DCG of a list
    with all ``min(len(relevant), k)`` relevant items on top.

    Example:
        >>> ndcg_at_k([["x", "a"]], [{"a"}], k=2).round(4)
        array([0.6309])
    """
    hits = hits_matrix(ranked, relevant, k)
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    dcg = hits @ discounts
    ideal_counts = np.minimum([len(t) for t in relevant], k)
    ideal = np.concatenate([[0.0], np.cumsum(discounts)])[ideal_counts]
    return np.divide(dcg, ideal, out=np.zeros(len(ideal)), where=ideal > 0)
