"""The duplicate finder's image threshold, measured at build on the catalog's own photos, so that
it follows the image backbone.

Every backbone spreads cosines its own way. EfficientNet-Lite0 puts two different products at a
median cosine of about 0.4 and most re-uploads above 0.9; a randomly initialised ResNet-50 puts
nearly every pair of photos above 0.9. A fixed image threshold is right for one backbone only.

At build, a seeded sample of the catalog's photos is copied with a random mild edit each, the kind
a re-upload makes (a rescale, a crop, a slight rotation or a brightness change, then JPEG
re-encoding), and the copies go through the same image tower. The image threshold is the cosine
that all but ``COPY_QUANTILE`` of the copies reach to their originals. The edits are drawn from ranges, not the
fixed transforms of :mod:`recsys.curation.faults`, so that the benchmark that injects those
(``benchmarks/quality_thresholds.py``) measures the threshold on copies it was not set from.

The calibration also records how many of the sampled items' nearest other items pass the
threshold: a backbone that cannot tell two products apart passes most of them, and the duplicate
rule then rests on its other checks (pixels, text, colour). The build warns when it does.
"""
from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageEnhance
from tqdm.auto import tqdm

from recsys.data.images import IMAGE_ERRORS, open_image

__all__ = ["calibrate_image_threshold", "copy_cosines", "augmented_copy", "COPY_QUANTILE", "MIN_PHOTOS", "CROWDED"]

# the share of self-augmented copies left below the threshold; chosen on a validation sample so
# that EfficientNet-Lite0 keeps the threshold quality_curation.py validated (0.90)
COPY_QUANTILE = 0.2
MIN_PHOTOS = 50  # fewer copies give too rough a quantile: the fixed threshold is kept
CROWDED = 0.5  # a share of nearest neighbours passing above this is warned about


def _rescaled(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    scale = float(rng.choice([-1, 1]) * rng.uniform(0.2, 0.5))
    scale = 1 + scale if scale < 0 else 1 / (1 - scale)  # 0.5-0.8 or 1.25-2 times the side
    return image.resize((max(8, round(image.width * scale)), max(8, round(image.height * scale))),
                        Image.Resampling.BICUBIC)


def _cropped(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    side = float(rng.uniform(0.8, 0.95)) ** 0.5
    w, h = max(1, int(image.width * side)), max(1, int(image.height * side))
    x, y = int(rng.integers(0, image.width - w + 1)), int(rng.integers(0, image.height - h + 1))
    return image.crop((x, y, x + w, y + h))


def _rotated(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    degrees = float(rng.choice([-1, 1]) * rng.uniform(2, 6))
    return image.rotate(degrees, resample=Image.Resampling.BICUBIC, fillcolor=(255, 255, 255))


def _brightened(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    return ImageEnhance.Brightness(image).enhance(float(1 + rng.choice([-1, 1]) * rng.uniform(0.1, 0.25)))


_EDITS = (_rescaled, _cropped, _rotated, _brightened)


def augmented_copy(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """A re-upload of ``image``: one edit drawn at random (rescaled to 0.5-0.8 or 1.25-2 times its
    side, cropped to 80-95% of its area, rotated by 2-6 degrees, or brightened or darkened by
    10-25%), then re-encoded as JPEG of quality 50-90."""
    image = _EDITS[int(rng.integers(len(_EDITS)))](image, rng)
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=int(rng.integers(50, 91)))
    with Image.open(io.BytesIO(buffer.getvalue())) as copy:
        return copy.convert("RGB")


def copy_cosines(tower, sources: list[str], vectors: np.ndarray, mask: np.ndarray, *, copies: int,
                 seed: int = 0, show_progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """``(rows, cosines)``: up to ``copies`` rows drawn at random among those with a vector, each
    with the cosine of an :func:`augmented_copy` of its photo, through ``tower``, to its vector
    (rows whose photo cannot be read again are left out)."""
    rng = np.random.default_rng(seed)
    rows = rng.permutation(np.flatnonzero(mask))[:copies]
    originals, images = [], []
    for row in tqdm(rows.tolist(), desc="duplicate threshold", unit="img", disable=not show_progress):
        try:
            images.append(augmented_copy(open_image(sources[row]), rng))
        except IMAGE_ERRORS:
            continue
        originals.append(row)
    if not images:
        return np.zeros(0, np.int64), np.zeros(0, np.float32)
    step = max(1, int(getattr(tower, "batch_size", 32)))
    encoded = np.vstack([tower.encode_images(images[start:start + step]).vectors
                         for start in range(0, len(images), step)])
    return np.asarray(originals, np.int64), np.einsum("ij,ij->i", encoded, vectors[originals])


def calibrate_image_threshold(tower, sources: list[str], vectors: np.ndarray, mask: np.ndarray, *,
                              copies: int, seed: int = 0, nearest: np.ndarray | None = None,
                              show_progress: bool = False) -> dict:
    """The image threshold for this tower and catalog, and the evidence behind it.

    Args:
        tower: the image tower that made ``vectors`` (``encode_images``, ``batch_size``).
        sources: each row's image path or URL (``""`` for none).
        vectors, mask: the image block, unit rows.
        copies: how many photos to copy (one copy each).
        nearest: per row, the cosine of its nearest other item by image, NaN where unknown.

    Returns:
        ``{"threshold": float | None, ...}``: ``None`` (with ``"reason"``) when fewer than
        :data:`MIN_PHOTOS` photos could be copied; otherwise the copies' cosine quantiles, and
        ``neighbours_passing``, the share of sampled items whose nearest other item reaches the
        threshold (where ``nearest`` is given).
    """
    if int(mask.sum()) < MIN_PHOTOS:
        return {"threshold": None, "copies": 0,
                "reason": f"{int(mask.sum())} photos, fewer than the {MIN_PHOTOS} a quantile needs"}
    rows, cosines = copy_cosines(tower, sources, vectors, mask, copies=copies, seed=seed, show_progress=show_progress)
    if len(rows) < MIN_PHOTOS:
        return {"threshold": None, "copies": len(rows),
                "reason": f"{len(rows)} photos copied, fewer than the {MIN_PHOTOS} a quantile needs"}
    threshold = float(np.quantile(cosines, COPY_QUANTILE))
    out = {"threshold": round(threshold, 4), "copies": len(rows), "quantile": COPY_QUANTILE,
           "copy_cosines": {f"q{round(q * 100):02d}": round(float(np.quantile(cosines, q)), 4)
                            for q in (0.01, 0.1, 0.5)}}
    if nearest is not None:
        known = nearest[rows]
        known = known[np.isfinite(known)]
        if len(known):
            out["neighbours_passing"] = round(float((known >= threshold).mean()), 3)
    return out
