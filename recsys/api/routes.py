"""The read endpoints: similar items, feeds, search (by text and by photo), the catalog, images;
health, metrics, OpenAPI.

JSON shaping lives here (and in :mod:`recsys.api.writes` for the writes). Every response carries
the bundle version that produced it, in the body (``version``) and in the ``X-Recsys-Version``
header.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from flask import Blueprint, Response, current_app, g, request
from orjson import Fragment
from werkzeug.exceptions import RequestEntityTooLarge

from recsys.api.context import check_read_access, current_serving, json_body, json_response, use
from recsys.api.params import parse
from recsys.api.schemas import SessionIn, check_id, parse_body
from recsys.data.images import IMAGE_ERRORS, data_url_bytes, decode_image
from recsys.errors import InvalidRequest, NotFound
from recsys.serve import FeedQuery, Recommender, Scored, SimilarQuery
from recsys.serve.embedder import PHOTO_SIDE
from recsys.serve.filters import ItemFilter
from recsys.serve.rows import dump_json
from recsys.worker import Serving
from recsys.worker.experiments import log_impression, request_id, route
from recsys.worker.rotation import count_shown, rotated

__all__ = ["bp", "similar", "user_feed", "HOT_READS"]

bp = Blueprint("recsys", __name__)


# -- the hot reads ------------------------------------------------------------------------------
# Each is a plain function of (the worker, the path's id, the query's (name, value) pairs) that
# parses the request into a typed query, asks the worker's result cache, and shapes the answer's
# JSON: the Flask views below and the WSGI fast path in front of Flask (recsys.api.fast) both call
# it, then count how it was answered and add the headers.


def similar(serving: Serving, item_id: str, args) -> tuple[bytes, str, str]:
    """``GET /v1/items/{item_id}/similar``: the JSON body, the bundle version that answered, and
    where the answer came from (:meth:`~recsys.worker.cache.ResultCache.similar`).

    Raises:
        InvalidRequest: a bad id or query parameter. NotReady: no bundle loaded. NotFound: an
            unknown item.
    """
    check_id(item_id, "item")
    values = parse("similar", args)
    user = values["user_id"]
    routed = route(serving, "similar", user, SimilarQuery(item_id, values["k"], values["weights"], values["filters"],
                                                          values["dedupe"], values["shaping"]))
    answer, source = serving.results.similar(routed.query, routed.version)
    body = {"version": answer.version, "request_id": routed.request_id, "item_id": item_id, "k": routed.query.k,
            "weights": Fragment(answer.weights), "filters": routed.query.filters.describe(),
            "items": Fragment(answer.items)}
    _in_experiment(serving, routed, user, answer.item_ids, body)
    if answer.message is not None:
        body["message"] = answer.message
    return dump_json(body), answer.version, source


def _in_experiment(serving: Serving, routed, unit_id: str | None, items: list[str], body: dict) -> None:
    """A read inside an experiment: say so in the body, and log the ids of what it shows."""
    if routed.experiment is None:
        return
    body["experiment"] = routed.describe()
    log_impression(serving, routed, unit_id, items)


def user_feed(serving: Serving, user_id: str, args) -> tuple[bytes, str, str]:
    """``GET /v1/users/{user_id}/recommendations``, as :func:`similar`."""
    check_id(user_id, "user")
    values = parse("user_feed", args)
    routed = route(serving, "feeds", user_id, FeedQuery(user_id, values["k"], (), values["exclude_seen"],
                                                         values["filters"], values["dedupe"], values["explain"],
                                                         values["shaping"]))
    routed.query = rotated(serving, routed.query)
    answer, source = serving.results.feed(routed.query, routed.version)
    count_shown(serving, routed.query, answer.item_ids)
    body = {"version": answer.version, "request_id": routed.request_id, "user_id": user_id, "recent": answer.recent,
            "k": routed.query.k, "strategy": answer.strategy, "message": answer.message,
            "filters": routed.query.filters.describe(), "items": Fragment(answer.items)}
    _in_experiment(serving, routed, user_id, answer.item_ids, body)
    return dump_json(body), answer.version, source


class HotRead(NamedTuple):
    rule: str
    read: Callable[[Serving, str, object], tuple[bytes, str, str]]
    cache: str  # its name in the cache metrics


# the hot reads' route table, by endpoint: Flask's views are registered from it, and the fast path
# (recsys.api.fast) answers the same rules with the same functions
HOT_READS = {"similar": HotRead("/v1/items/<item_id>/similar", similar, "similar"),
             "user_feed": HotRead("/v1/users/<user_id>/recommendations", user_feed, "feed")}


def _hot_view(hot: HotRead):
    def view(**owner: str) -> Response:  # one URL variable: the item or user id
        check_read_access()
        body, version, source = hot.read(current_serving(), *owner.values(), request.args)
        g.version = version
        current_app.extensions["recsys.metrics"].cached(hot.cache, source)
        return Response(body, mimetype="application/json")
    return view


for _endpoint, _hot in HOT_READS.items():
    bp.add_url_rule(_hot.rule, _endpoint, _hot_view(_hot), methods=["GET"])


# -- the other reads ----------------------------------------------------------------------------


@bp.post("/v1/recommendations")
def session_feed():
    check_read_access()
    body = parse_body(SessionIn, json_body())
    serving = current_serving()
    routed = route(serving, "feeds", body.session_id, FeedQuery(
        None, body.k, tuple(body.recent_items), body.exclude_seen, body.item_filter(), body.dedupe, body.explain,
        body.shaping()))
    recommender = use(serving.synced(routed.version))
    feed = recommender.answer(recommender.plan(routed.query))
    out = {"version": recommender.version, "request_id": routed.request_id, "k": body.k, "strategy": feed.strategy,
           "message": feed.message, "filters": routed.query.filters.describe(),
           "items": recommender.rows(feed, cold=True)}
    _in_experiment(serving, routed, body.session_id, [row["item_id"] for row in out["items"]], out)
    return json_response(out)


@bp.get("/v1/items")
def list_items():
    check_read_access()
    values = parse("items", request.args)
    recommender = use(current_serving().recommender())
    total, page, message = recommender.listing(values["filters"], values["offset"], values["limit"])
    body = {"version": recommender.version, "total": total, "offset": values["offset"], "limit": values["limit"],
            "filters": values["filters"].describe(),
            "items": recommender.rows([Scored(i, 0.0) for i in page], score=False)}
    if message is not None:
        body["message"] = message
    return json_response(body)


@bp.get("/v1/search")
def search():
    check_read_access()
    values = parse("search", request.args)
    recommender = use(current_serving().recommender())
    found = recommender.search(values["q"], k=values["k"], filters=values["filters"], mode=values["mode"],
                               shaping=values["shaping"])
    return json_response(_result(recommender, found, q=values["q"], mode=values["mode"] or recommender.search_mode,
                                 k=values["k"], filters=values["filters"]))


def _result(recommender: Recommender, found, *, filters: ItemFilter, **fields: Any) -> dict:
    """A search's body: the version, the query's ``fields``, the filters, the items, and a
    message when the result says why it is empty."""
    body = {"version": recommender.version, "request_id": request_id(), **fields, "filters": filters.describe(),
            "items": recommender.rows(found)}
    if found.message is not None:
        body["message"] = found.message
    return body


@bp.post("/v1/search/image")
def search_by_photo():
    """Visual search: the photo is a multipart file field ``image``, or a JSON body
    ``{"image": "data:image/...;base64,..."}``; ``k``, ``dedupe`` and the filters are query
    parameters either way."""
    check_read_access()
    values = parse("search_by_photo", request.args)
    serving = current_serving()
    limit = serving.settings.images.max_bytes
    # a phone photo is larger than the JSON bodies the other endpoints take (base64 adds a third)
    request.max_content_length = max(limit * 4 // 3 + 4096, current_app.config.get("MAX_CONTENT_LENGTH") or 0)
    data = _uploaded_photo()
    if len(data) > limit:
        raise RequestEntityTooLarge(f"the photo is {len(data):,} bytes; the limit is {limit:,}")
    try:
        photo = decode_image(data, draft_size=PHOTO_SIDE, max_pixels=serving.settings.images.max_pixels)
    except IMAGE_ERRORS as exc:
        raise InvalidRequest(f"the photo cannot be used: {exc}") from None
    recommender = use(serving.recommender())
    found = recommender.similar_to_photo(photo, k=values["k"], filters=values["filters"], dedupe=values["dedupe"],
                                         shaping=values["shaping"])
    return json_response(_result(recommender, found, k=values["k"], filters=values["filters"]))


def _uploaded_photo() -> bytes:
    """The request's photo: a multipart file field ``image``, or a JSON body's ``data:`` URL."""
    if request.mimetype == "multipart/form-data":
        upload = request.files.get("image")
        if upload is None:
            raise InvalidRequest("send the photo in a multipart file field named 'image'")
        try:
            return upload.read()
        finally:
            upload.close()  # a large upload is a temporary file: give it back now, not at collection
    if not request.is_json:
        raise InvalidRequest("send the photo as multipart/form-data (a file field named 'image') or as JSON "
                             '{"image": "data:image/jpeg;base64,..."}')
    body = json_body()
    source = body.get("image") if isinstance(body, dict) else None
    if not isinstance(source, str) or not source.startswith("data:image/"):
        raise InvalidRequest('the JSON body must be {"image": "data:image/jpeg;base64,..."}')
    try:
        return data_url_bytes(source)[1]
    except ValueError as exc:
        raise InvalidRequest(str(exc)) from None


@bp.get("/v1/items/<item_id>/image")
def item_image(item_id: str):
    check_read_access()
    check_id(item_id, "item")
    parse("item_image", request.args)
    recommender = use(current_serving().recommender())
    data = recommender.image(item_id)
    if data is None:
        raise NotFound(f"item {item_id!r} has no image", item_id=item_id)
    # the bundle's own re-encoded JPEG, never a file or URL the catalog named
    return Response(data, mimetype="image/jpeg", headers={"Cache-Control": "public, max-age=3600"})


@bp.get("/v1/items/<item_id>")
def get_item(item_id: str):
    check_read_access()
    check_id(item_id, "item")
    parse("item", request.args)
    recommender = use(current_serving().synced())
    return json_response({"version": recommender.version, "item": recommender.item(item_id)})


# -- operations ---------------------------------------------------------------------------------


@bp.get("/healthz")
def healthz():
    current = current_serving().current
    if current is not None:
        g.version = current.version
    return json_response({"status": "ok", "version": g.get("version")})


@bp.get("/readyz")
def readyz():
    serving = current_serving()
    ready, reasons = serving.readiness()
    if serving.current is not None:
        g.version = serving.current.version
    status = "not_ready" if not ready else ("degraded" if reasons else "ready")
    return json_response({"status": status, "version": g.get("version"), "reasons": reasons},
                 status=200 if ready else 503)


@bp.get("/metrics")
def metrics():
    current = current_serving().current
    if current is not None:
        g.version = current.version
    from recsys.api.metrics import CONTENT_TYPE

    return Response(current_app.extensions["recsys.metrics"].render(), content_type=CONTENT_TYPE)


@bp.get("/openapi.json")
def openapi():
    from recsys.api.openapi import document

    current = current_serving().current
    if current is not None:
        g.version = current.version
    return json_response(document())
