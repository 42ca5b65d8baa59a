"""The endpoints: similar items, feeds, interactions, item writes, health, metrics, OpenAPI.

JSON shaping lives here only. Every response carries the bundle version that produced it, in the
body (``version``) and in the ``X-Recsys-Version`` header.
"""
from __future__ import annotations

import hmac
import logging
import time
import warnings
from pathlib import Path
from typing import Any

import pandas as pd
import redis
from flask import Blueprint, Response, current_app, g, redirect, request, send_file

from recsys.api.schemas import InteractionsIn, ItemIn, QueryArgs, SessionIn, check_id, parse_body
from recsys.data import schema as S
from recsys.data.images import data_url_bytes
from recsys.data.validate import validate_catalog
from recsys.errors import Forbidden, InvalidRequest, NotFound, RecsysWarning, Unauthorized, Unavailable
from recsys.serve import MAX_K, Recommender, Scored
from recsys.serve.changes import ITEM_FIELDS, make_entry
from recsys.serve.rows import dump_json, plain_value
from recsys.store.activity import Event
from recsys.worker import Serving

__all__ = ["bp", "similar_body", "feed_body", "HOT_READS"]

logger = logging.getLogger(__name__)
bp = Blueprint("recsys", __name__)

FILTER_ARGS = ("category", "min_price", "max_price", "exclude")


def _serving() -> Serving:
    return current_app.extensions["recsys"]


def _use(recommender: Recommender) -> Recommender:
    g.version = recommender.version
    return recommender


def _json(body: dict, status: int = 200) -> Response:
    return Response(dump_json(body), status=status, mimetype="application/json")


# -- auth ---------------------------------------------------------------------------------------


def _presented_key() -> str | None:
    header = request.headers.get("Authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return request.headers.get("X-API-Key")


def require_key() -> None:
    """Check the API key (constant-time).

    Raises:
        Forbidden: no key is configured, so writes are disabled.
        Unauthorized: the key is missing or wrong.
    """
    configured = _serving().settings.api.api_key
    if configured is None:
        raise Forbidden("writes are disabled: this server has no API key; set RECSYS_API_KEY")
    presented = _presented_key()
    if presented is None:
        raise Unauthorized("this endpoint needs the API key: send 'Authorization: Bearer KEY' or "
                           "'X-API-Key: KEY'")
    if not hmac.compare_digest(presented.encode(), configured.get_secret_value().encode()):
        raise Unauthorized("the API key is not valid")


def _check_read_access() -> None:
    if _serving().settings.api.protect_reads:
        require_key()


# -- reads --------------------------------------------------------------------------------------
# The two hot reads are plain functions of (serving, metrics, path id, query args): the Flask views
# below and the WSGI fast path in front of Flask (recsys.api.fast) both call them.


def similar_body(serving: Serving, metrics, item_id: str, raw_args) -> tuple[bytes, Recommender]:
    """``GET /v1/items/{item_id}/similar``: the JSON body and the recommender that answered.

    Raises:
        InvalidRequest: a bad id or query parameter.
        NotReady: no bundle loaded.
        NotFound: an unknown item.
    """
    check_id(item_id, "item")
    args = QueryArgs(raw_args, ("k", "weights", *FILTER_ARGS))
    serving.recommender()  # not ready: 503 before parsing the query
    k = args.k(10)
    weights = args.weights()
    item_filter = args.item_filter()
    described = item_filter.describe()
    query = {"k": k, "w": weights, "f": described}

    def compute(rec: Recommender, _recent) -> dict:
        found = rec.similar_items(item_id, k=k, weights=weights, filters=item_filter)
        return {"version": rec.version, "item_id": item_id, "k": k,
                "weights": weights or rec.bundle.vectors.weights,
                "filters": described, "items": rec.rows(found)}

    return serving.results.similar(serving, metrics, item_id, query, compute, k=k, weights=weights)


def feed_body(serving: Serving, metrics, user_id: str, raw_args) -> tuple[bytes, Recommender]:
    """``GET /v1/users/{user_id}/recommendations``: the JSON body and the recommender that answered.

    Raises:
        InvalidRequest: a bad id or query parameter.
        NotReady: no bundle loaded.
    """
    check_id(user_id, "user")
    args = QueryArgs(raw_args, ("k", "exclude_seen", *FILTER_ARGS))
    serving.recommender()
    k = args.k(20)
    exclude_seen = args.flag("exclude_seen", True)
    item_filter = args.item_filter()
    described = item_filter.describe()
    query = {"k": k, "s": exclude_seen, "f": described}

    def compute(rec: Recommender, recent: list[str]) -> dict:
        feed = rec.recommend(user_id, k=k, recent_items=recent, exclude_seen=exclude_seen,
                             filters=item_filter)
        return _feed_body(rec, feed, k, described, user_id=user_id, recent=len(recent))

    return serving.results.feed(serving, metrics, user_id, query, compute, k=k, exclude_seen=exclude_seen)


def _hot_read(body_of, owner: str) -> Response:
    _check_read_access()
    body, recommender = body_of(_serving(), current_app.extensions["recsys.metrics"], owner,
                                request.args)
    _use(recommender)
    return Response(body, mimetype="application/json")


# the hot reads' route table: endpoint -> (URL rule, body function); Flask's views are registered
# from it, and the fast path (recsys.api.fast) answers the same rules with the same functions
HOT_READS = {"similar": ("/v1/items/<item_id>/similar", similar_body),
             "user_feed": ("/v1/users/<user_id>/recommendations", feed_body)}


def _hot_view(body_of):
    def view(**owner: str) -> Response:  # one URL variable: the item or user id
        return _hot_read(body_of, *owner.values())
    return view


for _endpoint, (_rule, _body_of) in HOT_READS.items():
    bp.add_url_rule(_rule, _endpoint, _hot_view(_body_of), methods=["GET"])


def _feed_body(rec: Recommender, feed, k: int, filters: dict, **extra: Any) -> dict:
    return {"version": rec.version, **extra, "k": k, "strategy": feed.strategy,
            "message": feed.message, "filters": filters,
            "items": rec.rows(feed, cold=True)}


@bp.post("/v1/recommendations")
def session_feed():
    _check_read_access()
    body = parse_body(SessionIn, _json_body())
    recommender = _use(_serving().recommender())
    _serving().snapshot()  # pick up item changes before answering
    recommender = _use(_serving().recommender())
    item_filter = body.item_filter()
    feed = recommender.recommend(None, k=body.k, recent_items=body.recent_items,
                                 exclude_seen=body.exclude_seen, filters=item_filter)
    return _json(_feed_body(recommender, feed, body.k, item_filter.describe()))


@bp.get("/v1/items")
def list_items():
    _check_read_access()
    args = QueryArgs(request.args, ("limit", "offset", "category", "min_price", "max_price"))
    limit = args.integer("limit", 24, 1, MAX_K)
    offset = args.integer("offset", 0, 0, 10**9)
    item_filter = args.item_filter()
    serving = _serving()
    serving.catch_up()
    recommender = _use(serving.recommender())
    total, page = recommender.listing(item_filter, offset, limit)
    rows = recommender.rows([Scored(i, 0.0) for i in page], score=False)
    return _json({"version": recommender.version, "total": total, "offset": offset, "limit": limit,
                  "filters": item_filter.describe(), "items": rows})


@bp.get("/v1/search")
def search():
    _check_read_access()
    args = QueryArgs(request.args, ("q", "k", "category", "min_price", "max_price", "exclude"))
    text = args.text("q")
    k = args.k(10)
    item_filter = args.item_filter()
    serving = _serving()
    serving.catch_up()
    recommender = _use(serving.recommender())
    vector = serving.embedder.embed_query(text)
    found = recommender.search(vector, k=k, filters=item_filter)
    return _json({"version": recommender.version, "q": text, "k": k, "filters": item_filter.describe(),
                  "items": recommender.rows(found)})


@bp.get("/v1/items/<item_id>/image")
def item_image(item_id: str):
    _check_read_access()
    check_id(item_id, "item")
    QueryArgs(request.args, ())
    recommender = _use(_serving().recommender())
    source = recommender.item(item_id).get("image") or ""
    if source.startswith(("http://", "https://")):
        return redirect(source, code=302)
    if source.startswith("data:"):
        try:
            mimetype, data = data_url_bytes(source)
        except ValueError:
            raise NotFound(f"item {item_id!r} has an unreadable image", item_id=item_id) from None
        return Response(data, mimetype=mimetype, headers={"Cache-Control": "public, max-age=3600"})
    if source and Path(source).is_file():
        return send_file(Path(source).resolve(), max_age=3600)
    raise NotFound(f"item {item_id!r} has no image" + (" file on this server" if source else ""),
                   item_id=item_id)


@bp.get("/v1/items/<item_id>")
def get_item(item_id: str):
    _check_read_access()
    check_id(item_id, "item")
    QueryArgs(request.args, ())
    _serving().snapshot()
    recommender = _use(_serving().recommender())
    return _json({"version": recommender.version, "item": recommender.item(item_id)})


# -- writes -------------------------------------------------------------------------------------


def _json_body() -> Any:
    data = request.get_json(silent=True, force=False)
    if data is None:
        if not request.is_json:
            raise InvalidRequest("send a JSON body with Content-Type: application/json")
        raise InvalidRequest("the request body is not valid JSON")
    return data


def _redis_down(what: str) -> Unavailable:
    serving = _serving()
    retry = serving.settings.redis.retry_after
    return Unavailable(f"Redis is unavailable, so {what} cannot be stored now; nothing was stored, "
                       f"retry in {max(1, round(retry))} s", retry_after=retry)


def _write(what: str, write, items: bool = False):
    """Run a Redis write; 503 with Retry-After when Redis is down (nothing was stored then).
    An item write (returning the new generation) is served by every worker from the next request."""
    serving = _serving()
    if serving.store is None or serving.breaker.open:
        raise _redis_down(what)
    try:
        result = write()
    except (redis.RedisError, OSError) as exc:
        serving.breaker.fail(exc)
        raise _redis_down(what) from None
    if items:
        serving.sync_items()
        serving.announce(result)
    return result


@bp.post("/v1/interactions")
def post_interactions():
    serving = _serving()
    if not serving.settings.api.public_interactions:
        require_key()
    recommender = _use(serving.recommender())
    data = _json_body()
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
    now = time.time()
    events = [Event(e.user_id, e.item_id, e.event, e.timestamp if e.timestamp is not None else now,
                    e.value) for e in batch.events]

    def append() -> list[str]:
        lists = _post_lists(serving, recommender, events)
        # the users' bodies go now, their recent items stay unknown here until the post's own
        # message comes back (in order with everyone else's)
        serving.results.expect(e.user_id for e in events)
        return serving.activity.append(events, origin=serving.origin, extra=lists)

    ids = _write("interactions", append)
    current_app.extensions["recsys.metrics"].interactions.inc(len(events))
    return _json({"version": recommender.version, "accepted": len(ids), "ids": ids}, status=202)


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
        recent = recommender.feeds.usable_recent(recent)
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
    serving = _serving()
    body = parse_body(ItemIn, _json_body())
    recommender = _use(serving.recommender())
    if serving.store is None or serving.breaker.open:  # refuse before the costly embedding
        raise _redis_down("the item")
    fields = body.model_dump()
    frame = validate_catalog(_frame(item_id, fields), source="request body")
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always", RecsysWarning)
        outputs = serving.embedder.embed(frame)
    if not any(o.mask[0] for o in outputs.values()):
        raise InvalidRequest("the item has nothing to embed: give a title, description, tags, "
                             "image, colour, price or category"
                             + (f" ({seen[0].message})" if seen else ""))
    existed = recommender.knows(item_id)
    item = {k: plain_value(frame.iloc[0][k]) for k in ITEM_FIELDS if k in frame.columns}
    _write("the item", lambda: serving.store.put_item(item_id, make_entry(item, outputs)), items=True)
    recommender = _use(serving.recommender())
    modalities = [m for m, o in outputs.items() if o.mask[0]]
    return _json({"version": recommender.version, "item": recommender.item(item_id),
                  "modalities": modalities, "warnings": [str(w.message) for w in seen],
                  "created": not existed}, status=200 if existed else 201)


def _frame(item_id: str, fields: dict) -> pd.DataFrame:
    return pd.DataFrame([{S.ITEM_ID: item_id, **{k: v for k, v in fields.items() if v is not None}}])


@bp.delete("/v1/items/<item_id>")
def delete_item(item_id: str):
    require_key()
    check_id(item_id, "item")
    serving = _serving()
    serving.snapshot()
    recommender = _use(serving.recommender())
    if not recommender.knows(item_id):
        raise NotFound(f"unknown item_id {item_id!r} (not in bundle {recommender.version} and "
                       "not put since)", item_id=item_id)
    _write("the deletion", lambda: serving.store.delete_item(item_id), items=True)
    recommender = _use(serving.recommender())
    return _json({"version": recommender.version, "item_id": item_id, "deleted": True})


# -- operations ---------------------------------------------------------------------------------


@bp.get("/healthz")
def healthz():
    current = _serving().current
    if current is not None:
        g.version = current.version
    return _json({"status": "ok", "version": g.get("version")})


@bp.get("/readyz")
def readyz():
    serving = _serving()
    ready, reasons = serving.readiness()
    if serving.current is not None:
        g.version = serving.current.version
    status = "not_ready" if not ready else ("degraded" if reasons else "ready")
    return _json({"status": status, "version": g.get("version"), "reasons": reasons},
                 status=200 if ready else 503)


@bp.get("/metrics")
def metrics():
    current = _serving().current
    if current is not None:
        g.version = current.version
    from recsys.api.metrics import CONTENT_TYPE

    return Response(current_app.extensions["recsys.metrics"].render(), content_type=CONTENT_TYPE)


@bp.get("/openapi.json")
def openapi():
    from recsys.api.openapi import document

    current = _serving().current
    if current is not None:
        g.version = current.version
    return _json(document())
