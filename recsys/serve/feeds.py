"""Personalised feeds: a trained user's factors, or a user folded in from their recent items, blended
with content similarity (:mod:`recsys.collab.blend`); or, where the bundle has a learned ranker,
its ranking of candidates from many sources (:mod:`recsys.serve.ranked`).

A feed is resolved once (:meth:`Feeds.resolve`: the recent items as rows, the user's history, the
strategy), then read from a list (:meth:`Feeds.listed`, the lists of :mod:`recsys.serve.feed_lists`)
or scored (:meth:`Feeds.computed`). Items put through the API since the training take part by the
places :class:`~recsys.serve.changes.ItemChanges` gave them in the factor space: they are scored
exactly beside the bundle's (they are few), and a recent put item places its user by its factors
and its content.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from recsys.bundle import PROJECTED, TRAINED, Bundle, Collab, TopLists
from recsys.collab.blend import FALLBACK_WEIGHT, blend, cf_scale, unit_users
from recsys.collab.foldin import fold_in, gramian
from recsys.errors import InvalidRequest, NotReady
from recsys.index.mips import augment_query
from recsys.serve.candidates import Candidates, best
from recsys.serve.changes import ItemChanges
from recsys.serve.feed_lists import FeedLists
from recsys.serve.filters import FilterColumns, ItemFilter, is_unfiltered
from recsys.serve.history import History, content_taste, merged_strengths, recent_rows, user_history
from recsys.serve.ranked import RankedFeeds
from recsys.serve.rows import Recommendations, Scored, scored_list
from recsys.towers.item import rows_dot

__all__ = ["Feeds", "FeedInputs"]


class FeedInputs(NamedTuple):
    """A feed resolved once (:meth:`Feeds.resolve`): who it is for, what it is made from, how.

    Attributes:
        user_id: as asked.
        history: the user's row, recent items and training items.
        exclude_seen: leave out the user's items.
        filters: the query's filters.
        strategy: how the blend makes it: ``"collaborative"``, ``"fold-in"`` or ``"popular"``.
        message: why a fallback was used, or ``None``.
        ranked: the ranker makes it instead (a user with some history, and a bundle with a ranker).
        explain: give each item its ``why``.
    """

    user_id: str | None
    history: History
    exclude_seen: bool
    filters: ItemFilter | None
    strategy: str
    message: str | None
    ranked: bool = False
    explain: bool = False


class Feeds:
    """Feeds over one bundle's user tower.

    Args:
        bundle: the loaded bundle.
        candidates: the exact-or-ANN choice for the bundle.
        columns: the bundle's filter columns.
        content_weight: share of a feed score from content similarity to the user's recent items;
            ``None``: the weight the training chose (:data:`~recsys.collab.blend.FALLBACK_WEIGHT`
            where the bundle records none).
        history_items: how many recent items form the content query.
        history_decay: the weight of each older item in that query, relative to the next newer.
        feed_lists: feeds with recent items are made as the user's best ``list_k`` items (no
            filter, seen items excluded) and kept for the last this many distinct (user, recent
            items) pairs, so the same user's next feeds (any ``k`` up to ``list_k``, most filters)
            are lookups until the recent items change; 0 = compute every feed.
        list_k: the length of those lists.
        exclude_seen: the default of a query's ``exclude_seen`` for blended feeds, and
        ranked_exclude_seen: for ranked ones.
        rank: rank feeds by the bundle's learned ranker where it has one.
    """

    def __init__(self, bundle: Bundle, candidates: Candidates, columns: FilterColumns, *,
                 content_weight: float | None = None, history_items: int = 20,
                 history_decay: float = 0.6, feed_lists: int = 0, list_k: int = 100,
                 exclude_seen: bool = True, ranked_exclude_seen: bool = False, rank: bool = True):
        collab = bundle.collab
        if content_weight is None:
            chosen = collab.params.get("content_weight") if collab is not None else None
            content_weight = FALLBACK_WEIGHT if chosen is None else chosen
        if not 0.0 <= content_weight <= 1.0:
            raise InvalidRequest(f"content_weight must be between 0 and 1 (got {content_weight!r})")
        self.bundle = bundle
        self.candidates = candidates
        self.columns = columns
        self.content_weight = content_weight
        self.history_items = history_items
        self.history_decay = history_decay
        self.exclude_seen, self.ranked_exclude_seen = exclude_seen, ranked_exclude_seen
        self.ranked = RankedFeeds(bundle) if rank and collab is not None and collab.ranker is not None else None
        self.lists = FeedLists(bundle, content_weight=content_weight, history_items=history_items,
                               history_decay=history_decay, keep=feed_lists, list_k=list_k)
        if collab is not None:
            trained = collab.item_factors[collab.item_state == TRAINED]
            self._yty = gramian(trained)
            self._cf_scale = cf_scale(trained)
            data = collab.user_items.matrix.data
            # a recent item counts as much as a typical training interaction
            self._recent_strength = float(data.mean()) if len(data) else 1.0

    def warm(self) -> None:
        """Build what requests would otherwise build on first use: the users' histories sorted by
        recency."""
        if self.bundle.collab is not None:
            self.bundle.collab.user_items.by_recency  # noqa: B018
        if self.ranked is not None:
            self.ranked.warm()

    # -- one feed: resolved once, then read from a list or scored ---------------------------------

    def resolve(self, user_id: str | None, recent_items: Sequence[str], exclude_seen: bool | None,
                filters: ItemFilter | None, changes: ItemChanges, *, logged: bool = False,
                explain: bool = False, rank: bool = True) -> FeedInputs:
        """What a feed is made from and how (see :meth:`recsys.serve.Recommender.recommend`).

        Args:
            exclude_seen: ``None``: the default of the feed's kind (ranked or blended).
            logged: the recent items come from the activity log, which may name items this bundle
                no longer holds: those are dropped, and at most ``5 * history_items`` are read.
            rank: rank the feed by the bundle's ranker where it has one (false: the blend).

        Raises:
            NotReady: the bundle has no user tower.
            InvalidRequest: a recent item the bundle and the put items do not hold (not logged).
        """
        self._collab()
        recent = recent_rows(self.bundle, recent_items, changes,
                             logged_cap=self.history_items * 5 if logged else None)
        history = user_history(self.bundle, user_id, recent)
        known = history.user_row is not None
        placed = bool(len(recent.rows) or (len(recent.put) and self._places(recent.put, changes)))
        message = None
        if user_id is not None and not known:
            message = (f"unknown user_id {user_id!r} (not in the trained model): "
                       + ("placed by the recent items given" if placed
                          else "no recent item the model knows, so showing popular items"))
        elif user_id is None and not placed:
            message = "no user and no recent items: showing popular items"
        strategy = "collaborative" if known else ("fold-in" if placed else "popular")
        # a visitor with nothing known is ranked too: the ranker orders the best sellers by how
        # they sell now, which beat the popular list for such users on hm-week's validation cut
        ranked = rank and self.ranked is not None
        if exclude_seen is None:
            exclude_seen = self.ranked_exclude_seen if ranked else self.exclude_seen
        return FeedInputs(user_id, history, exclude_seen, filters, strategy, message, ranked, explain)

    def listed(self, inputs: FeedInputs, n: int, changes: ItemChanges) -> Recommendations | None:
        """The first ``n`` items from the list the feed has (the bundle's precomputed feed, or one
        kept for these recent items), or ``None`` when no list tells: none is there, seen items
        are kept, a recent item is a put item, or a filter leaves too few of the list."""
        history = inputs.history
        if inputs.ranked and not inputs.explain and not self._has_put(inputs, changes):
            found = self.ranked.listed(history, n, self._allowed(inputs, changes))
            return None if found is None else Recommendations(found, "ranked", inputs.message)
        if inputs.strategy == "popular" or inputs.ranked or inputs.explain or not inputs.exclude_seen \
                or len(history.recent.put):
            return None
        kept = self.lists.find(inputs.user_id, history.user_row, history.recent.rows)
        if kept is None:
            return None
        found = self._read(inputs, *kept, n, changes)
        return None if found is None else self._merged(inputs, found, None, n, changes)

    def makes_list(self, inputs: FeedInputs, k: int) -> bool:
        """Whether the feed is made as a kept list (:meth:`computed` with ``make_list``)."""
        history = inputs.history
        return (inputs.strategy != "popular" and not inputs.ranked and inputs.exclude_seen
                and not len(history.recent.put) and self.lists.can_make(history.recent.rows, k))

    def computed(self, inputs: FeedInputs, n: int, changes: ItemChanges, *,
                 make_list: bool = False) -> Recommendations:
        """The best ``n`` items, ranked or scored (with ``make_list``: read from the user's list,
        made now and kept if there is none, as long as it tells)."""
        if inputs.ranked:
            return self._ranked(inputs, n, changes)
        found = self._blended(inputs, n, changes, make_list)
        if inputs.explain:  # the blend has one reason: the strategy
            found[:] = [s._replace(why={"sources": [found.strategy], "reasons": []}) for s in found]
        return found

    def _blended(self, inputs: FeedInputs, n: int, changes: ItemChanges, make_list: bool) -> Recommendations:
        history = inputs.history
        if inputs.strategy == "popular":
            rows = np.flatnonzero(self._allowed(inputs, changes))
            found = best(n, rows, self._collab().popularity[rows])
            return Recommendations(self._scored(*found), "popular", inputs.message)
        query = found = None
        if make_list:
            kept = self.lists.find(inputs.user_id, history.user_row, history.recent.rows)
            if kept is None:
                query = self._query(history, changes)
                kept = self._make_list(inputs.user_id, history, query), 0
            found = self._read(inputs, *kept, n, changes)
        if found is None:
            query = query or self._query(history, changes)
            found = self._top(n, self._allowed(inputs, changes), *query)
        return self._merged(inputs, found, query, n, changes)

    def _ranked(self, inputs: FeedInputs, n: int, changes: ItemChanges) -> Recommendations:
        found = self.ranked.top(inputs.history, n, self._allowed(inputs, changes), explain_items=inputs.explain,
                                put=self._has_put(inputs, changes),
                                blended=lambda: self.computed(inputs._replace(ranked=False, explain=False), n, changes))
        return Recommendations(found, "ranked", inputs.message)

    def _has_put(self, inputs: FeedInputs, changes: ItemChanges) -> bool:
        """Whether items put since the bundle may belong in the feed (placed ones that the filters keep)."""
        return bool(len(changes) and len(self._put_candidates(inputs.filters, changes, inputs.history.recent.put)))

    def _read(self, inputs: FeedInputs, lists: TopLists, owner: int, n: int,
              changes: ItemChanges) -> tuple[np.ndarray, np.ndarray] | None:
        """A list's first ``n`` rows that the filters keep (the lists leave out seen items)."""
        if is_unfiltered(inputs.filters, changes.deleted_ids):
            return lists.head(owner, n)
        return lists.first(owner, n, self._allowed(inputs, changes))

    def _merged(self, inputs: FeedInputs, found: tuple[np.ndarray, np.ndarray],
                query: tuple | None, n: int, changes: ItemChanges) -> Recommendations:
        """The bundle's rows found, with the put items that belong among the best ``n``."""
        history = inputs.history
        put = (self._put_candidates(inputs.filters, changes, history.recent.put if inputs.exclude_seen else ())
               if len(changes) else ())
        if not len(put):
            return Recommendations(self._scored(*found), inputs.strategy, inputs.message)
        user, taste = query or self._query(history, changes)
        merged = changes.merge_scored(self._scored(*found), put, self._put_scores(put, user, taste, changes), n,
                                      cold=True)
        return Recommendations(merged, inputs.strategy, inputs.message)

    def _allowed(self, inputs: FeedInputs, changes: ItemChanges) -> np.ndarray:
        keep = self.columns.allowed(inputs.filters, known_elsewhere=changes.ids)
        keep &= ~changes.deleted
        if inputs.exclude_seen:
            keep[inputs.history.rows] = False
            keep[inputs.history.recent.rows] = False
        return keep

    # -- feed lists made here for other workers, and received from them ----------------------------

    def feed_list(self, user_id: str | None, recent_items: Sequence[str],
                  changes: ItemChanges) -> tuple[tuple[str, ...], TopLists] | None:
        """The folded-in list kept for ``user_id`` with these recent items from the activity log
        (made now if there is none), with the recent items it is kept for (those the bundle
        holds); ``None`` when no list applies: lists are off, no recent item is known, or one is a
        put item."""
        if not self.lists.keeps or self.ranked is not None:  # ranked feeds read no list
            return None
        recent = recent_rows(self.bundle, recent_items, changes, logged_cap=self.history_items * 5)
        if not len(recent.rows) or len(recent.put):
            return None
        history = user_history(self.bundle, user_id, recent)
        kept = self.lists.find(user_id, history.user_row, recent.rows)
        lists = kept[0] if kept is not None else self._make_list(user_id, history, self._query(history, changes))
        return recent.ids, lists

    def receive_list(self, user_id: str | None, recent_items: Sequence[str], rows: Sequence[int],
                     scores: Sequence[float], changes: ItemChanges) -> None:
        """Keep a list :meth:`feed_list` made in another process for the same bundle.

        Raises:
            InvalidRequest: the list does not fit this bundle, or names an unknown or put item.
        """
        recent = recent_rows(self.bundle, recent_items, changes)
        if len(recent.put):
            raise InvalidRequest(f"not a feed list of bundle {self.bundle.version}: no list is kept for recent "
                                 "items put since the bundle")
        self.lists.receive(user_id, recent.rows, rows, scores)

    def _make_list(self, user_id: str | None, history: History, query: tuple) -> TopLists:
        allowed = np.ones(len(self.bundle.item_ids), dtype=bool)
        allowed[history.rows] = False
        allowed[history.recent.rows] = False
        return self.lists.put(user_id, history.recent.rows, *self._top(self.lists.list_k, allowed, *query))

    # -- what a feed is made from -----------------------------------------------------------------

    def _places(self, put: np.ndarray, changes: ItemChanges) -> bool:
        """Whether recent put items can place a user: by their factors, or by their content when
        feeds blend it in."""
        return bool(changes.placed[put].any() or (self.content_weight > 0 and changes.vectors.mask[put].any()))

    def _put_candidates(self, filters: ItemFilter | None, changes: ItemChanges, seen) -> np.ndarray:
        """The rows of the placed put items that ``filters`` keeps, ``seen`` left out."""
        rows = changes.matching(filters, self.bundle.item_ids)
        rows = rows[changes.placed[rows]]
        return rows[~np.isin(rows, seen)] if len(seen) else rows

    def _put_scores(self, rows: np.ndarray, user: np.ndarray, taste: np.ndarray | None,
                    changes: ItemChanges) -> np.ndarray:
        """Put items scored as :meth:`_top` scores the bundle's."""
        cf = rows_dot(changes.factors, rows, user)
        content = None if taste is None else rows_dot(changes.vectors.combined, rows, taste)
        return blend(cf, content, self.content_weight)

    # -- scoring -----------------------------------------------------------------------------------

    def _query(self, history: History, changes: ItemChanges) -> tuple[np.ndarray, np.ndarray | None]:
        """The user's factors (trained, or folded in from the history with the recent items), as
        :func:`~recsys.collab.blend.unit_users` scales them, and taste in content space (``None``
        when feeds blend no content, or nothing has a vector)."""
        collab = self.bundle.collab
        recent = history.recent
        if history.user_row is not None and not recent.ids:
            user = collab.user_factors[history.user_row]
        else:
            rows, strength = merged_strengths(recent.rows, self._recent_strength, history.rows, history.strength)
            placed = collab.item_state[rows] > 0
            alpha = collab.params.get("alpha", 1.0)
            factors = collab.item_factors[rows[placed]]
            confidence = 1.0 + alpha * strength[placed]
            if len(recent.put):
                mine = recent.put[changes.placed[recent.put]]
                factors = np.concatenate([factors, changes.factors[mine]])
                confidence = np.concatenate([confidence, np.full(len(mine), 1.0 + alpha * self._recent_strength)])
            user = fold_in(factors, np.arange(len(factors)), confidence,
                           regularization=collab.params.get("regularization", 0.0), yty=self._yty)
        user = unit_users(user, self._cf_scale)
        return user, (content_taste(self.bundle, history, changes, self.history_items, self.history_decay)
                      if self.content_weight > 0 else None)

    def _top(self, k: int, allowed: np.ndarray, user: np.ndarray,
             taste: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """The best ``k`` allowed rows for a user's factors, blended with the content similarity
        to their taste."""
        collab = self.bundle.collab
        weight = self.content_weight if taste is not None else 0.0
        allowed = allowed & (collab.item_state > 0)
        searches = [(collab.index, augment_query(user))]
        if weight > 0:
            searches.append((self.bundle.indexes["combined"], taste))
        combined = self.bundle.vectors.combined
        scans = self.candidates.scans

        def score(rows: np.ndarray) -> np.ndarray:
            cf = rows_dot(collab.item_factors, rows, user, scans["factors"])
            content = rows_dot(combined, rows, taste, scans["combined"]) if weight > 0 else None
            return blend(cf, content, weight)

        dim = collab.item_factors.shape[1] + (combined.shape[1] if weight > 0 else 0)
        return self.candidates.top(k, searches, allowed, score, dim)

    def _collab(self) -> Collab:
        if self.bundle.collab is None:
            raise NotReady(f"bundle {self.bundle.version} has no user tower; run `recsys train --bundle "
                           f"{self.bundle.path.parent} --interactions ...` to add one")
        return self.bundle.collab

    def _scored(self, rows: np.ndarray, scores: np.ndarray) -> list[Scored]:
        return scored_list(self.bundle.item_ids.ids[rows].tolist(), scores,
                           (self.bundle.collab.item_state[rows] == PROJECTED).tolist())

