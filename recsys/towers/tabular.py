"""Tabular tower: colour, price, category (and year, genres) encoded so cosine means closeness.

- colour: a soft distribution over a fixed perceptual palette, by CIELAB distance, from the
  ``colour`` attribute (CSS name or hex) or, when there is none, the image's foreground pixels;
- price: radial basis functions over log-price (neighbouring prices overlap, distant ones do not);
- year: the same over years;
- category: one-hot over every prefix of the path (``a``, ``a/b``, ``a/b/c``), so siblings are close;
- genres: multi-hot.

Each part is a unit block; parts are joined with equal weight (see ``weighted_concat``).
"""
from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd

from recsys._hashing import sha256_text
from recsys.data import schema as S
from recsys.errors import NotReady, RecsysWarning
from recsys.towers._colour import NOT_ONE_COLOUR, PALETTE, colour_distribution, image_colours, parse_colour, rgb_to_lab
from recsys.towers.base import TowerOutput, l2_normalise, weighted_concat
from recsys.towers.registry import register_tower

__all__ = ["TabularTower"]

# the revision of how attributes become vectors (how colour names are read, say), part of every
# cache key: vectors that older code cached for the same attributes are not reused
ENCODING = 3


def _rbf(values: np.ndarray, centres: np.ndarray, width: float) -> tuple[np.ndarray, np.ndarray]:
    ok = np.isfinite(values)
    x = np.clip(np.where(ok, values, 0.0), centres[0] - width, centres[-1] + width)
    block = np.exp(-0.5 * ((x[:, None] - centres[None]) / width) ** 2)
    return l2_normalise(block, ok)


def _rbf_state(values: np.ndarray, bins: int) -> dict | None:
    values = values[np.isfinite(values)]
    if len(values) == 0:
        return None
    lo, hi = np.quantile(values, [0.005, 0.995])
    if hi - lo < 1e-6:
        lo, hi = lo - 0.5, hi + 0.5
    centres = np.linspace(lo, hi, bins)
    return {"centres": centres.tolist(), "width": float(centres[1] - centres[0])}


def _category_prefixes(path: str) -> list[str]:
    parts = [p for p in path.split("/") if p]
    return ["/".join(parts[:k]) for k in range(1, len(parts) + 1)]


def _multi_hot(lists: list[list[str]], vocab: list[str]) -> tuple[np.ndarray, np.ndarray]:
    index = {v: i for i, v in enumerate(vocab)}
    block = np.zeros((len(lists), len(vocab)), dtype=np.float32)
    for row, labels in enumerate(lists):
        for label in labels:
            if label in index:
                block[row, index[label]] = 1.0
    return l2_normalise(block)


def _genres(catalog: pd.DataFrame) -> list[list[str]]:
    return [[g.strip().lower() for g in s.split("|") if g.strip()] for s in catalog[S.GENRES]]


@register_tower("tabular")
class TabularTower:
    """Structured attributes as one unit block; ``fit`` learns ranges and vocabularies.

    Args:
        price_bins: radial basis functions over log-price (and over years).
        colour_sharpness: delta E at which a palette colour's share halves.
        state: a fitted state from :meth:`get_state` (e.g. read back from a bundle).
    """

    modality = "tabular"

    def __init__(self, price_bins: int = 16, colour_sharpness: float = 12.0, state: dict | None = None):
        self.price_bins = price_bins
        self.colour_sharpness = colour_sharpness
        self.state_ = state

    def fit(self, catalog: pd.DataFrame) -> TabularTower:
        """Learn the price and year ranges and the category and genre vocabularies."""
        state: dict = {"price_bins": self.price_bins, "colour_sharpness": self.colour_sharpness, "parts": []}
        if S.COLOUR in catalog.columns or S.IMAGE in catalog.columns:
            state["parts"].append("colour")
        prices = catalog[S.PRICE].to_numpy(float) if S.PRICE in catalog.columns else None
        if prices is not None and (rbf := _rbf_state(np.log1p(prices), self.price_bins)):
            state["parts"].append("price")
            state["price"] = rbf
        if S.YEAR in catalog.columns and (rbf := _rbf_state(catalog[S.YEAR].to_numpy(float), self.price_bins)):
            state["parts"].append("year")
            state["year"] = rbf
        if S.CATEGORY in catalog.columns:
            vocab = sorted({p for c in catalog[S.CATEGORY] for p in _category_prefixes(c)})
            if vocab:
                state["parts"].append("category")
                state["category"] = vocab
        if S.GENRES in catalog.columns:
            vocab = sorted({g for gs in _genres(catalog) for g in gs})
            if vocab:
                state["parts"].append("genres")
                state["genres"] = vocab
        self.state_ = state
        return self

    def get_state(self) -> dict:
        self._check_fitted()
        return self.state_

    def _check_fitted(self) -> None:
        if self.state_ is None:
            raise NotReady("the tabular tower is not fitted; call fit(catalog) first")

    def _part_dims(self) -> dict[str, int]:
        state = self.get_state()
        dims = {"colour": len(PALETTE), "price": len(state.get("price", {}).get("centres", [])),
                "year": len(state.get("year", {}).get("centres", [])),
                "category": len(state.get("category", [])), "genres": len(state.get("genres", []))}
        return {p: dims[p] for p in state["parts"]}

    @property
    def dim(self) -> int:
        return max(1, sum(self._part_dims().values()))

    def encoder_id(self) -> str:
        return f"tabular:{ENCODING}:" + sha256_text(json.dumps(self.get_state(), sort_keys=True))[:16]

    def load(self) -> None:
        """Nothing to load: the tower's state is fitted from the catalog."""

    def describe(self) -> dict:
        return {"parts": self._part_dims(), "dim": self.dim, "palette": list(PALETTE)}

    def content_keys(self, catalog: pd.DataFrame) -> list[str | None]:
        columns = [c for c in (S.COLOUR, S.IMAGE, S.PRICE, S.YEAR, S.CATEGORY, S.GENRES) if c in catalog.columns]
        rows = catalog[columns].map(str).agg("\x1f".join, axis=1) if columns else pd.Series([""] * len(catalog))
        return [sha256_text(r) for r in rows]

    def _colour_block(self, catalog: pd.DataFrame, show_progress: bool) -> TowerOutput:
        n = len(catalog)
        block = np.zeros((n, len(PALETTE)), dtype=np.float64)
        colours = catalog[S.COLOUR].tolist() if S.COLOUR in catalog.columns else [""] * n
        images = catalog[S.IMAGE].tolist() if S.IMAGE in catalog.columns else [""] * n
        named: dict[str, np.ndarray | None] = {}  # a catalog has a few dozen colour names, not one per item
        unknown = 0
        for row, (name, image) in enumerate(zip(colours, images)):
            dist = None
            if name:
                if name not in named:
                    rgbs = parse_colour(name)
                    named[name] = colour_distribution(rgb_to_lab(np.array(rgbs)), self.colour_sharpness) \
                        if rgbs else None
                dist = named[name]
                if dist is None and name.strip().lower() not in NOT_ONE_COLOUR:
                    unknown += 1
            if dist is None and image:
                dist = image_colours(image, self.colour_sharpness)
            if dist is not None:
                block[row] = dist
        if unknown:
            warnings.warn(f"{unknown} items have a colour name that is not a known colour; their colour comes "
                          "from their photo, where they have one", RecsysWarning, stacklevel=3)
        vectors, mask = l2_normalise(block)
        return TowerOutput(vectors, mask)

    def encode(self, catalog: pd.DataFrame, *, show_progress: bool = True) -> TowerOutput:
        state = self.get_state()
        n = len(catalog)
        parts: list[TowerOutput] = []
        for part in state["parts"]:
            if part == "colour":
                parts.append(self._colour_block(catalog, show_progress))
            elif part in ("price", "year"):
                column = S.PRICE if part == "price" else S.YEAR
                raw = catalog[column].to_numpy(float) if column in catalog.columns else np.full(n, np.nan)
                values = np.log1p(raw) if part == "price" else raw
                parts.append(TowerOutput(*_rbf(values, np.asarray(state[part]["centres"]), state[part]["width"])))
            elif part == "category":
                paths = catalog[S.CATEGORY].tolist() if S.CATEGORY in catalog.columns else [""] * n
                parts.append(TowerOutput(*_multi_hot([_category_prefixes(p) for p in paths], state["category"])))
            elif part == "genres":
                lists = _genres(catalog) if S.GENRES in catalog.columns else [[] for _ in range(n)]
                parts.append(TowerOutput(*_multi_hot(lists, state["genres"])))
        if not parts:
            return TowerOutput(np.zeros((n, 1), np.float32), np.zeros(n, bool))
        return weighted_concat(parts, [1.0] * len(parts))
