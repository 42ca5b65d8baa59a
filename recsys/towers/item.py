"""Step 3 of the flow: item vectors, the weighted concatenation of the modality blocks.

``x_i = concat_m(sqrt(w_m) * v_m(i)) / sqrt(sum of w_m over the modalities item i has)``, so
``x_i . x_j`` is the weighted mean of per-modality cosines when both items have the same
modalities, and every item with at least one modality is a unit vector (angular ANN ready).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from recsys.data.validate import non_negative
from recsys.errors import InvalidRequest
from recsys.towers.base import TowerOutput, weighted_concat

__all__ = ["MODALITIES", "ItemVectors", "combine", "check_weights", "parse_weights", "weighted_scores",
           "rows_dot", "content_query", "taste_of"]

MODALITIES = ("image", "text", "tabular")


def check_weights(weights: dict[str, float], available: tuple[str, ...] = MODALITIES) -> dict[str, float]:
    """Validate modality weights: known names, finite and non-negative, positive sum.

    Raises:
        InvalidRequest: naming the bad key or value and the valid choices.
    """
    if not isinstance(weights, dict) or not weights:
        raise InvalidRequest(f"weights must name at least one modality of: {', '.join(available)}")
    out = {}
    for name, value in weights.items():
        if name not in available:
            raise InvalidRequest(f"unknown modality {name!r} in weights; choose from: "
                                 f"{', '.join(available)}", choices=list(available))
        out[name] = non_negative(value, f"weight of {name!r}")
    if sum(out.values()) <= 0:
        raise InvalidRequest("weights must have a positive sum")
    return out


def parse_weights(text: str, available: tuple[str, ...] = MODALITIES) -> dict[str, float]:
    """Parse ``"image:0.6,text:0.3,tabular:0.1"`` (the CLI and query-string form).

    Example:
        >>> parse_weights("image:1,text:0")
        {'image': 1.0, 'text': 0.0}
    """
    return dict(_parsed_weights(str(text), tuple(available)))


@lru_cache(maxsize=1024)  # a widget asks a few weightings over and over: parse each once
def _parsed_weights(text: str, available: tuple[str, ...]) -> tuple[tuple[str, float], ...]:
    weights: dict[str, float | str] = {}
    for part in filter(None, (p.strip() for p in str(text).split(","))):
        name, sep, value = part.partition(":")
        if not sep:
            raise InvalidRequest(f"weights must look like image:0.6,text:0.3,tabular:0.1 (got {part!r})")
        if name.strip() in weights:
            raise InvalidRequest(f"modality {name.strip()!r} appears twice in weights")
        weights[name.strip()] = value.strip()
    return tuple(check_weights(weights, available).items())


@dataclass(frozen=True)
class ItemVectors:
    """The item side of a bundle.

    Attributes:
        blocks: per-modality :class:`TowerOutput`, rows in item order.
        weights: the default weights the combined vectors were built with.
        combined: ``(n, sum of dims)`` float32, unit rows where ``mask``.
        mask: ``(n,)`` bool, items with at least one weighted modality.
    """

    blocks: dict[str, TowerOutput]
    weights: dict[str, float]
    combined: np.ndarray
    mask: np.ndarray

    def space(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """``(vectors, mask)`` of ``"combined"`` or of one modality (KeyError for another name)."""
        if name == "combined":
            return self.combined, self.mask
        return self.blocks[name].vectors, self.blocks[name].mask


def combine(blocks: dict[str, TowerOutput], weights: dict[str, float]) -> ItemVectors:
    """Join modality blocks with ``weights`` (modalities missing from ``blocks`` are ignored).

    Returns:
        ItemVectors: see the module docstring for the formula.
    """
    names = [m for m in blocks if weights.get(m, 0.0) > 0]
    if not names:
        raise InvalidRequest(f"no weighted modality among those built ({', '.join(blocks)})")
    joined = weighted_concat([blocks[m] for m in names], [weights[m] for m in names])
    return ItemVectors(blocks=blocks, weights=dict(weights), combined=joined.vectors, mask=joined.mask)


def weighted_scores(
    blocks: dict[str, TowerOutput], query: dict[str, np.ndarray | None], rows: np.ndarray,
    weights: dict[str, float],
) -> np.ndarray:
    """Exact scores of candidate ``rows`` against a query under per-request ``weights``.

    Equals the dot product of both items' vectors rebuilt with ``weights``:
    ``sum_m w_m cos_m / sqrt(W_q * W_c)``, where ``W`` sums the weights of the modalities an item
    has; for items with the same modalities that is the weighted mean of the cosines.

    Args:
        blocks: per-modality outputs of the catalog.
        query: the query's unit vector per modality (None where it lacks it).
        rows: candidate item rows ``(c,)``.
        weights: modality weights.

    Returns:
        ``(c,)`` float32 scores; 0 for candidates that share no weighted modality with the query.
    """
    rows = np.asarray(rows, dtype=np.int64)
    total = np.zeros(len(rows), dtype=np.float32)
    w_c = np.zeros(len(rows), dtype=np.float32)
    w_q = 0.0
    for name, weight in weights.items():
        if weight <= 0 or name not in blocks:
            continue
        block = blocks[name]
        w_c += weight * block.mask[rows]
        if query.get(name) is not None:
            w_q += weight
            total += weight * rows_dot(block.vectors, rows, query[name])  # 0 where an item lacks it
    return total / np.sqrt(np.maximum(w_q * w_c, 1e-12), dtype=np.float32)


def rows_dot(matrix: np.ndarray, rows: np.ndarray, vector: np.ndarray, scan=None) -> np.ndarray:
    """``matrix[rows] @ vector``. For most of the rows one product over the whole (memory-mapped)
    matrix, or its ``scan`` copy when given (:class:`recsys.serve.scan.Scan`), is cheaper than
    gathering the rows into a copy first."""
    if len(rows) * 2 > len(matrix):
        return (scan.dot(vector) if scan is not None else matrix @ vector)[rows]
    return matrix[rows] @ vector


def content_query(vectors: ItemVectors, history: np.ndarray, history_items: int,
                  decay: float = 1.0) -> np.ndarray | None:
    """A user's taste in content space: the unit weighted mean of the combined vectors of the first
    ``history_items`` distinct rows of ``history`` (most recent first) that have one, the i-th
    weighted ``decay ** i`` (1 = a plain mean); ``None`` if none has one."""
    rows = [r for r in dict.fromkeys(history.tolist()) if vectors.mask[r]][:history_items]
    return taste_of(vectors.combined[rows], decay)


def taste_of(combined: np.ndarray, decay: float = 1.0) -> np.ndarray | None:
    """The unit weighted mean of ``(m, d)`` combined vectors, most recent first, the i-th weighted
    ``decay ** i`` (see :func:`content_query`); ``None`` for no rows or a zero mean."""
    if not len(combined):
        return None
    weights = np.power(np.float32(decay), np.arange(len(combined), dtype=np.float32))
    mean = weights @ np.asarray(combined, dtype=np.float32)
    norm = float(np.linalg.norm(mean))
    return mean / norm if norm > 0 else None
