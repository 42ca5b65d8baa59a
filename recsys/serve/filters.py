"""Filters on every feed and similar-items query: category prefix, price range, include, exclude,
and the items merchandising rules exclude (:class:`~recsys.control.shaping.Hidden`)."""
from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import pandas as pd

from recsys.control.shaping import Hidden
from recsys.data import schema as S
from recsys.data.ids import IdMap
from recsys.data.validate import non_negative, normalise_category
from recsys.errors import InvalidRequest

__all__ = ["ItemFilter", "FilterColumns", "is_unfiltered", "without_include"]


@dataclass(frozen=True)
class ItemFilter:
    """Which items a result may contain.

    Attributes:
        category: a category path prefix matched on whole segments: ``"women/shoes"`` keeps
            ``women/shoes`` and ``women/shoes/sneakers``, not ``women/shoestrings``.
        min_price, max_price: inclusive bounds; items without a price fail a price bound.
        include: when not empty, only these item ids.
        exclude: never these item ids (ids the bundle does not know are ignored).
        hidden: items the active exclude rules hide (set by the query engine, not by callers;
            not described: the rules are part of a cached answer's key on their own).

    Example:
        >>> ItemFilter.create(category="Women / Shoes", max_price=50).category
        'women/shoes'
    """

    category: str | None = None
    min_price: float | None = None
    max_price: float | None = None
    include: tuple[str, ...] = field(default_factory=tuple)
    exclude: tuple[str, ...] = field(default_factory=tuple)
    hidden: Hidden | None = None

    @classmethod
    def create(cls, *, category: str | None = None, min_price: float | None = None,
               max_price: float | None = None, include: Iterable[str] | None = None,
               exclude: Iterable[str] | None = None) -> ItemFilter:
        """Validate and normalise filter values.

        Raises:
            InvalidRequest: a price that is not a finite number >= 0, ``min_price > max_price``,
                or an empty category.
        """
        prices = {}
        for name, value in (("min_price", min_price), ("max_price", max_price)):
            if value is None:
                continue
            prices[name] = non_negative(value, name)
        if len(prices) == 2 and prices["min_price"] > prices["max_price"]:
            raise InvalidRequest(f"min_price ({prices['min_price']:g}) is above max_price "
                                 f"({prices['max_price']:g})")
        if category is not None:
            category = normalise_category(str(category))
            if not category:
                raise InvalidRequest("category must name a category path such as women/shoes")
        return cls(category=category, include=tuple(dict.fromkeys(include or ())),
                   exclude=tuple(dict.fromkeys(exclude or ())), **prices)

    @property
    def active(self) -> bool:
        return bool(self.category or self.include or self.exclude or self.hidden is not None
                    or self.min_price is not None or self.max_price is not None)

    def describe(self) -> dict:
        """The non-empty fields, for responses and cache keys (a new dict each time; made once)."""
        described = self.__dict__.get("_described")
        if described is None:
            described = {f.name: list(v) if isinstance(v, tuple) else v for f in dataclasses.fields(self)
                         if f.name != "hidden" and (v := getattr(self, f.name)) not in (None, ())}
            object.__setattr__(self, "_described", described)  # a cache, not a field: frozen all the same
        return described.copy()


class FilterColumns:
    """A bundle's filterable columns in array form, so a filter costs a few vector operations.

    Args:
        items: the bundle's item frame.
        item_ids: its id map.
    """

    def __init__(self, items: pd.DataFrame, item_ids: IdMap):
        self.item_ids = item_ids
        n = len(items)
        if S.CATEGORY in items.columns:
            codes, self._categories = pd.factorize(items[S.CATEGORY].fillna("").astype(str))
            self._category_codes = codes
        else:
            self._category_codes, self._categories = np.full(n, -1), pd.Index([])
        price = items[S.PRICE] if S.PRICE in items.columns else pd.Series(np.nan, index=items.index)
        self._price = pd.to_numeric(price, errors="coerce").to_numpy(dtype=np.float64)
        self._prefix_cache = lru_cache(maxsize=1024)(self._category_mask)

    def _category_mask(self, prefix: str) -> np.ndarray:
        mask = np.isin(self._category_codes, self._category_hits(prefix))
        mask.flags.writeable = False
        return mask

    def _category_hits(self, prefix: str) -> list[int]:
        """The codes of the categories under ``prefix`` (itself included)."""
        return [i for i, name in enumerate(self._categories) if name == prefix or name.startswith(prefix + "/")]

    def has_category(self, prefix: str) -> bool:
        """Whether some item's category is ``prefix`` or under it (a normalised path)."""
        return bool(self._category_hits(prefix))

    def next_segments(self, prefix: str) -> set[str]:
        """The segments that follow ``prefix`` in the items' categories (``""``: the first ones)."""
        start = f"{prefix}/" if prefix else ""
        return {name[len(start):].split("/")[0] for name in self._categories
                if name.startswith(start) and len(name) > len(start)}

    def allowed(self, item_filter: ItemFilter | None, known_elsewhere=()) -> np.ndarray:
        """``(items,)`` bool of the items the filter keeps, a new array the caller may change."""
        mask = self.mask(item_filter, known_elsewhere)
        return np.ones(len(self.item_ids), dtype=bool) if mask is None else mask.copy()

    def mask(self, item_filter: ItemFilter | None, known_elsewhere=()) -> np.ndarray | None:
        """``(items,)`` bool of the items the filter keeps, or ``None`` when it keeps everything.

        Args:
            item_filter: the filter.
            known_elsewhere: ids ``include`` may name that are not in these columns (items put
                since the bundle).

        Raises:
            InvalidRequest: ``include`` names ids known nowhere.
        """
        if item_filter is None or not item_filter.active:
            return None
        keep = np.ones(len(self.item_ids), dtype=bool)
        if item_filter.category:
            keep &= self._prefix_cache(item_filter.category)
        if item_filter.min_price is not None:
            keep &= self._price >= item_filter.min_price  # NaN prices compare False
        if item_filter.max_price is not None:
            keep &= self._price <= item_filter.max_price
        if item_filter.include:
            unknown = [i for i in item_filter.include
                       if i not in self.item_ids and i not in known_elsewhere]
            if unknown:
                raise InvalidRequest(f"include names unknown item_id(s): "
                                     f"{', '.join(map(repr, unknown[:5]))}", unknown=unknown[:20])
            only = np.zeros_like(keep)
            only[self.item_ids.rows([i for i in item_filter.include if i in self.item_ids])] = True
            keep &= only
        if item_filter.exclude:
            known = [i for i in item_filter.exclude if i in self.item_ids]
            keep[self.item_ids.rows(known)] = False
        if item_filter.hidden is not None:
            keep &= item_filter.hidden.keep(self.item_ids)
        return keep


def is_unfiltered(item_filter: ItemFilter | None, deleted_ids) -> bool:
    """No filter and no deleted item: a precomputed list's head is the answer."""
    return (item_filter is None or not item_filter.active) and not deleted_ids


def without_include(item_filter: ItemFilter | None) -> ItemFilter | None:
    """The filter without its ``include`` list (put items are matched against it by id)."""
    if item_filter is None or not item_filter.include:
        return item_filter
    return dataclasses.replace(item_filter, include=())
