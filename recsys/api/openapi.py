"""The OpenAPI 3 document of the API (``GET /openapi.json``).

Request bodies come from the pydantic models that validate them; a test checks that every route
of the app is documented here and that every documented path exists, and a fuzz test checks the
responses against this document.
"""
from __future__ import annotations

from functools import lru_cache

from recsys import __version__
from recsys.api.params import ENDPOINTS
from recsys.api.schemas import ID_PATTERN, AttributesIn, EventIn, InteractionsIn, ItemIn, SessionIn
from recsys.control.experiments import Experiment
from recsys.control.rules import Rule
from recsys.curation.tagger import NAME_PATTERN as TAGGER_NAME
from recsys.data.schema import MAX_ID_LENGTH

__all__ = ["document"]

_ID = {"type": "string", "minLength": 1, "maxLength": MAX_ID_LENGTH, "pattern": ID_PATTERN}


def _param(name: str, where: str, schema: dict, description: str, required: bool = False) -> dict:
    return {"name": name, "in": where, "required": required or where == "path", "schema": schema,
            "description": description}


def _query(endpoint: str) -> list[dict]:
    """An endpoint's query parameters, from their one declaration (:mod:`recsys.api.params`)."""
    return [param.openapi() for param in ENDPOINTS[endpoint]]


_ITEM_ID = _param("item_id", "path", _ID, "catalog item id")
_USER_ID = _param("user_id", "path", _ID, "user id")
_TAGGER = _param("tagger", "path", {"type": "string", "pattern": TAGGER_NAME}, "a saved tagger's name")


def _ok(schema_ref: str, description: str = "OK", status: str = "200") -> dict:
    version = {"X-Recsys-Version": {"$ref": "#/components/headers/Version"}}
    return {status: {"description": description, "headers": version,
                     "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema_ref}"}}}}}


def _errors(*statuses: int) -> dict:
    text = {400: "bad input", 401: "missing or wrong API key", 403: "writes disabled (no API key set)",
            404: "unknown item, user or endpoint", 405: "method not allowed",
            409: "refused by a check of the item (nothing stored; the message names why)",
            413: "body too large", 503: "not ready, or Redis down (Retry-After)"}
    return {str(s): {"description": text[s], "content": {"application/json": {
        "schema": {"$ref": "#/components/schemas/Error"}}}} for s in statuses}


_READ_ERRORS = (400, 404, 405, 503)
_WRITE_ERRORS = (400, 401, 403, 405, 413, 503)
_SECURITY = [{"bearer": []}, {"apiKey": []}]


def _body(model) -> dict:
    schema = {"$ref": f"#/components/schemas/{model.__name__}"}
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def _schemas() -> dict:
    result_item = {"type": "object", "required": ["item_id", "score"], "properties": {
        "item_id": {"type": "string"}, "score": {"type": "number"},
        "title": {"type": ["string", "null"]}, "category": {"type": ["string", "null"]},
        "price": {"type": ["number", "null"]}, "colour": {"type": ["string", "null"]},
        "cold": {"type": "boolean", "description": "placed by content: nobody interacted with it"},
        "image": {"type": ["string", "null"], "description": "path of the item's image (GET it), null without one"}}}
    version = {"type": "string", "description": "the bundle version that produced the response"}
    filters = {"type": "object", "description": "the filters applied, normalised"}
    why_empty = {"type": "string", "description": "why the items are empty, when the filters explain it"}
    feed = {"type": "object", "required": ["version", "k", "strategy", "items"], "properties": {
        "version": version, "user_id": {"type": "string"}, "k": {"type": "integer"},
        "recent": {"type": "integer", "description": "recent items from the activity log used"},
        "strategy": {"type": "string", "enum": ["collaborative", "fold-in", "popular"]},
        "message": {"type": ["string", "null"], "description": "how the feed was made, or why it is empty"},
        "filters": filters,
        "items": {"type": "array", "items": {"$ref": "#/components/schemas/ResultItem"}}}}
    schemas = {
        "ResultItem": result_item,
        "Similar": {"type": "object", "required": ["version", "item_id", "k", "weights", "items"],
                    "properties": {"version": version, "item_id": {"type": "string"},
                                   "k": {"type": "integer"},
                                   "weights": {"type": "object", "additionalProperties": {"type": "number"}},
                                   "filters": filters, "message": why_empty,
                                   "items": {"type": "array", "items": {"$ref": "#/components/schemas/ResultItem"}}}},
        "Feed": feed,
        "ItemList": {"type": "object", "required": ["version", "total", "offset", "limit", "items"],
                     "properties": {"version": version, "total": {"type": "integer"},
                                    "offset": {"type": "integer"}, "limit": {"type": "integer"},
                                    "filters": filters, "message": why_empty,
                                    "items": {"type": "array", "items": {"type": "object"}}}},
        "Search": {"type": "object", "required": ["version", "q", "mode", "k", "items"], "properties": {
            "version": version, "q": {"type": "string"}, "k": {"type": "integer"}, "filters": filters,
            "message": why_empty,
            "mode": {"type": "string", "enum": ["text", "image", "both"]},
            "items": {"type": "array", "items": {"$ref": "#/components/schemas/ResultItem"}}}},
        "PhotoSearch": {"type": "object", "required": ["version", "k", "items"], "properties": {
            "version": version, "k": {"type": "integer"}, "filters": filters, "message": why_empty,
            "items": {"type": "array", "items": {"$ref": "#/components/schemas/ResultItem"}}}},
        "Item": {"type": "object", "required": ["version", "item"], "properties": {
            "version": version, "item": {"type": "object", "required": ["item_id", "fresh"],
                                         "properties": {"item_id": {"type": "string"},
                                                        "fresh": {"type": "boolean"}}}}},
        "ItemWritten": {"type": "object", "required": ["version", "item", "created"], "properties": {
            "version": version, "item": {"type": "object"}, "created": {"type": "boolean"},
            "modalities": {"type": "array", "items": {"type": "string"}},
            "warnings": {"type": "array", "items": {"type": "string"}},
            "checks": {"type": "object", "description": "by check (duplicate, quality, off_category, "
                       "image_text): {flagged, ...evidence}; empty with checks.enabled off (docs/curation.md)",
                       "additionalProperties": {"type": "object", "required": ["flagged"],
                                                "properties": {"flagged": {"type": "boolean"}}}},
            "held": {"type": "array", "items": {"type": "string"},
                     "description": "the checks that hold it out of reads until released"}}},
        "ItemPending": {"type": "object", "required": ["version", "item_id", "status", "message"], "properties": {
            "version": version, "item_id": {"type": "string"}, "status": {"const": "pending"},
            "message": {"type": "string"}}},
        "ItemDeleted": {"type": "object", "required": ["version", "item_id", "deleted"], "properties": {
            "version": version, "item_id": {"type": "string"}, "deleted": {"type": "boolean"}}},
        "Accepted": {"type": "object", "required": ["version", "accepted", "ids"], "properties": {
            "version": version, "accepted": {"type": "integer"},
            "ids": {"type": "array", "items": {"type": "string"}, "description": "log stream ids"},
            "duplicate": {"type": "boolean", "description": "this Idempotency-Key was posted before: "
                          "nothing new was stored, ids are the first post's"}}},
        "Health": {"type": "object", "required": ["status"], "properties": {
            "status": {"type": "string"}, "version": {"type": ["string", "null"]}}},
        "Ready": {"type": "object", "required": ["status", "reasons"], "properties": {
            "status": {"type": "string", "enum": ["ready", "degraded", "not_ready"]},
            "version": {"type": ["string", "null"]},
            "reasons": {"type": "array", "items": {"type": "string"}}}},
        "Error": {"type": "object", "required": ["error"], "properties": {
            "error": {"type": "object", "required": ["code", "message"], "properties": {
                "code": {"type": "string"}, "message": {"type": "string"}, "details": {"type": "object"}}},
            "version": {"type": "string"}}},
    }
    schemas["RuleWritten"] = {"type": "object", "required": ["rule"], "properties": {
        "rule": {"$ref": "#/components/schemas/RuleShown"}}}
    schemas["RuleList"] = {"type": "object", "required": ["version", "rules_version", "rules"], "properties": {
        "version": version, "rules_version": {"type": "integer", "description": "moved by every rule write"},
        "rules": {"type": "array", "items": {"$ref": "#/components/schemas/RuleShown"}}}}
    schemas["RuleDeleted"] = {"type": "object", "required": ["rule_id", "deleted"], "properties": {
        "rule_id": {"type": "string"}, "deleted": {"type": "boolean"}}}
    for model in (EventIn, InteractionsIn, SessionIn, ItemIn, Rule, AttributesIn, Experiment):
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
    schemas["RuleShown"] = {"type": "object", "required": ["id", "action", "match", "matches", "active"],
                            "properties": {**schemas["Rule"]["properties"],
                                           "matches": {"type": "integer",
                                                       "description": "servable items the rule matches now"},
                                           "active": {"type": "boolean", "description": "in its time window now"}}}
    schemas.update(_curation_schemas())
    schemas["InteractionsBody"] = {"oneOf": [
        {"$ref": "#/components/schemas/EventIn"}, {"$ref": "#/components/schemas/InteractionsIn"},
        {"type": "array", "minItems": 1, "items": {"$ref": "#/components/schemas/EventIn"}}]}
    return schemas


def _rule_paths() -> dict:
    """The merchandising rules (docs/rules.md): each call needs the API key."""
    rule_id = _param("rule_id", "path", _ID, "rule id (r1, r2, ...)")
    errors = _errors(*_WRITE_ERRORS)
    return {
        "/v1/rules": {
            "get": {"summary": "The shop's rules, with how many items each matches", "security": _SECURITY,
                    "responses": {**_ok("RuleList"), **_errors(401, 403, 405, 503)}},
            "post": {"summary": "Create a rule (boost, bury, pin or exclude), applied by every worker from "
                                "its next read", "security": _SECURITY, "requestBody": _body(Rule),
                     "responses": {**_ok("RuleWritten", "created", "201"), **errors}}},
        "/v1/rules/{rule_id}": {
            "put": {"summary": "Replace a rule", "security": _SECURITY, "parameters": [rule_id],
                    "requestBody": _body(Rule), "responses": {**_ok("RuleWritten"), **_errors(404), **errors}},
            "delete": {"summary": "Remove a rule", "security": _SECURITY, "parameters": [rule_id],
                       "responses": {**_ok("RuleDeleted"), **_errors(404), **errors}}},
    }


def _experiment_paths() -> dict:
    """The experiments (docs/experiments.md): each call needs the API key."""
    experiment_id = _param("experiment_id", "path", _ID, "experiment id (e1, e2, ...)")
    body = {"type": "object", "required": ["experiment"], "properties": {"experiment": {"type": "object"}}}
    json_ok = {"200": {"description": "OK", "content": {"application/json": {"schema": body}}}}
    errors = _errors(400, 401, 403, 404, 405, 503)
    return {
        "/v1/experiments": {
            "get": {"summary": "Every experiment", "security": _SECURITY,
                    "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": {
                        "type": "object", "required": ["experiments"],
                        "properties": {"experiments": {"type": "array", "items": {"type": "object"}}}}}}},
                        **errors}},
            "post": {"summary": "Create an experiment: variants of the serving configuration, split by user",
                     "security": _SECURITY, "requestBody": _body(Experiment),
                     "responses": {"201": json_ok["200"] | {"description": "created"}, **errors, **_errors(413)}}},
        "/v1/experiments/{experiment_id}": {"get": {
            "summary": "One experiment", "security": _SECURITY, "parameters": [experiment_id],
            "responses": {**json_ok, **errors}}},
        "/v1/experiments/{experiment_id}/stop": {"post": {
            "summary": "Stop an experiment (its report stays)", "security": _SECURITY, "parameters": [experiment_id],
            "responses": {**json_ok, **errors}}},
        "/v1/experiments/{experiment_id}/report": {"get": {
            "summary": "Per variant: users, impressions, clicks, CTR, conversion and revenue per user with 95% "
                       "intervals, differences against the control, and the sample-ratio check",
            "security": _SECURITY, "parameters": [experiment_id],
            "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": {
                "type": "object", "required": ["experiment", "variants", "srm"]}}}}, **errors}}},
    }


def _admin_paths() -> dict:
    """The curation admin reads (docs/curation.md): each needs the API key."""
    errors = _errors(400, 401, 403, 405, 503)

    def read(summary: str, schema: str, endpoint: str) -> dict:
        return {"get": {"summary": summary, "security": _SECURITY, "parameters": _query(endpoint),
                        "responses": {**_ok(schema), **errors}}}

    return {
        "/v1/admin/duplicates": read("Groups of duplicate listings", "Duplicates", "duplicates"),
        "/v1/admin/outliers": read("Items most likely wrong, with their reasons", "Outliers", "outliers"),
        "/v1/admin/clusters": read("The catalog's clusters, named", "Clusters", "clusters"),
        "/v1/admin/subset": read("Items that cover the catalog", "Subset", "subset"),
        "/v1/admin/labels": {"post": {
            "summary": "Label every item from a few examples per label, or a text per label",
            "security": _SECURITY,
            "requestBody": {"required": True, "content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/LabelsIn"}}}},
            "responses": {**_ok("Labels"), **errors, **_errors(413)}}},
        "/v1/admin/queue": read("The review queue: the items a check flagged (put since the bundle, then found "
                                "at build), with their evidence", "Queue", "queue"),
        "/v1/admin/queue/{item_id}/dismiss": {"post": {
            "summary": "Dismiss flagged checks of an item (remembered); a put item held only by them is served",
            "security": _SECURITY, "parameters": [_ITEM_ID],
            "requestBody": {"required": False, "content": {"application/json": {"schema": {
                "type": "object", "properties": {"checks": {"type": "array", "minItems": 1,
                                                            "items": {"type": "string"}}}}}}},
            "responses": {**_ok("Dismissed"), **errors, **_errors(413)}}},
        "/v1/admin/queue/{item_id}/category": {"post": {
            "summary": "Give a flagged item the category its off-category check suggested (or the one "
                       "given), and dismiss that check",
            "security": _SECURITY, "parameters": [_ITEM_ID],
            "requestBody": {"required": False, "content": {"application/json": {"schema": {
                "type": "object", "properties": {"category": {"type": "string", "minLength": 1,
                                                              "maxLength": 200}}}}}},
            "responses": {**_ok("CategoryFixed"), **errors, **_errors(413)}}},
        "/v1/admin/merges": {
            "get": {"summary": "Every merged listing and the listing it redirects to", "security": _SECURITY,
                    "responses": {**_ok("Merges"), **errors}},
            "post": {"summary": "Merge duplicate listings into one: they leave every result, and reads naming "
                                "them answer for the kept one", "security": _SECURITY,
                     "requestBody": {"required": True, "content": {"application/json": {"schema": {
                         "type": "object", "required": ["keep", "merge"], "properties": {
                             "keep": {"type": "string"},
                             "merge": {"type": "array", "minItems": 1, "maxItems": 100,
                                       "items": {"type": "string"}}}}}}},
                     "responses": {**_ok("Merged"), **errors, **_errors(413)}}},
        "/v1/admin/merges/{item_id}": {"delete": {
            "summary": "Serve a merged listing on its own again", "security": _SECURITY, "parameters": [_ITEM_ID],
            "responses": {**_ok("Unmerged"), **errors, **_errors(404)}}},
        "/v1/admin/labels/{item_id}/{tagger}": {
            "put": {"summary": "A reviewer's label of the item under a saved tagger (null: none of these), shown in "
                               "place of the tagger's tag", "security": _SECURITY, "parameters": [_ITEM_ID, _TAGGER],
                    "requestBody": {"required": True, "content": {"application/json": {"schema": {
                        "type": "object", "required": ["label"],
                        "properties": {"label": {"type": ["string", "null"]}}}}}},
                    "responses": {**_ok("Labelled"), **errors, **_errors(404, 413)}},
            "delete": {"summary": "Drop a reviewer's label: the tagger's own tag shows again", "security": _SECURITY,
                       "parameters": [_ITEM_ID, _TAGGER], "responses": {**_ok("Labelled"), **errors, **_errors(404)}}},
        "/v1/admin/audit": read("The newest curation actions: who, when, what, before and after", "Audit", "audit"),
    }


def _curation_schemas() -> dict:
    version = {"type": "string"}
    ids = {"type": "array", "items": {"type": "string"}}
    catalog = {"type": "object", "description": "display rows of the items shown first, by id"}
    labelled = {"type": "array", "minItems": 1, "maxItems": 1000, "items": {"type": "object"}}
    return {
        "Queue": {"type": "object", "required": ["version", "items", "taggers"], "properties": {
            "version": version, "catalog": catalog,
            "taggers": {"type": "object", "description": "each saved tagger's labels, by name",
                        "additionalProperties": ids},
            "items": {"type": "array", "items": {
                "type": "object", "required": ["item_id", "source", "held", "checks"],
                "properties": {"item_id": {"type": "string"}, "source": {"type": "string", "enum": ["put", "build"]},
                               "updated": {"type": ["string", "null"]}, "held": ids,
                               "checks": {"type": "object"}}}}}},
        "Dismissed": {"type": "object", "required": ["item_id", "dismissed", "item"], "properties": {
            "item_id": {"type": "string"}, "dismissed": ids, "item": {"type": "object"}}},
        "CategoryFixed": {"type": "object", "required": ["item_id", "category", "item"], "properties": {
            "item_id": {"type": "string"}, "category": {"type": "string"}, "item": {"type": "object"}}},
        "Merges": {"type": "object", "required": ["merged"], "properties": {"merged": {
            "type": "object", "additionalProperties": {"type": "string"}}}},
        "Merged": {"type": "object", "required": ["keep", "merged", "item"], "properties": {
            "keep": {"type": "string"}, "merged": ids, "item": {"type": "object"}}},
        "Unmerged": {"type": "object", "required": ["item_id", "item"], "properties": {
            "item_id": {"type": "string"}, "item": {"type": "object"}}},
        "Labelled": {"type": "object", "required": ["item_id", "tagger", "item"], "properties": {
            "item_id": {"type": "string"}, "tagger": {"type": "string"}, "label": {"type": ["string", "null"]},
            "item": {"type": "object"}}},
        "Audit": {"type": "object", "required": ["entries"], "properties": {"entries": {"type": "array", "items": {
            "type": "object", "required": ["at", "actor", "action", "item_id"]}}}},
        "Duplicates": {"type": "object", "required": ["version", "threshold", "sellers", "groups"], "properties": {
            "version": version, "threshold": {"type": "number"}, "sellers": {"type": "boolean"},
            "groups": {"type": "array", "items": ids},
            "catalog": catalog}},
        "Outliers": {"type": "object", "required": ["version", "items"], "properties": {
            "version": version, "catalog": catalog, "items": {"type": "array", "items": {
                "type": "object", "required": ["item_id", "score", "reasons", "suggested_category"],
                "properties": {"item_id": {"type": "string"}, "score": {"type": "number"},
                               "reasons": {"type": "array", "items": {"type": "string"}},
                               "suggested_category": {"type": ["string", "null"]}}}}}},
        "Clusters": {"type": "object", "required": ["version", "modality", "clusters"], "properties": {
            "version": version, "modality": {"type": "string"}, "catalog": catalog,
            "clusters": {"type": "array", "items": {"type": "object", "required": [
                "id", "name", "size", "cohesion", "representatives"]}},
            "map": {"type": "array", "items": {"type": "object"}}}},
        "Subset": {"type": "object", "required": ["version", "items", "radius"], "properties": {
            "version": version, "items": ids, "radius": {"type": ["number", "null"]}, "catalog": catalog}},
        "LabelsIn": {"type": "object", "oneOf": [{"required": ["examples"]}, {"required": ["prompts"]}],
                     "properties": {"examples": labelled, "prompts": labelled}},
        "Labels": {"type": "object", "required": ["version", "method", "items"], "properties": {
            "version": version, "method": {"type": "string", "enum": ["examples", "prompts"]}, "catalog": catalog,
            "items": {"type": "array", "items": {"type": "object", "required": ["item_id", "label", "confidence"]}}}},
    }


@lru_cache(maxsize=1)
def document() -> dict:
    """The OpenAPI 3.1 document, as a dict."""
    paths = {
        "/v1/items/{item_id}/similar": {"get": {
            "summary": "Items similar to an item (the product-page widget)",
            "parameters": [_ITEM_ID, *_query("similar")],
            "responses": {**_ok("Similar"), **_errors(*_READ_ERRORS)}}},
        "/v1/users/{user_id}/recommendations": {"get": {
            "summary": "A user's personalised feed (recent activity folded in)",
            "parameters": [_USER_ID, *_query("user_feed")],
            "responses": {**_ok("Feed"), **_errors(*_READ_ERRORS)}}},
        "/v1/recommendations": {"post": {
            "summary": "A feed for an anonymous session from its recent items",
            "requestBody": _body(SessionIn),
            "responses": {**_ok("Feed"), **_errors(400, 405, 413, 503)}}},
        "/v1/interactions": {"post": {
            "summary": "Log one event, a list of events, or {\"events\": [...]} (the API key is not "
                       "needed when the server sets RECSYS_API__PUBLIC_INTERACTIONS)",
            "security": _SECURITY,
            "parameters": [_param("Idempotency-Key", "header", {"type": "string", "minLength": 1, "maxLength": 200},
                                  "retries with the same key within 24 h are never stored twice")],
            "requestBody": {"required": True, "content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/InteractionsBody"}}}},
            "responses": {**_ok("Accepted", "stored in the log", "202"), **_errors(*_WRITE_ERRORS)}}},
        "/v1/items": {"get": {
            "summary": "The catalog, page by page (the shop's grid)",
            "parameters": _query("items"),
            "responses": {**_ok("ItemList"), **_errors(*_READ_ERRORS)}}},
        "/v1/search": {"get": {
            "summary": "Items for a free-text query: by their text, their photos (the joint text-image "
                       "space) or both",
            "parameters": _query("search"),
            "responses": {**_ok("Search"), **_errors(*_READ_ERRORS)}}},
        "/v1/search/image": {"post": {
            "summary": "Items that look like a photo (visual search): a multipart file field `image`, or "
                       "JSON with a data: URL; at most images.max_bytes and images.max_pixels",
            "parameters": _query("search_by_photo"),
            "requestBody": {"required": True, "content": {
                "multipart/form-data": {"schema": {"type": "object", "required": ["image"], "properties": {
                    "image": {"type": "string", "format": "binary"}}}},
                "application/json": {"schema": {"type": "object", "required": ["image"], "properties": {
                    "image": {"type": "string", "pattern": "^data:image/",
                              "description": "data:image/jpeg;base64,..."}}}}}},
            "responses": {**_ok("PhotoSearch"), **_errors(400, 405, 413, 503)}}},
        "/v1/items/{item_id}/image": {"get": {
            "summary": "An item's image: the JPEG thumbnail the bundle holds (or the put item's)",
            "parameters": [_ITEM_ID],
            "responses": {"200": {"description": "the image, re-encoded", "content": {
                              "image/jpeg": {"schema": {"type": "string", "format": "binary"}}}},
                          **_errors(*_READ_ERRORS)}}},
        "/v1/items/{item_id}": {
            "get": {"summary": "An item's attributes", "parameters": [_ITEM_ID],
                    "responses": {**_ok("Item"), **_errors(*_READ_ERRORS)}},
            "put": {"summary": "Add or change an item; checked against the served catalog and embedded "
                               "now, findable at once unless a check holds it (202 while an image URL is "
                               "still downloading: stored when it arrives; 409 when a check refuses it)",
                    "security": _SECURITY, "parameters": [_ITEM_ID], "requestBody": _body(ItemIn),
                    "responses": {**_ok("ItemWritten", "changed"), **_ok("ItemWritten", "created", "201"),
                                  **_ok("ItemPending", "image still downloading", "202"),
                                  **_errors(409, *_WRITE_ERRORS)}},
            "delete": {"summary": "Hide an item from every result at once", "security": _SECURITY,
                       "parameters": [_ITEM_ID],
                       "responses": {**_ok("ItemDeleted"), **_errors(404, *_WRITE_ERRORS)}},
            "patch": {"summary": "Set catalog attributes of an item without a rebuild (in_stock); rules "
                                 "match them from the next read", "security": _SECURITY, "parameters": [_ITEM_ID],
                      "requestBody": _body(AttributesIn),
                      "responses": {**_ok("Item"), **_errors(404, *_WRITE_ERRORS)}}},
        "/v1/items/{item_id}/release": {"post": {
            "summary": "Serve a put item that a check held out of reads", "security": _SECURITY,
            "parameters": [_ITEM_ID], "responses": {**_ok("Item"), **_errors(400, 404, *_WRITE_ERRORS)}}},
        **_rule_paths(),
        **_experiment_paths(),
        **_admin_paths(),
        "/healthz": {"get": {"summary": "The process is alive", "responses": _ok("Health")}},
        "/readyz": {"get": {"summary": "A bundle is loaded; Redis reachable, or degraded with reasons",
                            "responses": {**_ok("Ready"), "503": {"description": "not ready",
                                          "content": {"application/json": {
                                              "schema": {"$ref": "#/components/schemas/Ready"}}}}}}},
        "/metrics": {"get": {"summary": "Prometheus metrics", "responses": {"200": {
            "description": "Prometheus text format", "content": {"text/plain": {"schema": {"type": "string"}}}}}}},
        "/openapi.json": {"get": {"summary": "This document", "responses": {"200": {
            "description": "OpenAPI 3.1", "content": {"application/json": {"schema": {"type": "object"}}}}}}},
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "recsys", "version": __version__,
                 "description": "Similar items, personalised feeds, interactions and item writes. "
                                "Every response carries the bundle version (body `version`, header "
                                "`X-Recsys-Version`); errors are `{\"error\": {\"code\", \"message\"}}`."},
        "paths": paths,
        "components": {
            "schemas": _schemas(),
            "headers": {"Version": {"description": "bundle version", "schema": {"type": "string"}}},
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"},
                                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"}},
        },
    }
