"""Interactions in Redis: the durable log (a Stream) and each user's recent items (a list).

One ``POST /v1/interactions`` is one MULTI/EXEC transaction: the events are appended to the log,
moved to the front of each user's recent list (distinct items, trimmed, with a TTL), the users are
marked active, their cached feeds are dropped and a message tells the workers which items each
user touched, all or nothing. A caller is told "accepted" only after that transaction returned, so
an acknowledged event is in the log (and, with AOF, on disk within a second).

Because the list holds distinct items, a worker that knows a user's list (or knows the user has
none) keeps it exact from the messages alone (:func:`merge_recent`), and messages re-applied in
order over a list that already holds them change nothing.
"""
from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import orjson
import pandas as pd
import redis

from recsys.data import schema as S
from recsys.store.keys import Keys
from recsys.store.messages import ActivityPosted, FeedList, encode

__all__ = ["Event", "ActivityStore", "merge_recent", "touched", "POSTED_TTL"]

# how long an interaction post's Idempotency-Key is remembered: retries within it are safe
POSTED_TTL = 24 * 3600
REQUEST_ID = "request_id"
# KEYS: the users' shown-counts hashes; ARGV[1]: their time to live; ARGV[2]: a JSON list of
# each user's shown item ids, in KEYS order
_COUNT_SHOWN = """
local shown = cjson.decode(ARGV[2])
for k, key in ipairs(KEYS) do
  for _, item in ipairs(shown[k]) do redis.call('HINCRBY', key, item, 1) end
  redis.call('EXPIRE', key, tonumber(ARGV[1]))
end
"""


@dataclass(frozen=True)
class Event:
    """One interaction as the log stores it.

    Attributes:
        user_id, item_id: string ids.
        event: one of :data:`recsys.data.schema.EVENTS`.
        timestamp: epoch seconds.
        value: a rating or quantity, ``None`` when the event type has none.
        request_id: the read that showed the item (an experiment's report counts a click for the
            variant that answered it), ``None`` when not known.
    """

    user_id: str
    item_id: str
    event: str
    timestamp: float
    value: float | None = None
    request_id: str | None = None

    def fields(self) -> dict[str, str]:
        out = {S.USER_ID: self.user_id, S.ITEM_ID: self.item_id, S.EVENT: self.event,
               S.TIMESTAMP: repr(self.timestamp)}
        if self.value is not None:
            out[S.VALUE] = repr(self.value)
        if self.request_id is not None:
            out[REQUEST_ID] = self.request_id
        return out


def merge_recent(new: Sequence[str], previous: Sequence[str], cap: int) -> tuple[str, ...]:
    """A recent list after a post: ``new`` (newest first) in front, no repeats, at most ``cap``;
    what Redis holds after :meth:`ActivityStore.append` when it held ``previous``."""
    return tuple(dict.fromkeys([*new, *previous]))[:cap]


def touched(events: Sequence[Event]) -> dict[str, list[str]]:
    """Per user of a post, the distinct items it moves to the front of the recent list, newest
    first (events in any order: a user's items go in by timestamp)."""
    users: dict[str, list[str]] = {}
    for event in sorted(events, key=lambda e: e.timestamp):
        users.setdefault(event.user_id, []).append(event.item_id)
    return {user: list(dict.fromkeys(reversed(items))) for user, items in users.items()}


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
        self._count_script = None

    def append(self, events: Sequence[Event], origin: str | None = None, version: str | None = None,
               lists: Sequence[FeedList] = ()) -> list[str]:
        """Log events and update the users' recent items, in one transaction.

        Args:
            events: the interactions, in any order (a user's items go in by timestamp).
            origin: who posts them (a worker's token), repeated in the workers' message.
            version, lists: the users' feed lists made with bundle ``version``, for the workers'
                message (:class:`~recsys.store.messages.ActivityPosted`).

        Returns:
            list[str]: the stream ids the log gave the events, in order.

        Raises:
            redis.RedisError: nothing was written (the transaction is all or nothing).
        """
        pipe = self.client.pipeline(transaction=True)
        self._queue(pipe, events, origin, version, lists)
        return [i.decode() for i in pipe.execute()[: len(events)]]

    def append_once(self, key: str, events: Sequence[Event], origin: str | None = None,
                    version: str | None = None, lists: Sequence[FeedList] = ()) -> tuple[list[str], bool]:
        """:meth:`append` under an idempotency key: the key is taken in the same transaction as
        the events, so a post retried with the same key within :data:`POSTED_TTL` seconds never
        logs them twice, even when the first attempt's answer was lost.

        Returns:
            ``(stream ids, whether this key had already been posted)``; a repeat returns the
            first post's ids (empty when the first answer was never written back).

        Raises:
            redis.RedisError: as :meth:`append`.
        """
        posted = self.keys.posted(key)
        with self.client.pipeline(transaction=True) as pipe:
            try:
                pipe.watch(posted)
                earlier = pipe.get(posted)
                if earlier is not None:
                    return json.loads(earlier), True
                pipe.multi()
                self._queue(pipe, events, origin, version, lists)
                pipe.set(posted, "[]", ex=POSTED_TTL)
                ids = [i.decode() for i in pipe.execute()[: len(events)]]
            except redis.WatchError:  # the key changed meanwhile, or the connection dropped
                earlier = self.client.get(posted)
                if earlier is None:  # the transaction may still run: say so, never "duplicate"
                    raise redis.TimeoutError("the post's transaction did not complete in time") from None
                return json.loads(earlier), True
        self.client.set(posted, json.dumps(ids), ex=POSTED_TTL, xx=True)
        return ids, False

    def _queue(self, pipe, events: Sequence[Event], origin: str | None, version: str | None,
               lists: Sequence[FeedList]) -> None:
        now = time.time()
        for event in events:
            pipe.xadd(self.keys.log, event.fields())
        users = touched(events)
        for user_id, items in users.items():
            key = self.keys.recent(user_id)
            for item in reversed(items):  # oldest first: each moves to the front, the newest ends first
                pipe.lrem(key, 0, item)
                pipe.lpush(key, item)
            pipe.ltrim(key, 0, self.recent_items - 1)
            pipe.expire(key, self.recent_ttl)
            # the user's cached feeds are stale; one computed from the recent items read before this
            # and written after it carries the old count, so readers refuse it
            pipe.incr(self.keys.activity(user_id))
            pipe.expire(self.keys.activity(user_id), self.recent_ttl)
            pipe.delete(self.keys.result("user", user_id))
        pipe.zadd(self.keys.active_users, {user_id: now for user_id in users})
        pipe.zremrangebyscore(self.keys.active_users, "-inf", now - self.recent_ttl)
        # the workers drop their copies, and update the recent lists they know
        pipe.publish(self.keys.events, encode(ActivityPosted(users, origin, now, self.recent_ttl, self.recent_items,
                                                             version, tuple(lists))))

    def active_users(self, limit: int) -> set[str] | None:
        """The users who may have recent items (a post within the TTL); every other user has none.

        Args:
            limit: the most ids to return.

        Returns:
            The ids, or ``None`` when there are more than ``limit``.
        """
        key = self.keys.active_users
        self.client.zremrangebyscore(key, "-inf", time.time() - self.recent_ttl)
        if not self.client.exists(key):
            self._mark_listed_users()
        if self.client.zcard(key) > limit:
            return None
        return {u.decode() for u in self.client.zrange(key, 0, -1)}

    def _mark_listed_users(self) -> None:
        """Recent lists written before the active-users set existed put their users in it."""
        start = len(self.keys.recent(""))
        users = [k[start:].decode() for k in self.client.scan_iter(match=self.keys.recent_pattern,
                                                                    count=1000)]
        for i in range(0, len(users), 1000):
            self.client.zadd(self.keys.active_users, dict.fromkeys(users[i:i + 1000], time.time()))

    def shown(self, user_id: str) -> dict[str, int]:
        """Items the user's rotated feeds showed, with how often, less those the user touched since
        (their recent items: a click is not a miss), in one round trip."""
        pipe = self.client.pipeline(transaction=False)
        pipe.hgetall(self.keys.shown(user_id))
        pipe.lrange(self.keys.recent(user_id), 0, -1)
        shown, recent = pipe.execute()
        touched_ = {r.decode() for r in recent}
        return {k.decode(): int(v) for k, v in shown.items() if k.decode() not in touched_}

    def count_shown(self, shown: Sequence[tuple[str, Sequence[str]]]) -> None:
        """Count what rotated feeds showed, ``(user id, item ids)`` each, in one round trip; a
        user's counts expire with their recent items. One script call whatever the batch holds:
        a command per shown item would cost the writing thread tens of microseconds of Python per
        feed."""
        if not shown:
            return
        if self._count_script is None:
            self._count_script = self.client.register_script(_COUNT_SHOWN)
        self._count_script(keys=[self.keys.shown(user) for user, _ in shown],
                           args=[self.recent_ttl, orjson.dumps([list(items) for _, items in shown])])

    def recent(self, user_id: str, n: int | None = None) -> list[str]:
        """The user's recent item ids, newest first, without repeats."""
        raw = self.client.lrange(self.keys.recent(user_id), 0, (n or self.recent_items) - 1)
        return list(dict.fromkeys(r.decode() for r in raw))

    def recent_after(self, events: Sequence[Event]) -> dict[str, tuple[str, ...]]:
        """Each user's recent items as :meth:`append` of ``events`` will leave them (unless another
        post for the same user comes in between), read in one round trip."""
        users = touched(events)
        pipe = self.client.pipeline(transaction=False)
        for user_id in users:
            pipe.lrange(self.keys.recent(user_id), 0, self.recent_items - 1)
        return {user_id: merge_recent(new, [r.decode() for r in raw], self.recent_items)
                for (user_id, new), raw in zip(users.items(), pipe.execute())}

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

    def log_frame(self, *, requests: bool = False) -> pd.DataFrame:
        """The log as an interactions frame (``recsys train --interactions redis``); with
        ``requests``, also each event's ``request_id`` ("" where none; experiment reports)."""
        rows = [fields for _, fields in self.read_log()]
        columns = [S.USER_ID, S.ITEM_ID, S.EVENT, S.VALUE, S.TIMESTAMP] + ([REQUEST_ID] if requests else [])
        frame = pd.DataFrame(rows, columns=columns)
        if requests:  # "" where none (a column of no ids at all would be float NaN)
            frame[REQUEST_ID] = [r if isinstance(r, str) else "" for r in frame[REQUEST_ID]]
        frame[S.VALUE] = pd.to_numeric(frame[S.VALUE])
        frame[S.TIMESTAMP] = pd.to_numeric(frame[S.TIMESTAMP])
        return frame

