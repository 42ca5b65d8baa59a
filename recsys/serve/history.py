"""What a feed is made from: the user's recent items as rows (of the bundle, or of the items put
since), and a trained user's row and training items."""
from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from recsys.bundle import Bundle
from recsys.errors import InvalidRequest
from recsys.serve.changes import ItemChanges
from recsys.towers.item import taste_of

__all__ = ["Recent", "History", "recent_rows", "user_history", "merged_strengths", "content_taste"]

# no put item among the recent items (read-only, shared)
_NO_ROWS = np.zeros(0, np.int64)
_NO_ROWS.flags.writeable = False


class Recent(NamedTuple):
    """A feed's recent items, each list newest first and without repeats.

    Attributes:
        rows: the bundle rows among them.
        put: the rows (in the item changes) of the put items the bundle does not hold.
        ids: all of them, as given.
    """

    rows: np.ndarray
    put: np.ndarray
    ids: tuple[str, ...]


class History(NamedTuple):
    """What a feed is made from: a trained user's row (``None`` for anyone else), the recent items,
    and the user's training items with their strengths."""

    user_row: int | None
    recent: Recent
    rows: np.ndarray
    strength: np.ndarray


_NO_RECENT = Recent(_NO_ROWS, _NO_ROWS, ())


def recent_rows(bundle: Bundle, recent_items: Sequence[str], changes: ItemChanges, *,
                logged_cap: int | None = None) -> Recent:
    """The recent items as bundle rows and put rows (read-only arrays).

    Args:
        logged_cap: the items come from the activity log, which may name items this bundle no
            longer holds: those are dropped, and at most this many are kept. ``None``: every item
            must be known.

    Raises:
        InvalidRequest: one string instead of a list, or (not logged) an item neither the bundle
            nor the put items hold.
    """
    if isinstance(recent_items, str):
        raise InvalidRequest("recent_items must be a list of item ids, not one string")
    if not recent_items:
        return _NO_RECENT  # most feeds: no array work at all
    ids = list(dict.fromkeys(map(str, recent_items)))
    if logged_cap is not None:
        ids = [i for i in ids if i in bundle.item_ids or i in changes.ids][:logged_cap]
    rows = bundle.item_ids.find(ids)
    put = _NO_ROWS
    if (rows < 0).any():
        missing = [i for i, r in zip(ids, rows.tolist()) if r < 0]
        put = changes.ids.find(missing)
        unknown = [i for i, r in zip(missing, put.tolist()) if r < 0]
        if unknown:
            raise InvalidRequest(f"recent_items names unknown item_id {unknown[0]!r}"
                                 + (f" (and {len(unknown) - 1} more)" if len(unknown) > 1 else "")
                                 + f"; bundle {bundle.version} has {len(bundle.item_ids):,} items",
                                 unknown=unknown[:20])
        put.flags.writeable = False
        rows = rows[rows >= 0]
    rows.flags.writeable = False
    return Recent(rows, put, tuple(ids))


def user_history(bundle: Bundle, user_id: str | None, recent: Recent) -> History:
    """A trained user's row and training items (none for anyone else), with the recent items."""
    collab = bundle.collab
    if user_id is None or user_id not in collab.user_ids:
        return History(None, recent, np.zeros(0, np.int64), np.zeros(0, np.float32))
    user_row = collab.user_ids.row(user_id)
    return History(user_row, recent, *collab.user_items.history(user_row))


def merged_strengths(recent: np.ndarray, recent_strength: float, rows: np.ndarray,
                     strength: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Union of the training history and the recent items, strengths added per item."""
    all_rows = np.concatenate([rows, recent]).astype(np.int64)
    all_strength = np.concatenate([strength, np.full(len(recent), recent_strength, np.float32)])
    unique, inverse = np.unique(all_rows, return_inverse=True)
    return unique, np.bincount(inverse, weights=all_strength, minlength=len(unique)).astype(np.float32)


def content_taste(bundle: Bundle, history: History, changes: ItemChanges, history_items: int,
                  decay: float) -> np.ndarray | None:
    """:func:`~recsys.towers.item.taste_of` the newest ``history_items`` items that have a
    combined vector: the recent items in their order (put items too), then the training history."""
    vectors, fresh = bundle.vectors, changes.vectors
    recent = history.recent
    picked = []
    rows, put = iter(recent.rows.tolist()), iter(recent.put.tolist())
    for item_id in recent.ids:
        if len(picked) == history_items:
            break
        if item_id in bundle.item_ids:
            r = next(rows)
            if vectors.mask[r]:
                picked.append(vectors.combined[r])
        else:
            p = next(put)
            if fresh.mask[p]:
                picked.append(fresh.combined[p])
    shown = set(recent.rows.tolist())
    for r in dict.fromkeys(history.rows.tolist()):
        if len(picked) >= history_items:
            break
        if r not in shown and vectors.mask[r]:
            picked.append(vectors.combined[r])
    return taste_of(np.asarray(picked, np.float32).reshape(len(picked), -1), decay)
