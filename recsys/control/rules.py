"""Merchandising rules: boost, bury, pin or exclude the items a rule matches (by id, category,
tag, price range or any catalog attribute), each with an optional time window and a scope
(similar items, feeds, search, or all).

A rule is data: JSON in Redis (:meth:`recsys.store.redis.RedisStore.rules`), validated by
:class:`Rule` on the way in. :class:`RuleBook` holds a shop's rules matched once against one
catalog (the bundle's items, the items put since, and attribute values set since), so a read only
looks up which rules are active now.
"""
from __future__ import annotations

import bisect
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from recsys.data import schema as S
from recsys.data.ids import IdMap
from recsys.data.validate import normalise_category

__all__ = ["Action", "Scope", "SCOPES", "Match", "Rule", "RuleBook", "tag_set", "attribute_value"]

Action = Literal["boost", "bury", "pin", "exclude"]
Scope = Literal["all", "similar", "feeds", "search"]
SCOPES = ("similar", "feeds", "search")
MAX_POSITION = 1000
# the separators of a catalog's tags column ("summer;linen" or "summer|linen")
_TAG_SEPARATORS = (";", "|")


def tag_set(value) -> frozenset[str]:
    """An item's tags, lower case: ``"Summer; Linen"`` -> ``{"summer", "linen"}``."""
    text = "" if value is None or (isinstance(value, float) and np.isnan(value)) else str(value)
    for sep in _TAG_SEPARATORS[1:]:
        text = text.replace(sep, _TAG_SEPARATORS[0])
    return frozenset(t.strip().lower() for t in text.split(_TAG_SEPARATORS[0]) if t.strip())


def attribute_value(value) -> str | None:
    """A catalog or rule value in the one form both are compared in: ``True`` and ``"true"`` are
    ``"true"``, ``5`` and ``"5.0"`` are ``"5"``, text is stripped and lower case; ``None`` for
    a missing value (NaN, ``None``, empty text)."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    if isinstance(value, (int, float, np.integer, np.floating)):
        return f"{float(value):g}"
    text = str(value).strip().lower()
    if not text:
        return None
    try:
        return f"{float(text):g}"
    except ValueError:
        return text


class Match(BaseModel):
    """Which items a rule acts on: every given criterion must hold.

    Attributes:
        item_ids: these items (a pin places the first one a read may show).
        category: a category path prefix, on whole segments, as in filters.
        tag: one of the item's tags (its ``tags`` column, split on ``;`` or ``|``).
        min_price, max_price: an inclusive price range.
        attributes: catalog attributes and the value each must have, e.g. ``{"in_stock": false}``
            (values compared as :func:`attribute_value` writes them).
    """

    model_config = ConfigDict(extra="forbid")

    item_ids: list[str] = Field(default_factory=list, max_length=MAX_POSITION)
    category: str | None = Field(None, min_length=1, max_length=500)
    tag: str | None = Field(None, min_length=1, max_length=200)
    min_price: float | None = Field(None, ge=0)
    max_price: float | None = Field(None, ge=0)
    attributes: dict[str, str | float | bool] = Field(default_factory=dict, max_length=20)

    @field_validator("item_ids")
    @classmethod
    def _ids(cls, ids: list[str]) -> list[str]:
        for item_id in ids:
            problem = S.id_problem(item_id)
            if problem is not None:
                raise ValueError(f"item id {item_id!r} {problem}")
        return list(dict.fromkeys(ids))

    @field_validator("category")
    @classmethod
    def _category(cls, category: str | None) -> str | None:
        if category is None:
            return None
        category = normalise_category(category)
        if not category:
            raise ValueError("must name a category path such as women/shoes")
        return category

    @field_validator("tag")
    @classmethod
    def _tag(cls, tag: str | None) -> str | None:
        return None if tag is None else tag.strip().lower()

    @model_validator(mode="after")
    def _criteria(self) -> Match:
        if not (self.item_ids or self.category or self.tag or self.attributes
                or self.min_price is not None or self.max_price is not None):
            raise ValueError("match needs at least one of item_ids, category, tag, min_price, max_price, "
                             "attributes")
        if self.min_price is not None and self.max_price is not None and self.min_price > self.max_price:
            raise ValueError(f"min_price ({self.min_price:g}) is above max_price ({self.max_price:g})")
        return self

    def names(self) -> set[str]:
        """The catalog attributes this match reads besides ids and prices."""
        return set(self.attributes)

    def mask(self, items: pd.DataFrame, columns: _Columns) -> np.ndarray:
        """``(len(items),)`` bool: the items of ``items`` this match holds for."""
        keep = np.ones(len(items), bool)
        if self.item_ids:
            keep &= items[S.ITEM_ID].isin(self.item_ids).to_numpy()
        if self.category:
            category = columns.text(S.CATEGORY)
            keep &= np.array([c == self.category or c.startswith(self.category + "/") for c in category], bool)
        if self.tag:
            keep &= np.array([self.tag in tags for tags in columns.tags()], bool)
        price = columns.price()
        if self.min_price is not None:
            keep &= price >= self.min_price  # NaN prices compare False
        if self.max_price is not None:
            keep &= price <= self.max_price
        for name, wanted in self.attributes.items():
            keep &= columns.values(name) == attribute_value(wanted)
        return keep


class Rule(BaseModel):
    """One merchandising rule.

    Attributes:
        id: given by the store when the rule is created (``r1``, ``r2``, ...).
        action: ``boost`` (matching items rank higher), ``bury`` (lower), ``pin`` (one matching
            item at ``position``) or ``exclude`` (never shown).
        match: the items it acts on.
        position: a pin's place, 1 = first; a read shorter than it leaves the pin out.
        factor: how far a boost or bury moves an item: a boosted item at rank ``r`` among the
            candidates competes as if at rank ``r / factor``, a buried one as if at ``r * factor``.
            Default: 2 for a boost; a bury without a factor puts matching items after all others.
        scope: the reads it applies to.
        start, end: when it applies (ISO 8601; a time without a zone is UTC); open when absent.
        note: what it is for, shown to merchandisers and in the ``why`` of a moved item.
    """

    model_config = ConfigDict(extra="forbid")

    id: str | None = Field(None, max_length=40)
    action: Action
    match: Match
    position: int | None = Field(None, ge=1, le=MAX_POSITION)
    factor: float | None = Field(None, gt=1, le=1000)
    scope: Scope = "all"
    start: datetime | None = None
    end: datetime | None = None
    note: str = Field("", max_length=500)

    @field_validator("start", "end")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Rule:
        if self.action == "pin" and self.position is None:
            raise ValueError("a pin needs a position (1 = first)")
        if self.action != "pin" and self.position is not None:
            raise ValueError(f"position is for pins; a {self.action} rule has none")
        if self.factor is not None and self.action not in ("boost", "bury"):
            raise ValueError(f"factor is for boost and bury; a {self.action} rule has none")
        if self.start is not None and self.end is not None and self.end <= self.start:
            raise ValueError(f"end ({self.end.isoformat()}) is not after start ({self.start.isoformat()})")
        return self

    @property
    def window(self) -> tuple[float, float]:
        """``(start, end)`` in epoch seconds, infinite where open."""
        return (self.start.timestamp() if self.start else -np.inf, self.end.timestamp() if self.end else np.inf)

    def applies(self, scope: str, now: float) -> bool:
        start, end = self.window
        return self.scope in ("all", scope) and start <= now < end

    def describe(self) -> str:
        """What the rule does, in words (a moved item's ``why``)."""
        what = {"boost": "boosted", "bury": "buried", "pin": f"pinned at position {self.position}",
                "exclude": "excluded"}[self.action]
        return f"{what} by rule {self.id}" + (f" ({self.note})" if self.note else "")


class _Columns:
    """The catalog columns rules read, in the forms they compare, made once per column."""

    def __init__(self, items: pd.DataFrame, attributes: dict[str, dict]):
        self.items = items
        self.attributes = attributes  # item id -> values set since the bundle
        self._made: dict = {}

    def _column(self, name: str) -> list:
        values = self.items[name].tolist() if name in self.items.columns else [None] * len(self.items)
        if self.attributes:
            for row, item_id in enumerate(self.items[S.ITEM_ID]):
                changed = self.attributes.get(item_id)
                if changed is not None and name in changed:
                    values[row] = changed[name]
        return values

    def _once(self, key: tuple, make):
        if key not in self._made:
            self._made[key] = make()
        return self._made[key]

    def text(self, name: str) -> list[str]:
        return self._once(("text", name), lambda: [normalise_category(v) if isinstance(v, str) else ""
                                                   for v in self._column(name)])

    def tags(self) -> list[frozenset[str]]:
        return self._once(("tags",), lambda: [tag_set(v) for v in self._column(S.TAGS)])

    def price(self) -> np.ndarray:
        return self._once(("price",), lambda: pd.to_numeric(pd.Series(self._column(S.PRICE), dtype=object),
                                                             errors="coerce").to_numpy(np.float64))

    def values(self, name: str) -> np.ndarray:
        return self._once(("values", name), lambda: np.array([attribute_value(v) for v in self._column(name)],
                                                             dtype=object))


@dataclass
class RuleBook:
    """A shop's rules, each matched once against one catalog.

    Args:
        rules: the rules, in the order they were created (a later pin at a taken position goes
            to the next free one).
        version: the rule set's version (moved by every rule write).
        bundle_ids, bundle_items: the bundle's id map and item frame.
        put_ids, put_items: the items put since the bundle.
        attributes: per item id, attribute values set since the bundle (``in_stock``, ...).
    """

    rules: tuple[Rule, ...] = ()
    version: int = 0
    bundle_ids: IdMap | None = None
    bundle_items: pd.DataFrame | None = None
    put_ids: IdMap | None = None
    put_items: pd.DataFrame | None = None
    attributes: dict[str, dict] = field(default_factory=dict)

    def __post_init__(self):
        self._masks: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._columns: tuple[_Columns, _Columns] | None = None
        self._bounds = sorted({t for rule in self.rules for t in rule.window if np.isfinite(t)})

    def __len__(self) -> int:
        return len(self.rules)

    def phase(self, now: float | None = None) -> int:
        """How many of the rules' start and end times have passed: the active rules are the same
        while it is (a cached answer's key carries it)."""
        return bisect.bisect_right(self._bounds, time.time() if now is None else now)

    def active(self, scope: str, now: float | None = None) -> tuple[Rule, ...]:
        now = time.time() if now is None else now
        return tuple(rule for rule in self.rules if rule.applies(scope, now))

    def matched(self, rule: Rule) -> tuple[np.ndarray, np.ndarray]:
        """``(bundle rows bool, put item rows bool)``: the items ``rule`` matches, made once."""
        key = rule.id or str(id(rule))
        if key not in self._masks:
            self._masks[key] = self.match(rule.match)
        return self._masks[key]

    def match(self, match: Match) -> tuple[np.ndarray, np.ndarray]:
        """As :meth:`matched`, for any match (a request's own rules)."""
        if self._columns is None:
            self._columns = (_Columns(self._frame(self.bundle_items), self.attributes),
                             _Columns(self._frame(self.put_items), self.attributes))
        bundle, put = self._columns
        return match.mask(bundle.items, bundle), match.mask(put.items, put)

    @staticmethod
    def _frame(items: pd.DataFrame | None) -> pd.DataFrame:
        return items if items is not None else pd.DataFrame({S.ITEM_ID: pd.Series([], dtype=str)})

    def unknown_attributes(self, match: Match) -> list[str]:
        """The attributes ``match`` names that no item has (a rule on them would never act)."""
        known = set(self._frame(self.bundle_items).columns) | set(self._frame(self.put_items).columns)
        known |= {name for values in self.attributes.values() for name in values}
        return sorted(match.names() - known)
