"""Colour in a perceptual space: CIELAB via Pillow's ImageCms, and soft palette distributions."""
from __future__ import annotations

from functools import lru_cache

import numpy as np
from PIL import Image, ImageCms, ImageColor

from recsys.data.images import IMAGE_ERRORS, open_image

__all__ = ["NOT_ONE_COLOUR", "PALETTE", "rgb_to_lab", "colour_distribution", "parse_colour", "image_colours"]

# a perceptual palette of common product colours (sRGB)
PALETTE: dict[str, tuple[int, int, int]] = {
    "black": (20, 20, 20), "charcoal": (64, 64, 64), "grey": (128, 128, 128),
    "silver": (192, 192, 192), "white": (250, 250, 250), "red": (200, 25, 30),
    "maroon": (120, 20, 30), "orange": (245, 130, 20), "gold": (212, 175, 55),
    "yellow": (250, 220, 40), "olive": (110, 110, 30), "lime": (150, 210, 60),
    "green": (30, 140, 60), "teal": (0, 128, 128), "cyan": (60, 200, 220),
    "sky": (135, 190, 235), "blue": (30, 80, 200), "navy": (20, 30, 90),
    "purple": (110, 40, 150), "lavender": (190, 160, 220), "magenta": (200, 40, 140),
    "pink": (245, 150, 190), "brown": (110, 70, 35), "tan": (200, 160, 110),
    "beige": (230, 215, 180),
}


@lru_cache(maxsize=1)
def _srgb_to_lab():
    return ImageCms.buildTransform(ImageCms.createProfile("sRGB"), ImageCms.createProfile("LAB"),
                                   "RGB", "LAB")


def rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """sRGB uint8 ``(..., 3)`` to CIELAB float ``(..., 3)`` (L in 0..100) with Pillow's ImageCms."""
    rgb = np.asarray(rgb, dtype=np.uint8)
    flat = rgb.reshape(1, -1, 3)
    lab = np.asarray(ImageCms.applyTransform(Image.fromarray(flat, "RGB"), _srgb_to_lab()), dtype=np.float64)
    lab[..., 0] *= 100.0 / 255.0
    lab[..., 1:] = lab[..., 1:].astype(np.uint8).view(np.int8)  # a, b are signed bytes
    return lab.reshape(rgb.shape)


@lru_cache(maxsize=1)
def _palette_lab() -> np.ndarray:
    return rgb_to_lab(np.array(list(PALETTE.values())))


def colour_distribution(lab: np.ndarray, sharpness: float) -> np.ndarray:
    """Soft assignment of CIELAB colours ``(m, 3)`` to the palette, averaged: ``(len(PALETTE),)``.

    A palette colour's share halves every ``sharpness`` units of delta E (CIE76).
    """
    d = np.linalg.norm(lab[:, None, :] - _palette_lab()[None], axis=2)
    logits = -((d / sharpness) ** 2) * np.log(2.0)
    logits -= logits.max(axis=1, keepdims=True)
    share = np.exp(logits)
    share /= share.sum(axis=1, keepdims=True)
    return share.mean(axis=0)


# colour attributes that name no single colour: the photo's colours are the item's, without a warning
NOT_ONE_COLOUR = frozenset({"multi", "multicolour", "multicolor", "multicoloured", "multicolored", "assorted",
                            "mixed", "other", "transparent", "clear", "metallic"})


@lru_cache(maxsize=1)
def _survey_colours() -> dict[str, tuple[int, int, int]]:
    """The 949 names of the xkcd colour survey (how people name colours: "light beige", "mustard",
    "off white", "yellowish brown"), as matplotlib ships them, spelt "grey"."""
    from matplotlib.colors import XKCD_COLORS, to_rgb

    return {name.removeprefix("xkcd:"): tuple(round(255 * c) for c in to_rgb(code))
            for name, code in XKCD_COLORS.items()}


# shop colour names that neither list has: the median foreground colour of fashion-products'
# photos of the items so named (163 "skin", 21 "nude": bras, briefs, foundation), which agree
_SHOP_COLOURS = {"skin": (198, 174, 156), "nude": (201, 165, 138)}


def _named_rgb(name: str) -> tuple[int, int, int] | None:
    known = PALETTE.get(name) or _SHOP_COLOURS.get(name) or _survey_colours().get(name)
    if known:
        return known
    try:
        return ImageColor.getrgb(name.replace(" ", ""))[:3]
    except ValueError:
        return None


def parse_colour(text: str) -> list[tuple[int, int, int]] | None:
    """RGB of a colour attribute: palette names first (a shopper's "brown" is not CSS's reddish
    brown), then shop names neither list has ("skin", "nude"), then the xkcd survey's names (its
    "khaki" is the fashion one, CSS's is pale yellow), then CSS names and hex codes; "red/white"
    and "red and white" give both. A name none of these knows is read by its last words, then its
    first ones ("coffee brown" as brown, "grey melange" as grey). None if any part is unknown."""
    parts = [p.strip().lower() for p in text.replace("&", "/").replace(",", "/").replace(" and ", "/").split("/")]
    rgbs = []
    for part in filter(None, parts):
        words = part.replace("gray", "grey").split()
        shorter = [words[i:] for i in range(len(words))] + [words[:j] for j in range(len(words) - 1, 0, -1)]
        rgb = next(filter(None, (_named_rgb(" ".join(w)) for w in shorter)), None)
        if rgb is None:
            return None
        rgbs.append(rgb)
    return rgbs or None


def image_colours(source: str | Image.Image, sharpness: float = 12.0) -> np.ndarray | None:
    """Palette distribution of an image's foreground: pixels far (delta E > 15) from the median
    colour of the border, or all pixels when almost nothing stands out. None when unreadable."""
    if isinstance(source, Image.Image):
        image = source
    else:
        try:
            image = open_image(source, draft_size=64)
        except IMAGE_ERRORS:
            return None
    lab = rgb_to_lab(np.asarray(image.resize((48, 48), Image.BILINEAR)))
    border = np.concatenate([lab[0], lab[-1], lab[:, 0], lab[:, -1]])
    background = np.median(border, axis=0)
    pixels = lab.reshape(-1, 3)
    foreground = pixels[np.linalg.norm(pixels - background, axis=1) > 15]
    if len(foreground) < 0.03 * len(pixels):
        foreground = pixels
    return colour_distribution(foreground, sharpness)
