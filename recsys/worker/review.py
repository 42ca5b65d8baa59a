"""The review queue (docs/curation.md#the-review-queue): the put items a check flagged, that no
reviewer dismissed or merged into another listing, with their evidence, and the audit log of what
reviewers and writers did."""
from __future__ import annotations

import json

from recsys.errors import InvalidRequest
from recsys.worker import writes
from recsys.worker.serving import Serving

__all__ = ["review_queue", "queue_row", "checks_to_dismiss", "audit_log"]


def review_queue(serving: Serving, limit: int) -> list[dict]:
    """Up to ``limit`` flagged put items, newest first (:func:`queue_row` each).

    Raises:
        Unavailable: Redis is down.
    """
    store = _store(serving, "the review queue")
    fresh = writes.write(serving, "the review queue", lambda: store.client.hgetall(store.keys.fresh))
    dismissed = writes.write(serving, "the review queue", store.review.dismissed)
    merged = writes.write(serving, "the review queue", store.review.merges)
    queue = [row for item_id, raw in fresh.items() if item_id.decode() not in merged
             and (row := _row(item_id.decode(), raw, dismissed.get(item_id.decode(), set()))) is not None]
    queue.sort(key=lambda row: (row["updated"] or "", row["item_id"]), reverse=True)
    return queue[:limit]


def queue_row(serving: Serving, item_id: str) -> dict | None:
    """A put item as the queue shows it: ``item_id``, ``updated``, ``held`` (the checks holding it
    out of reads) and ``checks`` (the flagged ones no reviewer dismissed, with their evidence);
    ``None`` when it is not in the queue."""
    store = _store(serving, "the review queue")
    raw = writes.write(serving, "the review queue", lambda: store.client.hget(store.keys.fresh, item_id))
    if raw is None:
        return None
    return _row(item_id, raw, writes.write(serving, "the review queue", lambda: store.review.dismissed(item_id)))


def _row(item_id: str, raw: bytes, dismissed: set[str]) -> dict | None:
    entry = json.loads(raw)
    flagged = {name: found for name, found in (entry.get("checks") or {}).items()
               if found.get("flagged") and name not in dismissed}
    if not flagged:
        return None
    return {"item_id": item_id, "updated": entry.get("updated"), "held": entry.get("held", []), "checks": flagged}


def _store(serving: Serving, what: str):
    if serving.store is None:
        raise writes.redis_down(serving, what)
    return serving.store


def checks_to_dismiss(row: dict | None, asked: list[str] | None) -> list[str]:
    """The checks a dismissal names: those ``asked`` (each flagged on the item), or all flagged.

    Raises:
        InvalidRequest: the item is not in the queue, or a named check is not flagged on it.
    """
    if row is None:
        raise InvalidRequest("the item has no flagged check to dismiss")
    if asked is None:
        return sorted(row["checks"])
    unknown = sorted(set(asked) - row["checks"].keys())
    if unknown:
        raise InvalidRequest(f"not flagged on this item: {', '.join(unknown)}; flagged: "
                             f"{', '.join(sorted(row['checks']))}")
    return sorted(set(asked))


def audit_log(serving: Serving, limit: int) -> list[dict]:
    """The newest ``limit`` curation actions (who, when, what, before, after), newest first."""
    store = _store(serving, "the audit log")
    return writes.write(serving, "the audit log", lambda: store.review.audit_log(limit))
