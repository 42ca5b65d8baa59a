"""The review queue and the fixes a reviewer applies from it (docs/curation.md#the-review-queue):
the items a check flagged (put since the bundle, or found by the build), dismissals of their
flags, an accepted category, labels set by hand, merged duplicate listings, and the audit log of
every curation action. Each needs the API key, and is read from Redis each time
(:mod:`recsys.worker.review`); a fix reaches every worker's reads within a second.
"""
from __future__ import annotations

from flask import Blueprint, request

from recsys.api.context import actor, current_serving, json_body, json_response, require_key, use
from recsys.api.curation import catalog_rows
from recsys.api.params import parse
from recsys.api.schemas import check_id
from recsys.api.writes import known_item
from recsys.errors import InvalidRequest, NotFound
from recsys.worker import writes
from recsys.worker.review import audit_log, checks_to_dismiss, queue_row, review_queue

__all__ = ["bp"]

bp = Blueprint("recsys_review", __name__)


@bp.get("/v1/admin/queue")
def queue():
    """The review queue: the items a check flagged, with their evidence, and the saved taggers'
    labels (a reviewer may set one by hand)."""
    require_key()
    serving = current_serving()
    use(serving.recommender())
    rows = review_queue(serving, parse("queue", request.args)["limit"])
    shown = [row["item_id"] for row in rows] + [d["item_id"] for row in rows
                                                for d in row["checks"].get("duplicate", {}).get("of", [])]
    recommender = serving.recommender()
    taggers = {name: tagger["labels"] for name, tagger in recommender.bundle.taggers.items()}
    return json_response({"version": recommender.version, "items": rows, "taggers": taggers,
                          "catalog": catalog_rows(i for i in shown if recommender.knows(i))})


def _reviewed(item_id: str):
    """The serving state for a reviewer's action on ``item_id``: 401/403 without the key, 400
    for a bad id, NotReady before a bundle is loaded."""
    require_key()
    check_id(item_id, "item")
    serving = current_serving()
    use(serving.recommender())
    return serving


def _optional_body(usage: str) -> dict:
    """The request's JSON object, ``{}`` without a body; ``usage`` says what to send otherwise."""
    body = json_body() if request.get_data() else {}
    if not isinstance(body, dict):
        raise InvalidRequest(usage)
    return body


@bp.post("/v1/admin/queue/<item_id>/dismiss")
def dismiss(item_id: str):
    """Body (optional): ``{"checks": ["duplicate", ...]}``; all the item's flagged checks without it."""
    serving = _reviewed(item_id)
    usage = 'send {"checks": ["duplicate", ...]} (a non-empty list of check names) or no body'
    asked = _optional_body(usage).get("checks")
    if asked is not None and not (isinstance(asked, list) and asked and all(isinstance(c, str) for c in asked)):
        raise InvalidRequest(usage)
    checks = checks_to_dismiss(queue_row(serving, item_id), asked)
    writes.dismiss(serving, item_id, checks, actor())
    return json_response({"item_id": item_id, "dismissed": checks, "item": use(serving.recommender()).item(item_id)})


@bp.post("/v1/admin/queue/<item_id>/category")
def accept_category(item_id: str):
    """Give a flagged item the category its off-category check suggested (body, optional:
    ``{"category": "..."}``, another one), and dismiss that check."""
    serving = _reviewed(item_id)
    row = queue_row(serving, item_id)
    flagged = (row or {}).get("checks", {}).get("off_category")
    if flagged is None:
        raise InvalidRequest("the item has no off-category flag to act on", item_id=item_id)
    category = _optional_body('send {"category": "..."} or no body (the suggested one)').get(
        "category", flagged.get("suggested_category"))
    if not isinstance(category, str) or not category.strip() or len(category) > 200:
        raise InvalidRequest('"category" must be a non-empty string of at most 200 characters', item_id=item_id)
    writes.accept_category(serving, item_id, category.strip(), actor())
    return json_response({"item_id": item_id, "category": category.strip(),
                          "item": use(serving.recommender()).item(item_id)})


@bp.put("/v1/admin/labels/<item_id>/<tagger>")
def set_label(item_id: str, tagger: str):
    """Body: ``{"label": "..."}``, or ``{"label": null}`` for none of these: a reviewer's label of
    the item under a saved tagger, shown in place of the tagger's tag."""
    serving = known_item(item_id)
    body = json_body()
    if not (isinstance(body, dict) and "label" in body and (body["label"] is None or isinstance(body["label"], str))):
        raise InvalidRequest('send {"label": "<one of the tagger\'s labels>"} or {"label": null} (none of these)')
    label = body["label"]
    writes.set_label(serving, item_id, tagger, label, actor())
    return json_response({"item_id": item_id, "tagger": tagger, "label": label,
                          "item": use(serving.recommender()).item(item_id)})


@bp.delete("/v1/admin/labels/<item_id>/<tagger>")
def clear_label(item_id: str, tagger: str):
    """Drop a reviewer's label: the tagger's own tag shows again."""
    serving = known_item(item_id)
    if not writes.clear_label(serving, item_id, tagger, actor()):
        raise NotFound(f"{item_id!r} has no label of tagger {tagger!r} set by hand", item_id=item_id)
    return json_response({"item_id": item_id, "tagger": tagger, "item": use(serving.recommender()).item(item_id)})


@bp.get("/v1/admin/merges")
def merges():
    """Every merged listing and the listing it redirects to."""
    require_key()
    serving = current_serving()
    return json_response({"merged": use(serving.synced()).changes.merged})


@bp.post("/v1/admin/merges")
def merge():
    """Body: ``{"keep": "A", "merge": ["B", ...]}``: B leaves every result and reads naming it
    answer for A."""
    require_key()
    body = json_body()
    keep, items = (body.get("keep"), body.get("merge")) if isinstance(body, dict) else (None, None)
    if not isinstance(keep, str) or not (isinstance(items, list) and all(isinstance(i, str) for i in items)):
        raise InvalidRequest('send {"keep": "<item_id>", "merge": ["<item_id>", ...]}')
    for item_id in (keep, *items):
        check_id(item_id, "item")
    serving = current_serving()
    writes.merge(serving, keep, list(dict.fromkeys(items)), actor())
    recommender = use(serving.recommender())
    return json_response({"keep": keep, "merged": list(dict.fromkeys(items)), "item": recommender.item(keep)})


@bp.delete("/v1/admin/merges/<item_id>")
def unmerge(item_id: str):
    """Serve a merged listing on its own again."""
    serving = _reviewed(item_id)
    if not writes.unmerge(serving, item_id, actor()):
        raise NotFound(f"{item_id!r} is not merged", item_id=item_id)
    return json_response({"item_id": item_id, "item": use(serving.recommender()).item(item_id)})


@bp.get("/v1/admin/audit")
def audit():
    """The newest curation actions: who, when, what, before and after."""
    require_key()
    return json_response({"entries": audit_log(current_serving(), parse("audit", request.args)["limit"])})
