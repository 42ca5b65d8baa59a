"""A worker's result cache: the one place that decides, per read, whether the answer comes from
this worker's memory, from Redis's result cache, or from the query engine, and that writes and
invalidates what it keeps.

A read (:meth:`ResultCache.similar`, :meth:`ResultCache.feed`) goes:

1. The worker's recommender, taken once (the not-ready check, and item changes a sibling worker
   wrote, caught up).
2. While invalidations arrive (pub/sub), this worker's memory: a kept answer is returned as it is;
   otherwise, when a feed's user's recent items are known here, the read is planned
   (:meth:`recsys.serve.Recommender.plan`), and an answer from precomputed or kept lists (or any
   answer, with the cache off) is made without asking Redis.
3. Otherwise one pipelined round trip (:meth:`recsys.store.results.ResultStore.read`): the item
   generation (item changes reloaded if it moved), the cached answer, the user's recent items.
4. A cached answer computed at the user's current activity count is returned; otherwise the read
   is planned (once: the plan of step 2 is kept when nothing it was made from changed) and
   answered, and a computed answer is written to Redis (an answer from lists is cheaper to make
   again than to read back).

A user's cached feeds carry the activity count they were computed at (:meth:`Keys.activity`), so a
feed computed from recent items read before a post and written after it is never served.
"""
from __future__ import annotations

import hashlib
from collections.abc import Sequence
from functools import lru_cache
from typing import NamedTuple, Protocol

import orjson

from recsys.serve import FeedQuery, Plan, Recommender, SimilarQuery
from recsys.serve.rows import dump_json
from recsys.store.connection import Breaker
from recsys.store.results import ResultStore, Snapshot
from recsys.worker.memory import WorkerMemory

__all__ = ["Answer", "ResultCache", "WorkerState", "cache_field", "ID_SEPARATOR"]

ID_SEPARATOR = "\x1f"  # a control character: never in an id (recsys.data.schema.id_problem)


class WorkerState(Protocol):
    """What the result cache needs of its worker (:class:`~recsys.worker.Serving`)."""

    @property
    def following(self) -> bool:
        """Whether invalidations arrive (subscribed to pub/sub, Redis answering)."""

    def recommender(self, version: str | None = None) -> Recommender:
        """The recommender a request uses: the active bundle's, or a held variant bundle's
        (raises NotReady when nothing is loaded)."""

    def at_generation(self, gen: int, version: str | None = None) -> Recommender:
        """:meth:`recommender`, with item changes reloaded if ``gen`` (Redis's) is not the one it serves."""


class Answer(NamedTuple):
    """A read's answer, as the worker keeps it and the API shapes it.

    Attributes:
        version: the bundle version that made it.
        items: the result rows as JSON (:meth:`recsys.serve.Recommender.rows`).
        strategy: how it was made (``"similar"``, ``"collaborative"``, ``"fold-in"``, ``"popular"``).
        message: why a fallback was used, or why it is empty; ``None`` otherwise.
        recent: a feed's recent items from the activity log that the bundle holds, as used.
        weights: similar items' weights in use, as JSON.
        ids: the items' ids joined by ``ID_SEPARATOR`` (a character no id holds): what the worker
            logs of what it showed, without parsing ``items``.
    """

    version: str
    items: bytes
    strategy: str
    message: str | None = None
    recent: int | None = None
    weights: bytes | None = None
    ids: str = ""

    @property
    def item_ids(self) -> list[str]:
        """The items' ids, in order."""
        return self.ids.split(ID_SEPARATOR) if self.ids else []

    def kept(self) -> tuple:
        """What the worker's memory keeps (the version is in its key): a plain tuple of immutable
        values, which the garbage collector stops tracking, so that a large cache costs no time
        at each collection."""
        return self[1:]

    def encode(self) -> bytes:
        """The bytes Redis keeps (the version is in the cache field)."""
        return (orjson.dumps([self.strategy, self.message, self.recent, self.ids]) + b"\n"
                + (self.weights or b"null") + b"\n" + self.items)

    @classmethod
    def decode(cls, version: str, data: bytes) -> Answer:
        head, _, rest = data.partition(b"\n")
        weights, _, items = rest.partition(b"\n")
        strategy, message, recent, ids = orjson.loads(head)
        return cls(version, items, strategy, message, recent, None if weights == b"null" else weights, ids)


def cache_field(version: str, gen: int, key: tuple) -> str:
    """A cached answer's field: the bundle version, the item generation, and the query's key
    (hashed when long: a filter may name a thousand items)."""
    text = f"{version}|{gen}|{orjson.dumps(key, option=orjson.OPT_SORT_KEYS).decode()}"
    return text if len(text) <= 200 else hashlib.sha256(text.encode()).hexdigest()


class ResultCache:
    """See the module's docstring.

    Args:
        state: the worker's state.
        store: the result cache in Redis; ``None`` without Redis.
        breaker: the worker's circuit breaker for Redis calls.
        ttl: seconds a cached answer lives; 0 turns the result cache off.
        memory: the worker's memory.
    """

    def __init__(self, state: WorkerState, store: ResultStore | None, breaker: Breaker, *, ttl: int,
                 memory: WorkerMemory):
        self.state = state
        self.store = store
        self.breaker = breaker
        self.ttl = ttl
        self.memory = memory

    def similar(self, query: SimilarQuery, version: str | None = None) -> tuple[Answer, str]:
        """Items similar to an item, by the active bundle or the held bundle ``version``: the
        answer, and where it came from (``local``: this worker's memory, ``hit``: Redis,
        ``lookup``: precomputed lists, ``miss``: computed and cached, ``skip``: computed, not
        cached)."""
        return self._read("item", query.item_id, query, None, version)

    def feed(self, query: FeedQuery, version: str | None = None) -> tuple[Answer, str]:
        """A user's feed, with their recent items from the activity log: as :meth:`similar`, and
        ``list``: a folded-in list made now and kept."""
        return self._read("user", query.user_id, query, query.user_id, version)

    def _read(self, kind: str, owner: str, query, user: str | None, version: str | None) -> tuple[Answer, str]:
        # a rotated feed changes at every read: nothing to keep
        memory, ttl = self.memory, (self.ttl if not query.shaping.shown else 0)
        epoch = memory.epoch  # before anything is read: a value read before a drop is not kept
        rec = self.state.recommender(version)
        key = _key(rec, query)
        local_key = (kind, owner, cache_field(rec.version, rec.changes.gen, key))
        plan = planned_recent = None
        following = self.state.following
        if following:
            kept = memory.get(local_key) if ttl else None
            if kept is not None:
                return Answer(rec.version, *kept), "local"
            planned_recent = memory.recent(user) if user is not None else ()
            if planned_recent is not None:
                plan = _plan(rec, query, planned_recent, user)
                if not ttl or plan.source != "compute":
                    # nothing to read from Redis: item changes arrive by pub/sub and the shared generation
                    answer = _answer(rec, plan)
                    if ttl:
                        memory.put(local_key, answer.kept(), epoch)
                    return answer, plan.source if ttl else "skip"
        snap = self._snapshot(kind, owner, local_key[2] if ttl else None, user)
        if snap is not None and following and user is not None:
            memory.put_recent(user, tuple(snap.recent), epoch, snap.recent_expires)
        current = self.state.at_generation(snap.gen, rec.version) if snap is not None else rec
        if snap is not None and snap.cached is not None and current is rec and snap.gen == rec.changes.gen:
            answer = Answer.decode(rec.version, snap.cached)
            memory.put(local_key, answer.kept(), epoch)
            return answer, "hit"
        recent = (snap.recent or []) if snap is not None else []
        if plan is None or current is not rec or tuple(recent) != tuple(planned_recent):
            plan = _plan(current, query, recent, user)
        answer = _answer(current, plan)
        field = cache_field(current.version, current.changes.gen, key if current is rec else _key(current, query))
        if plan.source != "compute" and ttl:
            source = plan.source  # as cheap to make again as to read back: not stored in Redis
        elif snap is not None and ttl and self.store is not None:
            source = "miss"
            # a user's feed carries the activity count its recent items were read at
            value = answer.encode() if user is None else f"{snap.activity}\n".encode() + answer.encode()
            self.breaker.call(lambda: self.store.write(kind, owner, field, value))
        else:
            source = "skip"
        if source != "skip" and self.state.following:
            memory.put((kind, owner, field), answer.kept(), epoch)
        return answer, source

    def _snapshot(self, kind: str, owner: str, field: str | None, user: str | None) -> Snapshot | None:
        """Redis's snapshot for a read, ``None`` without Redis or when it did not answer; a feed
        cached at another activity count than the user's is left out (it is stale)."""
        if self.store is None:
            return None
        snap = self.breaker.call(lambda: self.store.read(kind, owner, field, user))
        if snap is not None and user is not None and snap.cached is not None:
            count, _, value = snap.cached.partition(b"\n")
            snap = Snapshot(snap.gen, value if count == str(snap.activity).encode() else None, snap.recent,
                            snap.recent_expires, snap.activity)
        return snap


def _key(rec: Recommender, query) -> tuple:
    """A read's cache key: the query's, and while there are rules, their phase (the rules
    active are the same while it is: a rule that starts or ends makes a new key)."""
    rules = rec.changes.rules
    return query.key() if not len(rules) else (*query.key(), rules.phase())


def _plan(rec: Recommender, query, recent: Sequence[str], user: str | None) -> Plan:
    return rec.plan(query) if user is None else rec.plan(query, logged_recent=recent)


def _answer(rec: Recommender, plan: Plan) -> Answer:
    """The read's answer as the worker keeps it: the result rows as JSON, and what the body says
    besides."""
    found = rec.answer(plan)
    ids = ID_SEPARATOR.join([s.item_id for s in found])
    if isinstance(plan.query, SimilarQuery):
        weights = plan.query.weights or rec.bundle.vectors.weights
        return Answer(rec.version, _compact(dump_json(rec.rows(found))), found.strategy, found.message,
                      weights=_weights_json(tuple(weights.items())), ids=ids)
    return Answer(rec.version, _compact(dump_json(rec.rows(found, cold=True))), found.strategy, found.message,
                  recent=len(plan.recent), ids=ids)


@lru_cache(maxsize=256)
def _weights_json(weights: tuple[tuple[str, float], ...]) -> bytes:
    """A weighting as JSON, made once and shared by every answer with it (most carry the bundle's
    defaults)."""
    return _compact(dump_json(dict(weights)))


def _compact(data: bytes) -> bytes:
    """``data`` in a buffer of its own length: orjson's output holds at least 4 KiB however short
    it is, which a worker keeping 10,000s of answers would hold on to (a 1.4 KB answer's rows in
    4 KiB)."""
    return bytes(memoryview(data))
