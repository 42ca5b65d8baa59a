"""The reads the query engine answers, as typed queries, and the plan it makes for each.

A read is planned once (:meth:`recsys.serve.Recommender.plan`): the plan says where the answer comes
from and holds what was resolved to decide it (the item's row, the user's history, the answer
itself when the precomputed lists gave it), so answering never decides again.

Where the answer comes from (:data:`Source`):

* ``"lookup"``: precomputed lists answered, while planning (the bundle's similar-items lists and
  feeds, or a feed list kept since an earlier request); the plan holds the answer;
* ``"list"``: a folded-in feed list is made now (the cost of one computed feed) and kept, so that
  the user's next feeds are lookups until their recent items change;
* ``"compute"``: candidates scored exactly.
"""
from __future__ import annotations

from typing import Any, Literal, NamedTuple

from recsys.control.shaping import NO_SHAPING, Shaper, Shaping
from recsys.serve.filters import ItemFilter
from recsys.serve.rows import Recommendations

__all__ = ["SimilarQuery", "FeedQuery", "Plan", "Source", "SIMILAR_K", "FEED_K", "SEARCH_K", "NO_FILTER"]

# The default list lengths, declared once for Python, the CLI and HTTP. They differ by read on
# purpose: a similar-items widget fills one row of a product page, a feed a page of its own.
SIMILAR_K = 10
FEED_K = 20
SEARCH_K = 10

NO_FILTER = ItemFilter()

Source = Literal["lookup", "list", "compute"]


class SimilarQuery(NamedTuple):
    """Items similar to one item (:meth:`recsys.serve.Recommender.similar_items`); a named tuple,
    cheap to make per request.

    Attributes:
        item_id: a catalog id, or an item put since the bundle.
        k: how many (1..1000).
        weights: per-request modality weights; ``None``: the bundle's defaults.
        filters: category, price range, include and exclude.
        dedupe: one listing of each group of duplicate listings.
        shaping: the request's own rules and diversity (:mod:`recsys.control.shaping`).
    """

    item_id: str
    k: int = SIMILAR_K
    weights: dict[str, float] | None = None
    filters: ItemFilter = NO_FILTER
    dedupe: bool = True
    shaping: Shaping = NO_SHAPING

    def key(self) -> tuple:
        """What makes two such queries the same answer (the result cache's key)."""
        return self.k, self.weights, self.filters.describe(), self.dedupe, self.shaping.key()


class FeedQuery(NamedTuple):
    """A personalised feed (:meth:`recsys.serve.Recommender.recommend`), as :class:`SimilarQuery`.

    Attributes:
        user_id: a user id, or ``None`` for an anonymous session.
        k: how many (1..1000).
        recent_items: items the user touched since the training, most recent first.
        exclude_seen: leave out the user's items; ``None``: the recommender's default (one for
            ranked feeds, one for the blend).
        filters: as in :class:`SimilarQuery`.
        dedupe: as in :class:`SimilarQuery`.
        explain: give each item its ``why`` (:mod:`recsys.serve.ranked`).
        shaping: as in :class:`SimilarQuery`.
        rank: ``False`` serves the blend even where the bundle has a ranker (an experiment's
            variant); ``None``: the recommender's setting.
    """

    user_id: str | None
    k: int = FEED_K
    recent_items: tuple[str, ...] = ()
    exclude_seen: bool | None = None
    filters: ItemFilter = NO_FILTER
    dedupe: bool = True
    explain: bool = False
    shaping: Shaping = NO_SHAPING
    rank: bool | None = None

    def key(self) -> tuple:
        """What makes two such queries of one user the same answer, besides their recent items
        (the result cache's key; the activity count stands for the recent items)."""
        return (self.k, self.exclude_seen, self.filters.describe(), self.dedupe, self.explain, self.shaping.key(),
                self.rank)


class Plan(NamedTuple):
    """How one read is answered, decided once (a named tuple: one per request).

    Attributes:
        query: the read.
        source: where the answer comes from (:data:`Source`).
        found: the answer, when precomputed lists gave it while planning (``source`` ``"lookup"``).
        inputs: what answering needs, resolved while planning (the engine's own type).
        recent: a feed's recent items that the bundle (or the put items) holds, as used.
        shaper: the rules and diversity that shape the answer, or ``None``.
    """

    query: SimilarQuery | FeedQuery
    source: Source
    found: Recommendations | None
    inputs: Any
    recent: tuple[str, ...] = ()
    shaper: Shaper | None = None
