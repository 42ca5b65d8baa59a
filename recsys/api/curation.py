"""The admin reads of catalog curation (docs/curation.md): duplicates, outliers, clusters, labels
and subsets of the served bundle. Each needs the API key: they expose the whole catalog's
structure, and they cost a pass over every item. Beside the CLI's fields, each answer has a ``catalog``: the
display rows of the items an admin page shows first (the first 100 groups, the first 200 items,
the 8 most confident items of each label).

An answer is computed from the bundle alone (items put through the API since it was built are not
in it) and kept per bundle version and parameters, so the admin page's repeated reads are free.

The review queue and its fixes, read from Redis each time, are in :mod:`recsys.api.review`.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
from flask import Blueprint, request

from recsys._lru import Lru
from recsys.api.context import current_serving, json_body, json_response, require_key, use
from recsys.api.params import parse
from recsys.errors import InvalidRequest

__all__ = ["bp", "catalog_rows"]

bp = Blueprint("recsys_curation", __name__)
_answers = Lru(16)
MAX_LABELS = 1000
_MAP_POINTS = 3000
# answers describe (title, category, image) the items an admin page shows, not every item
_SHOWN_GROUPS = 100
_SHOWN_ITEMS = 200


def catalog_rows(item_ids) -> dict[str, dict]:
    """The display rows (title, category, image URL, ...) of the named items, by id."""
    from recsys.serve.rows import Scored

    recommender = current_serving().recommender()
    ids = list(dict.fromkeys(item_ids))
    return {row["item_id"]: row for row in recommender.rows([Scored(i, 0.0) for i in ids], score=False)}


def _kept(key: tuple, compute):
    """The answer for this bundle version and parameters, computed once."""
    recommender = use(current_serving().recommender())
    key = (recommender.version, *key)
    answer = _answers.get(key)
    if answer is None:
        answer = compute(recommender.bundle)
        _answers.put(key, answer)
    return answer


@bp.get("/v1/admin/duplicates")
def duplicates():
    require_key()
    from recsys.curation import duplicates as dup

    args = parse("duplicates", request.args)
    threshold, sellers = args["threshold"], args["sellers"]
    found = _kept(("duplicates", threshold, sellers),
                  lambda b: dup.find_duplicates(b, threshold=threshold, sellers=sellers))
    return json_response({"version": found.version, "threshold": found.threshold, "sellers": sellers,
                          "groups": found.groups,
                          "catalog": catalog_rows(i for group in found.groups[:_SHOWN_GROUPS] for i in group)})


@bp.get("/v1/admin/outliers")
def outliers():
    require_key()
    from recsys.curation import find_outliers

    top = parse("outliers", request.args)["top"]
    found = _kept(("outliers",), find_outliers)
    items = [{"item_id": r.item_id, "score": float(r.score), "reasons": list(r.reasons),
              "suggested_category": r.suggested_category} for r in found.top(top).itertuples()]
    return json_response({"version": found.version, "items": items,
                          "catalog": catalog_rows(item["item_id"] for item in items[:_SHOWN_ITEMS])})


@bp.get("/v1/admin/clusters")
def clusters():
    require_key()
    from recsys.curation import find_clusters

    values = parse("clusters", request.args)
    k, modality = values["k"] or None, values["modality"]
    seed = current_serving().settings.seed
    found = _kept(("clusters", k, modality), lambda b: find_clusters(b, k=k, modality=modality, seed=seed))
    body = {"version": found.version, "modality": found.modality,
            "clusters": [dataclasses.asdict(c) for c in found.clusters],
            "catalog": catalog_rows(i for c in found.clusters for i in c.representatives)}
    if values["map"]:
        body["map"] = _map_points(found)
    return json_response(body)


def _map_points(found) -> list[dict]:
    """At most ``_MAP_POINTS`` items (a seeded sample): id, cluster and 2-D position."""
    recommender = current_serving().recommender()
    rows = np.flatnonzero(found.assignment >= 0)
    if len(rows) > _MAP_POINTS:
        rows = np.sort(np.random.default_rng(0).choice(rows, _MAP_POINTS, replace=False))
    ids = recommender.bundle.item_ids.ids
    return [{"item_id": str(ids[r]), "cluster": int(found.assignment[r]),
             "x": round(float(found.map[r, 0]), 4), "y": round(float(found.map[r, 1]), 4)} for r in rows]


@bp.get("/v1/admin/subset")
def subset():
    require_key()
    from recsys.curation import diverse_subset
    from recsys.curation.duplicates import duplicate_rows

    values = parse("subset", request.args)
    n, balance, quota, modality = values["n"], values["balance"] or None, values["quota"], values["modality"]
    seed = values["seed"] if values["seed"] is not None else current_serving().settings.seed

    def compute(bundle):
        return diverse_subset(bundle, n, balance=balance, quota=quota, seed=seed, modality=modality,
                              duplicate_of=duplicate_rows(bundle))

    chosen = _kept(("subset", n, balance, quota, seed, modality), compute)
    return json_response({"version": chosen.version, "items": chosen.items, "radius": chosen.radius,
                          "catalog": catalog_rows(chosen.items[:_SHOWN_ITEMS])})


@bp.post("/v1/admin/labels")
def labels():
    """Body: ``{"examples": [{"label", "item_id"}, ...]}`` or ``{"prompts": [{"label", "text"}, ...]}``."""
    require_key()
    from recsys.curation import label_from_examples, label_from_prompts

    body = json_body()
    if not isinstance(body, dict) or (("examples" in body) == ("prompts" in body)):
        raise InvalidRequest('send {"examples": [{"label": ..., "item_id": ...}, ...]} or '
                             '{"prompts": [{"label": ..., "text": ...}, ...]}')
    kind = "examples" if "examples" in body else "prompts"
    rows = body[kind]
    columns = ("label", "item_id") if kind == "examples" else ("label", "text")
    if not isinstance(rows, list) or not 0 < len(rows) <= MAX_LABELS or \
            not all(isinstance(r, dict) and all(isinstance(r.get(c), str) for c in columns) for r in rows):
        raise InvalidRequest(f"{kind} must be a list of 1 to {MAX_LABELS} objects with the string fields "
                             f"{' and '.join(columns)}")
    frame = pd.DataFrame([{c: r[c] for c in columns} for r in rows])
    recommender = use(current_serving().recommender())
    if kind == "examples":
        found = label_from_examples(recommender.bundle, frame)
    else:
        found = label_from_prompts(recommender.bundle, frame, recommender.embedder.embed_queries)
    items = [{"item_id": r.item_id, "label": r.label, "confidence": float(r.confidence)}
             for r in found.items.itertuples()]
    confident = found.items.sort_values("confidence", ascending=False, kind="stable").groupby("label").head(8)
    return json_response({"version": found.version, "method": found.method, "items": items,
                          "catalog": catalog_rows(confident["item_id"])})
