"""The one façade the CLI and the API call: similar items and personalised feeds over a bundle."""
from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from itertools import repeat
from operator import mul
from pathlib import Path
from typing import Literal, NamedTuple
from urllib.parse import quote

import numpy as np

from recsys._lru import Lru
from recsys.bundle import PROJECTED, TRAINED, Bundle, Collab
from recsys.collab.foldin import fold_in, gramian
from recsys.errors import InvalidRequest, NotFound, NotReady
from recsys.filters import FilterColumns, ItemFilter
from recsys.fresh import ItemChanges
from recsys.index.annoy import MIN_CANDIDATES, AnnIndex
from recsys.index.mips import augment_query
from recsys.precompute import TopLists
from recsys.towers.item import Scan, check_weights, rows_dot, weighted_scores

__all__ = ["Recommender", "Scored", "Feed", "MAX_K", "check_k", "DISPLAY_COLUMNS", "image_path"]

MAX_K = 1000
# item attributes every result carries, so a widget can render it without another call
DISPLAY_COLUMNS = ("title", "category", "price", "colour")


class Scored(NamedTuple):
    """One recommended item (a named tuple: made for every result row, so cheap to build).

    Attributes:
        item_id: the catalog id.
        score: higher is better (see the method that returned it for its scale).
        cold: nobody interacted with the item when the user tower was trained; its collaborative
            factors were projected from its content.
    """

    item_id: str
    score: float
    cold: bool = False


@dataclass(frozen=True)
class Feed:
    """A personalised feed and how it was made.

    Attributes:
        items: best first.
        strategy: ``"collaborative"`` (a trained user, with any recent items folded in),
            ``"fold-in"`` (a user the model has not seen, placed by their recent items) or
            ``"popular"`` (no history at all: the recent-window popularity ranking).
        message: why a fallback was used (an unknown user, an empty history); ``None`` otherwise.
    """

    items: list[Scored]
    strategy: Literal["collaborative", "fold-in", "popular"]
    message: str | None = None


class _Weighting(NamedTuple):
    """A weighting's numbers for scoring an item's lists (:meth:`Recommender._weighting`).

    Attributes:
        w: the weights in block order (float32).
        scale: per modality pattern (:attr:`Recommender._patterns`), the factor
            ``1 / sqrt(W_q * W_c)`` of :func:`~recsys.towers.item.weighted_scores` (``W_q``: the
            weights of the usable modalities the query has, ``W_c``: those of the pattern's).
        columns: the block positions of the usable modalities.
        bounds: per pattern with a weighted modality, ``(its index, the positions in usable of
            the modalities it has, their weights (0 for the others), sqrt(W_q * W_c))``.
    """

    w: np.ndarray
    scale: np.ndarray
    columns: list[int]
    bounds: list[tuple[int, frozenset[int], tuple[float, ...], float]]


def check_k(n: int) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 1 <= n <= MAX_K:
        raise InvalidRequest(f"k must be an integer from 1 to {MAX_K} (got {n!r})")
    return int(n)


class Recommender:
    """Answers queries against one loaded :class:`Bundle`.

    Args:
        bundle: the loaded bundle.
        overfetch: candidates gathered per index, as a multiple of ``n`` (at least 50); a filter
            that keeps a share ``s`` of the items divides the over-fetch by ``s``.
        content_weight: share of a feed score from content similarity to the user's recent items
            (``settings.collab.content_weight``).
        history_items: how many recent items form the content query.
        exact_budget: score every allowed item exactly, skipping Annoy, when allowed items x
            vector dimensions is at most this (``settings.index.exact_budget``), or when Annoy
            would compare about as many items for the candidates a query needs; 0 = always Annoy.
        feed_lists: feeds with recent items are made as the user's best ``list_k`` items (no
            filter, seen items excluded) and kept for the last this many distinct (user, recent
            items) pairs, so the same user's next feeds (any ``n`` up to ``list_k``, most filters)
            are lookups until the recent items change; 0 = compute every feed.
        list_k: the length of those lists (``settings.index.precompute_k``).
        scan_dir: where the transposed copies of the combined vectors and item factors for
            products with every item go (:class:`~recsys.towers.item.Scan`), shared by the
            processes that serve the bundle; ``None`` keeps them in this process's memory.
    """

    def __init__(self, bundle: Bundle, *, overfetch: int = 10, content_weight: float = 0.3,
                 history_items: int = 20, exact_budget: int = 4_000_000, feed_lists: int = 0,
                 list_k: int = 100, scan_dir: Path | None = None):
        if not 0.0 <= content_weight <= 1.0:
            raise InvalidRequest(f"content_weight must be between 0 and 1 (got {content_weight!r})")
        self.bundle = bundle
        self.overfetch = overfetch
        self.content_weight = content_weight
        self.history_items = history_items
        self.exact_budget = exact_budget
        self.list_k = list_k
        self.scan_dir = scan_dir
        self._lists = Lru(feed_lists if list_k > 0 else 0)  # shared by with_changes copies
        self._scales = Lru(256)  # per weighting, see _weighting
        self._last_recent = None  # (recent items, item changes, rows): see _recent_rows
        self.columns = FilterColumns(bundle.items, bundle.item_ids)
        self.changes = ItemChanges.build(bundle)
        collab = bundle.collab
        self._feeds = None
        if collab is not None:
            self._yty = gramian(collab.item_factors[collab.item_state == TRAINED])
            data = collab.user_items.matrix.data
            # a recent item counts as much as a typical training interaction
            self._recent_strength = float(data.mean()) if len(data) else 1.0
            made = collab.params.get("feed", {})
            if collab.feed is not None and made.get("content_weight") == content_weight \
                    and made.get("history_items") == history_items:
                self._feeds = collab.feed  # precomputed with the scoring this recommender uses

    @property
    def version(self) -> str:
        return self.bundle.version

    @cached_property
    def row_templates(self) -> dict[str, dict]:
        """A result row per bundle item, by id: ``{"item_id", "score": None, the display
        attributes (:data:`DISPLAY_COLUMNS` and the image path)}``, to be copied, never changed
        (built once, shared by copies)."""
        items = self.bundle.items
        columns = [c for c in DISPLAY_COLUMNS if c in items.columns]
        frame = items[["item_id", *columns]].astype(object)
        frame = frame.where(frame.notna(), None)
        images = items["image"].fillna("").astype(str).to_numpy() if "image" in items else None
        return {r["item_id"]: {"item_id": r["item_id"], "score": None, **{c: r[c] for c in columns},
                               "image": image_path(r["item_id"], images[i] if images is not None else "")}
                for i, r in enumerate(frame.to_dict("records"))}

    def listing(self, filters: ItemFilter | None = None, offset: int = 0,
                limit: int = 24) -> tuple[int, list[str]]:
        """One page of the servable items that pass ``filters``: the bundle's in catalog order
        (deleted and replaced ones left out), then the put items.

        Returns:
            ``(how many pass in all, the ids from offset to offset + limit)``.
        """
        rows = np.flatnonzero(self._allowed(filters) & ~self.changes.hidden)
        keep = self.changes.columns.mask(_without_include(filters), known_elsewhere=self.bundle.item_ids)
        fresh = self.changes.ids.ids if keep is None else self.changes.ids.ids[keep]
        page = [str(i) for i in self.bundle.item_ids.ids[rows[offset:offset + limit]]]
        start = max(0, offset - len(rows))
        page += [str(i) for i in fresh[start:start + limit - len(page)]]
        return len(rows) + len(fresh), page

    def warm(self) -> Recommender:
        """Build now what requests would otherwise build on first use: the result-row templates,
        the modality patterns and their items, the similar lists' last cosines and lengths, the
        transposed copies (:attr:`_scans`) and the users' histories sorted by recency (about 80 ms
        for 20,000 users, which a worker's first feed paid). Idempotent;
        :class:`~recsys.api.state.Serving` calls it before it swaps a bundle in, and
        :meth:`with_changes` before copies share these.

        Returns:
            self.
        """
        self.row_templates  # noqa: B018
        self._patterns  # noqa: B018
        self._list_ends  # noqa: B018
        self._pattern_rows  # noqa: B018
        self._scans  # noqa: B018
        if self.bundle.list_cosines is not None:
            self._listed_counts  # noqa: B018
        if self.bundle.collab is not None:
            self.bundle.collab.user_items.by_recency  # noqa: B018
        return self

    def with_changes(self, changes: ItemChanges) -> Recommender:
        """A recommender over the same bundle that also serves put items and hides deleted ones
        (cheap: shares everything else with ``self``, which it warms first: :meth:`warm`)."""
        other = copy.copy(self.warm())
        other.changes = changes
        return other

    def item(self, item_id: str) -> dict:
        """An item's attributes (a put item's latest ones) with ``fresh``: whether it was put since
        the bundle.

        Raises:
            NotFound: unknown or deleted item.
        """
        changes = self.changes
        if item_id in changes.ids:
            return {**_plain_row(changes.items.iloc[changes.ids.row(item_id)]), "fresh": True}
        if item_id in changes.deleted_ids:
            raise NotFound(f"item_id {item_id!r} was deleted", item_id=item_id)
        row = self.bundle.item_ids.row(item_id)
        return {**_plain_row(self.bundle.items.iloc[row]), "fresh": False}

    def precomputed(self, *, n: int, item_id: str | None = None, user_id: str | None = None,
                    weights: dict | None = None, exclude_seen: bool = True,
                    recent_items: Sequence[str] = ()) -> bool:
        """Whether a query for ``n`` similar items to ``item_id``, or a feed of ``n`` for ``user_id``
        (with these recent items), normally comes from precomputed lists (the bundle's, or a feed
        list kept since an earlier request): a lookup, cheap enough that caching its answer
        gains nothing. (A filter that leaves fewer than ``n`` of a list makes it a computation.)"""
        if item_id is not None:
            listed = self.bundle.similar
            names = (["combined"] if weights is None
                     else [m for m, w in weights.items() if w > 0 and m in self.bundle.vectors.blocks])
            return (item_id in self.bundle.item_ids and item_id not in self.changes.ids
                    and all(m in listed and n <= listed[m].k for m in names))
        return self.feed_source(n=n, user_id=user_id, exclude_seen=exclude_seen,
                                recent_items=recent_items) == "lookup"

    def feed_source(self, *, n: int, user_id: str | None = None, exclude_seen: bool = True,
                    recent_items: Sequence[str] = ()) -> Literal["lookup", "list"] | None:
        """Where a feed of ``n`` for ``user_id`` with these recent items normally comes from:
        ``"lookup"``, a precomputed list (the bundle's, or a folded-in list kept since an earlier
        request); ``"list"``, a folded-in list made now (the cost of one computed feed) and kept,
        so that later feeds are lookups until the recent items change; ``None``, computed."""
        collab = self.bundle.collab
        if not exclude_seen or collab is None:
            return None
        known = user_id is not None and user_id in collab.user_ids
        recent = self._recent_rows(recent_items)
        if not len(recent):
            return "lookup" if known and self._feeds is not None and n <= self._feeds.k else None
        if n > self.list_k or not self._lists.size:
            return None
        return "lookup" if self._lists.get(self._list_key(user_id, recent)) is not None else "list"

    def knows(self, item_id: str) -> bool:
        """Whether ``item_id`` can be served (in the bundle or put since, and not deleted)."""
        return item_id in self.changes.ids or (item_id in self.bundle.item_ids
                                               and item_id not in self.changes.deleted_ids)

    # -- similar items --------------------------------------------------------------------------

    def similar_items(self, item_id: str, n: int = 10, weights: dict[str, float] | None = None,
                      filters: ItemFilter | None = None) -> list[Scored]:
        """Items most similar to ``item_id``, best first, the item itself excluded.

        Args:
            item_id: a catalog id.
            n: how many (1..1000).
            weights: per-request modality weights; ``None`` uses the bundle's defaults (the
                precomputed list, or the combined index). Other weights take the candidates from
                the item's precomputed list of every weighted modality and re-rank them exactly,
                which is the exact answer when the ``n``-th beats the bound on unlisted items
                (:meth:`_threshold`); otherwise candidates come from the combined index and the
                index of every weighted modality.
            filters: category prefix, price range, include and exclude lists. When at least ``n``
                items pass, ``n`` are returned (exact search over the filtered set if the indexes
                do not yield enough).

        Returns:
            list[Scored]: scores are the weighted cosine described in
            :func:`recsys.towers.item.weighted_scores`.

        Raises:
            NotFound: unknown item id.
            InvalidRequest: bad ``n``, weights or filters, or weights that leave the item nothing
                to compare.
        """
        n = check_k(n)
        vectors, changes = self.bundle.vectors, self.changes
        default = weights is None
        # any known modality may be weighted; one the bundle lacks counts as missing for every item
        weights = vectors.weights if default else check_weights(weights)
        row, tried = None, False  # tried: the modality lists, unmasked, could not tell
        if item_id in changes.ids:
            query = changes.query(item_id)
            combined_query = changes.vectors.combined[changes.ids.row(item_id)]
            has_combined = bool(changes.vectors.mask[changes.ids.row(item_id)])
        elif item_id in changes.deleted_ids:
            raise NotFound(f"item_id {item_id!r} was deleted", item_id=item_id)
        else:
            row = self.bundle.item_ids.row(item_id)
            # nothing put, deleted or filtered out: the lists answer without the item's vectors
            listed = not len(changes) and self._unfiltered(filters)
            if listed and default and vectors.mask[row] and "combined" in self.bundle.similar:
                head = self.bundle.similar["combined"].head(row, n)  # the precomputed answer
                if head is not None:
                    return self._found(*head)
            tried = listed and not default and self.bundle.list_cosines is not None
            if tried:
                usable = [m for m, w in weights.items() if w > 0 and m in vectors.blocks
                          and vectors.blocks[m].mask[row]]
                found = self._threshold(row, n, None, weights, usable, None)  # every item but row
                if found is not None:
                    return self._found(*found)
            query = self._item_query(row)
            combined_query, has_combined = vectors.combined[row], bool(vectors.mask[row])
        usable = [m for m, w in weights.items() if w > 0 and query.get(m) is not None]
        if not usable:
            lacking = ", ".join(m for m, w in weights.items() if w > 0)
            raise InvalidRequest(f"item {item_id!r} has no {lacking} data, so these weights leave "
                                 "nothing to compare; give weight to another modality",
                                 item_id=item_id)
        return self._nearest(query, weights, n, filters, row=row, exclude=item_id, default=default,
                             combined_query=combined_query if has_combined else None, tried=tried)

    def search(self, vector: np.ndarray, n: int = 10, filters: ItemFilter | None = None) -> list[Scored]:
        """Items whose text is nearest to a text query's unit ``vector`` (from the bundle's text
        encoder), best first, put items included and deleted ones left out.

        Raises:
            InvalidRequest: the bundle has no text modality, or bad ``n`` or filters.
        """
        n = check_k(n)
        if "text" not in self.bundle.vectors.blocks:
            raise InvalidRequest(f"bundle {self.version} has no text modality to search")
        return self._nearest({"text": np.asarray(vector, np.float32)}, {"text": 1.0}, n, filters)

    def _nearest(self, query: dict, weights: dict[str, float], n: int, filters: ItemFilter | None, *,
                 row: int | None = None, exclude: str | None = None, default: bool = False,
                 combined_query: np.ndarray | None = None, tried: bool = False) -> list[Scored]:
        """The best ``n`` items for per-modality ``query`` vectors under ``weights``: the bundle's
        items (precomputed lists, Annoy candidates or exact search, re-scored exactly) merged
        with the put items scored exactly. ``row``/``exclude`` leave the query item out;
        ``tried``: the caller already asked the modality lists of ``row`` with nothing masked."""
        vectors, changes = self.bundle.vectors, self.changes
        usable = [m for m, w in weights.items() if w > 0 and query.get(m) is not None]
        allowed = self._allowed(filters)
        allowed &= ~changes.hidden
        if row is not None:
            allowed[row] = False
        has_combined = combined_query is not None
        searches: list[tuple[AnnIndex, np.ndarray]] = []
        if has_combined:
            searches.append((self.bundle.indexes["combined"], combined_query))
        if not default or not has_combined:
            searches += [(self.bundle.indexes[m], query[m]) for m in usable]
        dim = sum(vectors.blocks[m].dim for m in usable)
        if default and has_combined:
            # the combined vectors already carry the default weights: one product, same scores
            def score(r):
                return rows_dot(vectors.combined, r, combined_query, self._scans["combined"])
        else:
            def score(r):
                return weighted_scores(vectors.blocks, query, r, weights)
        listed = None
        if row is not None and default and has_combined and "combined" in self.bundle.similar:
            listed = self.bundle.similar["combined"].first(row, n, allowed)
        elif row is not None and not default and not tried:
            listed = self._threshold(row, n, query, weights, usable, allowed)
        found = self._found(*(listed or self._top(n, searches, allowed, score, dim)))
        if len(changes):  # put items are few: score them all exactly, then merge
            keep = changes.columns.mask(_without_include(filters), known_elsewhere=self.bundle.item_ids)
            fresh_rows = np.flatnonzero(np.ones(len(changes), bool) if keep is None else keep)
            fresh_rows = fresh_rows[changes.ids.ids[fresh_rows] != exclude]
            if filters is not None and filters.include:
                fresh_rows = fresh_rows[np.isin(changes.ids.ids[fresh_rows], filters.include)]
            fresh_scores = weighted_scores(changes.vectors.blocks, query, fresh_rows, weights)
            found += [Scored(str(changes.ids.ids[r]), float(sc)) for r, sc in zip(fresh_rows, fresh_scores)]
            found = sorted(found, key=lambda x: -x.score)[:n]
        return found

    def _item_query(self, row: int) -> dict[str, np.ndarray | None]:
        """A bundle item's vector per modality (``None`` where it lacks the modality)."""
        return {m: (np.asarray(b.vectors[row]) if b.mask[row] else None)
                for m, b in self.bundle.vectors.blocks.items()}

    def _found(self, rows: np.ndarray, scores: np.ndarray) -> list[Scored]:
        return _scored_list(self.bundle.item_ids.ids[rows].tolist(), scores)

    def _unfiltered(self, filters: ItemFilter | None) -> bool:
        """No filter and no deleted item: a precomputed list's head is the answer."""
        return (filters is None or not filters.active) and not self.changes.deleted_ids

    def _threshold(self, row: int, n: int, query: dict | None, weights: dict[str, float],
                   usable: list[str], allowed: np.ndarray | None) -> tuple[np.ndarray, np.ndarray] | None:
        """The exact best ``n`` under per-request ``weights`` from the per-modality lists of
        ``row``'s neighbours (Fagin's threshold algorithm), or ``None`` when they cannot tell.

        The candidates are the allowed items listed for any weighted modality (with the bundle's
        :class:`~recsys.precompute.ListCosines`, for any modality), scored exactly. An item in no
        list of a weighted modality has, in each modality it has, a cosine at most that list's last
        score, so :meth:`_unlisted_bounds` bounds its weighted score, per combination of
        modalities; when the ``n``-th candidate beats every bound no unlisted item can enter the
        answer. When it does not beat the bound of some combinations (typically a few items that
        lack a modality: they are scored by the others alone), every allowed item of those is
        scored exactly too, if that is within ``exact_budget``. ``allowed`` ``None``: every item
        but ``row`` (which no list of its own holds). ``query``: the item's vectors per modality
        (``None``: read from the bundle when needed).
        """
        lists = self.bundle.similar
        if not usable or any(m not in lists for m in usable):
            return None
        weighting = self._weighting(weights, usable)
        if self.bundle.list_cosines is not None:
            candidates, scores = self._listed_scores(row, weighting, allowed)
        else:
            if allowed is None:
                allowed = np.ones(len(self.bundle.item_ids), bool)
                allowed[row] = False
            listed = np.zeros_like(allowed)
            for m in usable:
                rows = lists[m].rows[row]
                listed[rows[rows >= 0]] = True
            candidates = np.flatnonzero(listed & allowed)
            scores = weighted_scores(self.bundle.vectors.blocks, query, candidates, weights)
        if len(candidates) < n:
            return None
        rows, scores = _best(n, candidates, scores)
        bounds = self._unlisted_bounds(weighting, self._list_ends[row].tolist())
        beaten = [p for p, bound in bounds if not scores[-1] > bound + 1e-5]  # float error of the lists
        if not beaten:
            return rows, scores
        # unlisted items of these patterns might enter the answer: score them all, if they are few
        members = np.concatenate([self._pattern_rows[p] for p in beaten])
        dim = sum(self.bundle.vectors.blocks[m].dim for m in usable)
        if len(members) * dim > self.exact_budget:
            return None
        members = np.setdiff1d(members[allowed[members] if allowed is not None else members != row],
                               candidates, assume_unique=True)
        query = query if query is not None else self._item_query(row)
        return _best(n, np.concatenate([rows, members]), np.concatenate(
            [scores, weighted_scores(self.bundle.vectors.blocks, query, members, weights)]))

    def _listed_scores(self, row: int, weighting: _Weighting,
                       allowed: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """The allowed items listed for ``row`` (all of them when ``allowed`` is ``None``) and their
        :func:`weighted_scores` under the ``weighting``'s weights, from the bundle's stored cosines
        (no vector is read)."""
        listed = self.bundle.list_cosines
        count = self._listed_counts[row]
        rows, cosines = listed.rows[row, :count], listed.cosines[row, :count]
        if allowed is not None:
            keep = allowed[rows]
            rows, cosines = rows[keep], cosines[keep]
        return rows.astype(np.int64), (cosines @ weighting.w) * weighting.scale[self._patterns[0][rows]]

    def _weighting(self, weights: dict[str, float], usable: list[str]) -> _Weighting:
        """What scoring the lists under ``weights`` needs (:class:`_Weighting`), for a query item
        with the ``usable`` modalities; kept for the last few hundred asked."""
        key = (tuple(weights.items()), tuple(usable))
        found = self._scales.get(key)
        if found is None:
            names = list(self.bundle.vectors.blocks)
            w = np.array([weights.get(m, 0.0) for m in names], np.float32)
            w_q = sum(weights[m] for m in usable)
            scale = 1.0 / np.sqrt(np.maximum(np.float32(w_q) * (self._patterns[1] @ w), np.float32(1e-12)))
            bounds = []
            for p, combo in enumerate(self._patterns[1].tolist()):
                w_c = sum(weights.get(m, 0.0) for m, has in zip(names, combo) if has)
                if w_c > 0:  # an item sharing no weighted modality with the query scores 0
                    has = frozenset(i for i, m in enumerate(usable) if combo[names.index(m)])
                    coefficients = tuple(weights[m] if i in has else 0.0 for i, m in enumerate(usable))
                    bounds.append((p, has, coefficients, math.sqrt(w_q * w_c)))
            found = _Weighting(w, scale.astype(np.float32), [names.index(m) for m in usable], bounds)
            self._scales.put(key, found)
        return found

    @cached_property
    def _listed_counts(self) -> np.ndarray:
        """Per item, how many items :attr:`Bundle.list_cosines` lists for it."""
        return (np.asarray(self.bundle.list_cosines.rows) >= 0).sum(axis=1)

    @cached_property
    def _list_ends(self) -> np.ndarray:
        """``(items, modalities)`` float32 (the lists' own numbers), block order: the last cosine of
        each item's similar list per modality; NaN where the list is not full (it holds every item
        with the modality, or the item lacks it) or the bundle has no list for it."""
        ends = np.full((len(self.bundle.item_ids), len(self.bundle.vectors.blocks)), np.nan, np.float32)
        for j, m in enumerate(self.bundle.vectors.blocks):
            if m in self.bundle.similar:
                lists = self.bundle.similar[m]
                full = np.asarray(lists.rows[:, -1]) >= 0
                ends[full, j] = lists.scores[full, -1]
        return ends

    @staticmethod
    def _unlisted_bounds(weighting: _Weighting, ends: list[float]) -> list[tuple[int, float]]:
        """``(pattern, bound)``: per combination of modalities (:attr:`_patterns`) the highest
        weighted score an item of it absent from the lists of every usable modality can have.

        ``ends``: per modality (block order), the last cosine of the query item's list, NaN when
        the list holds every item with that modality (an unlisted item then lacks it). In each
        usable modality it has, an unlisted item's cosine is at most that last cosine; the score's
        denominator depends on the modalities the item has. Patterns with no weighted modality
        (their items score 0) and those with a modality whose list holds every item with it (no
        unlisted item has them) are left out. Plain Python: a few numbers, for which numpy calls
        cost more.
        """
        last = [ends[j] for j in weighting.columns]
        exhaustive = {i for i, v in enumerate(last) if v != v}  # NaN
        last = [v if v > 0.0 else 0.0 for v in last]  # (NaN > 0 is False: 0)
        return [(p, sum(map(mul, coefficients, last)) / denominator)
                for p, has, coefficients, denominator in weighting.bounds
                if not (exhaustive and exhaustive & has)]

    @cached_property
    def _pattern_rows(self) -> list[np.ndarray]:
        """Per modality pattern (:attr:`_patterns`), the rows of the items with it."""
        codes = self._patterns[0]
        order = np.argsort(codes, kind="stable")
        counts = np.bincount(codes, minlength=len(self._patterns[1]))
        return np.split(order.astype(np.int64), np.cumsum(counts)[:-1])

    @cached_property
    def _patterns(self) -> tuple[np.ndarray, np.ndarray]:
        """``(codes, patterns)``: ``patterns`` ``(p, modalities)`` float32, the distinct combinations
        of modalities the items have (1 where it has it, block order); ``codes`` ``(items,)`` each
        item's row in it."""
        masks = np.stack([np.asarray(b.mask, bool) for b in self.bundle.vectors.blocks.values()], axis=1)
        patterns, codes = np.unique(masks, axis=0, return_inverse=True)
        return codes.reshape(-1).astype(np.int32), patterns.astype(np.float32)

    # -- feeds ----------------------------------------------------------------------------------

    def recommend(self, user_id: str | None = None, n: int = 10, *,
                  recent_items: Sequence[str] = (), exclude_seen: bool = True,
                  filters: ItemFilter | None = None) -> Feed:
        """A personalised feed for a user, a session's recent items, or both.

        A trained user is scored by ``user factors . item factors``; recent items (not yet in the
        model) are folded in with the ALS user solve, as is a user the model has not seen. With
        neither a known user nor recent items the feed is the popularity fallback. Candidates come
        from the inner-product index (and, with ``content_weight > 0``, from the content index
        near the user's recent items) and are re-scored exactly:
        ``(1 - content_weight) * cf + content_weight * cosine(item, mean of recent items)``.
        Items nobody interacted with can appear through their projected factors
        (``Scored.cold``).

        Args:
            user_id: a user id, or ``None`` for an anonymous session.
            n: how many (1..1000).
            recent_items: item ids the user touched since training, most recent first.
            exclude_seen: leave out the user's training items and ``recent_items``.
            filters: as in :meth:`similar_items`.

        Returns:
            Feed: items best first, the strategy used, and a message when it fell back.

        Raises:
            NotReady: the bundle has no user tower (run ``recsys train``).
            InvalidRequest: bad ``n`` or filters, or a recent item the bundle does not know.
        """
        n = check_k(n)
        collab = self._collab()
        history = self._history(user_id, self._recent_rows(recent_items))
        user_row, recent, hist_rows, _ = history
        known = user_row is not None
        message = None
        if user_id is not None and not known:
            message = (f"unknown user_id {user_id!r} (not in the trained model): "
                       + ("placed by the recent items given" if len(recent)
                          else "showing popular items; send recent_items to personalise"))
        elif user_id is None and not len(recent):
            message = "no user and no recent items: showing popular items"

        def allowed() -> np.ndarray:
            keep = self._allowed(filters)
            keep &= ~self.changes.deleted
            if exclude_seen:
                keep[hist_rows] = False
                keep[recent] = False
            return keep

        if not known and not len(recent):
            rows, scores = self._popular(n, allowed(), collab)
            return Feed(self._scored(rows, scores, collab), "popular", message)
        strategy = "collaborative" if known else "fold-in"
        if exclude_seen:
            lists, owner = self._feed_list(user_id, history)
            listed = None
            if lists is not None:  # the lists leave out seen items; a filter or a deletion cuts them
                listed = lists.head(owner, n) if self._unfiltered(filters) else lists.first(owner, n, allowed())
            if listed is not None:
                return Feed(self._scored(*listed, collab), strategy, message)
        rows, scores = self._feed_top(n, allowed(), history)
        return Feed(self._scored(rows, scores, collab), strategy, message)

    def usable_recent(self, recent_items: Sequence[str]) -> list[str]:
        """The recent items (from the activity log, newest first) a feed reads: the ones this
        bundle has (the log may name items a newer bundle dropped, or put items without factors),
        at most ``5 * history_items``."""
        return [i for i in recent_items if i in self.bundle.item_ids][: self.history_items * 5]

    @property
    def keeps_lists(self) -> bool:
        """Whether feeds with recent items are made as kept lists (``feed_lists > 0`` and a user
        tower)."""
        return self.bundle.collab is not None and self._lists.size > 0

    def feed_list(self, user_id: str | None, recent_items: Sequence[str]) -> TopLists | None:
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
        history = self._history(user_id, self._recent_rows(recent_items))
        if not len(history[1]):
            return None
        return self._feed_list(user_id, history)[0]

    def keep_list(self, user_id: str | None, recent_items: Sequence[str], rows: Sequence[int],
                  scores: Sequence[float]) -> None:
        """Keep a feed list that :meth:`feed_list` made in another process for the same bundle, so
        that this one looks it up instead of making it again.

        Raises:
            InvalidRequest: the list does not fit this bundle (length, rows, scores) or names an
                unknown recent item.
        """
        collab = self.bundle.collab
        recent = self._recent_rows(recent_items)
        rows = np.asarray(rows)
        scores = np.asarray(scores, dtype=np.float32)
        if collab is None or not len(recent) or rows.dtype.kind != "i" \
                or rows.shape != (self.list_k,) or scores.shape != rows.shape \
                or not ((rows >= -1) & (rows < len(self.bundle.item_ids))).all() \
                or not np.isfinite(scores).all():
            raise InvalidRequest(f"not a feed list of bundle {self.version} (list_k {self.list_k})")
        self._lists.put(self._list_key(user_id, recent), TopLists(rows.astype(np.int32)[None], scores[None]))

    def _list_key(self, user_id: str | None, recent: np.ndarray) -> tuple:
        """A kept feed list's key: a trained user's id, or ``None`` for anyone the model does not
        know (visitors with the same recent items share a list), and the recent rows."""
        known = user_id is not None and user_id in self.bundle.collab.user_ids
        return user_id if known else None, recent.tobytes()

    def _history(self, user_id: str | None, recent: np.ndarray) -> tuple:
        """``(user row or None, recent rows, training rows, training strengths)`` of a user."""
        collab = self.bundle.collab
        known = user_id is not None and user_id in collab.user_ids
        if not known:
            return None, recent, np.zeros(0, np.int64), np.zeros(0, np.float32)
        user_row = collab.user_ids.row(user_id)
        return (user_row, recent, *collab.user_items.history(user_row))

    def _feed_list(self, user_id: str | None, history: tuple) -> tuple[TopLists | None, int]:
        """The user's precomputed feed list (seen items excluded, no filter) and its row in it: the
        bundle's for a trained user without recent items, else the one kept for these recent
        items (made now if there is none)."""
        user_row, recent, hist_rows, _ = history
        if not len(recent):
            return (self._feeds, user_row) if user_row is not None else (None, 0)
        key = self._list_key(user_id, recent)
        lists = self._lists.get(key)
        if lists is None and self._lists.size:
            allowed = np.ones(len(self.bundle.item_ids), dtype=bool)
            allowed[hist_rows] = False
            allowed[recent] = False
            rows, scores = self._feed_top(self.list_k, allowed, history)
            lists = TopLists(np.full((1, self.list_k), -1, np.int32), np.zeros((1, self.list_k), np.float32))
            lists.rows[0, :len(rows)], lists.scores[0, :len(rows)] = rows, scores
            self._lists.put(key, lists)
        return lists, 0

    def _feed_top(self, n: int, allowed: np.ndarray, history: tuple) -> tuple[np.ndarray, np.ndarray]:
        """The best ``n`` allowed rows for a history ``(user_row or None, recent rows, training
        rows, training strengths)``: the trained or folded-in user's factors, blended with the
        content similarity to the history."""
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
        taste = self.content_query(np.concatenate([recent, hist_rows])) if self.content_weight > 0 else None
        beta = self.content_weight if taste is not None else 0.0
        allowed = allowed & (collab.item_state > 0)
        searches = [(collab.index, augment_query(user))]
        if beta > 0:
            searches.append((self.bundle.indexes["combined"], taste))
        combined = self.bundle.vectors.combined

        def score(rows: np.ndarray) -> np.ndarray:
            cf = rows_dot(collab.item_factors, rows, user, self._scans["factors"])
            if beta == 0:
                return cf
            return (1.0 - beta) * cf + beta * rows_dot(combined, rows, taste, self._scans["combined"])

        dim = collab.item_factors.shape[1] + (combined.shape[1] if beta > 0 else 0)
        return self._top(n, searches, allowed, score, dim)

    # -- helpers --------------------------------------------------------------------------------

    @cached_property
    def _scans(self) -> dict[str, Scan]:
        """Copies for products with every item (:class:`~recsys.towers.item.Scan`): the combined
        vectors and, with a user tower, the item factors; files in ``scan_dir`` when it is set."""
        files = self.bundle.manifest.get("files", {})

        def scan(matrix: np.ndarray, name: str) -> Scan:
            key = files.get(name, {}).get("sha256")
            return Scan(matrix, folder=self.scan_dir if key else None, key=key)

        scans = {"combined": scan(self.bundle.vectors.combined, "vectors/combined.npy")}
        if self.bundle.collab is not None:
            scans["factors"] = scan(self.bundle.collab.item_factors, "collab/item_factors.npy")
        return scans

    def scan_keys(self) -> set[str]:
        """The names of the transposed files this recommender maps (see :attr:`_scans`)."""
        return {scan.key for scan in self._scans.values() if scan.key}

    def _collab(self) -> Collab:
        if self.bundle.collab is None:
            raise NotReady(f"bundle {self.version} has no user tower; run `recsys train --bundle "
                           f"{self.bundle.path.parent} --interactions ...` to add one")
        return self.bundle.collab

    def _recent_rows(self, recent_items: Sequence[str]) -> np.ndarray:
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
        if last is not None and last[0] == key and last[1] is self.changes:
            return last[2]
        ids = list(dict.fromkeys(map(str, key)))
        rows = self.bundle.item_ids.find(ids)
        if (rows < 0).any():
            unknown = [i for i, r in zip(ids, rows.tolist()) if r < 0 and i not in self.changes.ids]
            if unknown:
                raise InvalidRequest(f"recent_items names unknown item_id {unknown[0]!r}"
                                     + (f" (and {len(unknown) - 1} more)" if len(unknown) > 1 else "")
                                     + f"; bundle {self.version} has {len(self.bundle.item_ids):,} items",
                                     unknown=unknown[:20])
            rows = rows[rows >= 0]
        rows.flags.writeable = False
        self._last_recent = (key, self.changes, rows)  # one tuple: replaced whole, never torn
        return rows

    def _allowed(self, filters: ItemFilter | None) -> np.ndarray:
        mask = self.columns.mask(filters, known_elsewhere=self.changes.ids)
        return np.ones(len(self.bundle.item_ids), dtype=bool) if mask is None else mask.copy()

    def content_query(self, history: np.ndarray) -> np.ndarray | None:
        """The unit mean of the combined vectors of the first ``history_items`` distinct rows of
        ``history`` that have one (``None`` if none has)."""
        vectors = self.bundle.vectors
        rows = [r for r in dict.fromkeys(history.tolist()) if vectors.mask[r]][: self.history_items]
        if not rows:
            return None
        mean = np.asarray(vectors.combined[rows], dtype=np.float32).mean(axis=0)
        norm = float(np.linalg.norm(mean))
        return mean / norm if norm > 0 else None

    def _top(self, n: int, searches: list[tuple[AnnIndex, np.ndarray]], allowed: np.ndarray,
             score: Callable[[np.ndarray], np.ndarray], dim: int) -> tuple[np.ndarray, np.ndarray]:
        """Best ``n`` allowed rows: ANN candidates re-scored exactly, or an exact search over the
        allowed set when that is cheap (``exact_budget``), when Annoy would compare about as many
        items (``ANNOY_ITEM_COST``), or when the candidates fall short of ``n``."""
        wants = annoy_wants(n, int(allowed.sum()), len(allowed), [index for index, _ in searches], dim,
                            exact_budget=self.exact_budget, overfetch=self.overfetch)
        if not wants:
            rows = np.flatnonzero(allowed)
        else:
            found = [index.query(vector, want)[0] for (index, vector), want in zip(searches, wants)]
            rows = np.unique(np.concatenate(found))
            rows = rows[allowed[rows]]
            if len(rows) < n:  # the indexes came up short: search the filtered set exactly
                rows = np.flatnonzero(allowed)
        return _best(n, rows, np.asarray(score(rows), dtype=np.float32))

    @staticmethod
    def _popular(n: int, allowed: np.ndarray, collab: Collab) -> tuple[np.ndarray, np.ndarray]:
        rows = np.flatnonzero(allowed)
        return _best(n, rows, collab.popularity[rows])

    def _scored(self, rows: np.ndarray, scores: np.ndarray, collab: Collab) -> list[Scored]:
        return _scored_list(self.bundle.item_ids.ids[rows].tolist(), scores,
                            (collab.item_state[rows] == PROJECTED).tolist())


def _scored_list(ids: list[str], scores: np.ndarray, cold: list[bool] | None = None) -> list[Scored]:
    """:class:`Scored` rows, built in C (``tuple.__new__`` per row): calling the named tuple's
    constructor, a Python function, cost more than the rest of a looked-up answer."""
    fields = zip(ids, np.asarray(scores, np.float64).tolist(), repeat(False) if cold is None else cold)
    return list(map(tuple.__new__, repeat(Scored), fields))


# what Annoy spends per item it compares, in exact (numpy) item scorings of the same dimension:
# measured here, a feed whose two Annoy queries compared 5,000 of 10,000 items each took 1.4 times
# as long as scoring all 10,000 exactly (1.8 ms against 1.3 ms)
ANNOY_ITEM_COST = 3


def annoy_wants(n: int, n_allowed: int, n_items: int, indexes: list[AnnIndex], dim: int, *,
                exact_budget: int, overfetch: int) -> list[int]:
    """How many candidates to ask each index for to find the best ``n`` of ``n_allowed`` items
    (of ``n_items``), or ``[]`` when scoring every allowed item exactly (``dim`` dimensions) is
    cheaper: few allowed items, items x dimensions within ``exact_budget``, or Annoy comparing
    about as many items itself (a long list, a narrow filter). ``exact_budget`` 0: always Annoy.
    """
    fetch = max(MIN_CANDIDATES, overfetch * n)
    if not indexes or n_allowed <= fetch or n_allowed * dim <= exact_budget:
        return []
    share = n_allowed / n_items
    wants = [min(len(index), math.ceil(fetch / share)) for index in indexes]
    annoy = sum(index.inspects(want) * index.dim for index, want in zip(indexes, wants))
    if exact_budget and n_allowed * dim <= ANNOY_ITEM_COST * annoy:
        return []
    return wants


def _best(n: int, rows: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The ``n`` best rows by score, best first; ties keep the order of ``rows``."""
    if len(rows) > max(n, 256):  # (sorting a few hundred outright is cheaper)
        cut = np.partition(scores, len(scores) - n)[len(scores) - n]  # the n-th best score
        keep = np.flatnonzero(scores >= cut)  # every tie with it too, in order
        rows, scores = rows[keep], scores[keep]
    order = np.argsort(-scores, kind="stable")[:n]
    return rows[order], scores[order]


def _merge(recent: np.ndarray, recent_strength: float, rows: np.ndarray,
           strength: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Union of the training history and the recent items, strengths added per item."""
    all_rows = np.concatenate([rows, recent]).astype(np.int64)
    all_strength = np.concatenate([strength, np.full(len(recent), recent_strength, np.float32)])
    unique, inverse = np.unique(all_rows, return_inverse=True)
    return unique, np.bincount(inverse, weights=all_strength, minlength=len(unique)).astype(np.float32)


def image_path(item_id: str, source) -> str | None:
    """The API path of an item's image, or ``None`` when it has none."""
    return f"/v1/items/{quote(str(item_id), safe='')}/image" if isinstance(source, str) and source else None


def plain_value(value):
    """A frame value as JSON: NaN -> None, numpy scalars -> Python."""
    if isinstance(value, float) and math.isnan(value):
        return None
    return value.item() if hasattr(value, "item") else value


def _plain_row(row) -> dict:
    """A frame row as JSON-ready values; synthetic ground truth (``true_*``) stays internal."""
    return {key: plain_value(value) for key, value in row.items() if not key.startswith("true_")}


def _without_include(filters: ItemFilter | None) -> ItemFilter | None:
    if filters is None or not filters.include:
        return filters
    return dataclasses.replace(filters, include=())
