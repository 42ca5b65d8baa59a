"""The query engine's façade: similar items, feeds, search and item lookups over one bundle.

The work is done by collaborators, one file each: :mod:`~recsys.serve.similar` (the threshold
algorithm), :mod:`~recsys.serve.feeds` (fold-in, kept lists), :mod:`~recsys.serve.candidates`
(the exact-or-ANN choice), :mod:`~recsys.serve.search` (text queries against photos),
:mod:`~recsys.serve.changes` (items put or deleted since the bundle),
:mod:`~recsys.serve.filters` and :mod:`~recsys.serve.rows` (what a result looks like).
"""
from __future__ import annotations

import copy
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path

import numpy as np

from recsys.bundle import Bundle, read_bundle
from recsys.errors import InvalidRequest, NotFound
from recsys.index.annoy import OVERFETCH
from recsys.serve.candidates import Candidates
from recsys.serve.changes import ItemChanges
from recsys.serve.feeds import Feeds
from recsys.serve.filters import FilterColumns, ItemFilter
from recsys.serve.rows import Recommendations, check_k, image_path, plain_row, result_rows, row_templates
from recsys.serve.search import SEARCH_MODES, PhotoSearch, SearchMode
from recsys.serve.similar import SimilarItems

__all__ = ["Recommender"]


class Recommender:
    """Answers queries against one loaded :class:`~recsys.bundle.Bundle`.

    Args:
        bundle: the loaded bundle.
        overfetch: candidates gathered per index, as a multiple of ``k``.
        content_weight: share of a feed score from content similarity to the user's recent items
            (``settings.collab.content_weight``); ``None``: the weight the training chose.
        history_items: how many recent items form the content query.
        exact_budget: score every allowed item exactly, skipping Annoy, when allowed items x
            vector dimensions is at most this (``settings.index.exact_budget``); 0 = always Annoy.
        feed_lists: keep folded-in feed lists for the last this many (user, recent items) pairs
            (:class:`~recsys.serve.feeds.Feeds`); 0 = compute every feed.
        list_k: the length of those lists (``settings.index.precompute_k``).
        scan_dir: where the transposed copies for products with every item go, shared by the
            processes that serve the bundle; ``None`` keeps them in this process's memory.

    Example:
        >>> rec = Recommender.from_bundle("models/demo")  # doctest: +SKIP
        >>> rec.similar_items("I000001", k=5).ids  # doctest: +SKIP
    """

    def __init__(self, bundle: Bundle, *, overfetch: int = OVERFETCH, content_weight: float | None = None,
                 history_items: int = 20, history_decay: float = 0.6, exclude_seen: bool = True,
                 exact_budget: int = 4_000_000, feed_lists: int = 0, list_k: int = 100,
                 scan_dir: Path | None = None):
        self.bundle = bundle
        self.exclude_seen = exclude_seen
        self.changes = ItemChanges.build(bundle)
        self.columns = FilterColumns(bundle.items, bundle.item_ids)
        self.candidates = Candidates(bundle, exact_budget=exact_budget, overfetch=overfetch,
                                     scan_dir=scan_dir)
        self.similar = SimilarItems(bundle, self.candidates, self.columns)
        self.photo_search = PhotoSearch(bundle, self.columns)
        self.feeds = Feeds(bundle, self.candidates, self.columns, content_weight=content_weight,
                           history_items=history_items, history_decay=history_decay, feed_lists=feed_lists,
                           list_k=list_k)

    @classmethod
    def from_bundle(cls, path: str | Path, settings=None, **overrides) -> Recommender:
        """A recommender over the bundle at ``path`` (a version directory, or ``models/NAME`` for
        its newest version), configured by ``settings`` (default: :func:`recsys.load_settings`,
        the environment and the YAML file); keyword ``overrides`` win over both."""
        from recsys.settings import load_settings

        return cls.configured(read_bundle(path), settings if settings is not None else load_settings(),
                              **overrides)

    @classmethod
    def configured(cls, bundle: Bundle, settings, **overrides) -> Recommender:
        """A recommender over a loaded ``bundle`` with the options ``settings`` gives (the feed
        blend, the exact budget, the list length); keyword ``overrides`` win."""
        options = {"content_weight": settings.collab.content_weight,
                   "history_items": settings.collab.history_items,
                   "history_decay": settings.collab.history_decay,
                   "exclude_seen": settings.collab.exclude_seen,
                   "exact_budget": settings.index.exact_budget, "list_k": settings.index.precompute_k}
        return cls(bundle, **{**options, **overrides})

    @property
    def version(self) -> str:
        return self.bundle.version

    @cached_property
    def row_templates(self) -> dict[str, dict]:
        """A result row per bundle item (:func:`~recsys.serve.rows.row_templates`), built once and
        shared by copies."""
        return row_templates(self.bundle)

    def rows(self, scored, *, cold: bool = False, score: bool = True) -> list[dict]:
        """Plain result rows for scored items (:func:`~recsys.serve.rows.result_rows`): what the
        API returns and the CLI prints."""
        return result_rows(self.row_templates, self.changes, scored, cold=cold, score=score)

    def warm(self) -> Recommender:
        """Build now what requests would otherwise build on first use (row templates, modality
        patterns, list ends, the transposed copies, histories sorted by recency). Idempotent;
        a worker calls it before it swaps a bundle in.

        Returns:
            self.
        """
        self.row_templates  # noqa: B018
        self.similar.warm()
        self.candidates.scans  # noqa: B018
        self.feeds.warm()
        if self.bundle.joint is not None:
            self.photo_search.photos  # noqa: B018
        return self

    def with_changes(self, changes: ItemChanges) -> Recommender:
        """A recommender over the same bundle that also serves put items and hides deleted ones
        (cheap: shares everything else with ``self``, which it warms first)."""
        other = copy.copy(self.warm())
        other.changes = changes
        return other

    def knows(self, item_id: str) -> bool:
        """Whether ``item_id`` can be served (in the bundle or put since, and not deleted)."""
        return item_id in self.changes.ids or (item_id in self.bundle.item_ids
                                               and item_id not in self.changes.deleted_ids)

    def item(self, item_id: str) -> dict:
        """An item's attributes (a put item's latest ones) with ``fresh``: whether it was put since
        the bundle.

        Raises:
            NotFound: unknown or deleted item.
        """
        changes = self.changes
        if item_id in changes.ids:
            item = plain_row(changes.items.iloc[changes.ids.row(item_id)])
            return {**item, "image": image_path(item_id, item_id in changes.thumbnails), "fresh": True}
        if item_id in changes.deleted_ids:
            raise NotFound(f"item_id {item_id!r} was deleted", item_id=item_id)
        row = self.bundle.item_ids.row(item_id)
        item = plain_row(self.bundle.items.iloc[row])
        thumbnails = self.bundle.thumbnails
        return {**item, "image": image_path(item_id, thumbnails is not None and thumbnails.has(row)),
                "fresh": False}

    def image(self, item_id: str) -> bytes | None:
        """An item's JPEG thumbnail (a put item's latest), or ``None`` when it has none.

        Raises:
            NotFound: unknown or deleted item.
        """
        changes = self.changes
        if item_id in changes.ids:
            return changes.thumbnails.get(item_id)
        if item_id in changes.deleted_ids:
            raise NotFound(f"item_id {item_id!r} was deleted", item_id=item_id)
        row = self.bundle.item_ids.row(item_id)
        return self.bundle.thumbnails.get(row) if self.bundle.thumbnails is not None else None

    def filter_message(self, filters: ItemFilter | None) -> str | None:
        """Why ``filters`` can keep nothing, for a caller with an empty result: a category no
        item (in the bundle or put since) is in, likely misspelt, with the categories there are
        under the longest part of it that exists; ``None`` otherwise."""
        category = filters.category if filters is not None else None
        columns = (self.columns, self.changes.columns)
        if not category or any(c.has_category(category) for c in columns):
            return None
        parts = category.split("/")
        known = next(("/".join(parts[:i]) for i in range(len(parts) - 1, 0, -1)
                      if any(c.has_category("/".join(parts[:i])) for c in columns)), "")
        names = sorted(set().union(*(c.next_segments(known) for c in columns)))
        if not names:
            return f"no item is in category {category!r}: the items have no categories"
        shown = ", ".join(names[:20]) + (f" and {len(names) - 20} more" if len(names) > 20 else "")
        return (f"no item is in category {category!r}; "
                f"{f'under {known!r} there are' if known else 'the top-level categories are'} {shown}")

    def listing(self, filters: ItemFilter | None = None, offset: int = 0,
                limit: int = 24) -> tuple[int, list[str]]:
        """One page of the servable items that pass ``filters``: the bundle's in catalog order
        (deleted and replaced ones left out), then the put items.

        Returns:
            ``(how many pass in all, the ids from offset to offset + limit)``.
        """
        changes = self.changes
        rows = np.flatnonzero(self.columns.allowed(filters, known_elsewhere=changes.ids) & ~changes.hidden)
        fresh = changes.ids.ids[changes.matching(filters, self.bundle.item_ids)]
        page = [str(i) for i in self.bundle.item_ids.ids[rows[offset:offset + limit]]]
        start = max(0, offset - len(rows))
        page += [str(i) for i in fresh[start:start + limit - len(page)]]
        return len(rows) + len(fresh), page

    def _collapsed(self, find, k: int, query_id: str | None = None) -> Recommendations:
        """``find(n)``'s first ``k`` items with duplicate listings collapsed: an item in the same
        group of duplicates (:attr:`Bundle.duplicate_of`) as ``query_id`` or as a better item
        is left out. More items are asked for until ``k`` remain or ``find`` runs out."""
        groups = self.bundle.duplicate_of  # a group is named by its first item's row
        if groups is None:
            return find(k)
        ids = self.bundle.item_ids
        query_group = groups[ids.row(query_id)] if query_id is not None and query_id in ids else -1
        ask = k  # most answers hold no duplicate: the same call as without dedupe (a list lookup)
        while True:
            found = find(ask)
            kept, seen = [], {query_group} - {-1}
            for scored in found:
                group = groups[ids.row(scored.item_id)] if scored.item_id in ids else -1
                if group >= 0:
                    if group in seen:
                        continue
                    seen.add(group)
                kept.append(scored)
                if len(kept) == k:
                    break
            if len(kept) == k or len(found) < ask or ask >= 8 * k + 100:
                return Recommendations(kept, found.strategy, found.message)
            ask = 2 * ask + 10

    def similar_items(self, item_id: str, k: int = 10, weights: dict[str, float] | None = None,
                      filters: ItemFilter | None = None, *, dedupe: bool = True) -> Recommendations:
        """Items most similar to ``item_id``, best first, the item itself excluded.

        Args:
            item_id: a catalog id (or an item put since the bundle).
            k: how many (1..1000).
            weights: per-request modality weights; ``None`` uses the bundle's defaults (the
                precomputed list, or the combined index). Other weights take the candidates from
                the item's precomputed list of every weighted modality and re-rank them exactly,
                which is the exact answer when the ``k``-th beats the bound on unlisted items
                (:meth:`SimilarItems.threshold`); otherwise candidates come from the combined
                index and the index of every weighted modality.
            filters: category prefix, price range, include and exclude lists. When at least ``k``
                items pass, ``k`` are returned (exact search over the filtered set if the indexes
                do not yield enough).
            dedupe: leave out duplicate listings of the item and of better results (the
                bundle's groups, :mod:`recsys.curation.duplicates`), so that a widget never shows
                one product twice.

        Returns:
            Recommendations: strategy ``"similar"``; scores are the weighted cosine described in
            :func:`recsys.towers.item.weighted_scores`.

        Raises:
            NotFound: unknown item id.
            InvalidRequest: bad ``k``, weights or filters, or weights that leave the item nothing
                to compare.
        """
        k = check_k(k)
        if not dedupe:
            return Recommendations(self.similar.find(item_id, k, weights, filters, self.changes))
        return self._collapsed(lambda n: Recommendations(self.similar.find(item_id, n, weights, filters,
                                                                           self.changes)), k, item_id)

    def recommend(self, user_id: str | None = None, k: int = 10, *,
                  recent_items: Sequence[str] = (), exclude_seen: bool | None = None,
                  filters: ItemFilter | None = None, dedupe: bool = True) -> Recommendations:
        """A personalised feed for a user, a session's recent items, or both.

        A trained user is scored by ``user factors . item factors``; recent items (not yet in the
        model) are folded in with the ALS user solve, as is a user the model has not seen. With
        neither a known user nor recent items the feed is the popularity fallback. Candidates come
        from the inner-product index (and, with ``content_weight > 0``, from the content index
        near the user's recent items) and are re-scored exactly:
        ``(1 - content_weight) * cf + content_weight * cosine(item, mean of recent items)``, where
        ``cf`` is the factors' score with the user's factors scaled to one length
        (:mod:`recsys.collab.blend`).
        Items nobody interacted with can appear through their projected factors
        (``Scored.cold``), and so can items put since the training, placed by the same content
        map when the bundle kept it; a recent put item places the user the same way.

        Args:
            user_id: a user id, or ``None`` for an anonymous session.
            k: how many (1..1000).
            recent_items: item ids the user touched since training, most recent first.
            exclude_seen: leave out the user's training items and ``recent_items`` (default:
                ``settings.collab.exclude_seen``, true unless set).
            filters: as in :meth:`similar_items`.
            dedupe: show one listing of each group of duplicates, as in :meth:`similar_items`.

        Returns:
            Recommendations: items best first, the strategy used, and a message when it fell back.

        Raises:
            NotReady: the bundle has no user tower (run ``recsys train``).
            InvalidRequest: bad ``k`` or filters, or a recent item the bundle does not know.
        """
        k = check_k(k)
        exclude_seen = self.exclude_seen if exclude_seen is None else exclude_seen
        if not dedupe:
            return self.feeds.recommend(user_id, k, recent_items, exclude_seen, filters, self.changes)
        return self._collapsed(lambda n: self.feeds.recommend(user_id, n, recent_items, exclude_seen, filters,
                                                              self.changes), k)

    def similar_to_photo(self, vector: np.ndarray, k: int = 10, filters: ItemFilter | None = None, *,
                         dedupe: bool = True) -> Recommendations:
        """Items whose photos look most like a query photo, best first (visual search).

        Args:
            vector: the photo's unit vector in the bundle's image space
                (:meth:`recsys.serve.embedder.ItemEmbedder.embed_photos`).
            k: how many (1..1000).
            filters: as in :meth:`similar_items`.
            dedupe: show one listing of each group of duplicates, as in :meth:`similar_items`.

        Returns:
            Recommendations: scores are the image cosine (backbone and colour, as between items).

        Raises:
            InvalidRequest: the bundle has no image modality, or bad ``k`` or filters.
        """
        k = check_k(k)
        if "image" not in self.bundle.vectors.blocks:
            raise InvalidRequest(f"bundle {self.version} has no image modality to compare photos with")
        query = {"image": np.asarray(vector, np.float32)}

        def find(n: int) -> Recommendations:
            return Recommendations(self.similar.nearest(query, {"image": 1.0}, n, filters, self.changes))

        return self._collapsed(find, k) if dedupe else find(k)

    def search(self, vector: np.ndarray, k: int = 10, filters: ItemFilter | None = None,
               mode: SearchMode | None = None) -> Recommendations:
        """Items for a text query's unit ``vector`` (from the bundle's text encoder), best first,
        put items included and deleted ones left out.

        Args:
            mode: ``text`` (the items' text), ``image`` (their photos, through the joint
                text-image space) or ``both`` (the mean of the two); ``None`` is ``both`` where the
                bundle has a joint space and ``text`` elsewhere (:mod:`recsys.serve.search`).

        Raises:
            InvalidRequest: an unknown mode, a mode the bundle cannot answer, or bad ``k`` or filters.
        """
        k = check_k(k)
        if mode is None:
            mode = "both" if self.bundle.joint is not None else "text"
        if mode not in SEARCH_MODES:
            raise InvalidRequest(f"mode must be one of {', '.join(SEARCH_MODES)} (got {mode!r})")
        if mode != "text":
            return Recommendations(self.photo_search.find(vector, k, mode, filters, self.changes))
        if "text" not in self.bundle.vectors.blocks:
            raise InvalidRequest(f"bundle {self.version} has no text modality to search")
        query = {"text": np.asarray(vector, np.float32)}
        return Recommendations(self.similar.nearest(query, {"text": 1.0}, k, filters, self.changes))
