"""Interactions in Redis: the durable log (a Stream) and each user's recent items (a list).

One ``POST /v1/interactions`` is one MULTI/EXEC transaction: the events are appended to the log,
pushed onto each user's recent list (trimmed, with a TTL) and the user's cached feeds are dropped,
all or nothing. A caller is told "accepted" only after that transaction returned, so an
acknowledged event is in the log (and, with AOF, on disk within a second).
"""
from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import pandas as pd
import redis

from recsys.data import schema as S
from recsys.store.keys import Keys

__all__ = ["Event", "ActivityStore"]


@dataclass(frozen=True)
class Event:
    """One interaction as the log stores it.

    Attributes:
        user_id, item_id: string ids.
        event: one of :data:`recsys.data.schema.EVENTS`.
        timestamp: epoch seconds.
        value: a rating or quantity, ``None`` when the event type has none.
    """

    user_id: str
    item_id: str
    event: str
    timestamp: float
    value: float | None = None

    def fields(self) -> dict[str, str]:
        out = {S.USER_ID: self.user_id, S.ITEM_ID: self.item_id, S.EVENT: self.event,
               S.TIMESTAMP: repr(self.timestamp)}
        if self.value is not None:
            out[S.VALUE] = repr(self.value)
        return out


class ActivityStore:
    """The interaction log and recent activity under one key namespace.

    Args:
        client: a redis-py client.
        prefix: key namespace.
        recent_items: items kept per user (``settings.redis.recent_items``).
        recent_ttl: seconds an idle user's recent list lives.
    """

    def __init__(self, client: redis.Redis, *, prefix: str = "recsys", recent_items: int = 50,
                 recent_ttl: float = 30 * 86400):
        self.client = client
        self.keys = Keys(prefix)
        self.recent_items = recent_items
        self.recent_ttl = int(recent_ttl)

    def append(self, events: Sequence[Event]) -> list[str]:
        """Log events and update the users' recent items, in one transaction.

        Returns:
            list[str]: the stream ids the log gave the events, in order.

        Raises:
            redis.RedisError: nothing was written (the transaction is all or nothing).
        """
        pipe = self.client.pipeline(transaction=True)
        for event in events:
            pipe.xadd(self.keys.log, event.fields())
        users: dict[str, list[str]] = {}
        for event in sorted(events, key=lambda e: e.timestamp):
            users.setdefault(event.user_id, []).append(event.item_id)
        for user_id, items in users.items():
            key = self.keys.recent(user_id)
            pipe.lpush(key, *items)  # the newest ends up first
            pipe.ltrim(key, 0, self.recent_items - 1)
            pipe.expire(key, self.recent_ttl)
            # the user's cached feeds are stale; one computed from the recent items read before this
            # and written after it carries the old count, so readers refuse it
            pipe.incr(self.keys.activity(user_id))
            pipe.expire(self.keys.activity(user_id), self.recent_ttl)
            pipe.delete(self.keys.result("user", user_id))
        pipe.publish(self.keys.events, json.dumps({"users": list(users)}))  # and workers' copies
        return [i.decode() for i in pipe.execute()[: len(events)]]

    def recent(self, user_id: str, n: int | None = None) -> list[str]:
        """The user's recent item ids, newest first, without repeats."""
        raw = self.client.lrange(self.keys.recent(user_id), 0, (n or self.recent_items) - 1)
        return list(dict.fromkeys(r.decode() for r in raw))

    def log_length(self) -> int:
        return int(self.client.xlen(self.keys.log))

    def read_log(self, batch: int = 10_000) -> Iterator[tuple[str, dict[str, str]]]:
        """Every logged event, oldest first: ``(stream id, fields)``."""
        start = "-"
        while True:
            chunk = self.client.xrange(self.keys.log, min=start, count=batch)
            if not chunk:
                return
            for entry_id, fields in chunk:
                yield entry_id.decode(), {k.decode(): v.decode() for k, v in fields.items()}
            start = "(" + chunk[-1][0].decode()

    def log_frame(self) -> pd.DataFrame:
        """The log as an interactions frame (``recsys train --interactions redis``)."""
        rows = [fields for _, fields in self.read_log()]
        frame = pd.DataFrame(rows, columns=[S.USER_ID, S.ITEM_ID, S.EVENT, S.VALUE, S.TIMESTAMP])
        frame[S.VALUE] = pd.to_numeric(frame[S.VALUE])
        frame[S.TIMESTAMP] = pd.to_numeric(frame[S.TIMESTAMP])
        return frame
