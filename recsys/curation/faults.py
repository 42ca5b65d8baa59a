"""Faults injected into a real catalog, at random with a seed, to measure curation against a known
truth: transformed copies of real photos (re-uploads of the same listing), and broken or wrong
photos (blank, noise, a photo swapped with an item of another top-level category)."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageEnhance, ImageOps

from recsys.data import schema as S

__all__ = ["TRANSFORMS", "MILD", "PHOTO_FAULTS", "inject_copies", "inject_photo_faults", "inject_resellers",
           "reword"]


def _crop(image: Image.Image, rng: np.random.Generator, keep: float = 0.85) -> Image.Image:
    """A crop that keeps ``keep`` of the area, at a random place."""
    side = keep ** 0.5
    w, h = max(1, int(image.width * side)), max(1, int(image.height * side))
    x, y = int(rng.integers(0, image.width - w + 1)), int(rng.integers(0, image.height - h + 1))
    return image.crop((x, y, x + w, y + h))


def _rotate(degrees: float) -> Callable:
    return lambda image, rng: image.rotate(float(rng.choice([-degrees, degrees])), resample=Image.Resampling.BICUBIC,
                                           fillcolor=(255, 255, 255))


def _scale(factor: float) -> Callable:
    return lambda image, rng: image.resize((max(1, round(image.width * factor)), max(1, round(image.height * factor))),
                                           Image.Resampling.BICUBIC)


# name -> (transform, JPEG quality of the copy; None keeps the original file's bytes)
TRANSFORMS: dict[str, tuple[Callable, int | None]] = {
    "exact copy": (lambda image, rng: image, None),
    "JPEG quality 50": (lambda image, rng: image, 50),
    "resize 0.5x": (_scale(0.5), 95),
    "resize 2x": (_scale(2.0), 95),
    "crop 85%": (_crop, 95),
    "rotate 5 degrees": (_rotate(5), 95),
    "brightness +20%": (lambda image, rng: ImageEnhance.Brightness(image).enhance(1.2), 95),
    "brightness -20%": (lambda image, rng: ImageEnhance.Brightness(image).enhance(0.8), 95),
    "mirror": (lambda image, rng: ImageOps.mirror(image), 95),
    "rotate 90 degrees": (lambda image, rng: image.rotate(90, expand=True), 95),
}
# the re-uploads a duplicate finder must catch; mirrored and strongly rotated copies are reported apart
MILD = [name for name in TRANSFORMS if name not in ("mirror", "rotate 90 degrees")]


def _drawn(catalog: pd.DataFrame, n: int, out: Path, rng: np.random.Generator):
    """``n`` rows with a photo drawn at random, ``(k, row)`` each (``out`` made for their files)."""
    out.mkdir(parents=True, exist_ok=True)
    with_image = np.flatnonzero(catalog[S.IMAGE].fillna("").astype(str) != "")
    for k, index in enumerate(rng.choice(with_image, size=n, replace=False)):
        yield k, catalog.iloc[int(index)]


def inject_copies(catalog: pd.DataFrame, copies: int, out_dir: str | Path, *, seed: int = 0,
                  transforms: list[str] | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Add ``copies`` re-uploads of items drawn at random: each a new row with the source's fields
    and a transformed copy of its photo (written to ``out_dir``), the transforms taken in turn.

    Args:
        catalog: rows with readable local ``image`` paths.

    Returns:
        (catalog with the copies appended, truth): ``truth`` has one row per copy: ``source``,
        ``copy`` (item ids) and ``transform``.
    """
    rng = np.random.default_rng(seed)
    names = transforms or list(TRANSFORMS)
    out = Path(out_dir)
    rows, truth = [], []
    for k, source in _drawn(catalog, copies, out, rng):
        name = names[k % len(names)]
        transform, quality = TRANSFORMS[name]
        copy_id = f"copy-{k}-{source[S.ITEM_ID]}"
        path = out / f"{copy_id}.jpg"
        if quality is None:
            path.write_bytes(Path(source[S.IMAGE]).read_bytes())
        else:
            with Image.open(source[S.IMAGE]) as image:
                transform(image.convert("RGB"), rng).save(path, quality=quality)
        row = source.copy()
        row[S.ITEM_ID], row[S.IMAGE] = copy_id, str(path)
        rows.append(row)
        truth.append((str(source[S.ITEM_ID]), copy_id, name))
    faulty = pd.concat([catalog, pd.DataFrame(rows)], ignore_index=True)
    return faulty, pd.DataFrame(truth, columns=["source", "copy", "transform"])


def reword(title: str, rng: np.random.Generator) -> str:
    """The same product's title as another seller writes it: the same words (brand, gender,
    colour, kind), the brand moved to the end or dropped, the rest in another order at a random
    cut, and one of a few seller phrases added."""
    words = title.split()
    if len(words) < 2:
        return f"{title} - new"
    brand, rest = words[0], words[1:]
    cut = int(rng.integers(0, len(rest)))
    rest = rest[cut:] + rest[:cut]
    phrase = ["", "new", "original", "free delivery", "best price"][int(rng.integers(5))]
    form = int(rng.integers(3))
    text = (f"{' '.join(rest)} by {brand}" if form == 0 else
            f"{brand.upper()} {' '.join(rest).lower()}" if form == 1 else " ".join(rest))
    return f"{text} {phrase}".strip()


def _restage(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Another seller's photo of the same product: a crop keeping 80-92% of the area, set on a
    plain background of another tone with a margin, at another size."""
    cropped = _crop(image, rng, keep=float(rng.uniform(0.80, 0.92)))
    margin = float(rng.uniform(0.04, 0.12))
    tone = tuple(int(v) for v in rng.integers(215, 256, 3))
    w, h = cropped.size
    canvas = Image.new("RGB", (round(w * (1 + 2 * margin)), round(h * (1 + 2 * margin))), tone)
    canvas.paste(cropped, (round(w * margin), round(h * margin)))
    scale = float(rng.uniform(0.6, 1.2))
    return canvas.resize((max(1, round(canvas.width * scale)), max(1, round(canvas.height * scale))),
                         Image.Resampling.BICUBIC)


def inject_resellers(catalog: pd.DataFrame, copies: int, out_dir: str | Path, *,
                     seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Add ``copies`` listings of items drawn at random as a second seller would list them: the
    title reworded (:func:`reword`), the photo cropped, set on another background and resized,
    JPEG at quality 80; category, colour and tags kept.

    Returns:
        (catalog with the listings appended, truth): ``source``, ``copy`` and ``transform``
        (``"reseller"``).
    """
    rng = np.random.default_rng(seed)
    out = Path(out_dir)
    rows, truth = [], []
    for k, source in _drawn(catalog, copies, out, rng):
        copy_id = f"seller2-{k}-{source[S.ITEM_ID]}"
        path = out / f"{copy_id}.jpg"
        with Image.open(source[S.IMAGE]) as image:
            _restage(image.convert("RGB"), rng).save(path, quality=80)
        row = source.copy()
        row[S.ITEM_ID], row[S.IMAGE], row[S.TITLE] = copy_id, str(path), reword(str(source[S.TITLE]), rng)
        rows.append(row)
        truth.append((str(source[S.ITEM_ID]), copy_id, "reseller"))
    return (pd.concat([catalog, pd.DataFrame(rows)], ignore_index=True),
            pd.DataFrame(truth, columns=["source", "copy", "transform"]))


PHOTO_FAULTS = ("blank", "noise", "swapped")


def _top_level(categories: pd.Series) -> pd.Series:
    return categories.fillna("").astype(str).str.split("/").str[0]


def inject_photo_faults(catalog: pd.DataFrame, per_fault: int, out_dir: str | Path, *,
                        seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Break the photos of ``per_fault`` items per kind, each item drawn at random and broken once:

    * ``blank``: one flat colour (white, grey, black or a random colour);
    * ``noise``: uniform random pixels;
    * ``swapped``: items paired across top-level categories trade photos (both count).

    The rest of each row (title, category, colour) is kept, as in a listing whose photo is wrong.

    Args:
        catalog: rows with readable local ``image`` paths and a ``category`` path.

    Returns:
        (catalog with the photos replaced, truth): one row per broken item: ``item_id``, ``fault``.
    """
    rng = np.random.default_rng(seed)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    faulty = catalog.copy()
    free = np.ones(len(faulty), bool)
    free &= (faulty[S.IMAGE].fillna("").astype(str) != "").to_numpy()
    truth = []
    for fault in ("blank", "noise"):
        for index in rng.choice(np.flatnonzero(free), size=per_fault, replace=False):
            free[index] = False
            with Image.open(faulty.at[index, S.IMAGE]) as source:
                size = source.size
            if fault == "blank":
                colours = [(255, 255, 255), (128, 128, 128), (0, 0, 0), tuple(int(c) for c in rng.integers(0, 256, 3))]
                image = Image.new("RGB", size, colours[int(rng.integers(len(colours)))])
            else:
                image = Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
            path = out / f"{fault}-{faulty.at[index, S.ITEM_ID]}.jpg"
            image.save(path, quality=90)
            faulty.at[index, S.IMAGE] = str(path)
            truth.append((faulty.at[index, S.ITEM_ID], fault))
    top = _top_level(faulty[S.CATEGORY]).to_numpy()
    swaps = 0
    for index in rng.permutation(np.flatnonzero(free)):
        if swaps * 2 >= per_fault:
            break
        if not free[index]:
            continue
        others = np.flatnonzero(free & (top != top[index]))
        if not len(others):
            continue
        other = int(rng.choice(others))
        free[[index, other]] = False
        faulty.loc[[index, other], S.IMAGE] = faulty.loc[[other, index], S.IMAGE].to_numpy()
        truth += [(faulty.at[index, S.ITEM_ID], "swapped"), (faulty.at[other, S.ITEM_ID], "swapped")]
        swaps += 1
    return faulty, pd.DataFrame(truth, columns=[S.ITEM_ID, "fault"])
