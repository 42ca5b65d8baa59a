"""Clusters: the groups a catalog really has, named by the words that set their items apart.

k-means on the unit item vectors (combined, or one modality): the vectors are compared by cosine,
and on unit vectors the squared Euclidean distance k-means minimises is ``2 - 2 cos``. k-means
puts every item in a cluster (a merchandiser asks "which group is this item in", not "is it
noise", as HDBSCAN would answer for much of a catalog), costs ``O(n k d)`` per pass in blocks, so
it scales to a million items, and gives the same clusters for the same seed. Its clusters come in
every size: the small ones are the catalog's long tail.

Each cluster is named by c-TF-IDF: the words of its items' texts weighted by how often they occur
in this cluster against how common they are across clusters, so "men shirts" names a cluster by
what sets it apart rather than by what every cluster says.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA
from sklearn.feature_extraction.text import CountVectorizer

from recsys.bundle import Bundle
from recsys.curation.subset import item_vectors
from recsys.data import schema as S
from recsys.errors import InvalidRequest
from recsys.towers.text import item_texts

__all__ = ["Cluster", "Clusters", "find_clusters", "default_k", "NAME_WORDS", "REPRESENTATIVES"]

NAME_WORDS = 3
REPRESENTATIVES = 5
_TEXT_COLUMNS = (S.TITLE, S.DESCRIPTION, S.TAGS)


@dataclass(frozen=True)
class Cluster:
    """Attributes:
        id: the cluster number (largest cluster first).
        name: its most distinctive words, joined by spaces ("" without text).
        size: how many items.
        cohesion: the mean cosine between its items and its centre (1: all alike).
        representatives: the items nearest its centre, nearest first.
    """

    id: int
    name: str
    size: int
    cohesion: float
    representatives: list[str]


@dataclass(frozen=True)
class Clusters:
    """Attributes:
        version: the bundle version.
        modality: the vectors clustered.
        clusters: largest first.
        assignment: per item (bundle row order) its cluster id; ``-1`` for an item without a vector.
        map: per item a 2-D position (the two principal components of the vectors), NaN where
            the item has no vector, to draw the catalog coloured by cluster.
    """

    version: str
    modality: str
    clusters: list[Cluster]
    assignment: np.ndarray
    map: np.ndarray


def default_k(n: int) -> int:
    """About ``sqrt(n / 2)`` clusters, between 2 and 200: 22 for 1,000 items, 148 for 44,000."""
    return int(np.clip(round((n / 2) ** 0.5), 2, 200))


def _names(texts: list[str], labels: np.ndarray, k: int) -> list[str]:
    """c-TF-IDF: per cluster, the words most frequent in it relative to their frequency overall.

    k-means may split one kind of product into two clusters with the same best words: the later
    (smaller) one then takes its next words until its name is its own, or a number."""
    if not any(t.strip() for t in texts):
        return [""] * k
    try:
        counts = CountVectorizer(stop_words="english", token_pattern=r"(?u)\b[^\W\d_]{3,}\b",
                                 lowercase=True).fit(texts)
    except ValueError:  # nothing but stop words
        return [""] * k
    words = counts.get_feature_names_out()
    doc_words = counts.transform(texts)
    membership = sp.csr_matrix((np.ones(len(labels)), (labels, np.arange(len(labels)))), shape=(k, len(labels)))
    per_cluster = np.asarray((membership @ doc_words).todense(), np.float64)
    tf = per_cluster / np.maximum(per_cluster.sum(axis=1, keepdims=True), 1)
    mean_words = per_cluster.sum() / k
    idf = np.log1p(mean_words / np.maximum(per_cluster.sum(axis=0), 1))
    weight = tf * idf
    names, taken = [], set()
    for row in weight:
        ranked = [words[b] for b in np.argsort(-row, kind="stable") if row[b] > 0]
        name, more = " ".join(ranked[:NAME_WORDS]), NAME_WORDS
        while name and name in taken and more < len(ranked):
            name, more = f"{name} {ranked[more]}", more + 1
        if name and name in taken:
            name = f"{name} ({sum(n.startswith(name) for n in taken) + 1})"
        taken.add(name)
        names.append(name)
    return names


def find_clusters(bundle: Bundle, *, k: int | None = None, modality: str = "combined", seed: int = 0) -> Clusters:
    """Cluster the bundle's items (see the module docstring).

    Args:
        k: how many clusters (default :func:`default_k` of the items with vectors).
        modality: ``combined`` or a modality's name.
        seed: the k-means initialisation.

    Raises:
        InvalidRequest: ``k`` below 2 or above the number of items with vectors; an unknown modality.
    """
    matrix, mask = item_vectors(bundle, modality)
    rows = np.flatnonzero(mask)
    k = default_k(len(rows)) if k is None else k
    if not 2 <= k <= len(rows):
        raise InvalidRequest(f"k must be between 2 and the {len(rows):,} items with {modality} vectors (got {k})")
    vectors = np.ascontiguousarray(matrix[rows], np.float32)
    model = KMeans(n_clusters=k, n_init=1, random_state=seed, max_iter=100).fit(vectors)
    # largest cluster first
    sizes = np.bincount(model.labels_, minlength=k)
    order = np.argsort(-sizes, kind="stable")
    relabel = np.empty(k, np.int64)
    relabel[order] = np.arange(k)
    labels = relabel[model.labels_]
    centres = model.cluster_centers_[order]
    centres /= np.maximum(np.linalg.norm(centres, axis=1, keepdims=True), 1e-12)
    closeness = np.einsum("ij,ij->i", vectors, centres[labels].astype(np.float32))
    names = _names(item_texts(bundle.items.iloc[rows], list(_TEXT_COLUMNS)), labels, k)
    ids = bundle.item_ids.ids
    clusters = []
    for c in range(k):
        members = np.flatnonzero(labels == c)
        nearest = members[np.argsort(-closeness[members], kind="stable")[:REPRESENTATIVES]]
        clusters.append(Cluster(c, names[c], int(len(members)), round(float(closeness[members].mean()), 4),
                                [str(ids[rows[m]]) for m in nearest]))
    assignment = np.full(len(matrix), -1, np.int64)
    assignment[rows] = labels
    positions = np.full((len(matrix), 2), np.nan, np.float32)
    positions[rows] = PCA(2, random_state=seed).fit_transform(vectors) if len(rows) >= 2 else 0.0
    return Clusters(bundle.version, modality, clusters, assignment, positions)
