"""The merchandising rules over HTTP (docs/rules.md): list, create, replace and remove them. Every
call needs the API key; a change is applied by every worker from its next read."""
from __future__ import annotations

import time

from flask import Blueprint

from recsys.api.context import current_serving, json_body, json_response, require_key, use
from recsys.api.schemas import check_id, parse_body
from recsys.control.rules import Rule
from recsys.errors import InvalidRequest, NotFound
from recsys.serve import Recommender
from recsys.worker import writes

__all__ = ["bp"]

bp = Blueprint("recsys_rules", __name__)


@bp.get("/v1/rules")
def list_rules():
    require_key()
    recommender = use(current_serving().synced())
    book = recommender.changes.rules
    return json_response({"version": recommender.version, "rules_version": book.version,
                          "rules": [_shown(recommender, rule) for rule in book.rules]})


@bp.post("/v1/rules")
def create_rule():
    require_key()
    serving = current_serving()
    rule = _checked(use(serving.synced()), json_body())
    if rule.id is not None:
        raise InvalidRequest("a new rule's id is given by the server; leave id out (PUT /v1/rules/{id} "
                             "replaces a rule)")
    stored = writes.put_rule(serving, rule)
    return json_response({"rule": _shown(use(serving.recommender()), stored)}, status=201)


@bp.put("/v1/rules/<rule_id>")
def replace_rule(rule_id: str):
    require_key()
    check_id(rule_id, "rule")
    serving = current_serving()
    recommender = use(serving.synced())
    rule = _checked(recommender, json_body())
    if rule.id not in (None, rule_id):
        raise InvalidRequest(f"the body's id {rule.id!r} is not the path's {rule_id!r}")
    if not any(r.id == rule_id for r in recommender.changes.rules.rules):
        raise NotFound(f"no rule {rule_id!r}; POST /v1/rules creates one", rule_id=rule_id)
    stored = writes.put_rule(serving, rule.model_copy(update={"id": rule_id}))
    return json_response({"rule": _shown(use(serving.recommender()), stored)})


@bp.delete("/v1/rules/<rule_id>")
def delete_rule(rule_id: str):
    require_key()
    check_id(rule_id, "rule")
    serving = current_serving()
    use(serving.recommender())
    if not writes.delete_rule(serving, rule_id):
        raise NotFound(f"no rule {rule_id!r}", rule_id=rule_id)
    return json_response({"rule_id": rule_id, "deleted": True})


def _checked(recommender: Recommender, body) -> Rule:
    """The body as a rule; one naming attributes no item has is refused (it could never act)."""
    rule = parse_body(Rule, body)
    unknown = recommender.changes.rules.unknown_attributes(rule.match)
    if unknown:
        raise InvalidRequest(f"unknown attribute(s) {', '.join(map(repr, unknown))}: no item has them; set one "
                             "with PATCH /v1/items/{id} first", unknown=unknown)
    return rule


def _shown(recommender: Recommender, rule: Rule) -> dict:
    """A rule as the API shows it: its fields, how many servable items it matches, and whether it
    is in its time window now."""
    changes = recommender.changes
    bundle, put = changes.rules.matched(rule)
    matches = int((bundle & ~changes.hidden).sum() + put.sum())
    start, end = rule.window
    return {**rule.model_dump(mode="json"), "match": rule.match.model_dump(mode="json", exclude_defaults=True),
            "matches": matches, "active": bool(start <= time.time() < end)}
