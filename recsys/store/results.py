"""The result cache's Redis side: one pipelined round trip that reads what answering a request
needs to know (the item generation, a cached answer, a user's recent items and activity count), and
the write of a computed answer. What is cached, and when, is decided by the worker's
:class:`~recsys.worker.cache.ResultCache`; this module only moves bytes."""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import redis

from recsys.store.keys import Keys

__all__ = ["Snapshot", "ResultStore"]


@dataclass(frozen=True)
class Snapshot:
    """What Redis said at the start of a request.

    Attributes:
        gen: the item generation.
        cached: the cached answer's bytes under the request's field, if any.
        recent: the user's recent items, newest first (feeds only).
        recent_expires: when Redis drops them (epoch seconds).
        activity: the user's interaction posts so far (:meth:`Keys.activity`; feeds only).
    """

    gen: int
    cached: bytes | None = None
    recent: list[str] | None = None
    recent_expires: float = math.inf
    activity: int | None = None


class ResultStore:
    """Cached answers in Redis under one key namespace.

    Args:
        client: a redis-py client.
        keys: the namespace's keys.
        recent_items: the most recent items a user's list holds.
        ttl: seconds a cached answer lives.
    """

    def __init__(self, client: redis.Redis, keys: Keys, *, recent_items: int, ttl: int):
        self.client = client
        self.keys = keys
        self.recent_items = recent_items
        self.ttl = ttl

    def read(self, kind: str, owner: str, field: str | None, user: str | None = None) -> Snapshot:
        """One pipelined round trip: the item generation, the answer cached for ``owner`` under
        ``field`` (``None``: not asked), and ``user``'s recent items and activity count.

        Raises:
            redis.RedisError: Redis did not answer.
        """
        keys = self.keys
        pipe = self.client.pipeline(transaction=False)
        pipe.get(keys.items_gen)
        if field is not None:
            pipe.hget(keys.result(kind, owner), field)
        if user is not None:
            pipe.lrange(keys.recent(user), 0, self.recent_items - 1)
            pipe.pttl(keys.recent(user))
            pipe.get(keys.activity(user))
        result = pipe.execute()
        if user is None:
            return Snapshot(int(result[0] or 0), result[1] if field is not None else None)
        recent = list(dict.fromkeys(r.decode() for r in result[-3]))
        expires = time.time() + result[-2] / 1000 if result[-2] > 0 else math.inf  # -2: no list, -1: no expiry
        return Snapshot(int(result[0] or 0), result[1] if field is not None else None, recent, expires,
                        int(result[-1] or 0))

    def gen(self) -> int:
        """The item generation (items put or deleted through the API so far)."""
        return int(self.client.get(self.keys.items_gen) or 0)

    def write(self, kind: str, owner: str, field: str, value: bytes) -> None:
        """Cache ``value`` for ``owner`` under ``field`` for :attr:`ttl` seconds."""
        key = self.keys.result(kind, owner)
        pipe = self.client.pipeline(transaction=False)
        pipe.hset(key, field, value)
        pipe.expire(key, self.ttl)
        pipe.execute()
