"""How a backbone is judged: k-nearest-neighbour accuracy on labels it never saw.

Held-out items are classified by the labels of their ``k`` nearest reference items in the
backbone's space (cosine, each vote weighted by ``exp(cos / 0.07)`` as in the DINO paper's kNN
evaluation). No label is used to train anything, so the accuracy says how well the space groups
the catalog's kinds (the leaf category) and colours. Two backbones are judged on the same items,
so the gain of one over the other comes with a paired bootstrap interval: with a thousand
held-out items, its 95% interval spans about two points either way.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from recsys.data import schema as S
from recsys.towers.base import TowerOutput

__all__ = ["KNN_LABELS", "accuracy", "evaluate_backbone", "knn_accuracy", "knn_hits", "paired_gain"]

# the catalog columns judged: the full category path (its leaf) and the colour
KNN_LABELS = (S.CATEGORY, S.COLOUR)
_TEMPERATURE = 0.07


def knn_hits(vectors: np.ndarray, labels: pd.Series, queries: np.ndarray, references: np.ndarray,
             k: int = 20) -> np.ndarray:
    """For each of ``queries``: 1.0 where its label wins the weighted vote of its ``k`` nearest
    ``references`` rows, 0.0 where another wins, and NaN where it takes no part (no label of its
    own, or no labelled reference at all). Unlabelled references take no part in the vote."""
    from sklearn.neighbors import KNeighborsClassifier

    known = labels.notna().to_numpy() & (labels.astype(str).str.len() > 0).to_numpy()
    hits = np.full(len(queries), np.nan)
    judged, references = np.flatnonzero(known[queries]), references[known[references]]
    if not len(judged) or not len(references):
        return hits
    names = labels.astype(str).to_numpy()
    vote = KNeighborsClassifier(n_neighbors=min(k, len(references)), metric="cosine", algorithm="brute",
                                weights=lambda distances: np.exp((1.0 - distances) / _TEMPERATURE))
    vote.fit(vectors[references], names[references])
    rows = queries[judged]
    hits[judged] = vote.predict(vectors[rows]) == names[rows]
    return hits


def accuracy(hits: np.ndarray) -> float | None:
    """The share of hits among the queries that took part; ``None`` if none did."""
    return None if np.isnan(hits).all() else float(np.nanmean(hits))


def knn_accuracy(vectors: np.ndarray, labels: pd.Series, queries: np.ndarray, references: np.ndarray,
                 k: int = 20) -> float | None:
    """The share of ``queries`` rows whose label wins the weighted vote of their ``k`` nearest
    ``references`` rows (:func:`knn_hits`); ``None`` without any labelled query."""
    return accuracy(knn_hits(vectors, labels, queries, references, k))


def evaluate_backbone(embedded: TowerOutput, catalog: pd.DataFrame, queries: np.ndarray,
                      references: np.ndarray, k: int = 20) -> dict[str, np.ndarray]:
    """:func:`knn_hits` of ``queries`` for each label column the catalog has (:data:`KNN_LABELS`),
    from the backbone's vectors of ``catalog``; items it could not read take no part (NaN)."""
    readable = embedded.mask[queries]
    voters = references[embedded.mask[references]]
    hits = {}
    for column in KNN_LABELS:
        if column in catalog.columns:
            hits[column] = np.full(len(queries), np.nan)
            hits[column][readable] = knn_hits(embedded.vectors, catalog[column], queries[readable], voters, k)
    return hits


def paired_gain(before: np.ndarray, after: np.ndarray, confidence: float = 0.95, resamples: int = 2000,
                seed: int = 0) -> dict[str, float] | None:
    """The accuracy gain of ``after`` over ``before`` (hits of the same queries, :func:`knn_hits`)
    with a paired percentile bootstrap interval: ``{"gain", "low", "high"}``, or ``None`` when
    fewer than two queries took part in both."""
    from scipy.stats import bootstrap

    both = ~np.isnan(before) & ~np.isnan(after)
    change = after[both] - before[both]
    if len(change) < 2:
        return None
    if not change.any():  # no query changed: every resample says 0
        return {"gain": 0.0, "low": 0.0, "high": 0.0}
    interval = bootstrap((change,), np.mean, n_resamples=resamples, confidence_level=confidence,
                         method="percentile", rng=np.random.default_rng(seed)).confidence_interval
    return {"gain": round(float(change.mean()), 4), "low": round(float(interval.low), 4),
            "high": round(float(interval.high), 4)}
