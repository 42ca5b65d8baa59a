"""The query engine's façade: similar items, feeds, search and the catalog over one bundle.

Every read is planned once (:meth:`Recommender.plan`, see :mod:`recsys.serve.queries`) and then
answered (:meth:`Recommender.answer`); the single-id calls do both. The work is done by
collaborators, one file each: :mod:`~recsys.serve.similar` (with :mod:`~recsys.serve.threshold`),
:mod:`~recsys.serve.feeds` (with :mod:`~recsys.serve.feed_lists`), :mod:`~recsys.serve.search`,
:mod:`~recsys.serve.catalog`, :mod:`~recsys.serve.candidates` (the exact-or-ANN choice),
:mod:`~recsys.serve.changes` (items put or deleted since the bundle) and
:mod:`~recsys.serve.embedder` (the bundle's encoders, for text queries, photos and put items).
"""
from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from recsys.bundle import Bundle, read_bundle
from recsys.control.shaping import NO_SHAPING, Shaper, Shaping
from recsys.index.annoy import OVERFETCH
from recsys.serve.batch import ranked_batch
from recsys.serve.candidates import Candidates
from recsys.serve.catalog import Catalog
from recsys.serve.changes import ItemChanges
from recsys.serve.dedupe import computed_once, first_k
from recsys.serve.embedder import ItemEmbedder
from recsys.serve.feeds import Feeds
from recsys.serve.filters import FilterColumns, ItemFilter
from recsys.serve.queries import FEED_K, NO_FILTER, SEARCH_K, SIMILAR_K, FeedQuery, Plan, SimilarQuery
from recsys.serve.rows import Batch, Recommendations, batch_arrays, batch_feeds, check_k
from recsys.serve.search import Search, SearchMode
from recsys.serve.shaped import ReadShapes, hide
from recsys.serve.similar import SimilarItems

__all__ = ["Recommender"]


class Recommender:
    """Answers queries against one loaded :class:`~recsys.bundle.Bundle`.

    Args:
        bundle: the loaded bundle.
        overfetch: candidates gathered per index, as a multiple of ``k``.
        content_weight, history_items, history_decay, exclude_seen: the feeds' blend and defaults
            (``settings.collab``, see docs/settings.md); ``content_weight`` ``None``: the
            training's choice.
        exact_budget: score every allowed item exactly, skipping Annoy, when allowed items x
            vector dimensions is at most this (``settings.index.exact_budget``); 0 = always Annoy.
        feed_lists, list_k: keep folded-in feed lists of ``list_k`` items for the last this many
            (user, recent items) pairs (:mod:`recsys.serve.feed_lists`); 0 = compute every feed.
        rank, ranked_exclude_seen: rank feeds by the bundle's ranker if it has one, and their
            default ``exclude_seen`` (``settings.rank``, :mod:`recsys.serve.ranked`).
        scan_dir: where the transposed copies for products with every item go, shared by the
            processes that serve the bundle; ``None`` keeps them in this process's memory.
        diversity, max_per_category: reads' default diversity (``settings.shaping``).

    Example:
        >>> rec = Recommender.from_bundle("models/demo")  # doctest: +SKIP
        >>> rec.similar_items("I000001", k=5).ids  # doctest: +SKIP
        >>> ids, scores = rec.recommend(["U000001", "U000002"], k=5)  # doctest: +SKIP
    """

    def __init__(self, bundle: Bundle, *, overfetch: int = OVERFETCH, content_weight: float | None = None,
                 history_items: int = 20, history_decay: float = 0.6, exclude_seen: bool = True,
                 exact_budget: int = 4_000_000, feed_lists: int = 0, list_k: int = 100,
                 scan_dir: Path | None = None, rank: bool = True, ranked_exclude_seen: bool = False,
                 diversity: float = 0.0, max_per_category: int = 0):
        self.bundle = bundle
        self.changes = ItemChanges.build(bundle)
        columns = FilterColumns(bundle.items, bundle.item_ids)
        self._shapes = ReadShapes(bundle, columns, diversity, max_per_category)
        self._catalog = Catalog(bundle, columns)
        self._candidates = Candidates(bundle, exact_budget=exact_budget, overfetch=overfetch, scan_dir=scan_dir)
        self._similar = SimilarItems(bundle, self._candidates, columns)
        self.embedder = ItemEmbedder(bundle)  # the bundle's encoders: put items, text queries, prompts
        self._search = Search(bundle, columns, self._similar, self.embedder)
        self._feeds = Feeds(bundle, self._candidates, columns, content_weight=content_weight,
                            history_items=history_items, history_decay=history_decay, feed_lists=feed_lists,
                            list_k=list_k, exclude_seen=exclude_seen, ranked_exclude_seen=ranked_exclude_seen,
                            rank=rank)

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
        c, i, r, s = settings.collab, settings.index, settings.rank, settings.shaping
        options = {"content_weight": c.content_weight, "history_items": c.history_items, "exact_budget": i.exact_budget,
                   "history_decay": c.history_decay, "exclude_seen": c.exclude_seen, "list_k": i.precompute_k,
                   "rank": r.serve, "ranked_exclude_seen": r.exclude_seen, "diversity": s.diversity,
                   "max_per_category": s.max_per_category}
        return cls(bundle, **{**options, **overrides})

    @property
    def path(self) -> Path:
        return self.bundle.path

    @property
    def version(self) -> str:
        return self.bundle.version

    def __fspath__(self) -> str:  # a recommender stands for its bundle's folder wherever a path is taken
        return str(self.bundle.path)

    @property
    def content_weight(self) -> float:
        """The share of a feed score that comes from content (the training's choice, or the setting)."""
        return self._feeds.content_weight

    def warm(self) -> Recommender:
        """Build now, once, what requests would otherwise build on first use (row templates, list
        ends, the transposed copies, ...); a worker calls it before it swaps a bundle in. Returns self."""
        self._catalog.row_templates  # noqa: B018
        self._similar.warm()
        self._candidates.scans  # noqa: B018
        self._feeds.warm()
        if self.bundle.joint is not None:
            self._search.photos  # noqa: B018
        return self

    def with_changes(self, changes: ItemChanges) -> Recommender:
        """A recommender over the same bundle that also serves put items and hides deleted ones
        (cheap: shares everything else with ``self``, which it warms first)."""
        other = copy.copy(self.warm())
        other.changes = changes
        return other

    def scan_keys(self) -> set[str]:
        """The shared transposed files this bundle maps (:mod:`recsys.serve.scan`)."""
        return self._candidates.scan_keys()

    # -- reads: planned once, then answered ------------------------------------------------------

    def plan(self, query: SimilarQuery | FeedQuery, *, logged_recent: Sequence[str] | None = None) -> Plan:
        """Decide how to answer ``query`` (:mod:`recsys.serve.queries`): read the precomputed lists
        now if they answer it, otherwise resolve what computing it needs. A plan is answered by
        the recommender that made it (the same item changes).

        Args:
            logged_recent: a feed's recent items from the activity log (instead of the query's):
                items this bundle does not hold are dropped, not refused.

        Raises:
            NotFound, NotReady, InvalidRequest: as :meth:`similar_items` and :meth:`recommend`.
        """
        check_k(query.k)
        changes = self.changes
        shaped = self._shapes.shaper(changes, "similar" if isinstance(query, SimilarQuery) else "feeds",
                                     query.shaping, query.k)
        query = query._replace(filters=hide(query.filters, shaped))
        if isinstance(query, SimilarQuery):
            query = query._replace(item_id=changes.redirect(query.item_id))
            inputs = self._similar.resolve(query, changes)
            found = self._first(query, lambda n: self._similar.listed(inputs, n, changes), shaped)
            return Plan(query, "compute" if found is None else "lookup", found, inputs, shaper=shaped)
        inputs = self._feeds.resolve(query.user_id, query.recent_items if logged_recent is None else logged_recent,
                                     query.exclude_seen, query.filters, changes, logged=logged_recent is not None,
                                     explain=query.explain, rank=query.rank is not False)
        found = self._first(query, lambda n: self._feeds.listed(inputs, n, changes), shaped)
        source = "lookup" if found is not None else "list" if self._feeds.makes_list(inputs, query.k) else "compute"
        return Plan(query, source, found, inputs, inputs.history.recent.ids, shaped)

    def answer(self, plan: Plan) -> Recommendations:
        """The answer a :meth:`plan` describes; an empty one says why when its filters explain it
        (a category no item is in)."""
        query, found, changes = plan.query, plan.found, self.changes
        if found is None and isinstance(query, SimilarQuery):
            found = self._first(query, lambda n: self._similar.computed(plan.inputs, n, changes), plan.shaper)
        elif found is None:
            make = plan.source == "list"
            found = self._first(query, computed_once(lambda n: self._feeds.computed(plan.inputs, n, changes,
                                                                                   make_list=make)), plan.shaper)
        return self._catalog.explained(found, query.filters, changes)

    def _first(self, query: SimilarQuery | FeedQuery, find, shaped: Shaper | None) -> Recommendations | None:
        item_id = query.item_id if isinstance(query, SimilarQuery) else None
        return self._shapes.first(shaped, query.k, lambda n: first_k(self.bundle, find, n, query.dedupe, item_id,
                                                                       self.changes),
                                  self.changes, query.filters, item_id)

    def similar_items(self, item_id: str | Sequence[str], k: int = SIMILAR_K,
                      weights: dict[str, float] | None = None, filters: ItemFilter | None = None, *,
                      dedupe: bool = True, shaping: Shaping = NO_SHAPING) -> Recommendations | Batch:
        """Items most similar to ``item_id``, best first, the item itself excluded.

        Args:
            item_id: a catalog id (or an item put since the bundle); a list of them for a batch.
            k: how many (1..1000).
            weights: per-request modality weights; ``None``: the bundle's defaults (its precomputed
                lists answer). Other weights re-rank the per-modality lists where that is provably
                the answer (:mod:`recsys.serve.threshold`), else candidates from the indexes.
            filters: category prefix, price range, include and exclude lists.
            dedupe: leave out duplicate listings of the item and of better ones (:mod:`~recsys.serve.dedupe`).
            shaping: this read's own rules and diversity, applied after the shop's stored rules
                (:mod:`recsys.control.shaping`, docs/rules.md).

        Returns:
            Recommendations (strategy ``"similar"``, scores the weighted cosine of
            :func:`recsys.towers.item.weighted_scores`); for a list of ids, ``(ids, scores)``
            arrays of shape ``(len(item_id), k)``, rows short of ``k`` padded with ``""`` and NaN.

        Raises:
            NotFound: unknown item id. InvalidRequest: bad ``k``, weights or filters, or weights
                that leave the item nothing to compare.
        """
        def one(i: str) -> Recommendations:
            return self.answer(self.plan(SimilarQuery(i, k, weights, filters or NO_FILTER, dedupe, shaping)))

        return one(item_id) if isinstance(item_id, str) else batch_arrays(one, item_id, k)

    def recommend(self, user_id: str | None | Sequence[str | None] = None, k: int = FEED_K, *,
                  recent_items: Sequence[str] | Sequence[Sequence[str]] = (),
                  exclude_seen: bool | None = None, filters: ItemFilter | None = None,
                  dedupe: bool = True, explain: bool = False, shaping: Shaping = NO_SHAPING) -> Recommendations | Batch:
        """A personalised feed for a user, a session's recent items, or both: candidates ranked by
        the bundle's learned ranker (:mod:`recsys.serve.ranked`), else the user's factors blended
        with content similarity to the recent items (:mod:`recsys.serve.feeds`); popular items
        with neither.

        Args:
            user_id: a user id, or ``None`` for an anonymous session; a list of them for a batch.
            k: how many (1..1000).
            recent_items: item ids the user touched since training, most recent first; for a
                batch, one such list per user (or none).
            exclude_seen: leave out the user's training items and ``recent_items`` (default: false
                for ranked feeds, true for blended ones: ``settings.rank`` and ``settings.collab``).
            filters: as in :meth:`similar_items`.
            dedupe: show one listing of each group of duplicates, as in :meth:`similar_items`.
            explain: give each item its ``why`` (:attr:`~recsys.serve.rows.Scored.why`).
            shaping: as in :meth:`similar_items`.

        Returns:
            Recommendations (items best first, the strategy used, a message when it fell back);
            for a list of users, ``(ids, scores)`` arrays as in :meth:`similar_items`.

        Raises:
            NotReady: the bundle has no user tower (run ``recsys train``).
            InvalidRequest: bad ``k`` or filters, or a recent item the bundle does not know.
        """
        def one(user: str | None, recent: Sequence[str]) -> Recommendations:
            query = FeedQuery(user, k, tuple(recent), exclude_seen, filters or NO_FILTER, dedupe, explain, shaping)
            return self.answer(self.plan(query))

        if user_id is None or isinstance(user_id, str):
            return one(user_id, recent_items)
        many = None if self._shapes.always(self.changes) or shaping != NO_SHAPING else (  # shaped: one by one
            lambda users, recents: ranked_batch(self._feeds, users, recents, k, exclude_seen, filters or NO_FILTER,
                                                dedupe, self.changes))
        return batch_feeds(one, list(user_id), recent_items, k, many)

    def search(self, query: str | np.ndarray, k: int = SEARCH_K, filters: ItemFilter | None = None,
               mode: SearchMode | None = None, *, shaping: Shaping = NO_SHAPING) -> Recommendations:
        """Items for a free-text query (``"red floral dress"``), best first, put items included.

        Args:
            query: the text, or its unit vector from the bundle's text encoder.
            mode: ``text``, ``image`` (photos, through the joint text-image space) or ``both``;
                ``None``: :attr:`search_mode` (:mod:`recsys.serve.search`).
            shaping: as in :meth:`similar_items`.

        Raises:
            InvalidRequest: an empty text, a mode unknown or the bundle cannot answer, bad ``k`` or filters.
        """
        found = self._shapes.read(self.changes, "search", shaping, check_k(k), filters, lambda n, f: Recommendations(
            self._search.text(query, n, f, mode, self.changes)))
        return self._catalog.explained(found, filters, self.changes)

    @property
    def search_mode(self) -> SearchMode:
        """The default mode of :meth:`search`: ``both`` with a joint text-image space, else ``text``."""
        return self._search.default_mode

    def similar_to_photo(self, photo, k: int = SIMILAR_K, filters: ItemFilter | None = None, *,
                         dedupe: bool = True, shaping: Shaping = NO_SHAPING) -> Recommendations:
        """Items whose photos look most like a query photo, best first (visual search).

        Args:
            photo: a PIL image, a local path, or its unit vector in the bundle's image space.
            shaping: as in :meth:`similar_items`.

        Returns:
            Recommendations: scores are the image cosine (backbone and colour, as between items).

        Raises:
            InvalidRequest: no image modality, a path that is not a photo, bad ``k`` or filters.
        """
        k = check_k(k)
        query = self._search.photo_query(photo)
        found = self._shapes.read(self.changes, "search", shaping, k, filters, lambda n, f: first_k(
            self.bundle, lambda m: self._search.photo(query, m, f, self.changes), n, dedupe, changes=self.changes))
        return self._catalog.explained(found, filters, self.changes)

    # -- the catalog -------------------------------------------------------------------------------

    def knows(self, item_id: str, *, or_deleted: bool = False) -> bool:
        """Whether ``item_id`` can be served (in the bundle or put since, and not deleted, unless ``or_deleted``)."""
        return self._catalog.knows(item_id, self.changes) or (or_deleted and item_id in self.changes.deleted_ids)

    def item(self, item_id: str) -> dict:
        """An item's attributes, with ``fresh`` (put since the bundle); NotFound if unknown or deleted."""
        return self._catalog.item(item_id, self.changes)

    def image(self, item_id: str) -> bytes | None:
        """An item's JPEG thumbnail or ``None``; NotFound if unknown or deleted."""
        return self._catalog.image(item_id, self.changes)

    def listing(self, filters: ItemFilter | None = None, offset: int = 0,
                limit: int = 24) -> tuple[int, list[str], str | None]:
        """How many items pass ``filters``, a page of their ids, and why none (:meth:`Catalog.listing`)."""
        return self._catalog.listing(filters, offset, limit, self.changes)

    def rows(self, scored, *, cold: bool = False, score: bool = True) -> list[dict]:
        """Plain result rows for scored items: what the API returns and the CLI prints."""
        return self._catalog.rows(scored, self.changes, cold=cold, score=score)

    # -- the feed lists workers share ---------------------------------

    def feed_list(self, user_id: str | None,
                  logged_recent: Sequence[str]) -> tuple[list[str], list[int], list[float]] | None:
        """A user's folded-in feed list for their logged recent items (made now if not kept) for
        other workers: ``(recent items, rows, scores)``; ``None`` when none applies."""
        made = self._feeds.feed_list(user_id, logged_recent, self.changes)
        return None if made is None else (list(made[0]), made[1].rows[0].tolist(), made[1].scores[0].tolist())

    def receive_feed_list(self, user_id: str | None, recent_items: Sequence[str], rows: Sequence[int],
                          scores: Sequence[float]) -> None:
        """Keep a feed list another worker made for this bundle; InvalidRequest if it does not fit."""
        self._feeds.receive_list(user_id, recent_items, rows, scores, self.changes)
