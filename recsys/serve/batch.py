"""Many ranked feeds at once: a batch call (``Recommender.recommend`` with a list of users) ranks
its users in blocks, one :meth:`~recsys.rank.ranker.Ranker.rank` call per block, instead of one
call per user; the answers are the single calls' (the same ranking, filters, seen items and
dedupe). Users the single path must answer get ``None``: feeds that are not ranked, a list that
filters or dedupe leave short, and every user while items put since the bundle exist (the blend
places those).
"""
from __future__ import annotations

from collections.abc import Sequence

from recsys.serve.changes import ItemChanges
from recsys.serve.dedupe import computed_depth, first_k
from recsys.serve.feeds import Feeds
from recsys.serve.filters import ItemFilter
from recsys.serve.rows import Recommendations

__all__ = ["ranked_batch"]


def ranked_batch(feeds: Feeds, users: list[str | None], recents: list[Sequence[str]], k: int,
                 exclude_seen: bool | None, filters: ItemFilter, dedupe: bool,
                 changes: ItemChanges) -> list[Recommendations | None]:
    """Each user's ranked feed of ``k``, or ``None`` where the single call must answer.

    Raises:
        InvalidRequest, NotReady: as :meth:`recsys.serve.Recommender.recommend`.
    """
    if feeds.ranked is None or len(changes):
        return [None] * len(users)
    inputs = [feeds.resolve(user, recent, exclude_seen, filters, changes) for user, recent in zip(users, recents)]
    allowed = feeds.columns.allowed(filters, known_elsewhere=changes.ids) & ~changes.deleted
    # as deep as a single call ranks: a list short of it is filled from the blend, which may
    # bring better candidates than the sources' own
    depth = computed_depth(k)
    lists = feeds.ranked.batch(inputs, depth, allowed)
    out: list[Recommendations | None] = []
    for made, given in zip(lists, inputs):
        if made is None:
            out.append(None)
            continue
        found = first_k(feeds.bundle, lambda n, made=made: made[:n] if n <= len(made) else None, k, dedupe)
        out.append(None if found is None or len(found) < k else Recommendations(found, "ranked", given.message))
    return out
