"""What reviewers decided, in Redis: releases of held items, dismissed flags, merged listings, and
the audit log every curation write adds to (docs/curation.md#the-review-queue)."""
from __future__ import annotations

import json
from collections.abc import Callable

import redis

from recsys.store.keys import Keys

__all__ = ["ReviewStore", "write_attributes"]


def write_attributes(pipe, key: str, item_id: str, values: dict) -> None:
    """Queue the writes of an item's attribute values (``None`` unsets one) on ``pipe``: one hash
    field per (item, attribute), so that setting one never rewrites another."""
    for name, value in values.items():
        field = json.dumps([item_id, name])
        if value is None:
            pipe.hdel(key, field)
        else:
            pipe.hset(key, field, json.dumps(value))


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

    def dismiss(self, item_id: str, checks: list[str], audit: dict | None = None) -> int:
        """Dismiss checks of an item, put or flagged at build (the caller knows it is flagged):
        they flag it no more, put again or rebuilt, and a put item held only by dismissed checks
        is served. Returns the new generation."""
        return self._decide(item_id, set(checks), audit)

    def dismissed(self, item_id: str | None = None) -> set[str] | dict[str, set[str]]:
        """The checks reviewers dismissed for ``item_id``; for every item, without one."""
        if item_id is not None:
            raw = self.client.hget(self.keys.dismissed, item_id)
            return set(json.loads(raw)) if raw is not None else set()
        return {k.decode(): set(json.loads(v)) for k, v in self.client.hgetall(self.keys.dismissed).items()}

    def accept_category(self, item_id: str, category: str, audit: dict | None = None) -> int:
        """Set an item's ``category`` attribute to ``category`` and dismiss its off-category check
        (serving a put item if that check alone held it), in one transaction: the new generation."""
        return self._decide(item_id, {"off_category"}, audit, attributes={"category": category})

    def set_label(self, item_id: str, tagger: str, label: str | None, audit: dict | None = None) -> int:
        """A reviewer's label of ``item_id`` under the saved tagger ``tagger`` (``None``: none of
        these), shown in place of the tagger's tag: the item's ``labels`` attribute, one entry per
        tagger. Returns the new generation."""
        return self._labels(item_id, lambda labels: {**labels, tagger: label}, audit)

    def clear_label(self, item_id: str, tagger: str, audit: dict | None = None) -> int | None:
        """Drop a reviewer's label, so the tagger's own tag shows again: the new generation, or
        ``None`` when the item has no label of that tagger set by hand."""
        return self._labels(item_id, lambda labels: {k: v for k, v in labels.items() if k != tagger}, audit,
                            required=tagger)

    def _labels(self, item_id: str, change: Callable[[dict], dict], audit: dict | None,
                required: str | None = None) -> int | None:
        field = json.dumps([item_id, "labels"])

        def act(pipe) -> int | None:
            raw = pipe.hget(self.keys.attributes, field)
            labels = json.loads(raw) if raw is not None else {}
            if required is not None and required not in labels:
                return None
            pipe.multi()
            write_attributes(pipe, self.keys.attributes, item_id, {"labels": change(labels) or None})
            return self._moved(pipe, audit)

        return self._watched((self.keys.attributes,), act)

    def merges(self) -> dict[str, str]:
        """Every merged listing, by id: the listing it redirects to."""
        return {k.decode(): v.decode() for k, v in self.client.hgetall(self.keys.merged).items()}

    def merge(self, keep: str, items: list[str], audit: dict | None = None) -> int:
        """Merge ``items`` into ``keep``: they redirect to it, and listings merged into them before
        now redirect to ``keep`` too (one hop, always). Returns the new generation."""
        gone = set(items)

        def act(pipe) -> int:
            moved = {item: keep for item, into in self.merges().items() if into in gone}
            pipe.multi()
            pipe.hset(self.keys.merged, mapping={**moved, **{item: keep for item in items}})
            return self._moved(pipe, audit)

        return self._watched((self.keys.merged,), act)

    def unmerge(self, item_id: str, audit: dict | None = None) -> int | None:
        """Serve a merged listing on its own again: the new generation, or ``None`` when it is not
        merged."""
        if not self.client.hexists(self.keys.merged, item_id):
            return None
        pipe = self.client.pipeline(transaction=True)
        pipe.hdel(self.keys.merged, item_id)
        return self._moved(pipe, audit)

    def audit_log(self, limit: int = 100) -> list[dict]:
        """The newest ``limit`` curation actions, newest first."""
        return [json.loads(fields[b"entry"]) for _, fields in self.client.xrevrange(self.keys.audit, count=limit)]

    def _decide(self, item_id: str, dismiss: set[str], audit: dict | None, required: str | None = None,
                attributes: dict | None = None) -> int | None:
        """Add ``dismiss`` to the item's dismissed checks and serve a put item if they cover its
        hold (all of it with none given), and set ``attributes``, in one transaction that a
        concurrent write restarts; ``None`` (nothing written) when ``required`` names a field the
        item's put entry lacks (or it has none)."""

        def act(pipe) -> int | None:
            raw = pipe.hget(self.keys.fresh, item_id)
            entry = json.loads(raw) if raw is not None else None
            if required and not (entry or {}).get(required):
                return None
            gone = self.dismissed(item_id) | dismiss
            pipe.multi()
            write_attributes(pipe, self.keys.attributes, item_id, attributes or {})
            if dismiss:
                pipe.hset(self.keys.dismissed, item_id, json.dumps(sorted(gone)))
            held = (entry or {}).get("held")
            if held and (not dismiss or set(held) <= gone):
                entry["released"] = entry.pop("held")
                pipe.hset(self.keys.fresh, item_id, json.dumps(entry, separators=(",", ":")))
            return self._moved(pipe, audit)

        return self._watched((self.keys.fresh, self.keys.dismissed), act)

    def _watched(self, keys: tuple[str, ...], act: Callable) -> int | None:
        """``act(pipe)`` on a pipeline watching ``keys``: it reads, then queues its writes after
        ``pipe.multi()`` and runs them through ``moved``; run again from the start when another
        write changed a watched key first."""
        while True:
            with self.client.pipeline(transaction=True) as pipe:
                try:
                    pipe.watch(*keys)
                    return act(pipe)
                except redis.WatchError:  # another write came first: read again
                    continue
