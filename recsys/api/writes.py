"""The write endpoints: interactions (the log and recent activity), and items put or deleted
between bundles. Every write needs the API key (interactions may be public: see the settings)."""
from __future__ import annotations

import logging
import time
from concurrent.futures import TimeoutError as FutureTimeout
from urllib.parse import quote

import pandas as pd
from flask import Blueprint, current_app, request

from recsys.api.context import actor, current_serving, json_body, json_response, require_key, use
from recsys.api.schemas import AttributesIn, InteractionsIn, ItemIn, check_id, parse_body
from recsys.data import schema as S
from recsys.data.images import IMAGE_ERRORS
from recsys.data.validate import validate_catalog
from recsys.errors import InvalidRequest, NotFound
from recsys.store.activity import Event
from recsys.worker import Serving, writes
from recsys.worker.images import prepare_image

__all__ = ["bp", "known_item"]

logger = logging.getLogger(__name__)
bp = Blueprint("recsys_writes", __name__)


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
    unknown = sorted({e.item_id for e in batch.events if not recommender.knows(e.item_id, or_deleted=True)})
    if unknown:
        raise InvalidRequest(f"unknown item_id(s) {', '.join(map(repr, unknown[:5]))}"
                             f"{' ...' if len(unknown) > 5 else ''}; no event was stored",
                             unknown=unknown[:20])
    key = _idempotency_key()
    now = time.time()
    events = [Event(e.user_id, e.item_id, e.event, e.timestamp if e.timestamp is not None else now,
                    e.value, e.request_id) for e in batch.events]
    ids, repeated = writes.post_interactions(serving, recommender, events, key)
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


@bp.put("/v1/items/<item_id>")
def put_item(item_id: str):
    require_key()
    check_id(item_id, "item")
    serving = current_serving()
    who = actor()
    body = parse_body(ItemIn, json_body())
    use(serving.recommender())
    if serving.store is None or serving.breaker.open:  # refuse before the costly embedding
        raise writes.redis_down(serving, "the item")
    frame = validate_catalog(_frame(item_id, body.model_dump()), source="request body")
    source = body.image or ""
    if not source.startswith(("http://", "https://")):  # no image, or a data: URL: nothing to wait for
        try:
            prepared = prepare_image(source, serving.settings.images) if source else None
        except IMAGE_ERRORS as exc:
            raise InvalidRequest(f"the image cannot be used: {exc}") from None
        return _item_answer(serving, item_id, writes.store_item(serving, item_id, frame, prepared, who))
    # a URL: downloaded in this worker's bounded pool, so a slow host never holds the request
    future = serving.images.submit(source, lambda prepared: writes.store_item(serving, item_id, frame, prepared, who))
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


def known_item(item_id: str) -> Serving:
    """The serving state for a keyed write to a served item: 401/403 without the key, 400 for a
    bad id, NotFound unless the item is served (in the bundle or put since, and not deleted) as
    of Redis's item generation."""
    require_key()
    check_id(item_id, "item")
    serving = current_serving()
    recommender = use(serving.synced())
    if not recommender.knows(item_id):
        raise NotFound(f"unknown item_id {item_id!r} (not in bundle {recommender.version} and "
                       "not put since)", item_id=item_id)
    return serving


@bp.post("/v1/items/<item_id>/release")
def release_item(item_id: str):
    """Serve a put item that a check held out of reads (docs/curation.md)."""
    serving = known_item(item_id)
    if not writes.release_item(serving, item_id, actor()):
        raise InvalidRequest(f"item {item_id!r} is not held: nothing to release", item_id=item_id)
    recommender = use(serving.recommender())
    return json_response({"version": recommender.version, "item": recommender.item(item_id)})


@bp.delete("/v1/items/<item_id>")
def delete_item(item_id: str):
    serving = known_item(item_id)
    writes.delete_item(serving, item_id, actor())
    recommender = use(serving.recommender())
    return json_response({"version": recommender.version, "item_id": item_id, "deleted": True})


@bp.patch("/v1/items/<item_id>")
def set_attributes(item_id: str):
    """Set catalog attributes of an item without a rebuild (``{"attributes": {"in_stock": false}}``):
    rules match them from the next read on every worker (docs/rules.md)."""
    serving = known_item(item_id)
    body = parse_body(AttributesIn, json_body())
    writes.set_attributes(serving, item_id, body.attributes, actor())
    recommender = use(serving.recommender())
    return json_response({"version": recommender.version, "item": recommender.item(item_id)})
