"""Balanced, diverse subsets: ``n`` items that cover the catalog, for a labelling queue or the
exploration pool of cold-start feeds.

Greedy farthest-point selection (Gonzalez's k-center): start from an item drawn with the seed,
then repeatedly take the item farthest from everything chosen so far. Its coverage radius (the
largest distance from any item to its nearest chosen item) is within twice the best possible, it
needs one pass over the vectors per chosen item (no ``n x n`` matrix), and the same seed gives the
same subset. With ``balance``, every value of that column (every category, say) is represented
(items without a value are left out): ``quota="one"`` (the default) keeps the plain selection and
saves the last slots for the values it has not reached, one item each, so the coverage stays
that of the plain selection; ``quota="equal"`` gives each value a share of ``n`` as equal as the
values' sizes allow, and an item is eligible only while its value's share is open, for a labelling
queue that should see as many items of a rare category as of a common one. Duplicate listings
are left out but for the first of each group (the bundle's ``duplicate_of``, or
:meth:`recsys.curation.duplicates.Duplicates.first_rows` for a bundle built without it).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from recsys.bundle import Bundle
from recsys.errors import InvalidRequest

__all__ = ["Subset", "diverse_subset", "coverage_radius", "quotas", "item_vectors"]

_BLOCK = 1 << 14


@dataclass(frozen=True)
class Subset:
    """Attributes:
        version: the bundle version.
        items: the chosen item ids, in the order they were chosen.
        radius: the coverage radius (Euclidean, between unit vectors: 0 to 2) over every item with
            a vector.
        quotas: the quota per value of the balanced column, or None.
    """

    version: str
    items: list[str]
    radius: float
    quotas: dict[str, int] | None


def quotas(values: pd.Series, n: int) -> dict[str, int]:
    """As equal a share of ``n`` as each value's count allows (water-filling), at least one per
    value while ``n`` lasts (the largest values first)."""
    counts = values.value_counts()
    if n < len(counts):
        return {str(v): 1 for v in counts.index[:n]}
    share, left = {}, n
    remaining = counts.sort_values()
    while len(remaining):
        fair = left // len(remaining)
        small = remaining[remaining <= fair]
        if not len(small):
            extra = left - fair * len(remaining)
            for k, value in enumerate(remaining.sort_values(ascending=False).index):
                share[str(value)] = fair + (1 if k < extra else 0)
            break
        for value, count in small.items():
            share[str(value)] = int(count)
            left -= int(count)
        remaining = remaining[remaining > fair]
    return share


def item_vectors(bundle: Bundle, modality: str) -> tuple[np.ndarray, np.ndarray]:
    """(vectors, mask) of ``combined`` or one modality, float32.

    Raises:
        InvalidRequest: an unknown modality.
    """
    if modality != "combined" and modality not in bundle.vectors.blocks:
        raise InvalidRequest(f"unknown modality {modality!r}; bundle {bundle.version} has "
                             f"{', '.join(['combined', *bundle.vectors.blocks])}")
    vectors, mask = bundle.vectors.space(modality)
    return np.asarray(vectors, np.float32), mask


def coverage_radius(matrix: np.ndarray, mask: np.ndarray, chosen: np.ndarray) -> float:
    """The largest distance from any ``mask`` row to its nearest ``chosen`` row, in blocks."""
    centres = matrix[chosen]
    worst = 0.0
    for start in range(0, len(matrix), _BLOCK):
        part = matrix[start:start + _BLOCK][mask[start:start + _BLOCK]]
        if len(part):
            best = (part @ centres.T).max(axis=1)
            worst = max(worst, float(np.sqrt(np.clip(2.0 - 2.0 * best, 0.0, None)).max()))
    return worst


def diverse_subset(bundle: Bundle, n: int, *, balance: str | None = None, quota: str = "one", seed: int = 0,
                   modality: str = "combined", duplicate_of: np.ndarray | None = None,
                   show_progress: bool = False) -> Subset:
    """``n`` items that cover the bundle's catalog (see the module docstring).

    Args:
        n: how many items; fewer come back when fewer are eligible.
        balance: a catalog column (``category``) whose every value is represented.
        quota: ``one`` (at least one item per value) or ``equal`` (equal shares).
        seed: draws the first item.
        modality: ``combined`` or one modality's vectors.
        duplicate_of: per item the row of its duplicate group's first item, ``-1`` for none
            (:attr:`Bundle.duplicate_of`); every grouped item but the first is left out.

    Raises:
        InvalidRequest: ``n`` below 1, an unknown column, quota or modality.
    """
    if n < 1:
        raise InvalidRequest(f"n must be at least 1 (got {n})")
    if quota not in ("one", "equal"):
        raise InvalidRequest(f"quota must be one or equal (got {quota!r})")
    matrix, mask = item_vectors(bundle, modality)
    eligible = mask.copy()
    if duplicate_of is not None:
        eligible &= (duplicate_of < 0) | (duplicate_of == np.arange(len(duplicate_of)))
    share, codes = None, None
    if balance is not None:
        if balance not in bundle.items.columns:
            raise InvalidRequest(f"cannot balance by {balance!r}: the catalog has no such column "
                                 f"(it has {', '.join(map(str, bundle.items.columns))})")
        values = bundle.items[balance].fillna("").astype(str)
        eligible &= (values != "").to_numpy()
        codes, names = pd.factorize(values)
        if quota == "equal":
            share = quotas(values[eligible], n)
            left = np.array([share.get(name, 0) for name in names], np.int64)
            eligible &= left[codes] > 0
        missing = np.zeros(len(names), bool)
        missing[np.unique(codes[eligible])] = True
    candidates = np.flatnonzero(eligible)
    if not len(candidates):
        return Subset(bundle.version, [], float("nan"), share)
    rng = np.random.default_rng(seed)
    # squared distances between unit vectors: 2 - 2 cos; the chosen and ineligible never win
    nearest = np.full(len(matrix), np.inf, np.float32)
    chosen: list[int] = []
    pick = int(rng.choice(candidates))
    with tqdm(total=min(n, len(candidates)), desc="subset", unit="item", disable=not show_progress) as bar:
        while True:
            chosen.append(pick)
            bar.update(1)
            eligible[pick] = False
            if codes is not None:
                missing[codes[pick]] = False
                if share is not None:
                    left[codes[pick]] -= 1
                    if left[codes[pick]] == 0:
                        eligible &= codes != codes[pick]
            if len(chosen) == n or not eligible.any():
                break
            np.minimum(nearest, 2.0 - 2.0 * (matrix @ matrix[pick]), out=nearest)
            allowed = eligible
            if codes is not None and 0 < n - len(chosen) <= missing.sum():
                allowed = eligible & missing[codes]  # the last slots go to the values not reached
            pick = int(np.argmax(np.where(allowed, nearest, -np.inf)))
    ids = bundle.item_ids.ids
    rows = np.asarray(chosen)
    return Subset(bundle.version, [str(ids[r]) for r in rows], coverage_radius(matrix, mask, rows), share)
