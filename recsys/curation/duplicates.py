"""Duplicate listings: the same photo uploaded again, as it was or re-encoded, resized, slightly
cropped, rotated or brightened, kept apart from true variants (the same style in another colour).

Two descriptors see a photo, because each misses what the other sees:

* the image block (the backbone's features with the colour histogram) shrugs off crops and
  rotations, but it is made to find *similar* products, so two white sneakers score alike;
* a pixel descriptor, the thumbnail shrunk to 16 x 16 colour pixels, centred and normalised, tells
  apart two products photographed alike and shrugs off re-encoding, resizing and brightness, but
  not crops or rotations.

A pair of items is a duplicate when their photos decode to the same thumbnail (an exact copy), or
when either descriptor passes its threshold **and** the listings agree: their texts' cosine
reaches ``text_threshold`` (where both have text), their colour attributes match (where both
have one), and the product's colour in the two photos (the mean CIELAB colour of the pixels that
stand out from the background, lightness at half weight) is within ``colour_threshold``: a
catalog that names two washes of the same jeans "blue" under one title still shows them apart
when their shades differ enough. Candidates are each item's nearest neighbours by image and by
text (the bundle's precomputed lists, no ``n x n`` matrix).

The same product from a **second seller** comes with other words and another photo, so it passes
neither test. ``sellers=True`` (a read for review, never the build's groups that hide listings)
also accepts a pair of listings that are each other's best match: no other candidate of either
item scores a higher sum of image and text cosines among those whose colour attributes agree,
and the two cosines reach ``SELLER_IMAGE_THRESHOLD`` and ``SELLER_TEXT_THRESHOLD``. A look-alike
from the same studio is often as close as a second seller's photo; being each other's best match
is what keeps most of them out (``benchmarks/quality_cross_seller.py``, docs/curation.md).

Groups are stars, not connected components: the item with the most (and closest) duplicates
leads a group of its own duplicates, then the next item not yet grouped, and so on. Every item of
a group is a duplicate of its first item. Connected components chain look-alikes instead: a
catalog with forty different striped shirts under the same title, each photographed alike, would
become one group of forty though no shirt is a copy of the last.
``benchmarks/quality_curation.py`` calibrates the thresholds on real photos with injected copies;
a build then measures the image threshold for its own backbone (:mod:`recsys.curation.calibration`).
"""
from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp
from PIL import Image
from tqdm.auto import tqdm

from recsys.bundle import Bundle, Thumbnails
from recsys.data import schema as S
from recsys.data.ids import IdMap
from recsys.errors import InvalidRequest
from recsys.index.exact import nearest
from recsys.towers._colour import rgb_to_lab

__all__ = ["Duplicates", "find_duplicates", "candidate_pairs", "pair_cosines", "image_threshold", "duplicate_rows",
           "pixel_descriptors", "pixel_descriptor", "duplicate_rule", "colour_names", "colour_distances",
           "best_partners", "seller_rule", "IMAGE_THRESHOLD", "PIXEL_THRESHOLD", "TEXT_THRESHOLD",
           "COLOUR_THRESHOLD", "SELLER_IMAGE_THRESHOLD", "SELLER_TEXT_THRESHOLD"]

IMAGE_THRESHOLD = 0.90
PIXEL_THRESHOLD = 0.97
TEXT_THRESHOLD = 0.95
COLOUR_THRESHOLD = 10.0
# chosen on the validation half of benchmarks/quality_cross_seller.py's second-seller listings
SELLER_IMAGE_THRESHOLD = 0.75
SELLER_TEXT_THRESHOLD = 0.75
PIXEL_SIDE = 16
_CANDIDATES = 50  # neighbours per item when the bundle has no precomputed image lists
_TEXT_CANDIDATES = 20  # nearest by text per item, besides the image neighbours
_PAIR_VALUES = 1 << 24  # floats gathered per side of a block of pairs: 64 MB, whatever the dimension


@dataclass(frozen=True)
class Duplicates:
    """Duplicate groups of one bundle.

    Attributes:
        version: the bundle version.
        threshold: the image-block threshold used (the pixel and text ones are in ``settings``).
        settings: every threshold, by name.
        groups: lists of at least two item ids, the group whose closest pair is closest first;
            a group's first item has the most duplicates, and every other item is one of them,
            closest first.
        pairs: one row per duplicate pair: ``item_a``, ``item_b``, ``image``, ``pixels``, ``text``
            (cosines; NaN where an item lacks the modality) and ``exact``.
    """

    version: str
    threshold: float
    settings: dict
    groups: list[list[str]]
    pairs: pd.DataFrame

    def group_of(self) -> dict[str, int]:
        """Each grouped item's group number."""
        return {item: g for g, group in enumerate(self.groups) for item in group}

    def first_rows(self, item_ids: IdMap) -> np.ndarray:
        """Per row of ``item_ids``, the row of its group's first item (the one to keep; the first
        item's own row for itself), ``-1`` for an item in no group: what a bundle keeps
        (``duplicate_of``), so that serving and subsets show one listing per group."""
        out = np.full(len(item_ids), -1, np.int32)
        for group in self.groups:
            rows = item_ids.rows(group)
            out[rows] = rows[0]
        return out


def duplicate_rows(bundle: Bundle, show_progress: bool = False) -> np.ndarray | None:
    """The bundle's ``duplicate_of`` (kept at build), or found now for a bundle built without it;
    ``None`` for a bundle without photos."""
    if bundle.duplicate_of is not None:
        return bundle.duplicate_of
    if "image" not in bundle.vectors.blocks:
        return None
    return find_duplicates(bundle, show_progress=show_progress).first_rows(bundle.item_ids)


def pixel_descriptors(thumbnails: Thumbnails, rows: np.ndarray, side: int = PIXEL_SIDE,
                      show_progress: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Two descriptors of each row's thumbnail, from one decode:

    * ``side x side`` RGB pixels, mean removed, unit length (which cancels a change of brightness);
    * the CIELAB colour of the product: the mean of the pixels that differ from the background (the
      median colour of the border), or of every pixel when few do.

    Returns ``(vectors, mask, lab)``; mask False (and lab NaN) where the item has no thumbnail or it
    is one flat colour."""
    out = np.zeros((len(rows), side * side * 3), np.float32)
    lab = np.full((len(rows), 3), np.nan, np.float32)
    for k, row in enumerate(tqdm(rows, desc="pixel descriptors", unit="img", disable=not show_progress)):
        data = thumbnails.get(int(row))
        if data is not None:
            out[k], lab[k] = pixel_descriptor(data, side)
    return out, np.linalg.norm(out, axis=1) > 0, lab


def pixel_descriptor(data: bytes, side: int = PIXEL_SIDE) -> tuple[np.ndarray, np.ndarray]:
    """One photo's two descriptors (:func:`pixel_descriptors`): zeros and NaN for a flat photo."""
    with Image.open(io.BytesIO(data)) as image:
        image.draft("RGB", (side * 2, side * 2))
        pixels = np.asarray(image.convert("RGB").resize((side, side), Image.Resampling.BOX), np.float32)
    v = pixels.ravel() - pixels.mean()
    norm = float(np.linalg.norm(v))
    if norm <= 1e-3 * v.size:
        return np.zeros_like(v), np.full(3, np.nan, np.float32)
    return v / norm, _product_colour(pixels)


def _product_colour(pixels: np.ndarray) -> np.ndarray:
    """The CIELAB colour of the pixels that stand out from the border's median colour."""
    border = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])
    background = np.median(border, axis=0)
    flat = pixels.reshape(-1, 3)
    product = flat[np.abs(flat - background).max(axis=1) > 24]
    mean = (product if len(product) >= 0.05 * len(flat) else flat).mean(axis=0)
    return rgb_to_lab(np.round(mean)).astype(np.float32)


def colour_distances(lab: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distance between the product colours of pairs: CIELAB with lightness counted at half weight,
    since a re-upload may be brighter or darker while a variant changes hue or shade; NaN where
    either is unknown."""
    d = lab[a] - lab[b]
    return np.sqrt((d[:, 0] / 2) ** 2 + d[:, 1] ** 2 + d[:, 2] ** 2)


def _exact_pairs(thumbnails: Thumbnails | None, n: int) -> set[tuple[int, int]]:
    """Pairs of rows whose thumbnails are byte for byte the same: the same decoded pixels, since
    the thumbnail is re-encoded from the pixels with fixed settings. Each set of identical
    thumbnails gives the pairs of its first row with each other one (a placeholder photo shared by
    thousands of items gives thousands of pairs, not millions)."""
    if thumbnails is None:
        return set()
    by_hash: dict[bytes, list[int]] = {}
    for row in range(n):
        data = thumbnails.get(row)
        if data is not None:
            by_hash.setdefault(hashlib.sha256(data).digest(), []).append(row)
    return {(rows[0], other) for rows in by_hash.values() for other in rows[1:]}


def candidate_pairs(bundle: Bundle, show_progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Unique pairs ``(a < b)`` of items among each other's nearest by image, or among the
    ``_TEXT_CANDIDATES`` nearest by text: a backbone that scores every pair of photos alike (a
    randomly initialised one) orders image neighbours by noise, and the same listing text still
    brings a re-upload next to its source."""
    n = len(bundle.item_ids)
    keys = []
    for modality, k in (("image", _CANDIDATES), ("text", _TEXT_CANDIDATES)):
        block = bundle.vectors.blocks.get(modality)
        if block is None:
            continue
        lists = bundle.similar.get(modality)
        if lists is not None:
            rows = lists.rows if modality == "image" else lists.rows[:, :k]
        else:
            rows, _ = nearest(block.vectors, block.mask, k, desc=f"{modality} neighbours",
                              show_progress=show_progress, only_with=True)
        a = np.repeat(np.arange(n, dtype=np.int64), rows.shape[1])
        b = rows.ravel().astype(np.int64)
        keep = b >= 0
        a, b = a[keep], b[keep]
        # one int64 key per pair: unique keys are one sort, where unique rows of pairs take several
        # times the memory (gigabytes at a million items)
        keys.append(np.minimum(a, b) * n + np.maximum(a, b))
    keys = np.unique(np.concatenate(keys))
    return keys // n, keys % n


def pair_cosines(matrix: np.ndarray, mask: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosines of pairs, in blocks; NaN where either row has no vector."""
    out = np.full(len(a), np.nan, np.float32)
    block = max(1024, _PAIR_VALUES // matrix.shape[1])
    for start in range(0, len(a), block):
        i, j = a[start:start + block], b[start:start + block]
        out[start:start + len(i)] = np.einsum("ij,ij->i", matrix[i], matrix[j])
    out[~(mask[a] & mask[b])] = np.nan
    return out


def image_threshold(bundle: Bundle) -> float:
    """The image threshold of the bundle's duplicates: the one its build calibrated for its image
    backbone (:mod:`recsys.curation.calibration`), else :data:`IMAGE_THRESHOLD`."""
    return float(bundle.manifest.get("duplicates", {}).get("threshold", IMAGE_THRESHOLD))


def find_duplicates(bundle: Bundle, *, threshold: float | None = None,
                    pixel_threshold: float = PIXEL_THRESHOLD, text_threshold: float = TEXT_THRESHOLD,
                    colour_threshold: float = COLOUR_THRESHOLD, sellers: bool = False,
                    show_progress: bool = False) -> Duplicates:
    """Duplicate groups of a bundle's items (see the module docstring for the rule); ``threshold``
    (the image cosine) defaults to the bundle's own (:func:`image_threshold`); ``sellers`` adds
    the listings of the same product by another seller (:func:`seller_rule`).

    Raises:
        InvalidRequest: the bundle has no image modality, or a threshold is outside [0, 1].
    """
    threshold = image_threshold(bundle) if threshold is None else threshold
    for name, value in (("threshold", threshold), ("pixel_threshold", pixel_threshold),
                        ("text_threshold", text_threshold)):
        if not 0.0 <= value <= 1.0:
            raise InvalidRequest(f"{name} must be between 0 and 1 (got {value!r})")
    if not colour_threshold >= 0.0:
        raise InvalidRequest(f"colour_threshold must be 0 or more (got {colour_threshold!r})")
    if "image" not in bundle.vectors.blocks:
        raise InvalidRequest(f"bundle {bundle.version} has no image modality to find duplicates by")
    n = len(bundle.item_ids)
    a, b = candidate_pairs(bundle, show_progress)
    image = pair_cosines(bundle.vectors.blocks["image"].vectors, bundle.vectors.blocks["image"].mask, a, b)
    text_block = bundle.vectors.blocks.get("text")
    text = (pair_cosines(text_block.vectors, text_block.mask, a, b) if text_block is not None
            else np.full(len(a), np.nan, np.float32))
    pixels = np.full(len(a), np.nan, np.float32)
    colours = np.full(len(a), np.nan, np.float32)
    if bundle.thumbnails is not None:
        involved = np.unique(np.concatenate([a, b]))
        desc, ok, lab = pixel_descriptors(bundle.thumbnails, involved, show_progress=show_progress)
        full = np.zeros((n, desc.shape[1]), np.float32)
        full_ok = np.zeros(n, bool)
        full_lab = np.full((n, 3), np.nan, np.float32)
        full[involved], full_ok[involved], full_lab[involved] = desc, ok, lab
        pixels = pair_cosines(full, full_ok, a, b)
        colours = colour_distances(full_lab, a, b)
    colour = (colour_names(bundle.items) if S.COLOUR in bundle.items.columns
              else np.full(n, "", object))
    exact = _exact_pairs(bundle.thumbnails, n)
    is_exact = np.array([(x, y) in exact for x, y in zip(a.tolist(), b.tolist())], dtype=bool)
    accepted = is_exact | duplicate_rule(image, pixels, text, colour[a], colour[b], colours, threshold=threshold,
                                         pixel_threshold=pixel_threshold, text_threshold=text_threshold,
                                         colour_threshold=colour_threshold)
    if sellers:
        accepted |= seller_rule(a, b, image, text, colour[a], colour[b], n)
    extra = sorted(exact - set(zip(a[is_exact].tolist(), b[is_exact].tolist())))  # exact copies not listed
    ids = bundle.item_ids.ids
    pairs = pd.DataFrame({
        "a": np.concatenate([a[accepted], np.array([p[0] for p in extra], np.int64)]),
        "b": np.concatenate([b[accepted], np.array([p[1] for p in extra], np.int64)]),
        "image": np.concatenate([image[accepted], np.full(len(extra), 1.0, np.float32)]),
        "pixels": np.concatenate([pixels[accepted], np.full(len(extra), 1.0, np.float32)]),
        "text": np.concatenate([text[accepted], np.full(len(extra), np.nan, np.float32)]),
        "exact": np.concatenate([is_exact[accepted], np.ones(len(extra), bool)]),
    })
    groups = _groups(pairs, n, ids)
    pairs.insert(0, "item_a", [str(ids[i]) for i in pairs.pop("a")])
    pairs.insert(1, "item_b", [str(ids[i]) for i in pairs.pop("b")])
    settings = {"threshold": threshold, "pixel_threshold": pixel_threshold, "text_threshold": text_threshold,
                "colour_threshold": colour_threshold, "sellers": sellers}
    if sellers:
        settings |= {"seller_image_threshold": SELLER_IMAGE_THRESHOLD, "seller_text_threshold": SELLER_TEXT_THRESHOLD}
    return Duplicates(bundle.version, threshold, settings, groups, pairs)


def colour_names(items: pd.DataFrame) -> np.ndarray:
    """The catalog's colour attribute per row, as compared: stripped, lower case, ``""`` unknown."""
    return items[S.COLOUR].fillna("").astype(str).str.strip().str.lower().to_numpy()


def duplicate_rule(image: np.ndarray, pixels: np.ndarray, text: np.ndarray, colour_a: np.ndarray,
                   colour_b: np.ndarray, colours: np.ndarray, *, threshold: float = IMAGE_THRESHOLD,
                   pixel_threshold: float = PIXEL_THRESHOLD, text_threshold: float = TEXT_THRESHOLD,
                   colour_threshold: float = COLOUR_THRESHOLD) -> np.ndarray:
    """Which pairs are duplicates by their photos and listings (the rule of the module docstring,
    exact copies aside): per pair, the image, pixel and text cosines (NaN where unmeasured), the
    two colour attributes (``""`` unknown) and the distance of the products' colours in the
    photos (NaN unknown)."""
    agree = np.isnan(text) | (text >= text_threshold)
    agree &= (colour_a == "") | (colour_b == "") | (colour_a == colour_b)
    agree &= np.isnan(colours) | (colours <= colour_threshold)  # the product's own colour in the photos
    looks = (np.nan_to_num(image, nan=-1) >= threshold) | (np.nan_to_num(pixels, nan=-1) >= pixel_threshold)
    return looks & agree


def seller_rule(a: np.ndarray, b: np.ndarray, image: np.ndarray, text: np.ndarray, colour_a: np.ndarray,
                colour_b: np.ndarray, n: int, *, image_threshold: float = SELLER_IMAGE_THRESHOLD,
                text_threshold: float = SELLER_TEXT_THRESHOLD) -> np.ndarray:
    """Which candidate pairs ``(a, b)`` of ``n`` items are the same product from two sellers: their
    colour attributes agree, they are each other's best match by the sum of their image and text
    cosines (:func:`best_partners`, among the pairs whose colours agree), and each cosine reaches
    its threshold. A pair without text or without photos is never one: it needs both to be scored."""
    agree = (colour_a == "") | (colour_b == "") | (colour_a == colour_b)
    image, text = np.nan_to_num(image, nan=-1.0), np.nan_to_num(text, nan=-1.0)
    score = np.where(agree, image + text, -np.inf)
    return agree & best_partners(a, b, score, n) & (image >= image_threshold) & (text >= text_threshold)


def best_partners(a: np.ndarray, b: np.ndarray, score: np.ndarray, n: int) -> np.ndarray:
    """Which pairs ``(a, b)`` of ``n`` items are each other's best: no other pair of ``a`` or of
    ``b`` scores higher (ties keep both)."""
    best = np.full(n, -np.inf)
    np.maximum.at(best, a, score)
    np.maximum.at(best, b, score)
    return np.isfinite(score) & (score >= best[a]) & (score >= best[b])


def _groups(pairs: pd.DataFrame, n: int, ids) -> list[list[str]]:
    """Star groups of the duplicate pairs, ordered as :class:`Duplicates` says."""
    if not len(pairs):
        return []
    a, b = pairs["a"].to_numpy(), pairs["b"].to_numpy()
    strength = np.fmax(pairs["image"].to_numpy(), pairs["pixels"].to_numpy())
    strength = np.nan_to_num(strength, nan=0.0) + pairs["exact"].to_numpy()  # exact copies first
    graph = sp.coo_matrix((strength, (a, b)), shape=(n, n)).tocsr()
    graph = (graph + graph.T).tocsr()
    centrality = np.asarray(graph.sum(axis=1)).ravel()
    grouped = np.zeros(n, bool)
    groups = []
    for leader in sorted(np.unique(np.concatenate([a, b])).tolist(), key=lambda r: (-centrality[r], str(ids[r]))):
        if grouped[leader]:
            continue
        start, end = graph.indptr[leader], graph.indptr[leader + 1]
        partners = graph.indices[start:end][~grouped[graph.indices[start:end]]]
        if not len(partners):
            continue
        weights = graph.data[start:end][~grouped[graph.indices[start:end]]]
        order = np.lexsort(([str(ids[p]) for p in partners], -weights))
        members = [leader, *partners[order].tolist()]
        grouped[members] = True
        groups.append((-float(weights.max()), [str(ids[r]) for r in members]))
    groups.sort(key=lambda pair: (pair[0], pair[1][0]))
    return [group for _, group in groups]
