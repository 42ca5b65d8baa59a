"""Each user's latest events, baskets kept whole: what the evaluation's temporal split holds out,
and what the training holds out to choose the feeds' content weight."""
from __future__ import annotations

import numpy as np
import pandas as pd

from recsys.data import schema as S

__all__ = ["latest_events"]


def latest_events(interactions: pd.DataFrame, *, fraction: float = 0.2, last_n: int | None = None,
                  min_train: int = 1) -> np.ndarray:
    """``(events,)`` bool in the frame's row order: each user's latest ``ceil(fraction * n)``
    events, or ``last_n``.

    Events at one moment (one basket: the same user and timestamp) are never split: the held-out
    part starts at the moment of its first event and takes all of that moment, since a basket's
    second unit of an article says nothing about what the user buys later. Where that would leave
    fewer than ``min_train`` events to the user, the moment stays with them instead; users with
    fewer than ``min_train`` events keep them all. Ties in time keep the file order; events without
    a timestamp count as older than any with one, and without any timestamp the file order tells
    which events are the latest, each a moment of its own.

    Example:
        >>> import pandas as pd
        >>> frame = pd.DataFrame({"user_id": ["a"] * 3, "timestamp": pd.to_datetime([1, 2, 2], unit="s")})
        >>> latest_events(frame, fraction=0.2).tolist()
        [False, True, True]
    """
    when = interactions[S.TIMESTAMP]
    if when.notna().any():
        key = when.to_numpy(dtype="datetime64[ns]").view(np.int64)  # NaT is the smallest int64
    else:
        key = np.arange(len(interactions), dtype=np.int64)
    users = interactions[S.USER_ID].to_numpy()
    order = np.lexsort((key, users))  # per user in time order, ties in file order (a stable sort)
    users, key = users[order], key[order]
    grouped = pd.Series(key).groupby(users, sort=False)
    position, size = grouped.cumcount().to_numpy(), grouped.transform("size").to_numpy()
    wanted = np.full(len(size), last_n) if last_n is not None else np.ceil(fraction * size).astype(int)
    is_latest = position >= size - np.minimum(wanted, np.maximum(size - min_train, 0))
    nothing = np.iinfo(np.int64).max  # the start of a user with nothing held out
    start = pd.Series(np.where(is_latest, key, nothing)).groupby(users, sort=False).transform("min").to_numpy()
    whole = key >= start
    kept = pd.Series(~whole).groupby(users, sort=False).transform("sum").to_numpy()
    latest = np.zeros(len(key), bool)
    latest[order] = np.where(kept >= min_train, whole, key > start)
    return latest
