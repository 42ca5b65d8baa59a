"""Personalised feeds: a trained user's factors, or a user folded in from their recent items, blended
with content similarity; the precomputed feeds, and the folded-in lists kept per recent items."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

from recsys._lru import Lru
from recsys.bundle import PROJECTED, TRAINED, Bundle, Collab, TopLists
from recsys.collab.foldin import fold_in, gramian
from recsys.errors import InvalidRequest, NotReady
from recsys.index.mips import augment_query
from recsys.serve.candidates import Candidates, best
from recsys.serve.changes import ItemChanges
from recsys.serve.filters import FilterColumns, ItemFilter, is_unfiltered
from recsys.serve.rows import Recommendations, Scored, scored_list
from recsys.towers.item import content_query, rows_dot

__all__ = ["Feeds"]

# (user row or None, recent rows, training rows, training strengths)
History = tuple[int | None, np.ndarray, np.ndarray, np.ndarray]


class Feeds:
    """Feeds over one bundle's user tower.

    Args:
        bundle: the loaded bundle.
        candidates: the exact-or-ANN choice for the bundle.
        columns: the bundle's filter columns.
        content_weight: share of a feed score from content similarity to the user's recent items.
        history_items: how many recent items form the content query.
        feed_lists: feeds with recent items are made as the user's best ``list_k`` items (no
            filter, seen items excluded) and kept for the last this many distinct (user, recent
            items) pairs, so the same user's next feeds (any ``k`` up to ``list_k``, most filters)
            are lookups until the recent items change; 0 = compute every feed.
        list_k: the length of those lists.
    """

    def __init__(self, bundle: Bundle, candidates: Candidates, columns: FilterColumns, *,
                 content_weight: float = 0.4, history_items: int = 20, history_decay: float = 0.6,
                 feed_lists: int = 0, list_k: int = 100):
        if not 0.0 <= content_weight <= 1.0:
            raise InvalidRequest(f"content_weight must be between 0 and 1 (got {content_weight!r})")
        self.bundle = bundle
        self.candidates = candidates
        self.columns = columns
        self.content_weight = content_weight
        self.history_items = history_items
        self.history_decay = history_decay
        self.list_k = list_k
        self._lists = Lru(feed_lists if list_k > 0 else 0)
        self._last_recent = None  # (recent items, item changes, rows): see recent_rows
        self._precomputed = None
        collab = bundle.collab
        if collab is not None:
            self._yty = gramian(collab.item_factors[collab.item_state == TRAINED])
            data = collab.user_items.matrix.data
            # a recent item counts as much as a typical training interaction
            self._recent_strength = float(data.mean()) if len(data) else 1.0
            made = collab.params.get("feed", {})
            if collab.feed is not None and made.get("content_weight") == content_weight \
                    and made.get("history_items") == history_items \
                    and made.get("history_decay", 1.0) == history_decay:
                self._precomputed = collab.feed  # made with the scoring these feeds use

    def warm(self) -> None:
        """Build what requests would otherwise build on first use: the users' histories sorted by
        recency."""
        if self.bundle.collab is not None:
            self.bundle.collab.user_items.by_recency  # noqa: B018

    @property
    def keeps_lists(self) -> bool:
        """Whether feeds with recent items are made as kept lists (``feed_lists > 0`` and a user
        tower)."""
        return self.bundle.collab is not None and self._lists.size > 0

    def source(self, k: int, user_id: str | None, exclude_seen: bool, recent_items: Sequence[str],
               changes: ItemChanges) -> Literal["lookup", "list"] | None:
        """Where a feed of ``k`` for ``user_id`` with these recent items normally comes from:
        ``"lookup"``, a precomputed list (the bundle's, or a folded-in list kept since an earlier
        request); ``"list"``, a folded-in list made now (the cost of one computed feed) and kept,
        so that later feeds are lookups until the recent items change; ``None``, computed."""
        collab = self.bundle.collab
        if not exclude_seen or collab is None:
            return None
        known = user_id is not None and user_id in collab.user_ids
        recent = self.recent_rows(recent_items, changes)
        if not len(recent):
            return "lookup" if known and self._precomputed is not None and k <= self._precomputed.k else None
        if k > self.list_k or not self._lists.size:
            return None
        return "lookup" if self._lists.get(self._list_key(user_id, recent)) is not None else "list"

    def usable_recent(self, recent_items: Sequence[str]) -> list[str]:
        """The recent items (from the activity log, newest first) a feed reads: the ones this
        bundle has (the log may name items a newer bundle dropped, or put items without factors),
        at most ``5 * history_items``."""
        return [i for i in recent_items if i in self.bundle.item_ids][: self.history_items * 5]

    def recommend(self, user_id: str | None, k: int, recent_items: Sequence[str], exclude_seen: bool,
                  filters: ItemFilter | None, changes: ItemChanges) -> Recommendations:
        """See :meth:`recsys.serve.Recommender.recommend`."""
        collab = self._collab()
        history = self._history(user_id, self.recent_rows(recent_items, changes))
        user_row, recent, hist_rows, _ = history
        known = user_row is not None
        message = None
        if user_id is not None and not known:
            message = (f"unknown user_id {user_id!r} (not in the trained model): "
                       + ("placed by the recent items given" if len(recent)
                          else "no recent item the model knows (put items count after the next training), "
                               "so showing popular items"))
        elif user_id is None and not len(recent):
            message = "no user and no recent items: showing popular items"

        def allowed() -> np.ndarray:
            keep = self.columns.allowed(filters, known_elsewhere=changes.ids)
            keep &= ~changes.deleted
            if exclude_seen:
                keep[hist_rows] = False
                keep[recent] = False
            return keep

        if not known and not len(recent):
            keep = allowed()
            rows = np.flatnonzero(keep)
            return Recommendations(self._scored(*best(k, rows, collab.popularity[rows])), "popular", message)
        strategy = "collaborative" if known else "fold-in"
        if exclude_seen:
            lists, owner = self._list_for(user_id, history)
            listed = None
            if lists is not None:  # the lists leave out seen items; a filter or a deletion cuts them
                listed = (lists.head(owner, k) if is_unfiltered(filters, changes.deleted_ids)
                          else lists.first(owner, k, allowed()))
            if listed is not None:
                return Recommendations(self._scored(*listed), strategy, message)
        return Recommendations(self._scored(*self._top(k, allowed(), history)), strategy, message)

    def feed_list(self, user_id: str | None, recent_items: Sequence[str],
                  changes: ItemChanges) -> TopLists | None:
        """The folded-in feed list kept for ``user_id`` with these recent items (the one
        :meth:`recommend` reads with ``exclude_seen``), made now if there is none.

        Returns:
            One list (row 0) of the best ``list_k`` rows, or ``None`` when no list applies: lists
            are off (``feed_lists=0``), the bundle has no user tower, or no recent item is known.

        Raises:
            InvalidRequest: a recent item the bundle does not know.
        """
        if not self.keeps_lists:
            return None
        history = self._history(user_id, self.recent_rows(recent_items, changes))
        if not len(history[1]):
            return None
        return self._list_for(user_id, history)[0]

    def keep_list(self, user_id: str | None, recent_items: Sequence[str], rows: Sequence[int],
                  scores: Sequence[float], changes: ItemChanges) -> None:
        """Keep a feed list that :meth:`feed_list` made in another process for the same bundle, so
        that this one looks it up instead of making it again.

        Raises:
            InvalidRequest: the list does not fit this bundle (length, rows, scores) or names an
                unknown recent item.
        """
        recent = self.recent_rows(recent_items, changes)
        rows = np.asarray(rows)
        scores = np.asarray(scores, dtype=np.float32)
        if self.bundle.collab is None or not len(recent) or rows.dtype.kind != "i" \
                or rows.shape != (self.list_k,) or scores.shape != rows.shape \
                or not ((rows >= -1) & (rows < len(self.bundle.item_ids))).all() \
                or not np.isfinite(scores).all():
            raise InvalidRequest(f"not a feed list of bundle {self.bundle.version} (list_k {self.list_k})")
        self._lists.put(self._list_key(user_id, recent), TopLists(rows.astype(np.int32)[None], scores[None]))

    def recent_rows(self, recent_items: Sequence[str], changes: ItemChanges) -> np.ndarray:
        """The bundle rows of the recent items, first occurrences in order (put items, which have
        no collaborative factors until the next training, left out; read-only). A feed asks this
        twice for the same items (where it comes from, then the feed): the last answer is kept.

        Raises:
            InvalidRequest: one string instead of a list, or an item neither the bundle nor the
                put items hold.
        """
        if isinstance(recent_items, str):
            raise InvalidRequest("recent_items must be a list of item ids, not one string")
        key = tuple(recent_items)
        last = self._last_recent
        if last is not None and last[0] == key and last[1] is changes:
            return last[2]
        ids = list(dict.fromkeys(map(str, key)))
        rows = self.bundle.item_ids.find(ids)
        if (rows < 0).any():
            unknown = [i for i, r in zip(ids, rows.tolist()) if r < 0 and i not in changes.ids]
            if unknown:
                raise InvalidRequest(f"recent_items names unknown item_id {unknown[0]!r}"
                                     + (f" (and {len(unknown) - 1} more)" if len(unknown) > 1 else "")
                                     + f"; bundle {self.bundle.version} has {len(self.bundle.item_ids):,} items",
                                     unknown=unknown[:20])
            rows = rows[rows >= 0]
        rows.flags.writeable = False
        self._last_recent = (key, changes, rows)  # one tuple: replaced whole, never torn
        return rows

    def _list_key(self, user_id: str | None, recent: np.ndarray) -> tuple:
        """A kept feed list's key: a trained user's id, or ``None`` for anyone the model does not
        know (visitors with the same recent items share a list), and the recent rows."""
        known = user_id is not None and user_id in self.bundle.collab.user_ids
        return user_id if known else None, recent.tobytes()

    def _history(self, user_id: str | None, recent: np.ndarray) -> History:
        collab = self.bundle.collab
        known = user_id is not None and user_id in collab.user_ids
        if not known:
            return None, recent, np.zeros(0, np.int64), np.zeros(0, np.float32)
        user_row = collab.user_ids.row(user_id)
        return (user_row, recent, *collab.user_items.history(user_row))

    def _list_for(self, user_id: str | None, history: History) -> tuple[TopLists | None, int]:
        """The user's precomputed feed list (seen items excluded, no filter) and its row in it: the
        bundle's for a trained user without recent items, else the one kept for these recent
        items (made now if there is none)."""
        user_row, recent, hist_rows, _ = history
        if not len(recent):
            return (self._precomputed, user_row) if user_row is not None else (None, 0)
        key = self._list_key(user_id, recent)
        lists = self._lists.get(key)
        if lists is None and self._lists.size:
            allowed = np.ones(len(self.bundle.item_ids), dtype=bool)
            allowed[hist_rows] = False
            allowed[recent] = False
            rows, scores = self._top(self.list_k, allowed, history)
            lists = TopLists(np.full((1, self.list_k), -1, np.int32), np.zeros((1, self.list_k), np.float32))
            lists.rows[0, :len(rows)], lists.scores[0, :len(rows)] = rows, scores
            self._lists.put(key, lists)
        return lists, 0

    def _top(self, k: int, allowed: np.ndarray, history: History) -> tuple[np.ndarray, np.ndarray]:
        """The best ``k`` allowed rows for a history: the trained or folded-in user's factors,
        blended with the content similarity to the history."""
        collab = self.bundle.collab
        user_row, recent, hist_rows, hist_strength = history
        if user_row is not None and not len(recent):
            user = collab.user_factors[user_row]
        else:
            rows, strength = _merge(recent, self._recent_strength, hist_rows, hist_strength)
            placed = collab.item_state[rows] > 0
            user = fold_in(collab.item_factors, rows[placed],
                           1.0 + collab.params.get("alpha", 1.0) * strength[placed],
                           regularization=collab.params.get("regularization", 0.0), yty=self._yty)
        taste = (content_query(self.bundle.vectors, np.concatenate([recent, hist_rows]), self.history_items,
                               self.history_decay)
                 if self.content_weight > 0 else None)
        beta = self.content_weight if taste is not None else 0.0
        allowed = allowed & (collab.item_state > 0)
        searches = [(collab.index, augment_query(user))]
        if beta > 0:
            searches.append((self.bundle.indexes["combined"], taste))
        combined = self.bundle.vectors.combined
        scans = self.candidates.scans

        def score(rows: np.ndarray) -> np.ndarray:
            cf = rows_dot(collab.item_factors, rows, user, scans["factors"])
            if beta == 0:
                return cf
            return (1.0 - beta) * cf + beta * rows_dot(combined, rows, taste, scans["combined"])

        dim = collab.item_factors.shape[1] + (combined.shape[1] if beta > 0 else 0)
        return self.candidates.top(k, searches, allowed, score, dim)

    def _collab(self) -> Collab:
        if self.bundle.collab is None:
            raise NotReady(f"bundle {self.bundle.version} has no user tower; run `recsys train --bundle "
                           f"{self.bundle.path.parent} --interactions ...` to add one")
        return self.bundle.collab

    def _scored(self, rows: np.ndarray, scores: np.ndarray) -> list[Scored]:
        return scored_list(self.bundle.item_ids.ids[rows].tolist(), scores,
                           (self.bundle.collab.item_state[rows] == PROJECTED).tolist())


def _merge(recent: np.ndarray, recent_strength: float, rows: np.ndarray,
           strength: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Union of the training history and the recent items, strengths added per item."""
    all_rows = np.concatenate([rows, recent]).astype(np.int64)
    all_strength = np.concatenate([strength, np.full(len(recent), recent_strength, np.float32)])
    unique, inverse = np.unique(all_rows, return_inverse=True)
    return unique, np.bincount(inverse, weights=all_strength, minlength=len(unique)).astype(np.float32)
