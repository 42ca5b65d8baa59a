"""What reviewers decided about put items, in Redis: releases of held items, dismissed flags, and
the audit log every curation write adds to (docs/curation.md#the-review-queue)."""
from __future__ import annotations

import json
from collections.abc import Callable

import redis

from recsys.store.keys import Keys

__all__ = ["ReviewStore"]


class ReviewStore:
    """The review state of one namespace.

    Args:
        client: a redis-py client.
        keys: the namespace's keys.
        moved: runs a pipeline with the item generation moved (and an audit entry logged) and
            tells the workers; returns the new generation.
    """

    def __init__(self, client: redis.Redis, keys: Keys, moved: Callable):
        self.client, self.keys, self._moved = client, keys, moved

    def release(self, item_id: str, audit: dict | None = None) -> int | None:
        """Serve a put item that a check held (its checks stay on record, the held ones as
        ``released``): the new generation, or ``None`` when no put item of that id is held."""
        return self._decide(item_id, set(), audit, required="held")

    def dismiss(self, item_id: str, checks: list[str], audit: dict | None = None) -> int | None:
        """Dismiss checks of a put item: they flag it no more, put again or not, and an item held
        only by dismissed checks is served. The new generation, or ``None`` when no put item of
        that id is stored."""
        return self._decide(item_id, set(checks), audit)

    def dismissed(self, item_id: str | None = None) -> set[str] | dict[str, set[str]]:
        """The checks reviewers dismissed for ``item_id``; for every item, without one."""
        if item_id is not None:
            raw = self.client.hget(self.keys.dismissed, item_id)
            return set(json.loads(raw)) if raw is not None else set()
        return {k.decode(): set(json.loads(v)) for k, v in self.client.hgetall(self.keys.dismissed).items()}

    def audit_log(self, limit: int = 100) -> list[dict]:
        """The newest ``limit`` curation actions, newest first."""
        return [json.loads(fields[b"entry"]) for _, fields in self.client.xrevrange(self.keys.audit, count=limit)]

    def _decide(self, item_id: str, dismiss: set[str], audit: dict | None, required: str | None = None) -> int | None:
        """Add ``dismiss`` to the item's dismissed checks and serve it if they cover its hold (all
        of it with none given), in one transaction that a concurrent write restarts; ``None``
        (nothing written) when no put item is stored, or it lacks the ``required`` field."""
        while True:
            with self.client.pipeline(transaction=True) as pipe:
                try:
                    pipe.watch(self.keys.fresh, self.keys.dismissed)
                    raw = pipe.hget(self.keys.fresh, item_id)
                    entry = json.loads(raw) if raw is not None else None
                    if entry is None or (required and not entry.get(required)):
                        return None
                    gone = self.dismissed(item_id) | dismiss
                    pipe.multi()
                    if dismiss:
                        pipe.hset(self.keys.dismissed, item_id, json.dumps(sorted(gone)))
                    held = entry.get("held")
                    if held and (not dismiss or set(held) <= gone):
                        entry["released"] = entry.pop("held")
                        pipe.hset(self.keys.fresh, item_id, json.dumps(entry, separators=(",", ":")))
                    return self._moved(pipe, audit)
                except redis.WatchError:  # another write came first: read again
                    continue
