"""Search: a free-text query compared with the items' texts, or with their photos through the
bundle's joint text-image space (:mod:`recsys.towers.joint`), or both; and a query photo compared
with the items' photos.

Modes of a text query:

* ``text``: the query's text vector against the items' text vectors (the similar-items engine,
  :meth:`recsys.serve.similar.SimilarItems.nearest`);
* ``image``: the query placed in the joint space against the items' photos placed there, so an
  item without text is found by its photo;
* ``both``: per item, the mean of the two cosines it has (an item with only a photo or only text is
  scored by that one), the way item vectors average their modalities.

Image and both modes score every allowed item exactly (:func:`recsys.towers.joint.text_query_scores`):
the items' photos are placed in the joint space once per bundle, then a query costs one product
with a ``(n, 128 + 384)`` matrix, a few milliseconds for 44,000 items. A query photo is compared
by the image modality alone, as between items.
"""
from __future__ import annotations

from functools import cached_property
from typing import Literal

import numpy as np

from recsys.bundle import Bundle
from recsys.errors import InvalidRequest
from recsys.index.exact import top_k_rows
from recsys.serve.changes import ItemChanges
from recsys.serve.embedder import ItemEmbedder
from recsys.serve.filters import FilterColumns, ItemFilter
from recsys.serve.rows import Scored
from recsys.serve.similar import SimilarItems
from recsys.towers.base import TowerOutput
from recsys.towers.joint import text_query_scores

__all__ = ["Search", "SEARCH_MODES", "SearchMode"]

SearchMode = Literal["text", "image", "both"]
SEARCH_MODES = ("text", "image", "both")


class Search:
    """Text queries and query photos over one bundle.

    Args:
        bundle: the loaded bundle.
        columns: its filter columns.
        similar: its similar-items engine (the text mode, and photos).
        embedder: its encoders (the query's text or photo).
    """

    def __init__(self, bundle: Bundle, columns: FilterColumns, similar: SimilarItems, embedder: ItemEmbedder):
        self.bundle = bundle
        self.columns = columns
        self.similar = similar
        self.embedder = embedder

    @property
    def default_mode(self) -> SearchMode:
        """``both`` where the bundle has a joint text-image space, ``text`` elsewhere."""
        return "both" if self.bundle.joint is not None else "text"

    def text(self, query: str | np.ndarray, k: int, filters: ItemFilter | None, mode: SearchMode | None,
             changes: ItemChanges) -> list[Scored]:
        """The best ``k`` items for a text (or its unit vector in the bundle's text space); see
        :meth:`recsys.serve.Recommender.search`."""
        mode = mode or self.default_mode
        if mode not in SEARCH_MODES:
            raise InvalidRequest(f"mode must be one of {', '.join(SEARCH_MODES)} (got {mode!r})")
        if isinstance(query, str):
            if not query.strip():
                raise InvalidRequest("the query text is empty: give the words to search for")
            query = self.embedder.embed_query(query)
        vector = np.asarray(query, np.float32)
        if mode != "text":
            return self.find(vector, k, mode, filters, changes)
        if "text" not in self.bundle.vectors.blocks:
            raise InvalidRequest(f"bundle {self.bundle.version} has no text modality to search")
        return self.similar.nearest({"text": vector}, {"text": 1.0}, k, filters, changes)

    def photo_query(self, photo) -> dict[str, np.ndarray]:
        """A query photo (a PIL image, a local path, or its unit vector in the image space) as the
        per-modality query of :meth:`photo`.

        Raises:
            InvalidRequest: the bundle has no image modality, or a path is not a photo.
        """
        if "image" not in self.bundle.vectors.blocks:
            raise InvalidRequest(f"bundle {self.bundle.version} has no image modality to compare photos with")
        vector = photo if isinstance(photo, np.ndarray) else self.embedder.embed_photos([photo])[0]
        return {"image": np.asarray(vector, np.float32)}

    def photo(self, query: dict[str, np.ndarray], k: int, filters: ItemFilter | None,
              changes: ItemChanges) -> list[Scored]:
        """The ``k`` items whose photos look most like the query photo (:meth:`photo_query`)."""
        return self.similar.nearest(query, {"image": 1.0}, k, filters, changes)

    @cached_property
    def photos(self) -> TowerOutput | None:
        """The bundle items' photos in the joint space (placed once, shared by every query)."""
        image = self.bundle.vectors.blocks.get("image")
        if image is None or self.bundle.joint is None:
            return None
        return self.bundle.joint.place_photos(image)

    def find(self, vector: np.ndarray, k: int, mode: SearchMode, filters: ItemFilter | None,
             changes: ItemChanges) -> list[Scored]:
        """The ``k`` best items (bundle items and items put since) for a text query's unit
        ``vector`` in the bundle's text space, against their photos (``image``) or both."""
        joint = self.bundle.joint
        if joint is None:
            raise InvalidRequest(f"bundle {self.bundle.version} has no joint text-image space to search photos "
                                 "with (it is learned at build from items with both a photo and text)")
        query = np.asarray(vector, np.float32)[None]
        text = self.bundle.vectors.blocks.get("text") if mode == "both" else None
        scores = text_query_scores(query, text, self.photos, joint)[:, 0]
        scores[~(self.columns.allowed(filters, known_elsewhere=changes.ids) & ~changes.hidden)] = -np.inf
        found = _best(scores, k, self.bundle.item_ids.ids)
        if len(changes):
            blocks = changes.vectors.blocks
            put_photos = joint.place_photos(blocks["image"]) if "image" in blocks else None
            put = text_query_scores(query, blocks.get("text") if mode == "both" else None, put_photos, joint)[:, 0]
            kept = np.zeros(len(changes), bool)
            kept[changes.matching(filters, self.bundle.item_ids)] = True
            put[~kept] = -np.inf
            found = sorted([*found, *_best(put, k, changes.ids.ids)], key=lambda s: -s.score)[:k]
        return found


def _best(scores: np.ndarray, k: int, ids) -> list[Scored]:
    if not len(scores):
        return []
    rows, best = top_k_rows(scores[None], k)
    return [Scored(str(ids[r]), float(s)) for r, s in zip(rows[0], best[0]) if r >= 0]
