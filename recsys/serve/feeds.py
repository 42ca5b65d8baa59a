"""Personalised feeds: a trained user's factors, or a user folded in from their recent items, blended
with content similarity (:mod:`recsys.collab.blend`); the precomputed feeds, and the folded-in
lists kept per recent items.

Items put through the API since the training take part through the content-to-factors map the
training kept (:class:`~recsys.collab.project.ContentProjection`): placed like the bundle's cold
items, they are scored exactly beside the bundle's (they are few), and a recent put item places
its user by its projected factors and its content."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, NamedTuple

import numpy as np

from recsys._lru import Lru
from recsys.bundle import PROJECTED, TRAINED, Bundle, Collab, TopLists
from recsys.collab.blend import FALLBACK_WEIGHT, SCORING, blend, cf_scale, unit_users
from recsys.collab.foldin import fold_in, gramian
from recsys.errors import InvalidRequest, NotReady
from recsys.index.mips import augment_query
from recsys.serve.candidates import Candidates, best
from recsys.serve.changes import ItemChanges
from recsys.serve.filters import FilterColumns, ItemFilter, is_unfiltered
from recsys.serve.rows import Recommendations, Scored, scored_list
from recsys.towers.item import rows_dot, taste_of

__all__ = ["Feeds"]


class Recent(NamedTuple):
    """A feed's recent items, each list newest first and without repeats (a named tuple: made
    for every feed, so cheap to build).

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


# no put item among the recent items (read-only, shared)
_NO_ROWS = np.zeros(0, np.int64)
_NO_ROWS.flags.writeable = False


@dataclass(frozen=True)
class PutItems:
    """The put items' places in the factor space, by the training's content map.

    Attributes:
        factors: ``(put items, f)`` float32, zero where not placed.
        placed: ``(put items,)`` bool: the put items a feed may show and fold in, those that the
            bundle does not hold and that have a combined vector (none where the bundle kept no
            map). A put item the bundle holds keeps its trained factors.
    """

    factors: np.ndarray
    placed: np.ndarray


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
        feed_lists: feeds with recent items are made as the user's best ``list_k`` items (no
            filter, seen items excluded) and kept for the last this many distinct (user, recent
            items) pairs, so the same user's next feeds (any ``k`` up to ``list_k``, most filters)
            are lookups until the recent items change; 0 = compute every feed.
        list_k: the length of those lists.
    """

    def __init__(self, bundle: Bundle, candidates: Candidates, columns: FilterColumns, *,
                 content_weight: float | None = None, history_items: int = 20,
                 history_decay: float = 0.6, feed_lists: int = 0, list_k: int = 100):
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
        self.list_k = list_k
        self._lists = Lru(feed_lists if list_k > 0 else 0)
        self._last_recent = None  # (recent items, item changes, Recent): see recent
        self._last_put = None  # (item changes, PutItems): see put_items
        self._precomputed = None
        if collab is not None:
            trained = collab.item_factors[collab.item_state == TRAINED]
            self._yty = gramian(trained)
            self._cf_scale = cf_scale(trained)
            data = collab.user_items.matrix.data
            # a recent item counts as much as a typical training interaction
            self._recent_strength = float(data.mean()) if len(data) else 1.0
            made = collab.params.get("feed", {})
            if collab.feed is not None and made.get("scoring") == SCORING \
                    and made.get("content_weight") == content_weight \
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
        so that later feeds are lookups until the recent items change; ``None``, computed (also
        whenever a recent item is a put item, whose place moves with the item changes)."""
        collab = self.bundle.collab
        if not exclude_seen or collab is None:
            return None
        known = user_id is not None and user_id in collab.user_ids
        recent = self.recent(recent_items, changes)
        if len(recent.put):
            return None
        if not len(recent.rows):
            return "lookup" if known and self._precomputed is not None and k <= self._precomputed.k else None
        if k > self.list_k or not self._lists.size:
            return None
        return "lookup" if self._lists.get(self._list_key(user_id, recent.rows)) is not None else "list"

    def usable_recent(self, recent_items: Sequence[str], changes: ItemChanges) -> list[str]:
        """The recent items (from the activity log, newest first) a feed reads: the ones this
        bundle or its put items hold (the log may name items a newer bundle dropped), at most
        ``5 * history_items``."""
        ids, put = self.bundle.item_ids, changes.ids
        return [i for i in recent_items if i in ids or i in put][: self.history_items * 5]

    def recommend(self, user_id: str | None, k: int, recent_items: Sequence[str], exclude_seen: bool,
                  filters: ItemFilter | None, changes: ItemChanges) -> Recommendations:
        """See :meth:`recsys.serve.Recommender.recommend`."""
        collab = self._collab()
        recent = self.recent(recent_items, changes)
        history = self._history(user_id, recent)
        known = history.user_row is not None
        placed = len(recent.rows) or (len(recent.put) and self._places(recent.put, changes))
        message = None
        if user_id is not None and not known:
            message = (f"unknown user_id {user_id!r} (not in the trained model): "
                       + ("placed by the recent items given" if placed
                          else "no recent item the model knows, so showing popular items"))
        elif user_id is None and not placed:
            message = "no user and no recent items: showing popular items"

        def allowed() -> np.ndarray:
            keep = self.columns.allowed(filters, known_elsewhere=changes.ids)
            keep &= ~changes.deleted
            if exclude_seen:
                keep[history.rows] = False
                keep[recent.rows] = False
            return keep

        if not known and not placed:
            keep = allowed()
            rows = np.flatnonzero(keep)
            return Recommendations(self._scored(*best(k, rows, collab.popularity[rows])), "popular", message)
        strategy = "collaborative" if known else "fold-in"
        found = None
        if exclude_seen and not len(recent.put):
            lists, owner = self._list_for(user_id, history, changes)
            if lists is not None:  # the lists leave out seen items; a filter or a deletion cuts them
                found = (lists.head(owner, k) if is_unfiltered(filters, changes.deleted_ids)
                         else lists.first(owner, k, allowed()))
        query = None
        if found is None:
            query = self._query(history, changes)
            found = self._top(k, allowed(), *query)
        put = self._put_candidates(filters, changes, recent.put if exclude_seen else ()) if len(changes) else ()
        if not len(put):
            return Recommendations(self._scored(*found), strategy, message)
        user, taste = query or self._query(history, changes)
        merged = changes.merge_scored(self._scored(*found), put, self._put_scores(put, user, taste, changes), k,
                                      cold=True)
        return Recommendations(merged, strategy, message)

    def feed_list(self, user_id: str | None, recent_items: Sequence[str],
                  changes: ItemChanges) -> TopLists | None:
        """The folded-in feed list kept for ``user_id`` with these recent items (the one
        :meth:`recommend` reads with ``exclude_seen``), made now if there is none.

        Returns:
            One list (row 0) of the best ``list_k`` rows, or ``None`` when no list applies: lists
            are off (``feed_lists=0``), the bundle has no user tower, no recent item is known,
            or one is a put item.

        Raises:
            InvalidRequest: a recent item neither the bundle nor the put items hold.
        """
        if not self.keeps_lists:
            return None
        recent = self.recent(recent_items, changes)
        if not len(recent.rows) or len(recent.put):
            return None
        return self._list_for(user_id, self._history(user_id, recent), changes)[0]

    def keep_list(self, user_id: str | None, recent_items: Sequence[str], rows: Sequence[int],
                  scores: Sequence[float], changes: ItemChanges) -> None:
        """Keep a feed list that :meth:`feed_list` made in another process for the same bundle, so
        that this one looks it up instead of making it again.

        Raises:
            InvalidRequest: the list does not fit this bundle (length, rows, scores) or names an
                unknown recent item, or a put one.
        """
        recent = self.recent(recent_items, changes)
        rows = np.asarray(rows)
        scores = np.asarray(scores, dtype=np.float32)
        if self.bundle.collab is None or not len(recent.rows) or len(recent.put) or rows.dtype.kind != "i" \
                or rows.shape != (self.list_k,) or scores.shape != rows.shape \
                or not ((rows >= -1) & (rows < len(self.bundle.item_ids))).all() \
                or not np.isfinite(scores).all():
            raise InvalidRequest(f"not a feed list of bundle {self.bundle.version} (list_k {self.list_k})")
        self._lists.put(self._list_key(user_id, recent.rows), TopLists(rows.astype(np.int32)[None], scores[None]))

    def recent(self, recent_items: Sequence[str], changes: ItemChanges) -> Recent:
        """The recent items as bundle rows and put rows (read-only). A feed asks this twice for
        the same items (where it comes from, then the feed): the last answer is kept.

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
        put = _NO_ROWS
        if (rows < 0).any():
            missing = [i for i, r in zip(ids, rows.tolist()) if r < 0]
            put = changes.ids.find(missing)
            unknown = [i for i, r in zip(missing, put.tolist()) if r < 0]
            if unknown:
                raise InvalidRequest(f"recent_items names unknown item_id {unknown[0]!r}"
                                     + (f" (and {len(unknown) - 1} more)" if len(unknown) > 1 else "")
                                     + f"; bundle {self.bundle.version} has {len(self.bundle.item_ids):,} items",
                                     unknown=unknown[:20])
            put.flags.writeable = False
            rows = rows[rows >= 0]
        rows.flags.writeable = False
        recent = Recent(rows, put, tuple(ids))
        self._last_recent = (key, changes, recent)  # one tuple: replaced whole, never torn
        return recent

    def put_items(self, changes: ItemChanges) -> PutItems:
        """The put items' places in the factor space (see :class:`PutItems`), made once per item
        changes."""
        last = self._last_put
        if last is not None and last[0] is changes:
            return last[1]
        collab = self._collab()
        factors = np.zeros((len(changes), collab.item_factors.shape[1]), np.float32)
        placed = np.zeros(len(changes), bool)
        if len(changes) and collab.projection is not None:
            placed = changes.vectors.mask & (self.bundle.item_ids.find(changes.ids.ids.tolist()) < 0)
            if placed.any():
                factors[placed] = collab.projection.transform(changes.vectors.combined[placed])
        put = PutItems(factors, placed)
        self._last_put = (changes, put)
        return put

    def _places(self, put: np.ndarray, changes: ItemChanges) -> bool:
        """Whether recent put items can place a user: by their factors, or by their content when
        feeds blend it in."""
        return bool(self.put_items(changes).placed[put].any()
                    or (self.content_weight > 0 and changes.vectors.mask[put].any()))

    def _put_candidates(self, filters: ItemFilter | None, changes: ItemChanges, seen) -> np.ndarray:
        """The rows of the placed put items that ``filters`` keeps, ``seen`` left out."""
        rows = changes.matching(filters, self.bundle.item_ids)
        rows = rows[self.put_items(changes).placed[rows]]
        return rows[~np.isin(rows, seen)] if len(seen) else rows

    def _put_scores(self, rows: np.ndarray, user: np.ndarray, taste: np.ndarray | None,
                    changes: ItemChanges) -> np.ndarray:
        """Put items scored as :meth:`_top` scores the bundle's."""
        cf = rows_dot(self.put_items(changes).factors, rows, user)
        content = None if taste is None else rows_dot(changes.vectors.combined, rows, taste)
        return blend(cf, content, self.content_weight)

    def _list_key(self, user_id: str | None, recent: np.ndarray) -> tuple:
        """A kept feed list's key: a trained user's id, or ``None`` for anyone the model does not
        know (visitors with the same recent items share a list), and the recent rows."""
        known = user_id is not None and user_id in self.bundle.collab.user_ids
        return user_id if known else None, recent.tobytes()

    def _history(self, user_id: str | None, recent: Recent) -> History:
        collab = self.bundle.collab
        known = user_id is not None and user_id in collab.user_ids
        if not known:
            return History(None, recent, np.zeros(0, np.int64), np.zeros(0, np.float32))
        user_row = collab.user_ids.row(user_id)
        return History(user_row, recent, *collab.user_items.history(user_row))

    def _list_for(self, user_id: str | None, history: History,
                  changes: ItemChanges) -> tuple[TopLists | None, int]:
        """The user's precomputed feed list (seen items excluded, no filter) and its row in it: the
        bundle's for a trained user without recent items, else the one kept for these recent
        items (made now if there is none)."""
        recent = history.recent.rows
        if not len(recent):
            return (self._precomputed, history.user_row) if history.user_row is not None else (None, 0)
        key = self._list_key(user_id, recent)
        lists = self._lists.get(key)
        if lists is None and self._lists.size:
            allowed = np.ones(len(self.bundle.item_ids), dtype=bool)
            allowed[history.rows] = False
            allowed[recent] = False
            rows, scores = self._top(self.list_k, allowed, *self._query(history, changes))
            lists = TopLists(np.full((1, self.list_k), -1, np.int32), np.zeros((1, self.list_k), np.float32))
            lists.rows[0, :len(rows)], lists.scores[0, :len(rows)] = rows, scores
            self._lists.put(key, lists)
        return lists, 0

    def _query(self, history: History, changes: ItemChanges) -> tuple[np.ndarray, np.ndarray | None]:
        """The user's factors (trained, or folded in from the history with the recent items), as
        :func:`~recsys.collab.blend.unit_users` scales them, and taste in content space (``None``
        when feeds blend no content, or nothing has a vector)."""
        collab = self.bundle.collab
        recent = history.recent
        if history.user_row is not None and not recent.ids:
            user = collab.user_factors[history.user_row]
        else:
            rows, strength = _merge(recent.rows, self._recent_strength, history.rows, history.strength)
            placed = collab.item_state[rows] > 0
            alpha = collab.params.get("alpha", 1.0)
            factors = collab.item_factors[rows[placed]]
            confidence = 1.0 + alpha * strength[placed]
            if len(recent.put):
                put = self.put_items(changes)
                mine = recent.put[put.placed[recent.put]]
                factors = np.concatenate([factors, put.factors[mine]])
                confidence = np.concatenate([confidence, np.full(len(mine), 1.0 + alpha * self._recent_strength)])
            user = fold_in(factors, np.arange(len(factors)), confidence,
                           regularization=collab.params.get("regularization", 0.0), yty=self._yty)
        user = unit_users(user, self._cf_scale)
        return user, (self._taste(history, changes) if self.content_weight > 0 else None)

    def _taste(self, history: History, changes: ItemChanges) -> np.ndarray | None:
        """:func:`~recsys.towers.item.taste_of` the newest ``history_items`` items that have a
        combined vector: the recent items in their order, then the training history."""
        vectors, fresh = self.bundle.vectors, changes.vectors
        recent = history.recent
        picked = []
        rows, put = iter(recent.rows.tolist()), iter(recent.put.tolist())
        for item_id in recent.ids:
            if len(picked) == self.history_items:
                break
            if item_id in self.bundle.item_ids:
                r = next(rows)
                if vectors.mask[r]:
                    picked.append(vectors.combined[r])
            else:
                p = next(put)
                if fresh.mask[p]:
                    picked.append(fresh.combined[p])
        shown = set(recent.rows.tolist())
        for r in dict.fromkeys(history.rows.tolist()):
            if len(picked) >= self.history_items:
                break
            if r not in shown and vectors.mask[r]:
                picked.append(vectors.combined[r])
        return taste_of(np.asarray(picked, np.float32).reshape(len(picked), -1), self.history_decay)

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


def _merge(recent: np.ndarray, recent_strength: float, rows: np.ndarray,
           strength: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Union of the training history and the recent items, strengths added per item."""
    all_rows = np.concatenate([rows, recent]).astype(np.int64)
    all_strength = np.concatenate([strength, np.full(len(recent), recent_strength, np.float32)])
    unique, inverse = np.unique(all_rows, return_inverse=True)
    return unique, np.bincount(inverse, weights=all_strength, minlength=len(unique)).astype(np.float32)
