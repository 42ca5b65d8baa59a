"""The interaction log as arrays in a bundle's item space, cut at any moment.

The ranker learns from the shop's own later events: its features are computed from the log up to
a moment, its labels from the events after it. :class:`EventLog` is that log, sorted by time,
with every event's user, item row, time and strength.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from recsys.collab.als import event_seconds, event_strength
from recsys.data import schema as S
from recsys.data.ids import IdMap
from recsys.errors import DataError

__all__ = ["EventLog", "DAY"]

DAY = 86_400.0


@dataclass(frozen=True)
class EventLog:
    """Events sorted by time.

    Attributes:
        user_ids: every user the log names, in sorted order; ``users`` index it.
        users: ``(events,)`` int64 user rows.
        items: ``(events,)`` int64 item rows of the bundle.
        seconds: ``(events,)`` float64 epoch seconds.
        strength: ``(events,)`` float32, the event type's weight (purchases weigh most).
        n_items: the bundle's item count.
    """

    user_ids: IdMap
    users: np.ndarray
    items: np.ndarray
    seconds: np.ndarray
    strength: np.ndarray
    n_items: int

    @classmethod
    def from_frame(cls, events: pd.DataFrame, item_ids: IdMap, event_weights: dict[str, float]) -> EventLog:
        """The log of validated interactions over ``item_ids``, each event's strength as the user
        tower weighs it (:func:`~recsys.collab.als.event_strength`); events that weigh nothing are
        dropped.

        Raises:
            DataError: an event has no time, or names an item ``item_ids`` lacks.
        """
        seconds = event_seconds(events[S.TIMESTAMP]) if S.TIMESTAMP in events else np.full(len(events), np.nan)
        if not np.isfinite(seconds).all():
            raise DataError(f"the ranker learns from time: {int((~np.isfinite(seconds)).sum()):,} "
                            "event(s) have no timestamp")
        items = item_ids.find(events[S.ITEM_ID].astype(str).tolist())
        if (items < 0).any():
            raise DataError(f"{int((items < 0).sum()):,} event(s) name items the bundle lacks")
        strength = event_strength(events, event_weights).astype(np.float32)
        keep = strength > 0
        codes, users = pd.factorize(events[S.USER_ID].astype(str).to_numpy()[keep], sort=True)
        order = np.argsort(seconds[keep], kind="stable")
        return cls(IdMap(users, kind="user"), codes[order].astype(np.int64), items[keep][order],
                   seconds[keep][order], strength[keep][order], len(item_ids))

    def __len__(self) -> int:
        return len(self.users)

    @property
    def end(self) -> float:
        """The time of the newest event (seconds)."""
        return float(self.seconds[-1]) if len(self) else 0.0

    @property
    def start(self) -> float:
        return float(self.seconds[0]) if len(self) else 0.0

    def window(self, start: float = -np.inf, stop: float = np.inf) -> EventLog:
        """The events with ``start <= time < stop``, over the same users and items."""
        lo, hi = np.searchsorted(self.seconds, [start, stop], side="left")
        return EventLog(self.user_ids, self.users[lo:hi], self.items[lo:hi], self.seconds[lo:hi],
                        self.strength[lo:hi], self.n_items)

    def users_of(self, user_ids: list[str]) -> np.ndarray:
        """Rows of ``user_ids`` in this log, ``-1`` for users it does not name."""
        return self.user_ids.find(user_ids)
