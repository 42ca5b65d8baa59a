"""recsys: a multimodal recommender service.

The Python API, in the style of implicit and sentence-transformers::

    import recsys

    items = recsys.build("catalog.csv", "models/shop")                # item side: towers, indexes
    rec = recsys.train(items, "interactions.csv")                     # user tower (ALS) on top
    rec.similar_items("SKU-1", k=10).ids                              # one id: a Recommendations
    ids, scores = rec.recommend(["U1", "U2"], k=10)                   # many ids: (n, k) arrays
    rec.search("red floral dress", mode="both")                       # text that sees photos
    recsys.Recommender.from_bundle(rec.path)                          # the same, loaded again

Errors are :class:`RecsysError` and its kinds (``NotFound``, ``InvalidRequest``, ...), each
re-exported here. The names below load their modules on first use, so ``import recsys`` stays cheap.
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

_ERRORS = ("RecsysError", "ConfigError", "DataError", "InvalidRequest", "NotFound", "NotReady",
           "BundleError", "ModelFitError", "Unavailable", "RecsysWarning")

__all__ = ["Recommender", "Recommendations", "Scored", "ItemFilter", "build", "train", "load_settings",
           "Settings", *_ERRORS, "__version__"]

_LAZY = {
    "Recommender": "recsys.serve",
    "Recommendations": "recsys.serve",
    "Scored": "recsys.serve",
    "ItemFilter": "recsys.serve",
    "build": "recsys.quick",
    "train": "recsys.quick",
    "load_settings": "recsys.settings",
    "Settings": "recsys.settings",
    **dict.fromkeys(_ERRORS, "recsys.errors"),
}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'recsys' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
