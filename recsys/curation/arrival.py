"""Checks of one item as it arrives (``PUT /v1/items/{id}``), against the items a worker serves:

* **duplicate**: the served items it is a duplicate listing of, by the rule of
  :mod:`recsys.curation.duplicates` (an exact copy of a photo, or a photo that passes the image
  or pixel threshold with listings that agree). The candidates are its nearest items by image
  and by text, in the bundle and among the items put since.
* **quality**: a blank, dark, bright, flat or noise photo (:func:`~recsys.curation.outliers.quality_problems`).
* **off_category**: a photo closer to another category's centroid than to its own category's,
  by as much as the catalog's own outliers are (a robust z-score of the margin over the
  bundle's items reaching ``REASON_Z``); that category is suggested.
* **image_text**: a text unlike the texts of the items its photo looks like, scored and scaled
  as :func:`~recsys.curation.outliers.find_outliers` does.

:class:`ArrivalChecks` describes the bundle once (category centroids, the spreads of the two
scores over the catalog); :meth:`ArrivalChecks.check` costs one product of the new item's vectors
with the served ones and the decoding of a few dozen thumbnails.
"""
from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from recsys.bundle import Bundle
from recsys.curation import outliers
from recsys.curation.duplicates import (
    TEXT_THRESHOLD,
    colour_distances,
    colour_names,
    duplicate_rule,
    image_threshold,
    pixel_descriptor,
)
from recsys.curation.outliers import NEIGHBOURS, REASON_Z, SIGNAL_LABELS
from recsys.data import schema as S

__all__ = ["ArrivalChecks", "Served", "CHECKS", "CANDIDATES"]

CHECKS = ("duplicate", "quality", "off_category", "image_text")
CANDIDATES = 20  # nearest items by image, and by text, whose photos are compared with the new one's
_SCALE_SAMPLE = 2000  # items whose image-text score sets its spread


@dataclass(frozen=True)
class Served:
    """Items an arriving one is compared with: the bundle's, or those put since.

    Attributes:
        ids: their ids.
        blocks: per modality, ``(vectors, mask)``: unit rows, False where an item lacks it.
        colours: their colour attributes as compared (:func:`~recsys.curation.duplicates.colour_names`).
        thumbnail: a row's JPEG thumbnail, or ``None``.
        usable: False for rows that are not served (deleted, replaced, or the item itself).
    """

    ids: np.ndarray
    blocks: dict[str, tuple[np.ndarray, np.ndarray]]
    colours: np.ndarray
    thumbnail: Callable[[int], bytes | None]
    usable: np.ndarray

    @classmethod
    def of(cls, ids: np.ndarray, blocks: dict, items: pd.DataFrame, thumbnail: Callable[[int], bytes | None],
           usable: np.ndarray) -> Served:
        """Items with their catalog rows ``items`` and their :class:`~recsys.towers.base.TowerOutput` blocks."""
        return cls(ids, {m: (b.vectors, b.mask) for m, b in blocks.items()},
                   colour_names(items) if S.COLOUR in items.columns else np.full(len(ids), "", object),
                   thumbnail, usable)

    @classmethod
    def of_bundle(cls, bundle: Bundle, usable: np.ndarray) -> Served:
        thumbnails = bundle.thumbnails
        return cls.of(bundle.item_ids.ids, bundle.vectors.blocks, bundle.items,
                      thumbnails.get if thumbnails is not None else (lambda row: None), usable)


class ArrivalChecks:
    """What arriving items are checked against, described once per bundle.

    Args:
        bundle: the served bundle.
        seed: picks the items whose image-text scores set that score's spread.
    """

    def __init__(self, bundle: Bundle, seed: int = 0):
        self.version = bundle.version
        self.image_threshold = image_threshold(bundle)
        blocks = bundle.vectors.blocks
        self.categories: pd.Index | None = None
        self.scales: dict[str, tuple[float, float]] = {}
        if "image" in blocks and S.CATEGORY in bundle.items.columns:
            categories = outliers.image_categories(bundle)
            margins, _ = outliers.off_category_margins(bundle, categories)
            self.scales["off_category"] = outliers.robust_scale(margins.astype(np.float64))
            self.categories, _, _, sums, self.counts = categories
            self.centroids = (sums / np.maximum(np.linalg.norm(sums, axis=1, keepdims=True), 1e-12)).astype(np.float32)
        if "image" in blocks and "text" in blocks:
            self.scales["image_text"] = outliers.robust_scale(_sampled_image_text(bundle, seed))

    def check(self, item: dict, vectors: dict[str, np.ndarray | None], thumbnail: bytes | None,
              served: list[Served]) -> dict[str, dict]:
        """Every check of one item, by name: ``{"flagged": bool, ...evidence}``.

        Args:
            item: its catalog fields (``category``, ``colour``, ...).
            vectors: its unit vector per modality, ``None`` where it has none.
            thumbnail: its JPEG thumbnail, as the bundle keeps them.
            served: the items to compare it with (the bundle's, then those put since).
        """
        nearest = {m: _nearest(vectors.get(m), m, served) for m in ("image", "text")}
        out = {"duplicate": self._duplicate(item, vectors, thumbnail, served, nearest)}
        if thumbnail is not None:
            stats = pd.DataFrame([outliers.photo_stats(thumbnail)], columns=list(outliers.QUALITY_STATS))
            severity, reasons = outliers.quality_problems(stats)
            out["quality"] = {"flagged": bool(reasons[0]), "reasons": reasons[0],
                              "severity": round(float(severity[0]), 3)}
        image = vectors.get("image")
        category = str(item.get(S.CATEGORY) or "")
        if image is not None and self.categories is not None and category in self.categories \
                and self.counts[self.categories.get_loc(category)] > 0:
            out["off_category"] = self._off_category(image, category)
        if image is not None and vectors.get("text") is not None and "image_text" in self.scales:
            out["image_text"] = self._image_text(vectors["text"], nearest["image"][:NEIGHBOURS], served)
        return out

    def _duplicate(self, item: dict, vectors: dict, thumbnail: bytes | None, served: list[Served],
                   nearest: dict[str, list[tuple[int, int, float]]]) -> dict:
        """The served items this one duplicates, closest first (``of``)."""
        pairs = dict.fromkeys((part, row) for m in ("image", "text") for part, row, _ in nearest[m][:CANDIDATES])
        if not pairs:
            return {"flagged": False, "of": []}
        own_hash = hashlib.sha256(thumbnail).digest() if thumbnail is not None else None
        colour = str(item.get(S.COLOUR) or "").strip().lower()
        rows = []
        for part, row in pairs:
            other = served[part]
            data = other.thumbnail(row)
            text = _cosine(vectors.get("text"), other, "text", row)
            # the photos are decoded only where the listings could agree (a duplicate needs both)
            agree = (np.isnan(text) or text >= TEXT_THRESHOLD) and (
                "" in (colour, other.colours[row]) or colour == other.colours[row])
            rows.append({
                "item_id": str(other.ids[row]), "image": _cosine(vectors.get("image"), other, "image", row),
                "text": text, "pixels": np.nan, "colour": other.colours[row], "lab": np.full(3, np.nan, np.float32),
                "exact": own_hash is not None and data is not None and hashlib.sha256(data).digest() == own_hash,
                "photo": data if agree else None})
        decode = [r for r in rows if r["photo"] is not None]
        if decode and thumbnail is not None:
            own_pixels, own_lab = pixel_descriptor(thumbnail)
            for r in decode:
                pixels, r["lab"] = pixel_descriptor(r["photo"])
                if own_pixels.any() and pixels.any():
                    r["pixels"] = float(own_pixels @ pixels)
        else:
            own_lab = np.full(3, np.nan, np.float32)
        table = pd.DataFrame(rows).drop(columns="photo")
        labs = np.vstack([own_lab, *table["lab"]])
        colours = colour_distances(labs, np.zeros(len(table), np.int64), np.arange(1, len(table) + 1))
        same = duplicate_rule(table["image"].to_numpy(np.float64), table["pixels"].to_numpy(np.float64),
                              table["text"].to_numpy(np.float64), np.full(len(table), colour, object),
                              table["colour"].to_numpy(object), colours, threshold=self.image_threshold)
        found = table[same | table["exact"].to_numpy(bool)]
        found = found.assign(strength=np.fmax(found["image"], found["pixels"]).fillna(0) + found["exact"])
        found = found.sort_values(["strength", "item_id"], ascending=[False, True], kind="stable")
        of = [{"item_id": r.item_id, "image": _rounded(r.image), "pixels": _rounded(r.pixels),
               "text": _rounded(r.text), "exact": bool(r.exact)} for r in found.itertuples()]
        return {"flagged": bool(of), "of": of}

    def _off_category(self, image: np.ndarray, category: str) -> dict:
        cosines = self.centroids @ image.astype(np.float32)
        own = self.categories.get_loc(category)
        cosines[own] = -np.inf
        cosines[self.counts == 0] = -np.inf
        other = int(cosines.argmax())
        margin = float(cosines[other] - self.centroids[own] @ image)
        z = _z(margin, self.scales["off_category"])
        flagged = z >= REASON_Z and margin > 0
        return {"flagged": bool(flagged), "z": round(z, 2),
                "suggested_category": str(self.categories[other]) if margin > 0 else None,
                "reason": f"{SIGNAL_LABELS['off_category']}: {self.categories[other]}" if flagged else None}

    def _image_text(self, text: np.ndarray, neighbours: list[tuple[int, int, float]], served: list[Served]) -> dict:
        texts = [served[part].blocks["text"] for part, _, _ in neighbours]
        rows = [texts[k][0][row] for k, (_, row, _) in enumerate(neighbours) if texts[k][1][row]]
        if not rows:
            return {"flagged": False, "z": None}
        mean = np.sum(rows, axis=0)
        value = 1.0 - float(text @ mean) / max(float(np.linalg.norm(mean)), 1e-12)
        z = _z(value, self.scales["image_text"])
        return {"flagged": bool(z >= REASON_Z), "z": round(z, 2),
                "reason": SIGNAL_LABELS["image_text"] if z >= REASON_Z else None}


def _nearest(vector: np.ndarray | None, modality: str, served: list[Served]) -> list[tuple[int, int, float]]:
    """The ``CANDIDATES`` served rows closest to ``vector`` by ``modality``: ``(part, row, cosine)``,
    closest first."""
    if vector is None:
        return []
    found = []
    for part, other in enumerate(served):
        if modality not in other.blocks or not len(other.ids):
            continue
        vectors, mask = other.blocks[modality]
        cosines = np.asarray(vectors, np.float32) @ vector.astype(np.float32)
        cosines[~(mask & other.usable)] = -np.inf
        top = np.argpartition(-cosines, min(CANDIDATES, len(cosines) - 1))[:CANDIDATES]
        found += [(part, int(r), float(cosines[r])) for r in top if np.isfinite(cosines[r])]
    return sorted(found, key=lambda x: -x[2])[:CANDIDATES]


def _cosine(vector: np.ndarray | None, other: Served, modality: str, row: int) -> float:
    if vector is None or modality not in other.blocks or not other.blocks[modality][1][row]:
        return np.nan
    return float(np.asarray(other.blocks[modality][0][row], np.float32) @ vector.astype(np.float32))


def _sampled_image_text(bundle: Bundle, seed: int) -> np.ndarray:
    """The image-text score (:func:`recsys.curation.outliers.find_outliers`) of a seeded sample of
    the bundle's items with both a photo and a text, against all its items."""
    image, text = bundle.vectors.blocks["image"], bundle.vectors.blocks["text"]
    both = np.flatnonzero(image.mask & text.mask)
    if len(both) < NEIGHBOURS + 2:
        return np.array([])
    rows = np.sort(np.random.default_rng(seed).choice(both, min(_SCALE_SAMPLE, len(both)), replace=False))
    images = np.asarray(image.vectors, np.float32)
    texts = np.asarray(text.vectors, np.float32)
    out = np.empty(len(rows))
    for start in range(0, len(rows), 256):
        part = rows[start:start + 256]
        cosines = images[part] @ images.T
        cosines[:, ~image.mask] = -np.inf
        cosines[np.arange(len(part)), part] = -np.inf
        top = np.argpartition(-cosines, NEIGHBOURS, axis=1)[:, :NEIGHBOURS]
        mean = (texts[top] * text.mask[top][..., None]).sum(axis=1)
        norms = np.maximum(np.linalg.norm(mean, axis=1), 1e-12)
        out[start:start + len(part)] = 1.0 - np.einsum("ij,ij->i", texts[part], mean) / norms
    return out


def _z(value: float, scale: tuple[float, float]) -> float:
    median, spread = scale
    return float((value - median) / spread)


def _rounded(value: float) -> float | None:
    return None if value is None or not np.isfinite(value) else round(float(value), 4)
