"""Catalog curation from the item vectors: duplicate listings, outliers and mislabels, clusters,
labels from a few examples or prompts, and diverse, balanced subsets."""
import importlib

# loaded on first use: the API imports the duplicates' defaults without the clustering (scikit-learn)
_LAZY = {
    "Clusters": "recsys.curation.clusters",
    "find_clusters": "recsys.curation.clusters",
    "Duplicates": "recsys.curation.duplicates",
    "find_duplicates": "recsys.curation.duplicates",
    "Labels": "recsys.curation.labels",
    "label_from_examples": "recsys.curation.labels",
    "label_from_prompts": "recsys.curation.labels",
    "Outliers": "recsys.curation.outliers",
    "find_outliers": "recsys.curation.outliers",
    "Subset": "recsys.curation.subset",
    "diverse_subset": "recsys.curation.subset",
}
__all__ = list(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'recsys.curation' has no attribute {name!r}")
