"""The write endpoints: interactions (the log and recent activity), and items put or deleted
between bundles. Every write needs the API key (interactions may be public: see the settings)."""
from __future__ import annotations

import logging
import time
import warnings
from concurrent.futures import TimeoutError as FutureTimeout
from urllib.parse import quote

import pandas as pd
import redis
from flask import Blueprint, current_app, request

from recsys.api.context import current_serving, json_body, json_response, require_key, use
from recsys.api.schemas import InteractionsIn, ItemIn, check_id, parse_body
from recsys.data import schema as S
from recsys.data.images import IMAGE_ERRORS
from recsys.data.validate import validate_catalog
from recsys.errors import InvalidRequest, NotFound, RecsysWarning, Unavailable
from recsys.serve import Recommender
from recsys.serve.changes import ITEM_FIELDS, make_entry
from recsys.serve.rows import plain_value
from recsys.store.activity import Event
from recsys.worker import Serving
from recsys.worker.images import PreparedImage, prepare_image

__all__ = ["bp"]

logger = logging.getLogger(__name__)
bp = Blueprint("recsys_writes", __name__)


def _redis_down(serving: Serving, what: str) -> Unavailable:
    retry = serving.settings.redis.retry_after
    return Unavailable(f"Redis is unavailable, so {what} cannot be stored now; nothing was stored, "
                       f"retry in {max(1, round(retry))} s", retry_after=retry)


def _write(serving: Serving, what: str, write, items: bool = False):
    """Run a Redis write; 503 with Retry-After when Redis is down (nothing was stored then) or
    did not answer in time (then the write may still happen, and the answer says so).
    An item write (returning the new generation) is served by every worker from the next request."""
    if serving.store is None or serving.breaker.open:
        raise _redis_down(serving, what)
    try:
        result = write()
    except redis.TimeoutError as exc:
        serving.breaker.fail(exc)
        retry = serving.settings.redis.retry_after
        raise Unavailable(f"Redis did not answer in time, so {what} may or may not have been stored; "
                          "retry with the same Idempotency-Key (a retry with it is never stored twice)",
                          retry_after=retry) from None
    except (redis.RedisError, OSError) as exc:
        serving.breaker.fail(exc)
        raise _redis_down(serving, what) from None
    if items:
        serving.sync_items()
        serving.announce(result)
    return result


@bp.post("/v1/interactions")
def post_interactions():
    serving = current_serving()
    if not serving.settings.api.public_interactions:
        require_key()
    recommender = use(serving.recommender())
    data = json_body()
    if isinstance(data, list):
        data = {"events": data}
    elif isinstance(data, dict) and "events" not in data:
        data = {"events": [data]}
    if isinstance(data, dict) and isinstance(data.get("events"), list) \
            and len(data["events"]) > serving.settings.api.max_batch:
        raise InvalidRequest(f"at most {serving.settings.api.max_batch} events per request "
                             f"(got {len(data['events'])}); split the batch")
    batch = parse_body(InteractionsIn, data)
    unknown = sorted({e.item_id for e in batch.events if not recommender.knows(e.item_id)
                      and e.item_id not in recommender.changes.deleted_ids})
    if unknown:
        raise InvalidRequest(f"unknown item_id(s) {', '.join(map(repr, unknown[:5]))}"
                             f"{' ...' if len(unknown) > 5 else ''}; no event was stored",
                             unknown=unknown[:20])
    key = _idempotency_key()
    now = time.time()
    events = [Event(e.user_id, e.item_id, e.event, e.timestamp if e.timestamp is not None else now,
                    e.value) for e in batch.events]

    def append() -> tuple[list[str], bool]:
        lists = _post_lists(serving, recommender, events)
        # the users' bodies go now, their recent items stay unknown here until the post's own
        # message comes back (in order with everyone else's)
        serving.results.expect(e.user_id for e in events)
        if key is None:
            return serving.activity.append(events, origin=serving.origin, extra=lists), False
        return serving.activity.append_once(key, events, origin=serving.origin, extra=lists)

    ids, repeated = _write(serving, "interactions", append)
    if not repeated:
        current_app.extensions["recsys.metrics"].interactions.inc(len(events))
    return json_response({"version": recommender.version, "accepted": len(events), "ids": ids,
                          "duplicate": repeated}, status=202)


def _idempotency_key() -> str | None:
    """The post's ``Idempotency-Key`` header, checked like an id."""
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return None
    problem = S.id_problem(key)
    if problem is not None:
        raise InvalidRequest(f"the Idempotency-Key header {problem}")
    return key


def _post_lists(serving: Serving, recommender: Recommender, events: list[Event]) -> dict | None:
    """The feed lists of a post's users, for the recent items the post leaves them, as fields of
    the post's message: every worker keeps them (:meth:`Serving.keep_lists`), so a user's next feed
    is a lookup wherever it lands. Made only for a post of at most ``api.post_lists`` users; a
    list that cannot be made here is made at the user's first feed instead.

    Raises:
        redis.RedisError: the users' recent items could not be read (nothing was stored).
    """
    users = {e.user_id for e in events}
    if not 0 < len(users) <= serving.settings.api.post_lists or not recommender.feeds.keeps_lists:
        return None
    lists = []
    for user, recent in serving.activity.recent_after(events).items():
        recent = recommender.feeds.usable_recent(recent, recommender.changes)
        try:
            made = recommender.feeds.feed_list(user, recent, recommender.changes)
        except Exception:  # the list only saves the first feed some work: the post goes on
            logger.exception("making the feed list of user %r after a post failed", user)
            continue
        if made is not None:
            lists.append({"user": user, "recent": recent, "rows": made.rows[0].tolist(),
                          "scores": made.scores[0].tolist()})
    return {"version": recommender.version, "lists": lists} if lists else None


@bp.put("/v1/items/<item_id>")
def put_item(item_id: str):
    require_key()
    check_id(item_id, "item")
    serving = current_serving()
    body = parse_body(ItemIn, json_body())
    use(serving.recommender())
    if serving.store is None or serving.breaker.open:  # refuse before the costly embedding
        raise _redis_down(serving, "the item")
    frame = validate_catalog(_frame(item_id, body.model_dump()), source="request body")
    source = body.image or ""
    if not source.startswith(("http://", "https://")):  # no image, or a data: URL: nothing to wait for
        try:
            prepared = prepare_image(source, serving.settings.images) if source else None
        except IMAGE_ERRORS as exc:
            raise InvalidRequest(f"the image cannot be used: {exc}") from None
        return _item_answer(serving, item_id, _store_item(serving, item_id, frame, prepared))
    # a URL: downloaded in this worker's bounded pool, so a slow host never holds the request
    future = serving.images.submit(source, lambda prepared: _store_item(serving, item_id, frame, prepared))
    try:
        stored = future.result(timeout=serving.settings.images.fetch_wait)
    except FutureTimeout:
        future.add_done_callback(lambda done: _log_late(item_id, done))
        recommender = use(serving.recommender())
        return json_response({"version": recommender.version, "item_id": item_id, "status": "pending",
                              "message": "the image is still downloading; the item is stored once it "
                                         "arrives, or left out (with a logged reason) if it cannot be used"},
                             status=202, headers={"Location": f"/v1/items/{quote(item_id, safe='')}"})
    except IMAGE_ERRORS as exc:
        raise InvalidRequest(f"the image cannot be used: {exc}") from None
    return _item_answer(serving, item_id, stored)


def _store_item(serving: Serving, item_id: str, frame: pd.DataFrame, prepared: PreparedImage | None) -> dict:
    """Embed a put item and store it in Redis; runs in the request or in the image pool, so it
    takes the worker, never Flask's request context.

    Raises:
        InvalidRequest: nothing to embed. Unavailable: Redis is down (nothing was stored).
    """
    recommender = serving.recommender()
    source = frame[S.IMAGE].iloc[0] if S.IMAGE in frame.columns else ""
    if prepared is not None:  # the towers read the re-encoded copy, never the URL again
        frame = frame.assign(**{S.IMAGE: prepared.embed_url})
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always", RecsysWarning)
        outputs = serving.embedder.embed(frame)
    if not any(o.mask[0] for o in outputs.values()):
        raise InvalidRequest("the item has nothing to embed: give a title, description, tags, "
                             "image, colour, price or category"
                             + (f" ({seen[0].message})" if seen else ""))
    existed = recommender.knows(item_id)
    item = {k: plain_value(frame.iloc[0][k]) for k in ITEM_FIELDS if k in frame.columns}
    # a URL stays on record; a data: URL's bytes live on only as the thumbnail
    item[S.IMAGE] = source if source.startswith(("http://", "https://")) else ""
    entry = make_entry(item, outputs, prepared.thumbnail if prepared is not None else None)
    _write(serving, "the item", lambda: serving.store.put_item(item_id, entry), items=True)
    return {"created": not existed, "modalities": [m for m, o in outputs.items() if o.mask[0]],
            "warnings": [str(w.message) for w in seen]}


def _item_answer(serving: Serving, item_id: str, stored: dict):
    recommender = use(serving.recommender())
    return json_response({"version": recommender.version, "item": recommender.item(item_id), **stored},
                         status=201 if stored["created"] else 200)


def _log_late(item_id: str, done) -> None:
    error = done.exception()
    if error is not None:
        logger.warning("put item %r was not stored after its image download: %s", item_id,
                       getattr(error, "message", None) or error)


def _frame(item_id: str, fields: dict) -> pd.DataFrame:
    return pd.DataFrame([{S.ITEM_ID: item_id, **{k: v for k, v in fields.items() if v is not None}}])


@bp.delete("/v1/items/<item_id>")
def delete_item(item_id: str):
    require_key()
    check_id(item_id, "item")
    serving = current_serving()
    serving.snapshot()
    recommender = use(serving.recommender())
    if not recommender.knows(item_id):
        raise NotFound(f"unknown item_id {item_id!r} (not in bundle {recommender.version} and "
                       "not put since)", item_id=item_id)
    _write(serving, "the deletion", lambda: serving.store.delete_item(item_id), items=True)
    recommender = use(serving.recommender())
    return json_response({"version": recommender.version, "item_id": item_id, "deleted": True})
