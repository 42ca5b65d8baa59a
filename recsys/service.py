"""The one façade the CLI and the API call: similar items (and, later, feeds) over a bundle."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from recsys.bundle import Bundle
from recsys.errors import InvalidRequest
from recsys.towers.item import check_weights, weighted_scores

__all__ = ["Recommender", "Scored", "MAX_K"]

MAX_K = 1000


@dataclass(frozen=True)
class Scored:
    item_id: str
    score: float


def check_k(n: int) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 1 <= n <= MAX_K:
        raise InvalidRequest(f"k must be an integer from 1 to {MAX_K} (got {n!r})")
    return int(n)


class Recommender:
    """Answers queries against one loaded :class:`Bundle`.

    Args:
        bundle: the loaded bundle.
        overfetch: candidates gathered per index for a per-request re-rank, as a multiple of ``n``
            (at least 50).
    """

    def __init__(self, bundle: Bundle, overfetch: int = 10):
        self.bundle = bundle
        self.overfetch = overfetch

    @property
    def version(self) -> str:
        return self.bundle.version

    def similar_items(self, item_id: str, n: int = 10, weights: dict[str, float] | None = None) -> list[Scored]:
        """Items most similar to ``item_id``, best first, the item itself excluded.

        Args:
            item_id: a catalog id.
            n: how many (1..1000).
            weights: per-request modality weights; ``None`` uses the bundle's defaults through
                the combined index. Other weights gather candidates from the combined index and
                the index of every weighted modality, then re-rank them exactly.

        Returns:
            list[Scored]: scores are the weighted cosine described in
            :func:`recsys.towers.item.weighted_scores`.

        Raises:
            NotFound: unknown item id.
            InvalidRequest: bad ``n`` or weights, or weights that leave the item nothing to compare.
        """
        n = check_k(n)
        vectors = self.bundle.vectors
        row = self.bundle.item_ids.row(item_id)
        default = weights is None
        weights = vectors.weights if default else check_weights(weights, tuple(vectors.blocks))
        query = {m: (np.asarray(b.vectors[row]) if b.mask[row] else None) for m, b in vectors.blocks.items()}
        usable = [m for m, w in weights.items() if w > 0 and query.get(m) is not None]
        if not usable:
            lacking = ", ".join(m for m, w in weights.items() if w > 0)
            raise InvalidRequest(f"item {item_id!r} has no {lacking} data, so these weights leave "
                                 "nothing to compare; give weight to another modality",
                                 item_id=item_id)
        fetch = max(50, self.overfetch * n)
        candidates = []
        if vectors.mask[row]:
            rows, _ = self.bundle.indexes["combined"].query(vectors.combined[row], fetch, exclude={row})
            candidates.append(rows)
        if not default or not vectors.mask[row]:
            for m in usable:
                rows, _ = self.bundle.indexes[m].query(query[m], fetch, exclude={row})
                candidates.append(rows)
        rows = np.unique(np.concatenate(candidates)) if candidates else np.zeros(0, np.int64)
        scores = weighted_scores(vectors.blocks, query, rows, weights)
        order = np.argsort(-scores, kind="stable")[:n]
        ids = self.bundle.item_ids.ids
        return [Scored(str(ids[rows[i]]), float(scores[i])) for i in order]
