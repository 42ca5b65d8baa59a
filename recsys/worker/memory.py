"""What a worker keeps in its own memory in front of Redis: recent answers, users' recent items, and
the set of users who may have any; kept exact by the posts' messages, in the order Redis applied
the posts. :class:`~recsys.worker.cache.ResultCache` decides what goes in and when it is read."""
from __future__ import annotations

import math
import threading
import time

from recsys._lru import Lru
from recsys.store.activity import merge_recent
from recsys.store.messages import ActivityPosted

__all__ = ["WorkerMemory"]

AnswerKey = tuple[str, str, str]  # (kind "item" or "user", its id, the cache field)


class WorkerMemory:
    """Answers (:meth:`~recsys.worker.cache.Answer.kept`) and users' recent items in one worker's memory.

    An answer's key is ``(kind, owner, field)``; the field carries the bundle version, the item
    generation and the query like the Redis cache, so a swap or an item write makes old entries
    unreachable. Users' recent items are kept apart (``max_users``), so that a stream of distinct
    queries cannot push them out.

    What a user did is heard from the messages of interaction posts (:meth:`heard`): the user's
    answers are dropped (found through an index by owner, not a scan) and a recent list this worker
    knows gets the new items in front, as Redis does, so the next feed needs no round trip. A user
    outside the active-users set (:meth:`know_active`, loaded when the worker subscribes) has no
    recent items, which needs no round trip either.

    A value read or computed before a drop must not be stored after it: take :attr:`epoch` before
    reading and pass it to :meth:`put` or :meth:`put_recent`, which ignore the value if a drop
    happened since.

    Args:
        max_items: answers kept.
        max_users: users whose recent items are kept.
        max_active: the largest active-users set kept; beyond it a user not otherwise known costs
            a round trip.
    """

    def __init__(self, max_items: int, max_users: int = 0, max_active: int = 0):
        self.epoch = 0  # drops so far
        self.max_active = max_active
        self._answers = Lru(max_items)
        self._owners: dict[tuple[str, str], set[AnswerKey]] = {}
        self._recent = Lru(max_users)  # user -> (items, when Redis's copy expires)
        self._active: set[str] | None = None  # users who may have recent items; None: not known
        self._pending: dict[str, int] = {}  # users of this worker's posts whose message is due
        self._lock = threading.Lock()

    @property
    def keeps_answers(self) -> bool:
        return self._answers.size > 0

    def get(self, key: AnswerKey):
        return self._answers.get(key)

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

    def put(self, key: AnswerKey, value, epoch: int | None = None) -> None:
        with self._lock:
            if self._answers.size <= 0 or (epoch is not None and epoch != self.epoch):
                return  # nothing kept, or a drop happened since the value was read: it may be stale
            self._owners.setdefault(key[:2], set()).add(key)
            for old in self._answers.put(key, value):
                keys = self._owners[old[:2]]
                keys.discard(old)
                if not keys:
                    del self._owners[old[:2]]

    def put_recent(self, user: str, items: tuple[str, ...], epoch: int, expires: float = math.inf) -> None:
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
        """This worker is about to post the users' activity: drop their answers, and do not trust
        their recent items until the post's own message is heard (:meth:`heard`)."""
        with self._lock:
            self.epoch += 1
            for user in set(users):
                self._pending[user] = self._pending.get(user, 0) + 1
                self._drop_answers("user", user)

    def heard(self, message: ActivityPosted, origin: str) -> None:
        """An interaction post's message, ``origin`` being this worker's token."""
        mine = message.origin == origin
        with self._lock:
            self.epoch += 1
            for user, new in message.recent.items():
                self._drop_answers("user", user)
                known = self._recent.get(user)
                if known is not None:  # kept unless Redis's copy had expired (a second's margin)
                    previous = known[0] if known[1] > message.at + 1 else None
                else:
                    previous = () if self._active is not None and user not in self._active else None
                if previous is None:
                    self._recent.pop(user)
                else:
                    self._recent.put(user, (merge_recent(new, previous, message.cap), message.at + message.ttl))
                if self._active is not None:
                    self._active.add(user)
                    if len(self._active) > self.max_active:
                        self._active = None
                if mine and user in self._pending:
                    self._pending[user] -= 1
                    if not self._pending[user]:
                        del self._pending[user]

    def _drop_answers(self, kind: str, owner: str) -> None:
        for key in self._owners.pop((kind, owner), ()):
            self._answers.pop(key)

    def clear(self) -> None:
        with self._lock:
            self.epoch += 1
            self._answers.clear()
            self._owners.clear()
            self._recent.clear()
            self._active = None
            self._pending.clear()

    def __len__(self) -> int:
        return len(self._answers) + len(self._recent)
