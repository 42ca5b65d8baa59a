"""A worker's writes to Redis: interaction posts (the log, recent activity, and the feed lists the
post's users will read), and items put or deleted between bundles. Redis down means nothing was
stored, and the caller is told when to retry."""
from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Sequence
from typing import TypeVar

import pandas as pd
import redis

from recsys.control.rules import Rule
from recsys.data import schema as S
from recsys.errors import InvalidRequest, RecsysWarning, Unavailable
from recsys.serve import Recommender
from recsys.serve.changes import ITEM_FIELDS, make_entry
from recsys.serve.rows import plain_value
from recsys.store.activity import Event
from recsys.store.messages import FeedList
from recsys.worker.arrival import check_put
from recsys.worker.images import PreparedImage
from recsys.worker.serving import Serving

__all__ = ["post_interactions", "store_item", "release_item", "dismiss", "merge", "unmerge", "accept_category",
           "delete_item", "redis_down"]

MAX_MERGED = 100  # listings merged in one action

logger = logging.getLogger(__name__)

T = TypeVar("T")


def redis_down(serving: Serving, what: str) -> Unavailable:
    retry = serving.settings.redis.retry_after
    return Unavailable(f"Redis is unavailable, so {what} cannot be stored now; nothing was stored, "
                       f"retry in {max(1, round(retry))} s", retry_after=retry)


def write(serving: Serving, what: str, call: Callable[[], T]) -> T:
    """Run a Redis call (a write, or a read an admin waits for); 503 with Retry-After when Redis
    is down (nothing was stored then) or did not answer in time (then a write may still happen,
    and the answer says so)."""
    if serving.store is None or serving.breaker.open:
        raise redis_down(serving, what)
    try:
        return call()
    except redis.TimeoutError as exc:
        serving.breaker.fail(exc)
        retry = serving.settings.redis.retry_after
        raise Unavailable(f"Redis did not answer in time, so {what} may or may not have been stored; "
                          "retry with the same Idempotency-Key (a retry with it is never stored twice)",
                          retry_after=retry) from None
    except (redis.RedisError, OSError) as exc:
        serving.breaker.fail(exc)
        raise redis_down(serving, what) from None


def post_interactions(serving: Serving, recommender: Recommender, events: Sequence[Event],
                      idempotency_key: str | None = None) -> tuple[list[str], bool]:
    """Log ``events`` and move the users' recent items, in one transaction; every worker hears it
    (:class:`~recsys.store.messages.ActivityPosted`) with the users' feed lists made here.

    Returns:
        ``(the log's stream ids, whether this idempotency key was posted before)``.

    Raises:
        Unavailable: Redis is down or did not answer (see :func:`write`).
    """
    def append() -> tuple[list[str], bool]:
        lists = _post_lists(serving, recommender, events)
        # the users' answers go now, their recent items stay unknown here until the post's own
        # message comes back (in order with everyone else's)
        serving.memory.expect(e.user_id for e in events)
        if idempotency_key is None:
            return serving.activity.append(events, origin=serving.origin, version=recommender.version,
                                           lists=lists), False
        return serving.activity.append_once(idempotency_key, events, origin=serving.origin,
                                            version=recommender.version, lists=lists)

    return write(serving, "interactions", append)


def _post_lists(serving: Serving, recommender: Recommender, events: Sequence[Event]) -> list[FeedList]:
    """The feed lists of a post's users, for the recent items the post leaves them: every worker
    keeps them, so a user's next feed is a lookup wherever it lands. Made only for a post of at
    most ``api.post_lists`` users; a list that cannot be made here is made at the user's first
    feed instead.

    Raises:
        redis.RedisError: the users' recent items could not be read (nothing was stored).
    """
    users = {e.user_id for e in events}
    if not 0 < len(users) <= serving.settings.api.post_lists:
        return []
    lists = []
    for user, recent in serving.activity.recent_after(events).items():
        try:
            made = recommender.feed_list(user, recent)
        except Exception:  # the list only saves the first feed some work: the post goes on
            logger.exception("making the feed list of user %r after a post failed", user)
            continue
        if made is not None:
            lists.append(FeedList(user, *made))
    return lists


def store_item(serving: Serving, item_id: str, frame: pd.DataFrame, prepared: PreparedImage | None,
               actor: str = "api") -> dict:
    """Embed a put item with the bundle's encoders and store it in Redis; every worker serves it
    from its next request. Runs in the request or in the image pool, never in Flask's context.

    The item is checked first (:func:`recsys.worker.arrival.check_put`): its checks are stored
    with it, and a check whose policy holds it keeps it out of reads until it is released.

    Returns:
        ``{"created", "modalities", "warnings", "checks", "held"}`` (``held``: the checks that
        hold it, empty when it is served).

    Raises:
        InvalidRequest: nothing to embed. Conflict: a check's policy refuses it (nothing was
        stored). Unavailable: Redis is down (nothing was stored).
    """
    recommender = serving.recommender()
    source = frame[S.IMAGE].iloc[0] if S.IMAGE in frame.columns else ""
    if prepared is not None:  # the towers read the re-encoded copy, never the URL again
        frame = frame.assign(**{S.IMAGE: prepared.embed_url})
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always", RecsysWarning)
        outputs = recommender.embedder.embed(frame)
    if not any(o.mask[0] for o in outputs.values()):
        raise InvalidRequest("the item has nothing to embed: give a title, description, tags, "
                             "image, colour, price or category" + (f" ({seen[0].message})" if seen else ""))
    existed = recommender.knows(item_id)
    item = {k: plain_value(frame.iloc[0][k]) for k in ITEM_FIELDS if k in frame.columns}
    # a URL stays on record; a data: URL's bytes live on only as the thumbnail
    item[S.IMAGE] = source if source.startswith(("http://", "https://")) else ""
    thumbnail = prepared.thumbnail if prepared is not None else None
    dismissed = (write(serving, "the item", lambda: serving.store.review.dismissed(item_id))
                 if serving.settings.checks.enabled else set())
    checks, held = check_put(serving.settings, recommender, item_id, item, outputs, thumbnail, dismissed)
    entry = make_entry(item, outputs, thumbnail)
    if checks:
        entry["checks"] = checks
    if held:
        entry["held"] = held
    audit = {"actor": actor, "action": "put", "item_id": item_id, "before": {"existed": existed},
             "after": {"flagged": [n for n, c in checks.items() if c["flagged"] and n not in dismissed],
                       "held": held}}
    changed(serving, write(serving, "the item", lambda: serving.store.changes.put_item(item_id, entry, audit)))
    return {"created": not existed, "modalities": [m for m, o in outputs.items() if o.mask[0]],
            "warnings": [str(w.message) for w in seen], "checks": checks, "held": held}


def release_item(serving: Serving, item_id: str, actor: str = "api") -> bool:
    """Serve a put item a check held, on every worker from its next request; False when no put
    item of that id is held.

    Raises:
        Unavailable: Redis is down (nothing was stored).
    """
    audit = {"actor": actor, "action": "release", "item_id": item_id}
    return _changed_if(serving, "the release", lambda: serving.store.review.release(item_id, audit))


def dismiss(serving: Serving, item_id: str, checks: list[str], actor: str = "api") -> bool:
    """Dismiss flagged checks of an item, put or flagged at build (remembered: they flag it no
    more, put again or rebuilt); a put item held only by them is served.

    Raises:
        Unavailable: Redis is down (nothing was stored).
    """
    audit = {"actor": actor, "action": "dismiss", "item_id": item_id, "after": {"dismissed": checks}}
    return _changed_if(serving, "the dismissal", lambda: serving.store.review.dismiss(item_id, checks, audit))


def merge(serving: Serving, keep: str, items: list[str], actor: str = "api") -> None:
    """Merge duplicate listings into ``keep``: they leave every result, and reads naming one
    answer for ``keep`` (docs/curation.md#fixes), on every worker from its next request.

    Raises:
        InvalidRequest: ``keep`` is itself merged, is among ``items``, or a listing is not served;
            more than :data:`MAX_MERGED` listings. Unavailable: Redis is down (nothing was stored).
    """
    recommender = serving.synced()
    merged = recommender.changes.merged
    if keep in merged:
        raise InvalidRequest(f"{keep!r} is merged into {merged[keep]!r}: keep that one instead", item_id=keep)
    if not 1 <= len(items) <= MAX_MERGED or keep in items:
        raise InvalidRequest(f"merge 1 to {MAX_MERGED} listings other than the one kept")
    unknown = [i for i in (keep, *items) if i not in merged and not recommender.knows(i)]
    if unknown:
        raise InvalidRequest(f"not served: {', '.join(map(repr, unknown))}")
    audit = {"actor": actor, "action": "merge", "item_id": keep,
             "before": {item: merged.get(item) for item in items}, "after": {"merged": items}}
    changed(serving, write(serving, "the merge", lambda: serving.store.review.merge(keep, items, audit)))


def unmerge(serving: Serving, item_id: str, actor: str = "api") -> bool:
    """Serve a merged listing on its own again; False when it is not merged.

    Raises:
        Unavailable: Redis is down (nothing was stored).
    """
    audit = {"actor": actor, "action": "unmerge", "item_id": item_id,
             "before": {"merged_into": serving.recommender().changes.merged.get(item_id)}}
    return _changed_if(serving, "the unmerge", lambda: serving.store.review.unmerge(item_id, audit))


def accept_category(serving: Serving, item_id: str, category: str, actor: str = "api") -> bool:
    """Give an item the category its off-category check suggested (the ``category`` attribute,
    which rules, rows and the export read) and dismiss that check, in one transaction.

    Raises:
        Unavailable: Redis is down (nothing was stored).
    """
    before = serving.recommender().item(item_id).get(S.CATEGORY)
    audit = {"actor": actor, "action": "category", "item_id": item_id,
             "before": {S.CATEGORY: before}, "after": {S.CATEGORY: category}}
    return _changed_if(serving, "the category", lambda: serving.store.review.accept_category(
        item_id, category, audit))


def set_label(serving: Serving, item_id: str, tagger: str, label: str | None, actor: str = "api") -> None:
    """A reviewer's label of a served item under a saved tagger (``None``: none of these), shown in
    place of the tagger's tag on every worker from its next request.

    Raises:
        InvalidRequest: the served bundle has no tagger of that name, or it has no such label; the
            item is merged into another listing. Unavailable: Redis is down (nothing was stored).
    """
    recommender = serving.synced()
    _tagger_labels(recommender, tagger, label)
    merged = recommender.changes.merged
    if item_id in merged:
        raise InvalidRequest(f"{item_id!r} is merged into {merged[item_id]!r}: label that one", item_id=item_id)
    before = (recommender.item(item_id).get("labels") or {}).get(tagger)
    audit = {"actor": actor, "action": "label", "item_id": item_id, "before": {tagger: before},
             "after": {tagger: label}}
    changed(serving, write(serving, "the label", lambda: serving.store.review.set_label(item_id, tagger, label, audit)))


def clear_label(serving: Serving, item_id: str, tagger: str, actor: str = "api") -> bool:
    """Drop a reviewer's label, so the tagger's own tag shows again; False when none was set.

    Raises:
        Unavailable: Redis is down (nothing was stored).
    """
    audit = {"actor": actor, "action": "unlabel", "item_id": item_id, "before": {tagger: "set by hand"}}
    return _changed_if(serving, "the label", lambda: serving.store.review.clear_label(item_id, tagger, audit))


def _tagger_labels(recommender: Recommender, tagger: str, label: str | None) -> None:
    """Refuse a tagger the served bundle does not hold, or a label that tagger does not know."""
    taggers = recommender.bundle.taggers
    if tagger not in taggers:
        saved = ", ".join(sorted(taggers)) or "none"
        raise InvalidRequest(f"bundle {recommender.version} has no saved tagger {tagger!r} (saved: {saved})")
    labels = taggers[tagger]["labels"]
    if label is not None and label not in labels:
        raise InvalidRequest(f"{label!r} is not a label of tagger {tagger!r}: one of {', '.join(labels)}, "
                             "or null for none of these")


def delete_item(serving: Serving, item_id: str, actor: str = "api") -> None:
    """Hide an item from every result, on every worker from its next request.

    Raises:
        Unavailable: Redis is down (nothing was stored).
    """
    audit = {"actor": actor, "action": "delete", "item_id": item_id}
    changed(serving, write(serving, "the deletion", lambda: serving.store.changes.delete_item(item_id, audit)))


def set_attributes(serving: Serving, item_id: str, values: dict, actor: str = "api") -> None:
    """Set catalog attribute values of an item (rules match them), on every worker from its next
    request.

    Raises:
        Unavailable: Redis is down (nothing was stored).
    """
    before = serving.recommender().changes.attributes.get(item_id, {})
    audit = {"actor": actor, "action": "attributes", "item_id": item_id,
             "before": {name: before.get(name) for name in values}, "after": values}
    changed(serving, write(serving, "the attributes",
                           lambda: serving.store.changes.set_attributes(item_id, values, audit)))


def put_rule(serving: Serving, rule: Rule) -> Rule:
    """Store a merchandising rule (a new one gets its id), applied by every worker from its next
    request; returns it as stored.

    Raises:
        Unavailable: Redis is down (nothing was stored).
    """
    stored, gen = write(serving, "the rule", lambda: serving.store.changes.put_rule(rule))
    changed(serving, gen)
    return stored


def delete_rule(serving: Serving, rule_id: str) -> bool:
    """Remove a rule everywhere; ``False`` when there was none of that id.

    Raises:
        Unavailable: Redis is down (nothing was removed).
    """
    return _changed_if(serving, "the rule's removal", lambda: serving.store.changes.delete_rule(rule_id))


def _changed_if(serving: Serving, what: str, call: Callable[[], int | None]) -> bool:
    """Run a write that moves the generation when it finds what it acts on (``None`` when not);
    whether it did."""
    gen = write(serving, what, call)
    if gen is not None:
        changed(serving, gen)
    return gen is not None


def changed(serving: Serving, gen: int) -> None:
    """An item write reached generation ``gen``: served here now, and by the sibling workers from
    their next request."""
    serving.at_generation(gen)
    serving.announce(gen)
