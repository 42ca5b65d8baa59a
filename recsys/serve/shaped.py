"""A read's answer shaped by the shop's rules and diversity (:mod:`recsys.control.shaping`): the
items excluded by rules joined to the read's filter, and the shaping applied to its candidates,
with what shaping needs to know of them (:class:`CatalogFacts`)."""
from __future__ import annotations

import dataclasses

import numpy as np

from recsys.bundle import Bundle
from recsys.control.shaping import Shaper, Shaping, shaper
from recsys.errors import InvalidRequest
from recsys.serve.changes import ItemChanges
from recsys.serve.filters import FilterColumns, ItemFilter
from recsys.serve.queries import NO_FILTER
from recsys.serve.rows import MAX_K, Recommendations, Scored

__all__ = ["CatalogFacts", "ReadShapes", "hide", "shaped_first", "check_pins"]


class CatalogFacts:
    """:class:`~recsys.control.shaping.ItemFacts` over a bundle and its changes, for one read."""

    def __init__(self, bundle: Bundle, columns: FilterColumns, changes: ItemChanges, filters: ItemFilter | None,
                 query_id: str | None, category: np.ndarray):
        self.bundle, self.columns, self.changes = bundle, columns, changes
        self.category = category  # the bundle's items' category paths
        self.filters = filters or NO_FILTER
        self.query_id = query_id
        self._allowed: np.ndarray | None = None

    def rows(self, ids: list[str]) -> tuple[np.ndarray, np.ndarray]:
        return self.bundle.item_ids.find(ids), self.changes.ids.find(ids)

    def vectors(self, ids: list[str]) -> np.ndarray:
        bundle_rows, put_rows = self.rows(ids)
        out = np.zeros((len(ids), self.bundle.vectors.combined.shape[1]), np.float32)
        on_put = put_rows >= 0
        if on_put.any():
            out[on_put] = self.changes.vectors.combined[put_rows[on_put]]
        on_bundle = ~on_put & (bundle_rows >= 0)
        out[on_bundle] = self.bundle.vectors.combined[bundle_rows[on_bundle]]
        return out

    def categories(self, ids: list[str]) -> list[str]:
        bundle_rows, put_rows = self.rows(ids)
        out = np.full(len(ids), "", dtype=object)
        on_bundle = bundle_rows >= 0
        out[on_bundle] = self.category[bundle_rows[on_bundle]]
        if "category" in self.changes.items.columns:
            on_put = put_rows >= 0
            out[on_put] = self.changes.items["category"].to_numpy(object)[put_rows[on_put]]
        return [c if isinstance(c, str) else "" for c in out]

    def showable(self, item_id: str) -> bool:
        if item_id == self.query_id:
            return False
        if item_id in self.changes.ids:
            return item_id in self.changes.ids.ids[self.changes.matching(self.filters, self.bundle.item_ids)]
        if item_id not in self.bundle.item_ids or item_id in self.changes.deleted_ids:
            return False
        if self._allowed is None:
            self._allowed = self.columns.allowed(self.filters, known_elsewhere=self.changes.ids)
        return bool(self._allowed[self.bundle.item_ids.row(item_id)])


def hide(filters: ItemFilter | None, shaper: Shaper | None) -> ItemFilter | None:
    """``filters`` with the items the shaper's exclude rules hide."""
    if shaper is None or shaper.hidden is None:
        return filters
    return dataclasses.replace(filters or NO_FILTER, hidden=shaper.hidden)


def check_pins(shaping, k: int) -> None:
    """A request's own pin beyond its ``k`` is an error (a stored one is left out of a short read)."""
    for rule in shaping.rules:
        if rule.action == "pin" and rule.position > k:
            raise InvalidRequest(f"a pin at position {rule.position} is beyond k ({k}); pin at 1 to {k}")


def shaped_first(shaper: Shaper | None, k: int, find, facts) -> Recommendations | None:
    """The ``k`` items a read shows: ``find(n)``'s best ``n`` (Recommendations, or ``None`` when
    it cannot tell), asked for :meth:`Shaper.depth` and shaped when ``shaper`` reorders;
    ``facts()`` makes the :class:`CatalogFacts` shaping reads. When the category cap had to let
    capped items fill the list, it is asked once more with 1,000 candidates (a computed read
    scores every allowed item whatever its length). The answer keeps ``find``'s strategy and
    message."""
    if shaper is None or not shaper.reorders:
        return find(k)
    ask, known = shaper.depth(k), facts()
    while True:
        found = find(ask)
        if found is None:
            return None
        shaped, filled = shaper.shape(found, k, known, _scored)
        if not filled or len(found) < ask or ask >= MAX_K:
            return Recommendations(shaped, getattr(found, "strategy", "similar"), getattr(found, "message", None))
        ask = MAX_K


def _scored(*fields) -> Scored:
    return tuple.__new__(Scored, fields)


class ReadShapes:
    """Every read's shaping over one bundle: the stored rules its item changes hold, the
    request's own, and the default diversity (``settings.shaping``)."""

    def __init__(self, bundle: Bundle, columns: FilterColumns, diversity: float, max_per_category: int):
        self.bundle, self.columns = bundle, columns
        self.diversity, self.max_per_category = diversity, max_per_category
        items = bundle.items
        self.category = (items["category"].to_numpy(object) if "category" in items.columns
                         else np.full(len(items), "", dtype=object))

    def shaper(self, changes: ItemChanges, scope: str, shaping: Shaping, k: int) -> Shaper | None:
        """The rules active now for reads of ``scope`` with the request's own shaping, or ``None``.

        Raises:
            InvalidRequest: a request's own pin beyond ``k``.
        """
        check_pins(shaping, k)
        return shaper(changes.rules, scope, shaping, diversity=self.diversity, max_per_category=self.max_per_category)

    def first(self, shaped: Shaper | None, k: int, find, changes: ItemChanges, filters: ItemFilter | None,
              query_id: str | None = None) -> Recommendations | None:
        """:func:`shaped_first` over this bundle's catalog."""
        return shaped_first(shaped, k, find,
                            lambda: CatalogFacts(self.bundle, self.columns, changes, filters, query_id, self.category))

    def read(self, changes: ItemChanges, scope: str, shaping: Shaping, k: int, filters: ItemFilter | None,
             find) -> Recommendations | None:
        """A whole read of ``scope`` shaped: ``find(n, filters)`` answers it with the items the
        exclude rules hide joined to ``filters``."""
        shaped = self.shaper(changes, scope, shaping, k)
        filters = hide(filters, shaped)
        return self.first(shaped, k, lambda n: find(n, filters), changes, filters)

    def always(self, changes: ItemChanges) -> bool:
        """Whether reads are shaped without being asked (stored rules, or default diversity)."""
        return bool(len(changes.rules)) or self.diversity > 0 or self.max_per_category > 0
