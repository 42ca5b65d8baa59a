"""Outliers and mislabels: a score for every item with the reasons behind it.

Four signals, each measured where the item has what it needs:

* **uniqueness**: one minus the mean cosine to its nearest items (combined vectors). A listing
  unlike anything else in the shop is rare, new, or wrong.
* **off-category**: in image space, how much closer the photo is to another category's centroid
  than to its own (its own computed without it). A photo that looks like another category is a
  wrong photo or a wrong category; that category is the suggestion.
* **image-text disagreement**: one minus the cosine between the item's text vector and the mean
  text vector of its nearest items by image. The image and text blocks live in different spaces,
  so the photo speaks through the texts of the items it looks like.
* **image quality** (from the bundle's thumbnails): blank or nearly uniform, too dark, too
  bright, too little detail, or noise.

The embedding signals become robust z-scores (spreads above the catalog's median, the spread being
1.4826 times the median absolute deviation) so that they share one scale; a signal is a reason
when it reaches ``REASON_Z``. A quality problem is a fact about the pixels, not a comparison with
the catalog: its severity (0 to 1) ramps between two fixed values of a pixel statistic, set from
the spread of those statistics on real catalog photos, and it is a reason from severity 0.5. An
item's score is its largest embedding z-score plus ``QUALITY_Z`` times its worst severity, so a
broken photo ranks above any listing that is merely unusual. ``benchmarks/quality_curation.py``
measures the scores against injected faults.
"""
from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp
from PIL import Image, ImageFilter
from tqdm.auto import tqdm

from recsys.bundle import Bundle, Thumbnails
from recsys.curation.subset import item_vectors
from recsys.data import schema as S
from recsys.errors import InvalidRequest
from recsys.index.exact import nearest

__all__ = ["Outliers", "find_outliers", "image_quality", "photo_stats", "quality_problems", "robust_scale",
           "REASON_Z", "QUALITY_Z", "QUALITY_STATS", "SIGNAL_LABELS"]

REASON_Z = 3.0
QUALITY_Z = 10.0
NEIGHBOURS = 10
_QUALITY_SIDE = 64
_BLOCK = 1 << 14

# quality: (reason, [(column, severity 0 at the first value, 1 at the second), ...]); a reason's
# severity is the least of its ramps. On 5,000 fashion-products photos the 0.1% and 99.9%
# quantiles are: contrast 0.021 / 0.43, brightness 0.48 / 0.995, detail 0.0034 / 0.095, noise
# 0.11 / 0.63; random pixels give detail 0.19 and noise 0.76.
_QUALITY = (
    ("blank or nearly uniform photo", [("contrast", 0.03, 0.01)]),
    ("photo too dark", [("brightness", 0.25, 0.1)]),
    ("photo too bright", [("brightness", 0.985, 0.998)]),
    ("too little detail", [("detail", 0.004, 0.001)]),
    ("photo is noise", [("noise", 0.6, 0.7), ("detail", 0.1, 0.15)]),
)
_REASON_SEVERITY = 0.5
QUALITY_STATS = ("contrast", "brightness", "detail", "noise")
SIGNAL_LABELS = {"uniqueness": "unlike any other item", "off_category": "photo looks like another category",
                 "image_text": "photo and text disagree"}


@dataclass(frozen=True)
class Outliers:
    """Attributes:
        version: the bundle version.
        items: one row per item, highest score first: ``item_id``, ``score``, ``reasons`` (list of
            str), ``suggested_category`` (None unless the photo looks like another category), and
            each signal's raw value (``uniqueness``, ``off_category``, ``image_text``,
            ``contrast``, ``brightness``, ``detail``, ``noise``; NaN where not measured), the
            robust z of each of the first three (``uniqueness_z``...; 0 where not measured), and
            the photo's ``quality_severity`` (0 to 1) and ``quality_problems`` (list of str).
    """

    version: str
    items: pd.DataFrame

    def top(self, n: int) -> pd.DataFrame:
        """The ``n`` highest-scoring items (every item for ``n == 0``)."""
        return self.items if n == 0 else self.items.head(n)


def image_quality(thumbnails: Thumbnails, n: int, show_progress: bool = False) -> pd.DataFrame:
    """Per row, from its thumbnail shrunk to 64 px: ``contrast`` (the standard deviation of the
    grey levels, 0 to 1), ``brightness`` (their mean), ``detail`` (the mean absolute difference
    between neighbouring pixels) and ``noise`` (the share of that difference a 3 x 3 median filter
    removes: near 0 for a photo, near 1 for random pixels); NaN where the item has no thumbnail."""
    out = np.full((n, 4), np.nan, np.float32)
    for row in tqdm(range(n), desc="image quality", unit="img", disable=not show_progress):
        data = thumbnails.get(row)
        if data is not None:
            out[row] = photo_stats(data)
    return pd.DataFrame(out, columns=list(QUALITY_STATS))


def photo_stats(data: bytes) -> tuple[float, float, float, float]:
    """One photo's :data:`QUALITY_STATS` (see :func:`image_quality`)."""
    with Image.open(io.BytesIO(data)) as image:
        image.draft("L", (_QUALITY_SIDE, _QUALITY_SIDE))
        grey = image.convert("L")
        grey.thumbnail((_QUALITY_SIDE, _QUALITY_SIDE), Image.Resampling.BOX)
        smooth = np.asarray(grey.filter(ImageFilter.MedianFilter(3)), np.float32) / 255.0
        pixels = np.asarray(grey, np.float32) / 255.0
    detail, kept = _detail(pixels), _detail(smooth)
    noise = 1.0 - kept / detail if detail > 1e-6 else 0.0
    return float(pixels.std()), float(pixels.mean()), float(detail), float(noise)


def _detail(pixels: np.ndarray) -> float:
    """The mean absolute difference between neighbouring pixels (0 for a photo of one pixel's width)."""
    if min(pixels.shape) < 2:
        return 0.0
    return float(np.abs(np.diff(pixels, axis=0)).mean() + np.abs(np.diff(pixels, axis=1)).mean()) / 2


def quality_problems(stats: pd.DataFrame) -> tuple[np.ndarray, list[list[str]]]:
    """Per row of :data:`QUALITY_STATS` (NaN where unmeasured): the worst problem's severity (0 to
    1), and the problems severe enough to be reasons."""
    n = len(stats)
    worst = np.zeros(n, np.float64)
    reasons: list[list[str]] = [[] for _ in range(n)]
    for label, ramps in _QUALITY:
        severity = np.ones(n, np.float64)
        for column, fine, bad in ramps:
            values = stats[column].to_numpy(np.float64)
            np.minimum(severity, np.clip(np.nan_to_num((values - fine) / (bad - fine), nan=0.0), 0.0, 1.0),
                       out=severity)
        np.maximum(worst, severity, out=worst)
        for row in np.flatnonzero(severity >= _REASON_SEVERITY):
            reasons[row].append(label)
    return worst, reasons


def robust_scale(values: np.ndarray) -> tuple[float, float]:
    """``(median, spread)`` of the finite values, the spread 1.4826 times their median absolute
    deviation (their standard deviation, or 1, where that is 0): the z-score's scale."""
    known = values[np.isfinite(values)]
    if len(known) < 2:
        return 0.0, float("inf")
    median = float(np.median(known))
    return median, 1.4826 * float(np.median(np.abs(known - median))) or float(known.std()) or 1.0


def _robust_z(values: np.ndarray) -> np.ndarray:
    median, spread = robust_scale(values)
    return (values - median) / spread


def _neighbours(bundle: Bundle, name: str, show_progress: bool) -> tuple[np.ndarray, np.ndarray]:
    """Each item's ``NEIGHBOURS`` nearest rows by ``name`` (combined or a modality) and their
    cosines, from the bundle's lists where it has them; rows ``-1`` padded."""
    lists = bundle.similar.get(name)
    if lists is not None and lists.k >= NEIGHBOURS:
        return lists.rows[:, :NEIGHBOURS], lists.scores[:, :NEIGHBOURS]
    vectors, mask = item_vectors(bundle, name)
    return nearest(vectors, mask, NEIGHBOURS, desc=f"{name} neighbours", show_progress=show_progress,
                   only_with=True)


def _uniqueness(bundle: Bundle, show_progress: bool) -> np.ndarray:
    """One minus the mean cosine to the item's nearest items (NaN for an item without vectors)."""
    rows, cosines = _neighbours(bundle, "combined", show_progress)
    listed = rows >= 0
    mean = (cosines * listed).sum(axis=1) / np.maximum(listed.sum(axis=1), 1)
    return np.where(bundle.vectors.mask & listed.any(axis=1), 1.0 - mean, np.nan).astype(np.float32)


def _image_text(bundle: Bundle, show_progress: bool) -> np.ndarray:
    """One minus the cosine between the item's text vector and the normalised mean text vector of
    its nearest items by image (those with text); NaN where the item lacks a photo or text."""
    image, text = bundle.vectors.blocks["image"], bundle.vectors.blocks["text"]
    vectors = np.asarray(text.vectors, np.float32)
    rows, _ = _neighbours(bundle, "image", show_progress)
    out = np.full(len(rows), np.nan, np.float32)
    for start in range(0, len(rows), _BLOCK):
        part = rows[start:start + _BLOCK]
        valid = (part >= 0) & text.mask[np.maximum(part, 0)]
        mean = (vectors[np.maximum(part, 0)] * valid[..., None]).sum(axis=1)
        norms = np.linalg.norm(mean, axis=1)
        cos = np.einsum("ij,ij->i", vectors[start:start + len(part)], mean) / np.maximum(norms, 1e-12)
        ok = (text.mask & image.mask)[start:start + len(part)] & (norms > 0)
        out[start:start + len(part)][ok] = 1.0 - cos[ok]
    return out


def image_categories(bundle: Bundle) -> tuple[pd.Index, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The photos per category: ``(names, each item's category code, usable: the items with a
    photo and a category, each category's sum of its usable items' image vectors, their counts)``."""
    block = bundle.vectors.blocks["image"]
    values = bundle.items[S.CATEGORY].fillna("").astype(str).to_numpy()
    codes, names = pd.factorize(values)
    usable = block.mask & (values != "")
    rows = np.flatnonzero(usable)
    members = sp.csr_matrix((np.ones(len(rows)), (codes[rows], rows)), shape=(len(names), len(values)))
    sums = np.asarray(members @ np.asarray(block.vectors, np.float32), np.float64)
    return pd.Index(names), codes, usable, sums, np.bincount(codes[rows], minlength=len(names))


def off_category_margins(bundle: Bundle, categories=None) -> tuple[np.ndarray, np.ndarray]:
    """(margin, suggestion): per item with a photo and a category, the best other category
    centroid's cosine minus its own (leave-one-out) centroid's, and the name of that other
    category (NaN and None where not measured). ``categories``: :func:`image_categories` of the
    bundle, when the caller has them."""
    n = len(bundle.item_ids)
    margin, best = np.full(n, np.nan, np.float32), np.full(n, -1, np.int64)
    unmeasured = np.full(n, None, object)
    names, codes, usable, sums, counts = categories or image_categories(bundle)
    if len(names) < 2 or not usable.any():
        return margin, unmeasured
    vectors = np.asarray(bundle.vectors.blocks["image"].vectors, np.float32)
    centroids = sums / np.maximum(np.linalg.norm(sums, axis=1, keepdims=True), 1e-12)
    rows = np.flatnonzero(usable)
    for start in range(0, len(rows), _BLOCK):
        part = rows[start:start + _BLOCK]
        cos = vectors[part] @ centroids.T.astype(np.float32)
        own_sum = sums[codes[part]] - vectors[part]
        own_norm = np.linalg.norm(own_sum, axis=1)
        own = np.einsum("ij,ij->i", vectors[part], own_sum) / np.maximum(own_norm, 1e-12)
        cos[np.arange(len(part)), codes[part]] = -np.inf
        cos[:, counts == 0] = -np.inf
        other = cos.argmax(axis=1)
        alone = counts[codes[part]] < 2  # a category of one has no centroid without the item
        margin[part[~alone]] = (cos[np.arange(len(part)), other] - own)[~alone]
        best[part[~alone]] = other[~alone]
    return margin, np.where(best >= 0, np.asarray(names, object)[np.maximum(best, 0)], unmeasured)


def find_outliers(bundle: Bundle, *, show_progress: bool = False) -> Outliers:
    """Score every item of a bundle (see the module docstring).

    Raises:
        InvalidRequest: the bundle has no item with a vector.
    """
    n = len(bundle.item_ids)
    if not bundle.vectors.mask.any():
        raise InvalidRequest(f"bundle {bundle.version} has no item vectors to score")
    signals = pd.DataFrame({"uniqueness": _uniqueness(bundle, show_progress)})
    suggested = np.full(n, None, object)
    signals["off_category"] = np.nan
    signals["image_text"] = np.nan
    if "image" in bundle.vectors.blocks:
        if S.CATEGORY in bundle.items.columns:
            signals["off_category"], suggested = off_category_margins(bundle)
        if "text" in bundle.vectors.blocks:
            signals["image_text"] = _image_text(bundle, show_progress)
    quality = (image_quality(bundle.thumbnails, n, show_progress) if bundle.thumbnails is not None
               else pd.DataFrame(np.nan, index=range(n), columns=list(QUALITY_STATS)))
    signals = pd.concat([signals, quality], axis=1)

    unusual = np.zeros(n, np.float64)
    reasons: list[list[str]] = [[] for _ in range(n)]
    suggested = np.where(signals["off_category"].to_numpy() > 0, suggested, None)
    for column, label in SIGNAL_LABELS.items():
        z = np.nan_to_num(_robust_z(signals[column].to_numpy(np.float64)), nan=0.0)
        signals[f"{column}_z"] = z
        np.maximum(unusual, z, out=unusual)
        for row in np.flatnonzero(z >= REASON_Z):
            like = f": {suggested[row]}" if column == "off_category" and suggested[row] else ""
            reasons[row].append(f"{label}{like} (z {z[row]:.1f})")
    worst, problems = quality_problems(signals[list(QUALITY_STATS)])
    signals["quality_severity"], signals["quality_problems"] = worst, pd.Series(problems, dtype=object)
    for row, found in enumerate(problems):
        reasons[row].extend(found)
    scores = (np.maximum(unusual, 0.0) + QUALITY_Z * worst).astype(np.float32)
    table = pd.DataFrame({S.ITEM_ID: [str(i) for i in bundle.item_ids.ids], "score": scores.round(3),
                          "reasons": reasons})
    table["suggested_category"] = pd.Series(list(suggested), dtype=object)  # None, never NaN, for JSON
    table = pd.concat([table, signals], axis=1)
    table = table.sort_values(["score", S.ITEM_ID], ascending=[False, True], kind="stable").reset_index(drop=True)
    return Outliers(bundle.version, table)
