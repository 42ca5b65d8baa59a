"""How a backbone is judged: k-nearest-neighbour accuracy on labels it never saw.

Held-out items are classified by the labels of their ``k`` nearest reference items in the
backbone's space (cosine, each vote weighted by ``exp(cos / 0.07)`` as in the DINO paper's kNN
evaluation). No label is used to train anything, so the accuracy says how well the space groups
the catalog's kinds (the leaf category) and colours.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from recsys.data import schema as S
from recsys.towers.base import TowerOutput

__all__ = ["KNN_LABELS", "knn_accuracy", "evaluate_backbone"]

# the catalog columns judged: the full category path (its leaf) and the colour
KNN_LABELS = (S.CATEGORY, S.COLOUR)
_TEMPERATURE = 0.07


def knn_accuracy(vectors: np.ndarray, labels: pd.Series, queries: np.ndarray, references: np.ndarray,
                 k: int = 20) -> float | None:
    """The share of ``queries`` rows whose label wins the weighted vote of their ``k`` nearest
    ``references`` rows; rows without a label take no part. ``None`` without any labelled query."""
    from sklearn.neighbors import KNeighborsClassifier

    known = labels.notna().to_numpy() & (labels.astype(str).str.len() > 0).to_numpy()
    queries, references = queries[known[queries]], references[known[references]]
    if not len(queries) or not len(references):
        return None
    names = labels.astype(str).to_numpy()
    vote = KNeighborsClassifier(n_neighbors=min(k, len(references)), metric="cosine", algorithm="brute",
                                weights=lambda distances: np.exp((1.0 - distances) / _TEMPERATURE))
    vote.fit(vectors[references], names[references])
    return float((vote.predict(vectors[queries]) == names[queries]).mean())


def evaluate_backbone(embedded: TowerOutput, catalog: pd.DataFrame, queries: np.ndarray,
                      references: np.ndarray, k: int = 20) -> dict[str, float | None]:
    """kNN accuracy for each label column the catalog has (:data:`KNN_LABELS`), from the
    backbone's vectors of ``catalog`` (items it could not read take no part)."""
    usable = embedded.mask
    queries, references = queries[usable[queries]], references[usable[references]]
    return {column: knn_accuracy(embedded.vectors, catalog[column], queries, references, k)
            for column in KNN_LABELS if column in catalog.columns}
