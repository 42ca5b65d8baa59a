"""A worker's result cache: lookup, cached answer or computation, and what invalidates each."""
from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from recsys._lru import Lru
from recsys.serve import Recommender
from recsys.serve.rows import dump_json
from recsys.store.activity import merge_recent
from recsys.store.redis import cache_field

__all__ = ["ResultCache", "Snapshot"]

Compute = Callable[[Recommender, list[str]], dict]  # (recommender, recent items) -> response body


@dataclass(frozen=True)
class Snapshot:
    """What Redis said at the start of a request (one round trip), or ``None`` values when it
    could not be asked."""

    active: str | None = None
    gen: int | None = None
    cached: bytes | None = None
    recent: list[str] | None = None
    recent_expires: float = math.inf  # when Redis drops the user's recent items
    activity: int | None = None  # the user's interaction posts so far (see Keys.activity)


class ResultCache:
    """The one place that decides, per read, whether the answer is a lookup (precomputed or kept
    lists), a cached body (this worker's memory, then Redis's result cache) or a computation, and
    that owns the invalidation of what it keeps (:meth:`similar`, :meth:`feed`).

    It keeps response bodies and users' recent items in the worker's memory in front of Redis.

    A response body's key is ``(kind, owner, field)``; the field carries the bundle version, the
    item generation and the query like the Redis cache, so a swap or an item write makes old
    entries unreachable. Users' recent items are kept apart (``max_users``), so that a stream of
    distinct queries cannot push them out.

    What a user did is heard from the messages of interaction posts (:meth:`heard`, in commit
    order): the user's bodies are dropped (found through an index by owner, not a scan) and a
    recent list this worker knows gets the new items in front, as Redis does, so the next feed
    needs no round trip. A user outside the active-users set (:meth:`know_active`, loaded when the
    worker subscribes) has no recent items, which needs no round trip either.

    A value read or computed before a drop must not be stored after it: take :attr:`epoch` before
    reading and pass it to :meth:`put` or :meth:`put_recent`, which ignore the value if a drop
    happened since.

    Args:
        max_items: response bodies kept.
        max_users: users whose recent items are kept.
        max_active: the largest active-users set kept; beyond it a user not otherwise known costs
            a round trip.
    """

    def __init__(self, max_items: int, max_users: int = 0, max_active: int = 0):
        self.epoch = 0  # drops so far
        self.max_active = max_active
        self._bodies = Lru(max_items)
        self._owners: dict[tuple[str, str], set[tuple[str, str, str]]] = {}
        self._recent = Lru(max_users)  # user -> (items, when Redis's copy expires)
        self._active: set[str] | None = None  # users who may have recent items; None: not known
        self._pending: dict[str, int] = {}  # users of this worker's posts whose message is due
        self._lock = threading.Lock()

    def get(self, key: tuple[str, str, str]):
        return self._bodies.get(key)

    def recent(self, user: str) -> tuple[str, ...] | None:
        """The user's recent items, or ``None`` when this worker does not know them."""
        if user in self._pending:
            return None
        value = self._recent.get(user)
        if value is not None:
            items, expires = value
            return items if time.time() < expires else None
        active = self._active
        if active is not None and user not in active:
            return ()
        return None

    def put(self, key: tuple[str, str, str], value, epoch: int | None = None) -> None:
        with self._lock:
            if self._bodies.size <= 0 or (epoch is not None and epoch != self.epoch):
                return  # nothing kept, or a drop happened since the value was read: it may be stale
            self._owners.setdefault(key[:2], set()).add(key)
            for old in self._bodies.put(key, value):
                keys = self._owners[old[:2]]
                keys.discard(old)
                if not keys:
                    del self._owners[old[:2]]

    def put_recent(self, user: str, items: tuple[str, ...], epoch: int,
                   expires: float = math.inf) -> None:
        """Keep a user's recent items read from Redis, which keeps them until ``expires``."""
        with self._lock:
            if epoch == self.epoch:
                self._recent.put(user, (items, expires))

    def know_active(self, users: set[str] | None) -> None:
        """The users who may have recent items (``None``: not known), read after subscribing."""
        with self._lock:
            fits = users is not None and self.max_active > 0 and len(users) <= self.max_active
            self._active = users if fits else None

    def expect(self, users) -> None:
        """This worker is about to post the users' activity: drop their bodies, and do not trust
        their recent items until the post's own message is heard (:meth:`heard`)."""
        with self._lock:
            self.epoch += 1
            for user in set(users):
                self._pending[user] = self._pending.get(user, 0) + 1
                self._drop_bodies("user", user)

    def heard(self, message: dict, origin: str) -> None:
        """An interaction post's message (see :meth:`ActivityStore.append`), ``origin`` being
        this worker's token."""
        at, ttl, cap = message["at"], message["ttl"], message["cap"]
        mine = message.get("origin") == origin
        with self._lock:
            self.epoch += 1
            for user, new in message["recent"].items():
                self._drop_bodies("user", user)
                known = self._recent.get(user)
                if known is not None:  # kept unless Redis's copy had expired (a second's margin)
                    previous = known[0] if known[1] > at + 1 else None
                else:
                    previous = () if self._active is not None and user not in self._active else None
                if previous is None:
                    self._recent.pop(user)
                else:
                    self._recent.put(user, (merge_recent(new, previous, cap), at + ttl))
                if self._active is not None:
                    self._active.add(user)
                    if len(self._active) > self.max_active:
                        self._active = None
                if mine and user in self._pending:
                    self._pending[user] -= 1
                    if not self._pending[user]:
                        del self._pending[user]

    def drop_owners(self, kind: str, owners) -> None:
        with self._lock:
            self.epoch += 1
            for owner in set(owners):
                self._drop_bodies(kind, owner)
                if kind == "user":
                    self._recent.pop(owner)

    def _drop_bodies(self, kind: str, owner: str) -> None:
        for key in self._owners.pop((kind, owner), ()):
            self._bodies.pop(key)

    def clear(self) -> None:
        with self._lock:
            self.epoch += 1
            self._bodies.clear()
            self._owners.clear()
            self._recent.clear()
            self._active = None
            self._pending.clear()

    def __len__(self) -> int:
        return len(self._bodies) + len(self._recent)

    # -- answering ------------------------------------------------------------------------------

    def similar(self, serving, metrics, item_id: str, query: dict, compute: Compute, *,
                k: int, weights: dict | None) -> tuple[bytes, Recommender]:
        """The body of a similar-items read (see :meth:`answer`); a lookup when the item's
        precomputed lists answer it."""
        def lookup(rec: Recommender, _recent) -> str | None:
            return "lookup" if rec.similar.is_listed(item_id, k, weights, rec.changes) else None

        return self.answer(serving, metrics, "similar", "item", item_id, query, compute, lookup=lookup)

    def feed(self, serving, metrics, user_id: str, query: dict, compute: Compute, *,
             k: int, exclude_seen: bool) -> tuple[bytes, Recommender]:
        """The body of a feed read (see :meth:`answer`): ``compute`` gets the user's recent items
        that the recommender's bundle or put items hold
        (:meth:`~recsys.serve.feeds.Feeds.usable_recent`); a lookup when a precomputed or kept
        list answers it."""
        usable: dict = {}

        def recent_of(rec: Recommender, recent: list[str]) -> list[str]:
            key = (id(rec), tuple(recent))  # lookup and compute ask the same
            if key not in usable:
                usable[key] = rec.feeds.usable_recent(recent, rec.changes)
            return usable[key]

        def lookup(rec: Recommender, recent: list[str]) -> str | None:
            return rec.feeds.source(k, user_id, exclude_seen, recent_of(rec, recent), rec.changes)

        return self.answer(serving, metrics, "feed", "user", user_id, query,
                           lambda rec, recent: compute(rec, recent_of(rec, recent)),
                           user=user_id, lookup=lookup)

    def answer(self, serving, metrics, endpoint: str, kind: str, owner: str, query: dict,
               compute: Compute, *, user: str | None = None,
               lookup: Callable[[Recommender, list[str]], str | None]) -> tuple[bytes, Recommender]:
        """Answer from this worker's memory, the Redis result cache, or compute and cache.

        The worker's memory is used only while it receives invalidations (pub/sub). Then an answer
        that comes from precomputed lists (``lookup(recommender, recent)`` says ``"lookup"``: the
        bundle's lists, or a feed list the recommender keeps; ``"list"``: a feed list it makes now
        and keeps), or any answer when the result cache is off, is made without asking Redis,
        provided a feed's user's recent items are known locally. Otherwise one pipelined round
        trip reads the item generation, the Redis cache and the user's recent items; an answer
        from lists is then still not written to Redis (reading it back would cost more than
        making it).

        Args:
            serving, metrics: the worker's :class:`~recsys.worker.Serving` (which owns this cache)
                and :class:`~recsys.api.metrics.Metrics`.
            endpoint, kind, owner: name the answer (metrics, cache keys: ``kind`` ``"item"`` or
                ``"user"``, ``owner`` its id).
            query: the request's arguments, part of the cache key.
            compute: ``compute(recommender, recent_items) -> dict``, the response body.
            user: the user whose recent items ``compute`` needs (feeds).

        Returns:
            The JSON body and the recommender (bundle version) that answered.
        """
        epoch = self.epoch  # before anything is read: a value read before a drop is not kept
        serving.catch_up()
        asked = serving.recommender()
        ttl = serving.settings.redis.cache_ttl
        field = cache_field(asked.version, asked.changes.gen, query)
        local_key = (kind, owner, field)
        following = serving.subscribed and not serving.breaker.open  # invalidations arrive
        if following:
            body = self.get(local_key) if ttl else None
            if body is not None:
                metrics.cached(endpoint, "local")
                return body, asked
            recent = self.recent(user) if user is not None else []
            listed = lookup(asked, recent) if recent is not None and ttl else None
            if recent is not None and (not ttl or listed):
                # nothing to read from Redis: item changes arrive by pub/sub and the shared generation
                metrics.cached(endpoint, listed or "skip")
                body = dump_json(compute(asked, list(recent)))
                if ttl:
                    self.put(local_key, body, epoch)
                return body, asked
        key = serving.store.keys.result(kind, owner) if serving.store is not None else None
        snap = serving.snapshot(key if ttl else None, field, user)
        if following and user is not None and snap.recent is not None:
            self.put_recent(user, tuple(snap.recent), epoch, snap.recent_expires)
        recommender = serving.recommender()  # a swap or item changes may have happened since
        if snap.cached is not None and recommender is asked and snap.gen == asked.changes.gen:
            metrics.cached(endpoint, "hit")
            self.put(local_key, snap.cached, epoch)
            return snap.cached, recommender
        recent = snap.recent or []
        listed = lookup(recommender, recent) if ttl else None
        body = dump_json(compute(recommender, recent))
        field = cache_field(recommender.version, recommender.changes.gen, query)
        if listed:
            result = listed  # as cheap to repeat as to read back: not stored in Redis
        elif snap.gen is not None and ttl and key is not None:
            result = "miss"
            # a user's feed carries the activity count its recent items were read at
            stored = body if user is None else f"{snap.activity}\n".encode() + body
            serving.breaker.call(lambda: serving.store.cached(key, field, ttl)(stored))
        else:
            result = "skip"
        if result != "skip" and serving.subscribed:
            self.put((kind, owner, field), body, epoch)
        metrics.cached(endpoint, result)
        return body, recommender
