"""Rotation: a user's feeds move down (or leave out) the items they showed the user and the user
did not touch (docs/rules.md). The counts of what each user was shown live in Redis
(:meth:`recsys.store.activity.ActivityStore.shown`); a rotated read reads them, and what it shows
is counted off the request path (:class:`~recsys.worker.impressions.ImpressionLog`)."""
from __future__ import annotations

import dataclasses

from recsys.serve import FeedQuery
from recsys.worker.serving import Serving

__all__ = ["rotated", "count_shown"]


def rotated(serving: Serving, query: FeedQuery) -> FeedQuery:
    """``query`` with the user's shown items when its rotation (or ``shaping.rotation``) is on;
    without a user or Redis, as it is (nothing was counted)."""
    rotation = query.shaping.rotation or serving.settings.shaping.rotation
    if rotation == "off" or query.user_id is None or serving.activity is None:
        return query
    shown = serving.breaker.call(lambda: serving.activity.shown(query.user_id), default={})
    return query._replace(shaping=dataclasses.replace(query.shaping, rotation=rotation,
                                                      shown=tuple(sorted(shown.items()))))


def count_shown(serving: Serving, query: FeedQuery, items: list[str]) -> None:
    """Count what a rotated feed showed (``items``: its item ids)."""
    if query.shaping.rotation in ("down", "out") and query.user_id is not None and serving.impressions is not None:
        serving.impressions.shown(query.user_id, items)
