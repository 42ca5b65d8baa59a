"""The read endpoints: similar items, feeds, search (by text and by photo), the catalog, images;
health, metrics, OpenAPI.

JSON shaping lives here (and in :mod:`recsys.api.writes` for the writes). Every response carries
the bundle version that produced it, in the body (``version``) and in the ``X-Recsys-Version``
header.
"""
from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, g, request
from werkzeug.exceptions import RequestEntityTooLarge

from recsys.api.context import check_read_access, current_serving, json_body, json_response, use
from recsys.api.schemas import QueryArgs, SessionIn, check_id, parse_body
from recsys.data.images import IMAGE_ERRORS, data_url_bytes, decode_image
from recsys.errors import InvalidRequest, NotFound
from recsys.serve import MAX_K, Recommender, Scored
from recsys.serve.embedder import PHOTO_SIDE
from recsys.serve.filters import ItemFilter
from recsys.worker import Serving

__all__ = ["bp", "similar_body", "feed_body", "HOT_READS"]

bp = Blueprint("recsys", __name__)

FILTER_ARGS = ("category", "min_price", "max_price", "exclude")


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
    args = QueryArgs(raw_args, ("k", "weights", "dedupe", *FILTER_ARGS))
    serving.recommender()  # not ready: 503 before parsing the query
    k = args.k(10)
    weights = args.weights()
    dedupe = args.flag("dedupe", True)
    item_filter = args.item_filter()
    described = item_filter.describe()
    query = {"k": k, "w": weights, "f": described, "d": dedupe}

    def compute(rec: Recommender, _recent) -> dict:
        found = rec.similar_items(item_id, k=k, weights=weights, filters=item_filter, dedupe=dedupe)
        return _explained({"version": rec.version, "item_id": item_id, "k": k,
                           "weights": weights or rec.bundle.vectors.weights,
                           "filters": described, "items": rec.rows(found)}, rec, item_filter)

    return serving.results.similar(serving, metrics, item_id, query, compute, k=k, weights=weights)


def feed_body(serving: Serving, metrics, user_id: str, raw_args) -> tuple[bytes, Recommender]:
    """``GET /v1/users/{user_id}/recommendations``: the JSON body and the recommender that answered.

    Raises:
        InvalidRequest: a bad id or query parameter.
        NotReady: no bundle loaded.
    """
    check_id(user_id, "user")
    args = QueryArgs(raw_args, ("k", "exclude_seen", "dedupe", *FILTER_ARGS))
    serving.recommender()
    k = args.k(20)
    exclude_seen = args.flag("exclude_seen", serving.settings.collab.exclude_seen)
    dedupe = args.flag("dedupe", True)
    item_filter = args.item_filter()
    described = item_filter.describe()
    query = {"k": k, "s": exclude_seen, "f": described, "d": dedupe}

    def compute(rec: Recommender, recent: list[str]) -> dict:
        feed = rec.recommend(user_id, k=k, recent_items=recent, exclude_seen=exclude_seen,
                             filters=item_filter, dedupe=dedupe)
        return _feed_body(rec, feed, k, item_filter, described, user_id=user_id, recent=len(recent))

    return serving.results.feed(serving, metrics, user_id, query, compute, k=k, exclude_seen=exclude_seen)


def _hot_read(body_of, owner: str) -> Response:
    check_read_access()
    body, recommender = body_of(current_serving(), current_app.extensions["recsys.metrics"], owner,
                                request.args)
    use(recommender)
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


def _feed_body(rec: Recommender, feed, k: int, item_filter: ItemFilter, described: dict, **extra: Any) -> dict:
    return _explained({"version": rec.version, **extra, "k": k, "strategy": feed.strategy,
                       "message": feed.message, "filters": described,
                       "items": rec.rows(feed, cold=True)}, rec, item_filter)


def _explained(body: dict, rec: Recommender, item_filter: ItemFilter) -> dict:
    """``body`` with a ``message`` saying why its items are empty, where the filter explains it
    (a category no item is in)."""
    if not body["items"]:
        message = rec.filter_message(item_filter)
        if message is not None:
            body["message"] = message
    return body


@bp.post("/v1/recommendations")
def session_feed():
    check_read_access()
    body = parse_body(SessionIn, json_body())
    recommender = use(current_serving().recommender())
    current_serving().snapshot()  # pick up item changes before answering
    recommender = use(current_serving().recommender())
    item_filter = body.item_filter()
    feed = recommender.recommend(None, k=body.k, recent_items=body.recent_items,
                                 exclude_seen=body.exclude_seen, filters=item_filter, dedupe=body.dedupe)
    return json_response(_feed_body(recommender, feed, body.k, item_filter, item_filter.describe()))


@bp.get("/v1/items")
def list_items():
    check_read_access()
    args = QueryArgs(request.args, ("limit", "offset", "category", "min_price", "max_price"))
    limit = args.integer("limit", 24, 1, MAX_K)
    offset = args.integer("offset", 0, 0, 10**9)
    item_filter = args.item_filter()
    serving = current_serving()
    serving.catch_up()
    recommender = use(serving.recommender())
    total, page = recommender.listing(item_filter, offset, limit)
    rows = recommender.rows([Scored(i, 0.0) for i in page], score=False)
    return json_response(_explained({"version": recommender.version, "total": total, "offset": offset,
                                     "limit": limit, "filters": item_filter.describe(), "items": rows},
                                    recommender, item_filter))


@bp.get("/v1/search")
def search():
    check_read_access()
    args = QueryArgs(request.args, ("q", "k", "mode", "category", "min_price", "max_price", "exclude"))
    text = args.text("q")
    mode = args.args.get("mode")
    k = args.k(10)
    item_filter = args.item_filter()
    serving = current_serving()
    serving.catch_up()
    recommender = use(serving.recommender())
    vector = serving.embedder.embed_query(text)
    found = recommender.search(vector, k=k, filters=item_filter, mode=mode)
    mode = mode or ("both" if recommender.bundle.joint is not None else "text")
    return json_response(_explained({"version": recommender.version, "q": text, "mode": mode, "k": k,
                                     "filters": item_filter.describe(), "items": recommender.rows(found)},
                                    recommender, item_filter))


@bp.post("/v1/search/image")
def search_by_photo():
    """Visual search: the photo is a multipart file field ``image``, or a JSON body
    ``{"image": "data:image/...;base64,..."}``; ``k``, ``dedupe`` and the filters are query
    parameters either way."""
    check_read_access()
    args = QueryArgs(request.args, ("k", "dedupe", *FILTER_ARGS))
    k = args.k(10)
    dedupe = args.flag("dedupe", True)
    item_filter = args.item_filter()
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
    serving.catch_up()
    recommender = use(serving.recommender())
    vector = serving.embedder.embed_photos([photo])[0]
    found = recommender.similar_to_photo(vector, k=k, filters=item_filter, dedupe=dedupe)
    return json_response(_explained({"version": recommender.version, "k": k, "filters": item_filter.describe(),
                                     "items": recommender.rows(found)}, recommender, item_filter))


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
    QueryArgs(request.args, ())
    recommender = use(current_serving().recommender())
    data = recommender.image(item_id)
    if data is None:
        raise NotFound(f"item {item_id!r} has no image", item_id=item_id)
    # the bundle's own re-encoded JPEG, never a file or URL the catalog named
    response = Response(data, mimetype="image/jpeg", headers={"Cache-Control": "public, max-age=3600"})
    response.headers["X-Recsys-Version"] = recommender.version
    return response


@bp.get("/v1/items/<item_id>")
def get_item(item_id: str):
    check_read_access()
    check_id(item_id, "item")
    QueryArgs(request.args, ())
    current_serving().snapshot()
    recommender = use(current_serving().recommender())
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
