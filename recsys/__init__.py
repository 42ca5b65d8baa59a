"""recsys: a multimodal recommender service.

The Python API in four calls::

    import recsys

    items = recsys.build("catalog.csv", "models/shop")                # item side: towers, indexes
    trained = recsys.train(items, "interactions.csv")                 # user tower (ALS) on top
    rec = recsys.Recommender.from_bundle(trained)
    rec.similar_items("SKU-1", k=10).ids, rec.recommend("U1", k=10).ids

The names below load their modules on first use, so ``import recsys`` stays cheap.
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

__all__ = ["Recommender", "Recommendations", "Scored", "ItemFilter", "build", "train",
           "load_settings", "Settings", "__version__"]

_LAZY = {
    "Recommender": "recsys.serve",
    "Recommendations": "recsys.serve",
    "Scored": "recsys.serve",
    "ItemFilter": "recsys.serve",
    "build": "recsys.pipeline.quick",
    "train": "recsys.pipeline.quick",
    "load_settings": "recsys.settings",
    "Settings": "recsys.settings",
}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'recsys' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
