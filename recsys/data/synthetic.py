"""Synthetic shop: product images, titles and prices, and users whose tastes are known.

Everything is deterministic by seed. The ground truth (each item's true colour, pattern and price
band; each user's favourite category, colours and price band) is kept so tests can check results.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw
from tqdm.auto import tqdm

from recsys.data import schema as S

__all__ = ["CATEGORIES", "COLOURS", "PRICE_BANDS", "make_catalog", "make_interactions", "price_band"]

# category path -> (base price, nouns that say the same thing, use sentences)
CATEGORIES: dict[str, tuple[float, list[str], list[str]]] = {
    "women/shoes/sneakers": (80, ["sneakers", "trainers", "running shoes", "kicks"],
                             ["Cushioned sole for all-day walking.", "Grippy outsole for city streets."]),
    "women/dresses": (60, ["dress", "frock", "gown", "sundress"],
                      ["Flows nicely for summer evenings.", "A flattering cut for any occasion."]),
    "men/shirts/t-shirts": (20, ["t-shirt", "tee", "crew-neck top", "short-sleeve shirt"],
                            ["Breathable cotton for everyday wear.", "A relaxed fit you can layer."]),
    "men/trousers": (50, ["trousers", "pants", "slacks", "chinos"],
                     ["Tapered leg with belt loops.", "Stretch waistband for comfort."]),
    "accessories/bags/backpacks": (70, ["backpack", "rucksack", "daypack", "knapsack"],
                                   ["Padded laptop sleeve inside.", "Fits everything for a day out."]),
    "accessories/hats": (25, ["hat", "cap", "bucket hat", "fedora"],
                         ["Keeps the sun off your face.", "One size with an adjustable band."]),
    "home/kitchen/mugs": (12, ["mug", "coffee cup", "tea mug", "beaker"],
                          ["Dishwasher and microwave safe.", "Holds a generous morning brew."]),
    "home/lighting/lamps": (90, ["lamp", "table light", "desk lamp", "reading light"],
                            ["Warm glow for reading at night.", "Uses a standard E27 bulb."]),
    "accessories/watches": (150, ["watch", "wristwatch", "timepiece", "chronograph"],
                            ["Water resistant to fifty metres.", "Quartz movement, easy to read."]),
    "home/decor/vases": (35, ["vase", "flower pot", "urn", "jar"],
                         ["Perfect for fresh-cut flowers.", "Hand-finished glaze on every piece."]),
}

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (200, 30, 35), "orange": (240, 130, 20), "yellow": (240, 210, 40),
    "green": (40, 150, 60), "teal": (20, 140, 140), "blue": (40, 90, 210),
    "navy": (20, 30, 90), "purple": (120, 50, 160), "pink": (240, 130, 180),
    "brown": (120, 75, 40), "black": (25, 25, 25), "white": (245, 245, 245),
    "grey": (128, 128, 128), "beige": (220, 200, 160),
}

PATTERNS: dict[str, list[str]] = {
    "solid": ["plain", "solid", "classic"],
    "stripes": ["striped", "pinstripe", "stripy"],
    "dots": ["polka-dot", "spotted", "dotted"],
    "check": ["checked", "plaid", "gingham"],
}

# absolute price bands a shopper thinks in: budget < 30 <= mid < 80 <= premium
PRICE_BANDS = ("budget", "mid", "premium")
_BAND_EDGES = (30.0, 80.0)

_ADJECTIVES = ["modern", "everyday", "premium", "lightweight", "vintage", "essential", "soft", "bold"]
_MATERIALS = ["cotton", "leather", "canvas", "ceramic", "recycled", "linen", "wool", "metal"]
_TITLE_TEMPLATES = [
    "{adj} {colour} {pattern} {noun}",
    "{colour} {noun}, {pattern}",
    "{pattern} {noun} in {colour}",
    "{noun} - {colour} ({adj})",
]
_DESCRIPTION_TEMPLATES = [
    "A {material} {noun} in {colour} with a {pattern} finish. {use}",
    "{use} This {adj} {noun} comes in {colour}, {pattern}.",
    "Our {noun} in {pattern} {colour}, made of {material}. {use}",
]


def price_band(price: float | np.ndarray) -> np.ndarray:
    """Map prices to ``PRICE_BANDS`` names."""
    return np.asarray(PRICE_BANDS, dtype=object)[np.searchsorted(_BAND_EDGES, price, side="right")]


def _shape(draw: ImageDraw.ImageDraw, category: str, box) -> None:
    """Draw the white silhouette of a category into a mask, inside ``box`` = (x0, y0, size)."""
    x0, y0, s = box

    def p(points):
        return [(x0 + x * s, y0 + y * s) for x, y in points]

    def r(x1, y1, x2, y2):
        return [x0 + x1 * s, y0 + y1 * s, x0 + x2 * s, y0 + y2 * s]

    leaf = category.rsplit("/", 1)[-1]
    if leaf == "sneakers":
        draw.polygon(p([(.05, .55), (.35, .5), (.5, .3), (.65, .3), (.75, .5), (.95, .6),
                        (.95, .75), (.05, .75)]), fill=255)
    elif leaf == "dresses":
        draw.polygon(p([(.4, .1), (.6, .1), (.62, .35), (.85, .9), (.15, .9), (.38, .35)]), fill=255)
    elif leaf == "t-shirts":
        draw.polygon(p([(.3, .1), (.42, .12), (.5, .18), (.58, .12), (.7, .1), (.95, .3), (.85, .42),
                        (.75, .35), (.75, .9), (.25, .9), (.25, .35), (.15, .42), (.05, .3)]), fill=255)
    elif leaf == "trousers":
        draw.polygon(p([(.25, .08), (.75, .08), (.8, .92), (.58, .92), (.5, .35), (.42, .92),
                        (.2, .92)]), fill=255)
    elif leaf == "backpacks":
        draw.rounded_rectangle(r(.2, .25, .8, .92), radius=s * .12, fill=255)
        draw.arc(r(.35, .08, .65, .4), 180, 360, fill=255, width=max(2, int(s * .06)))
    elif leaf == "hats":
        draw.ellipse(r(.05, .6, .95, .8), fill=255)
        draw.chord(r(.25, .25, .75, .95), 180, 360, fill=255)
    elif leaf == "mugs":
        draw.rectangle(r(.2, .25, .7, .85), fill=255)
        draw.ellipse(r(.58, .38, .9, .72), outline=255, width=max(2, int(s * .07)))
    elif leaf == "lamps":
        draw.polygon(p([(.3, .1), (.7, .1), (.85, .45), (.15, .45)]), fill=255)
        draw.rectangle(r(.46, .45, .54, .85), fill=255)
        draw.ellipse(r(.28, .8, .72, .94), fill=255)
    elif leaf == "watches":
        draw.rectangle(r(.4, .04, .6, .96), fill=255)
        draw.ellipse(r(.28, .28, .72, .72), fill=255)
    else:  # vases
        draw.polygon(p([(.4, .1), (.6, .1), (.58, .25), (.78, .5), (.7, .88), (.3, .88), (.22, .5),
                        (.42, .25)]), fill=255)


def _render(category: str, rgb, pattern: str, rng: np.random.Generator, size: int) -> Image.Image:
    background = tuple(int(v) for v in rng.integers(200, 256, 3))
    canvas = Image.new("RGB", (size, size), background)
    scale = rng.uniform(0.6, 0.9) * size
    x0, y0 = rng.uniform(0, size - scale, 2)
    mask = Image.new("L", (size, size), 0)
    _shape(ImageDraw.Draw(mask), category, (x0, y0, scale))
    jitter = rng.integers(-15, 16, 3)
    base = tuple(int(np.clip(c + j, 0, 255)) for c, j in zip(rgb, jitter))
    shade = tuple(int(c * 0.55) if sum(base) > 200 else int(c + (255 - c) * 0.45) for c in base)
    layer = Image.new("RGB", (size, size), base)
    draw = ImageDraw.Draw(layer)
    step = max(4, int(size * rng.uniform(0.06, 0.1)))
    if pattern == "stripes":
        for x in range(-size, size * 2, step * 2):
            draw.line([(x, 0), (x + size // 3, size)], fill=shade, width=step // 2 + 1)
    elif pattern == "dots":
        for yy in range(0, size, step * 2):
            for xx in range((yy // step) % 2 * step, size, step * 2):
                draw.ellipse([xx, yy, xx + step * 0.8, yy + step * 0.8], fill=shade)
    elif pattern == "check":
        for v in range(0, size, step * 2):
            draw.rectangle([v, 0, v + step - 1, size], fill=shade)
            draw.rectangle([0, v, size, v + step - 1], fill=shade)
    canvas.paste(layer, (0, 0), mask)
    pixels = np.asarray(canvas, dtype=np.int16) + rng.normal(0, 6, (size, size, 3)).astype(np.int16)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def make_catalog(
    n: int,
    *,
    seed: int = 0,
    image_dir: str | Path | None = None,
    image_size: int = 128,
    missing_image: float = 0.05,
    missing_text: float = 0.03,
    missing_colour: float = 0.2,
    show_progress: bool = False,
) -> pd.DataFrame:
    """Make a catalog of ``n`` products (100 to 100,000), rendering images into ``image_dir``.

    Args:
        n: number of items.
        seed: the same seed gives the same catalog and the same images.
        image_dir: where JPEGs are written (existing files of the same name are reused); ``None``
            makes a catalog without images.
        image_size: side of the square images in pixels.
        missing_image, missing_text, missing_colour: share of items without an image, without
            title and description, and without the ``colour`` attribute.
        show_progress: tqdm bar over image rendering.

    Returns:
        pd.DataFrame: catalog columns (``item_id``, ``title``, ``description``, ``tags``, ``image``,
        ``colour``, ``price``, ``category``) plus the ground truth ``true_colour``, ``pattern``
        and ``price_band``.
    """
    if not 1 <= n <= 1_000_000:
        raise ValueError(f"synthetic catalog size must be between 1 and 1,000,000 (got {n})")
    categories = list(CATEGORIES)
    colours = list(COLOURS)
    patterns = list(PATTERNS)
    records = []
    for i in range(n):
        # one generator per item: item i is the same whatever n is, so rendered images are reusable
        rng = np.random.default_rng([seed, i])
        cat = categories[rng.integers(len(categories))]
        colour = colours[rng.integers(len(colours))]
        pattern = patterns[rng.choice(len(patterns), p=[0.4, 0.2, 0.2, 0.2])]
        base, nouns, uses = CATEGORIES[cat]
        price = max(0.99, round(base * float(np.exp(rng.normal(0, 0.45)))) - 0.01)
        words = dict(
            noun=nouns[rng.integers(len(nouns))], colour=colour,
            pattern=PATTERNS[pattern][rng.integers(3)], adj=_ADJECTIVES[rng.integers(len(_ADJECTIVES))],
            material=_MATERIALS[rng.integers(len(_MATERIALS))], use=uses[rng.integers(len(uses))],
        )
        has_text, has_image, has_colour = rng.random(3) >= (missing_text, missing_image, missing_colour)
        records.append({
            S.ITEM_ID: f"SKU-{i:06d}",
            S.TITLE: _TITLE_TEMPLATES[rng.integers(len(_TITLE_TEMPLATES))].format(**words).capitalize()
            if has_text else "",
            S.DESCRIPTION: _DESCRIPTION_TEMPLATES[rng.integers(len(_DESCRIPTION_TEMPLATES))].format(**words)
            if has_text else "",
            S.TAGS: f"{words['material']}, {words['adj']}" if has_text else "",
            S.IMAGE: "", S.COLOUR: colour if has_colour else "", S.PRICE: price, S.CATEGORY: cat,
            "true_colour": colour, "pattern": pattern, "has_image": bool(has_image),
            "render_seed": rng.integers(2**32),
        })
    frame = pd.DataFrame.from_records(records)
    frame["price_band"] = price_band(frame[S.PRICE].to_numpy())
    if image_dir is not None:
        image_dir = Path(image_dir) / f"{image_size}px"
        image_dir.mkdir(parents=True, exist_ok=True)
        paths = []
        for row in tqdm(frame.itertuples(), total=n, desc="rendering images", unit="img",
                        disable=not show_progress):
            if not row.has_image:
                paths.append("")
                continue
            path = image_dir / f"{row.item_id}.jpg"
            if not path.exists():
                image = _render(row.category, COLOURS[row.true_colour], row.pattern,
                                np.random.default_rng(row.render_seed), image_size)
                tmp = path.with_suffix(f".{os.getpid()}.tmp")
                image.save(tmp, format="JPEG", quality=90)
                tmp.replace(path)
            paths.append(str(path.resolve()))
        frame[S.IMAGE] = paths
    return frame.drop(columns=["has_image", "render_seed"])


def make_interactions(
    catalog: pd.DataFrame,
    n_users: int,
    *,
    seed: int = 0,
    items_per_user: float = 20.0,
    taste_strength: float = 2.0,
    start: str = "2026-01-01",
    days: int = 90,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Simulate users with latent tastes browsing a synthetic catalog.

    Each user has a favourite category, two favourite colours and a price band. The chance of
    touching an item grows with its popularity (log-normal, so a few items get most traffic) and
    with ``exp(taste_strength * match)``, where ``match`` counts the tastes the item meets
    (category 1.0, colour 0.6, band 0.4). Each touched item gets a view, and with falling chance a
    click, an add-to-cart and a purchase, at increasing timestamps.

    Args:
        catalog: a frame from :func:`make_catalog` (needs the ground-truth columns).
        n_users: number of users.
        seed: the same seed gives the same users and events.
        items_per_user: mean number of distinct items a user touches.
        taste_strength: how strongly tastes beat popularity.
        start, days: the time window of the events.

    Returns:
        (interactions, users): interactions with ``user_id``, ``item_id``, ``event``, ``value``,
        ``timestamp``; users with ``user_id``, ``category``, ``colours`` ("a|b"), ``price_band``.
    """
    rng = np.random.default_rng([seed, 7])
    n_items = len(catalog)
    popularity = rng.lognormal(0.0, 1.2, n_items)
    cells = catalog.groupby([S.CATEGORY, "true_colour", "price_band"], sort=True).indices
    cell_keys = list(cells)
    cell_cat = np.array([k[0] for k in cell_keys])
    cell_col = np.array([k[1] for k in cell_keys])
    cell_band = np.array([k[2] for k in cell_keys])
    cell_items = [np.asarray(cells[k]) for k in cell_keys]
    cell_cum = [np.cumsum(popularity[idx]) for idx in cell_items]
    cell_pop = np.array([c[-1] for c in cell_cum])

    categories = np.array(sorted(set(catalog[S.CATEGORY])))
    colours = np.array(sorted(set(catalog["true_colour"])))
    users = []
    rows_user, rows_item, rows_match = [], [], []
    for u in range(n_users):
        fav_cat = categories[rng.integers(len(categories))]
        fav_cols = rng.choice(colours, size=min(2, len(colours)), replace=False)
        band = PRICE_BANDS[rng.integers(len(PRICE_BANDS))]
        users.append((f"U{u:06d}", fav_cat, "|".join(fav_cols), band))
        match = (1.0 * (cell_cat == fav_cat) + 0.6 * np.isin(cell_col, fav_cols)
                 + 0.4 * (cell_band == band))
        weights = cell_pop * np.exp(taste_strength * match)
        m = max(1, int(rng.poisson(items_per_user)))
        picked = rng.choice(len(cell_keys), size=m, p=weights / weights.sum())
        items = {}
        for c in picked:
            j = int(np.searchsorted(cell_cum[c], rng.random() * cell_cum[c][-1], side="right"))
            items[int(cell_items[c][min(j, len(cell_items[c]) - 1)])] = match[c]
        rows_user.extend([u] * len(items))
        rows_item.extend(items)
        rows_match.extend(items.values())
    users_frame = pd.DataFrame(users, columns=[S.USER_ID, S.CATEGORY, "colours", "price_band"])
    return _events(catalog, users_frame, rows_user, rows_item, rows_match, rng, start, days), users_frame


def _events(catalog, users, rows_user, rows_item, rows_match, rng, start, days) -> pd.DataFrame:
    user = np.asarray(rows_user)
    item = np.asarray(rows_item)
    match = np.asarray(rows_match) / 2.0  # 0..1
    n = len(user)
    # a user's touches spread over the window in order; each funnel step comes minutes later
    t0 = pd.Timestamp(start, tz="UTC").value // 10**9
    user_start = rng.uniform(0, days * 86400 * 0.5, users.shape[0])
    order_in_user = pd.Series(user).groupby(user).cumcount().to_numpy()
    base_time = t0 + user_start[user] + order_in_user * rng.exponential(3 * 3600, n)
    click = rng.random(n) < 0.3 + 0.3 * match
    cart = click & (rng.random(n) < 0.3 + 0.2 * match)
    purchase = cart & (rng.random(n) < 0.5)
    parts = []
    for event, mask, delay in (("view", np.ones(n, bool), 0), ("click", click, 30),
                               ("add_to_cart", cart, 300), ("purchase", purchase, 900)):
        parts.append(pd.DataFrame({
            S.USER_ID: users[S.USER_ID].to_numpy()[user[mask]],
            S.ITEM_ID: catalog[S.ITEM_ID].to_numpy()[item[mask]],
            S.EVENT: event, S.VALUE: np.nan,
            S.TIMESTAMP: pd.to_datetime(base_time[mask] + delay, unit="s", utc=True),
        }))
    return pd.concat(parts).sort_values([S.TIMESTAMP, S.USER_ID], kind="stable").reset_index(drop=True)
