"""What changed since the bundle, in Redis: items put, deleted or given attribute values, and
the merchandising rules. Every such write moves the namespace's item generation in its own
transaction (with an audit entry where it has one) and tells the workers, which rebuild their
:class:`~recsys.serve.changes.ItemChanges` from :meth:`ChangeStore.read`."""
from __future__ import annotations

import json
import logging
import time
from typing import NamedTuple

import redis
from pydantic import ValidationError

from recsys.control.experiments import Experiment
from recsys.control.rules import Rule
from recsys.store.experiments import parse_experiments
from recsys.store.keys import Keys
from recsys.store.messages import ItemsChanged, encode
from recsys.store.review import write_attributes

__all__ = ["ChangeStore", "Changes", "AUDIT_KEPT"]

logger = logging.getLogger(__name__)


class Changes(NamedTuple):
    """What changed since the bundle, read in one transaction (the arguments of
    :meth:`recsys.serve.changes.ItemChanges.build` after the bundle)."""

    gen: int
    fresh: dict[str, dict]
    deleted: set[str]
    attributes: dict[str, dict]
    rules: tuple[Rule, ...]
    rules_version: int
    experiments: tuple[Experiment, ...]
    merged: dict[str, str]


AUDIT_KEPT = 1_000_000  # audit entries kept (the oldest go first)


class ChangeStore:
    """The changes since the bundle of one namespace.

    Args:
        client: a redis-py client.
        keys: the namespace's keys.
    """

    def __init__(self, client: redis.Redis, keys: Keys):
        self.client, self.keys = client, keys

    def put_item(self, item_id: str, entry: dict, audit: dict | None = None) -> int:
        """Store a new or changed item (JSON-serialisable ``entry``); returns the new generation."""
        return self._change_item(item_id, entry, audit)

    def delete_item(self, item_id: str, audit: dict | None = None) -> int:
        """Hide an item from every result; returns the new generation."""
        return self._change_item(item_id, None, audit)

    def _change_item(self, item_id: str, entry: dict | None, audit: dict | None) -> int:
        """Put (``entry``) or delete an item, move the generation, and tell the workers."""
        pipe = self.client.pipeline(transaction=True)
        if entry is not None:
            pipe.hset(self.keys.fresh, item_id, json.dumps(entry, separators=(",", ":")))
            pipe.srem(self.keys.deleted, item_id)
        else:
            pipe.hdel(self.keys.fresh, item_id)
            pipe.sadd(self.keys.deleted, item_id)
        return self.moved(pipe, audit)

    def set_attributes(self, item_id: str, values: dict, audit: dict | None = None) -> int:
        """Set catalog attribute values of one item (``None`` unsets one); returns the new generation."""
        pipe = self.client.pipeline(transaction=True)
        write_attributes(pipe, self.keys.attributes, item_id, values)
        return self.moved(pipe, audit)

    def moved(self, pipe, audit: dict | None = None) -> int:
        """Run ``pipe`` with the generation moved, and tell the workers. An ``audit`` entry (who,
        action, item, before, after) goes to the audit log in the same transaction: an action is
        logged if and only if it happened."""
        if audit is not None:
            pipe.xadd(self.keys.audit, {"entry": json.dumps({"at": time.time(), **audit}, separators=(",", ":"))},
                      maxlen=AUDIT_KEPT, approximate=True)
        pipe.incr(self.keys.items_gen)
        gen = int(pipe.execute()[-1])
        self.client.publish(self.keys.events, encode(ItemsChanged(gen)))
        return gen

    def put_rule(self, rule: Rule) -> tuple[Rule, int]:
        """Store a rule (a new one is named ``r<version>``): it as stored, and the new generation.
        Every worker applies it from its next read (the item generation moves)."""
        version = int(self.client.incr(self.keys.rules_version))
        stored = rule if rule.id is not None else rule.model_copy(update={"id": f"r{version}"})
        pipe = self.client.pipeline(transaction=True)
        pipe.hset(self.keys.rules, stored.id, stored.model_dump_json())
        return stored, self.moved(pipe)

    def delete_rule(self, rule_id: str) -> int | None:
        """Remove a rule: the new generation, or ``None`` if there was none of that id."""
        if not self.client.hexists(self.keys.rules, rule_id):
            return None
        pipe = self.client.pipeline(transaction=True)
        pipe.hdel(self.keys.rules, rule_id)
        pipe.incr(self.keys.rules_version)
        return self.moved(pipe)

    def read(self) -> Changes:
        """Everything changed since the bundle, read in one transaction; a stored rule that no
        longer validates is left out with a log line (it cannot act, and must not stop reads)."""
        pipe = self.client.pipeline(transaction=True)
        pipe.get(self.keys.items_gen)
        pipe.hgetall(self.keys.fresh)
        pipe.smembers(self.keys.deleted)
        pipe.hgetall(self.keys.attributes)
        pipe.hgetall(self.keys.rules)
        pipe.get(self.keys.rules_version)
        pipe.hgetall(self.keys.experiments)
        pipe.hgetall(self.keys.merged)
        gen, fresh, deleted, attributes, rules, version, experiments, merged = pipe.execute()
        by_item: dict[str, dict] = {}
        for field, value in attributes.items():
            item_id, name = json.loads(field)
            by_item.setdefault(item_id, {})[name] = json.loads(value)
        parsed = []
        for rule_id, text in rules.items():
            try:
                parsed.append(Rule.model_validate_json(text))
            except ValidationError as exc:
                logger.warning("stored rule %s is left out: %s", rule_id.decode(), exc)
        # rules apply in the order they were made (r2 before r10)
        parsed.sort(key=lambda r: (len(r.id or ""), r.id or ""))
        return Changes(int(gen or 0), {k.decode(): json.loads(v) for k, v in fresh.items()},
                       {d.decode() for d in deleted}, by_item, tuple(parsed), int(version or 0),
                       tuple(parse_experiments(experiments)), {k.decode(): v.decode() for k, v in merged.items()})

    def drop_superseded(self, bundle) -> None:
        """Fresh entries of items the new bundle holds, written before it was built, are stale."""
        created = bundle.manifest.get("created", "")
        fresh = self.read().fresh
        stale = [item_id for item_id, entry in fresh.items()
                 if item_id in bundle.item_ids and entry.get("updated", "") < created]
        if stale:
            pipe = self.client.pipeline(transaction=True)
            pipe.hdel(self.keys.fresh, *stale)
            pipe.incr(self.keys.items_gen)
            pipe.execute()
            logger.info("%d fresh items superseded by bundle %s", len(stale), bundle.version)
