"""One listing per product: a result's items with the duplicate listings of the bundle's groups
(:mod:`recsys.curation.duplicates`) collapsed, so that a widget never shows one product twice."""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from recsys.bundle import Bundle
from recsys.data.ids import IdMap
from recsys.serve.rows import Recommendations

__all__ = ["first_k", "first_distinct", "computed_once", "computed_depth"]


def first_k(bundle: Bundle, find: Callable[[int], list | None], k: int, dedupe: bool,
            query_id: str | None = None, changes=None) -> Recommendations | None:
    """``find(n)``'s first ``k`` items, with the bundle's duplicate listings collapsed when
    ``dedupe`` (:func:`first_distinct`), and those of the put items of ``changes``
    (:class:`~recsys.serve.changes.ItemChanges`) found to duplicate a served item; ``None`` when
    ``find`` says ``None``."""
    groups = bundle.duplicate_of if dedupe else None
    extra = changes.duplicate_groups if dedupe and changes is not None else {}
    if groups is None and not extra:
        found = find(k)
        return found if found is None or isinstance(found, Recommendations) else Recommendations(found)
    if groups is None:
        groups = np.full(len(bundle.item_ids), -1, np.int32)
    return first_distinct(find, k, groups, bundle.item_ids, query_id, extra)


def first_distinct(find: Callable[[int], list | None], k: int, groups: np.ndarray, ids: IdMap,
                   query_id: str | None = None, extra: dict[str, int] | None = None) -> Recommendations | None:
    """``find(n)``'s first ``k`` items, an item in the same group of duplicates as ``query_id``
    or as a better item left out; more items are asked for until ``k`` remain or ``find`` runs
    out. ``None`` when ``find`` says ``None`` (it cannot tell).

    Args:
        find: the best ``n`` items (a list of :class:`~recsys.serve.rows.Scored`), or ``None``.
        groups: per bundle row, the row naming its group (its first item), ``-1`` for none.
        ids: the bundle's id map.
        extra: group keys by item id that override ``groups`` (put items and what they duplicate).
    """
    extra = extra or {}

    def group_of(item_id: str) -> int:
        if item_id in extra:
            return extra[item_id]
        return groups[ids.row(item_id)] if item_id in ids else -1

    query_group = group_of(query_id) if query_id else -1
    ask = k  # most answers hold no duplicate: the same call as without dedupe (a list lookup)
    while True:
        found = find(ask)
        if found is None:
            return None
        kept, seen = [], {query_group} - {-1}
        for scored in found:
            group = group_of(scored.item_id)
            if group >= 0:
                if group in seen:
                    continue
                seen.add(group)
            kept.append(scored)
            if len(kept) == k:
                break
        if len(kept) == k or len(found) < ask or ask >= 8 * k + 100:
            return Recommendations(kept, getattr(found, "strategy", "similar"), getattr(found, "message", None))
        ask = 2 * ask + 10


def computed_depth(n: int) -> int:
    """How deep a feed of ``n`` is computed (:func:`computed_once`; a batch ranks as deep, so
    that its answers are the single calls')."""
    return 2 * n + 10


def computed_once(find: Callable[[int], list | None]) -> Callable[[int], list | None]:
    """``find`` for a result computed per request whose cost hardly depends on ``n`` (a ranking
    scores every candidate it has): the first ask is computed :func:`computed_depth` deep and
    every later ask within that depth is a slice of it, so that leaving out duplicates
    (:func:`first_distinct` asks again for more) does not compute the feed twice."""
    kept: list = []  # [depth, found]

    def once(n: int) -> list | None:
        if not kept or (kept[1] is not None and n > kept[0] and len(kept[1]) >= kept[0]):
            depth = computed_depth(n)
            kept[:] = [depth, find(depth)]
        found = kept[1]
        if found is None or not isinstance(found, Recommendations):
            return found if found is None else found[:n]
        return Recommendations(found[:n], found.strategy, found.message)

    return once
