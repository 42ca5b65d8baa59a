"""The review queue (docs/curation.md#the-review-queue): the items a check flagged, put since the
bundle or flagged by the build's batch reads (:mod:`recsys.curation.flags`), that no reviewer
dismissed or merged into another listing, with their evidence, and the audit log of what
reviewers and writers did."""
from __future__ import annotations

import itertools
import json
from collections.abc import Iterator

from recsys.errors import InvalidRequest
from recsys.worker import writes
from recsys.worker.serving import Serving

__all__ = ["review_queue", "queue_row", "checks_to_dismiss", "audit_log"]


def review_queue(serving: Serving, limit: int) -> list[dict]:
    """Up to ``limit`` flagged items (:func:`queue_row` each): the put items, newest first, then
    those the build flagged, in the bundle's order (duplicates, then outliers by score).

    Raises:
        Unavailable: Redis is down.
    """
    store = _store(serving, "the review queue")
    fresh = writes.write(serving, "the review queue", lambda: store.client.hgetall(store.keys.fresh))
    fresh = {item_id.decode(): raw for item_id, raw in fresh.items()}
    dismissed = writes.write(serving, "the review queue", store.review.dismissed)
    merged = writes.write(serving, "the review queue", store.review.merges)
    put = [row for item_id, raw in fresh.items() if item_id not in merged
           and (row := _put_row(item_id, raw, dismissed.get(item_id, set()))) is not None]
    put.sort(key=lambda row: (row["updated"] or "", row["item_id"]), reverse=True)
    built = _built_rows(serving, set(fresh) | set(merged), dismissed)
    return [*put, *itertools.islice(built, max(0, limit - len(put)))][:limit]


def queue_row(serving: Serving, item_id: str) -> dict | None:
    """An item as the queue shows it: ``item_id``, ``source`` ("put" or "build"), ``updated``
    (when it was put), ``held`` (the checks holding a put item out of reads) and ``checks`` (the
    flagged ones no reviewer dismissed, with their evidence); ``None`` when it is not in the queue."""
    store = _store(serving, "the review queue")
    raw = writes.write(serving, "the review queue", lambda: store.client.hget(store.keys.fresh, item_id))
    dismissed = writes.write(serving, "the review queue", lambda: store.review.dismissed(item_id))
    if raw is not None:
        return _put_row(item_id, raw, dismissed)
    if item_id in writes.write(serving, "the review queue", store.review.merges):
        return None
    return next(_built_rows(serving, set(), {item_id: dismissed}, only=item_id), None)


def _put_row(item_id: str, raw: bytes, dismissed: set[str]) -> dict | None:
    entry = json.loads(raw)
    return _row(item_id, "put", entry.get("checks") or {}, dismissed, entry.get("updated"), entry.get("held", []))


def _built_rows(serving: Serving, skip: set[str], dismissed: dict[str, set[str]],
                only: str | None = None) -> Iterator[dict]:
    """The rows of the items the served bundle's build flagged, still served as built (not put
    again, merged or deleted since)."""
    recommender = serving.recommender()
    flags = recommender.bundle.flags
    gone = recommender.changes.deleted_ids
    for item_id in (flags if only is None else [only] if only in flags else []):
        if item_id not in skip and item_id not in gone:
            row = _row(item_id, "build", flags[item_id], dismissed.get(item_id, set()), None, [])
            if row is not None:
                yield row


def _row(item_id: str, source: str, checks: dict, dismissed: set[str], updated: str | None,
         held: list[str]) -> dict | None:
    flagged = {name: found for name, found in checks.items() if found.get("flagged") and name not in dismissed}
    if not flagged:
        return None
    return {"item_id": item_id, "source": source, "updated": updated, "held": held, "checks": flagged}


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
