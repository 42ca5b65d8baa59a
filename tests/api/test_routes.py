"""Every endpoint through the Flask test client, over a real Redis (embedded and 127.0.0.1:6379)."""
from __future__ import annotations

import base64
import io
import re
import time

import numpy as np
import orjson
import pytest
from PIL import Image

from recsys.api.openapi import document
from recsys.worker import Answer
from tests.api.conftest import API_KEY, WRITE, bundle_copy


def ids_of(response) -> list[str]:
    return [row["item_id"] for row in response.json["items"]]


def same_answer(*bodies: bytes) -> bool:
    """Whether response bodies hold the same answer: equal but for each read's own request_id."""
    return len({re.sub(rb'"request_id":"[^"]*"', b'"request_id":""', body) for body in bodies}) == 1


def assert_error(response, status: int, code: str, text: str = "") -> None:
    assert response.status_code == status, response.data
    body = response.json
    assert body["error"]["code"] == code
    assert text in body["error"]["message"]
    assert "Traceback" not in response.get_data(as_text=True)


def first_items(bundle, n=3):
    return [str(i) for i in bundle.item_ids.ids[:n]]


# -- reads --------------------------------------------------------------------------------------


def test_similar_items_carry_the_version_and_honour_k_and_filters(client, served_bundle):
    item = first_items(served_bundle)[0]
    r = client.get(f"/v1/items/{item}/similar?k=7")
    assert r.status_code == 200
    assert r.json["version"] == r.headers["X-Recsys-Version"] == served_bundle.version
    assert len(r.json["items"]) == 7 and item not in ids_of(r)
    assert {"item_id", "score", "title", "category", "price"} <= set(r.json["items"][0])
    category = served_bundle.items["category"].iloc[0].split("/")[0]
    r = client.get(f"/v1/items/{item}/similar?k=20&category={category}&max_price=100")
    assert all(row["category"].startswith(category) and row["price"] <= 100 for row in r.json["items"])
    excluded = ids_of(client.get(f"/v1/items/{item}/similar?k=2"))
    r = client.get(f"/v1/items/{item}/similar?k=5&exclude={','.join(excluded)}")
    assert not set(excluded) & set(ids_of(r))
    r = client.get(f"/v1/items/{item}/similar?k=5&weights=tabular:1")
    assert r.json["weights"] == {"tabular": 1.0}


def test_a_repeated_query_is_served_from_the_caches(client, app, served_bundle, tmp_path, redis_url,
                                                    redis_prefix):
    from recsys.api import create_app
    from tests.api.conftest import api_settings

    item = first_items(served_bundle)[1]
    path = f"/v1/items/{item}/similar?k=150&weights=text:2,tabular:1"  # more than listed: computed
    first = client.get(path)
    second = client.get(path)  # this worker's own copy
    other = create_app(api_settings(tmp_path / "other", redis_url, redis_prefix))  # another worker
    third = other.test_client().get(path)  # the shared Redis copy
    other.extensions["recsys"].stop()
    assert same_answer(first.data, second.data, third.data)
    text = client.get("/metrics").get_data(as_text=True)
    assert 'recsys_cache_total{endpoint="similar",result="miss"} 1.0' in text
    assert 'recsys_cache_total{endpoint="similar",result="local"} 1.0' in text
    text = other.test_client().get("/metrics").get_data(as_text=True)
    assert 'recsys_cache_total{endpoint="similar",result="hit"} 1.0' in text


def test_precomputed_answers_skip_the_redis_cache(client, serving, served_bundle):
    item, user = first_items(served_bundle)[2], str(served_bundle.collab.user_ids.ids[7])
    similar = client.get(f"/v1/items/{item}/similar?k=8")
    feed = client.get(f"/v1/users/{user}/recommendations?k=8")  # not an active user: no recent items
    again = client.get(f"/v1/users/{user}/recommendations?k=9")
    rec = serving.recommender()
    assert ids_of(similar) == [s.item_id for s in rec.similar_items(item, k=8)]
    assert ids_of(feed) == [s.item_id for s in rec.recommend(user, k=8).items]
    assert ids_of(again)[:8] == ids_of(feed)
    text = client.get("/metrics").get_data(as_text=True)
    assert 'recsys_cache_total{endpoint="similar",result="lookup"} 1.0' in text
    assert 'recsys_cache_total{endpoint="feed",result="lookup"} 2.0' in text
    keys = serving.store.keys
    assert not serving.client.exists(keys.result("item", item))  # nothing worth storing
    assert not serving.client.exists(keys.result("user", user))
    # a user with recent activity is folded in: the post made the user's list, which is kept
    client.post("/v1/interactions", json={"user_id": user, "item_id": item}, headers=WRITE)
    r = client.get(f"/v1/users/{user}/recommendations?k=8")
    assert r.json["recent"] == 1 and item not in ids_of(r)
    assert ids_of(r) == [s.item_id for s in rec.recommend(user, k=8, recent_items=[item]).items]
    assert not serving.client.exists(keys.result("user", user))
    # other k are lookups in that list; so are per-request weights (modality lists)
    shorter = client.get(f"/v1/users/{user}/recommendations?k=5")
    weighted = client.get(f"/v1/items/{item}/similar?k=6&weights=text:1,tabular:3")
    assert ids_of(shorter) == ids_of(r)[:5]
    assert ids_of(weighted) == [s.item_id for s in rec.similar_items(item, k=6, weights={"text": 1, "tabular": 3})]
    text = client.get("/metrics").get_data(as_text=True)
    assert 'recsys_cache_total{endpoint="feed",result="lookup"} 4.0' in text
    assert 'recsys_cache_total{endpoint="similar",result="lookup"} 2.0' in text
    assert 'result="list"' not in text
    assert 'result="miss"' not in text
    assert not serving.client.exists(keys.result("item", item))


@pytest.mark.parametrize("query, code, text", [
    ("k=0", "invalid_request", "k must be an integer from 1 to 1000"),
    ("k=1001", "invalid_request", "k must be"),
    ("k=ten", "invalid_request", "k must be"),
    ("k=%2B5", "invalid_request", "k must be"),  # +5
    ("k=%205", "invalid_request", "k must be"),  # " 5"
    ("k=%D9%A3", "invalid_request", "k must be"),  # Arabic-Indic three
    ("weights=smell:1", "invalid_request", "unknown modality 'smell'"),
    ("weights=text:-1", "invalid_request", "finite number >= 0"),
    ("weights=text:0", "invalid_request", "positive sum"),
    ("weights=text", "invalid_request", "weights must look like"),
    ("min_price=-3", "invalid_request", "min_price"),
    ("min_price=9&max_price=1", "invalid_request", "above max_price"),
    ("kk=5", "invalid_request", "unknown query parameter(s) kk"),
    ("k=1&k=2", "invalid_request", "more than once"),
])
def test_bad_similar_queries_are_400_with_a_message(client, served_bundle, query, code, text):
    item = first_items(served_bundle)[0]
    assert_error(client.get(f"/v1/items/{item}/similar?{query}"), 400, code, text)


def test_bad_ids_and_routes(client):
    assert_error(client.get("/v1/items/NO-SUCH-ITEM/similar"), 404, "not_found", "unknown item_id")
    assert_error(client.get("/v1/items/" + "x" * 201 + "/similar"), 400, "invalid_request", "1 to 200")
    assert_error(client.get("/v1/items/a%09b/similar"), 400, "invalid_request", "control characters")
    assert_error(client.get("/v1/items/%20a/similar"), 400, "invalid_request", "space")
    # a final newline too (a regular expression's $ alone lets one through)
    assert_error(client.get("/v1/items/a%0A/similar"), 400, "invalid_request", "control characters")
    assert_error(client.get("/v1/users/a%0A/recommendations"), 400, "invalid_request", "control characters")
    assert_error(client.get("/v1/nothing"), 404, "not_found", "openapi.json")
    r = client.post("/v1/items/x/similar")
    assert_error(r, 405, "method_not_allowed")
    assert "GET" in r.headers["Allow"]


def test_a_known_user_gets_a_collaborative_feed(client, served_bundle):
    user = str(served_bundle.collab.user_ids.ids[0])
    r = client.get(f"/v1/users/{user}/recommendations?k=12")
    assert r.status_code == 200 and r.json["strategy"] == "collaborative"
    assert len(r.json["items"]) == 12 and "cold" in r.json["items"][0]
    seen = set(served_bundle.collab.user_items.history(0)[0].tolist())
    rows = {served_bundle.item_ids.row(i) for i in ids_of(r)}
    assert not rows & seen
    assert_error(client.get(f"/v1/users/{user}/recommendations?exclude_seen=maybe"), 400,
                 "invalid_request", "exclude_seen must be true or false")


def test_an_interaction_reaches_the_next_feed(client, served_bundle):
    item = first_items(served_bundle, 5)[4]
    r = client.get("/v1/users/visitor-1/recommendations?k=5")
    assert r.json["strategy"] == "popular" and "unknown user_id" in r.json["message"]
    popular = ids_of(r)
    posted = client.post("/v1/interactions", json={"user_id": "visitor-1", "item_id": item}, headers=WRITE)
    assert posted.status_code == 202 and posted.json["accepted"] == 1
    r = client.get("/v1/users/visitor-1/recommendations?k=5")
    assert r.json["strategy"] == "fold-in" and r.json["recent"] == 1
    assert item not in ids_of(r)  # seen items are left out
    vectors, rows = served_bundle.vectors.combined, served_bundle.item_ids

    def closeness(ids):  # mean cosine to the clicked item
        return float(np.mean(vectors[rows.rows(ids)] @ vectors[rows.row(item)]))

    # the click moved the feed off the popular list, towards the clicked item (how far is the
    # shop's content weight: here the collaborative factors of one click weigh in too)
    assert ids_of(r) != popular and closeness(ids_of(r)) > closeness(popular), r.json


def test_anonymous_session_feed(client, served_bundle):
    recent = first_items(served_bundle, 3)
    r = client.post("/v1/recommendations", json={"recent_items": recent, "k": 6})
    assert r.status_code == 200 and r.json["strategy"] == "fold-in"
    assert len(r.json["items"]) == 6 and not set(recent) & set(ids_of(r))
    r = client.post("/v1/recommendations", json={"k": 3})
    assert r.json["strategy"] == "popular"
    assert_error(client.post("/v1/recommendations", json={"recent_items": ["NOPE"]}), 400,
                 "invalid_request", "unknown item_id 'NOPE'")
    assert_error(client.post("/v1/recommendations", json={"k": "many"}), 400, "invalid_request", "k:")
    assert_error(client.post("/v1/recommendations", json={"colour": "red"}), 400, "invalid_request",
                 "colour: unknown field; the fields are category, min_price, max_price, exclude, rules, diversity")
    assert_error(client.post("/v1/recommendations", json={"recent": recent}), 400, "invalid_request",
                 "recent: unknown field (did you mean 'recent_items'?)")
    assert_error(client.post("/v1/recommendations", data="{", content_type="application/json"), 400,
                 "invalid_request", "not valid JSON")
    assert_error(client.post("/v1/recommendations", data="k=3"), 400, "invalid_request", "Content-Type")


# -- writes -------------------------------------------------------------------------------------


def test_writes_need_the_api_key(client, served_bundle):
    event = {"user_id": "u", "item_id": first_items(served_bundle)[0]}
    r = client.post("/v1/interactions", json=event)
    assert_error(r, 401, "unauthorized", "Authorization: Bearer")
    assert r.headers["WWW-Authenticate"].startswith("Bearer")
    assert_error(client.post("/v1/interactions", json=event, headers={"X-API-Key": "wrong"}), 401,
                 "unauthorized", "not valid")
    assert client.post("/v1/interactions", json=event,
                       headers={"Authorization": f"Bearer {API_KEY}"}).status_code == 202
    assert_error(client.put("/v1/items/x", json={"title": "t"}), 401, "unauthorized")
    assert_error(client.delete("/v1/items/x"), 401, "unauthorized")


def test_without_a_configured_key_writes_are_disabled(tmp_path, redis_url, redis_prefix, served_bundle):
    from recsys.api import create_app
    from tests.api.conftest import api_settings
    from tests.api.live import publish

    publish(redis_url, served_bundle.path, redis_prefix)
    app = create_app(api_settings(tmp_path, redis_url, redis_prefix, api_key=None, cors_origins=["https://shop.example"]))
    client = app.test_client()
    assert_error(client.post("/v1/interactions", json={}, headers=WRITE), 403, "forbidden", "RECSYS_API_KEY")
    r = client.get(f"/v1/items/{first_items(served_bundle)[0]}/similar", headers={"Origin": "https://shop.example"})
    assert r.headers["Access-Control-Allow-Origin"] == "https://shop.example"
    r = client.get(f"/v1/items/{first_items(served_bundle)[0]}/similar", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in r.headers
    app.extensions["recsys"].stop()


def test_interaction_bodies_and_limits(client, serving, served_bundle):
    items = first_items(served_bundle, 3)
    one = {"user_id": "u1", "item_id": items[0], "event": "purchase", "value": 2}
    assert client.post("/v1/interactions", json=one, headers=WRITE).json["accepted"] == 1
    assert client.post("/v1/interactions", json=[one, one], headers=WRITE).json["accepted"] == 2
    assert client.post("/v1/interactions", json={"events": [one] * 3}, headers=WRITE).json["accepted"] == 3
    assert serving.activity.log_length() == 6
    assert_error(client.post("/v1/interactions", json={**one, "event": "like"}, headers=WRITE), 400,
                 "invalid_request", "unknown event 'like'")
    assert_error(client.post("/v1/interactions", json={**one, "item_id": "NOPE"}, headers=WRITE), 400,
                 "invalid_request", "unknown item_id(s) 'NOPE'; no event was stored")
    assert_error(client.post("/v1/interactions", json={**one, "user_id": ""}, headers=WRITE), 400,
                 "invalid_request", "user_id")
    assert_error(client.post("/v1/interactions", json=[one] * 1001, headers=WRITE), 400,
                 "invalid_request", "at most 1000 events")
    assert_error(client.post("/v1/interactions", json=[], headers=WRITE), 400, "invalid_request", "events")
    misspelt = {"userid": "u1", "item_id": items[0]}  # a field of the events in the list
    assert_error(client.post("/v1/interactions", json=[misspelt], headers=WRITE), 400, "invalid_request",
                 "events.0.userid: unknown field (did you mean 'user_id'?); the fields are user_id, item_id")
    # what the trainer would refuse is refused here, so one event can never block training
    for bad, why in [({"user_id": "u\u00a0"}, "non-printable"), ({"user_id": "u\u200b1"}, "non-printable"),
                     ({"item_id": items[0] + "\u200f"}, "non-printable"),
                     ({"timestamp": 1.7e12}, "looks like milliseconds"), ({"timestamp": 1e10}, "between 1970"),
                     ({"timestamp": -1e300}, "between 1970")]:
        assert_error(client.post("/v1/interactions", json={**one, **bad}, headers=WRITE), 400,
                     "invalid_request", why)
    deep = client.post("/v1/interactions", data="[" * 100_000, content_type="application/json", headers=WRITE)
    assert_error(deep, 400, "invalid_request", "not valid JSON (depth limit exceeded")
    chunked = client.post("/v1/interactions", input_stream=io.BytesIO(b'{"pad": "' + b"x" * (2 << 20) + b'"}'),
                          content_type="application/json", headers={**WRITE, "Transfer-Encoding": "chunked"},
                          environ_overrides={"wsgi.input_terminated": True})  # as gunicorn sets it
    assert_error(chunked, 413, "request_entity_too_large")
    big = {**one, "user_id": "u" * 150, "pad": "x" * (1 << 20)}
    assert_error(client.post("/v1/interactions", json=big, headers=WRITE), 413, "request_entity_too_large")
    assert serving.activity.log_length() == 6  # nothing from a refused request was stored


def test_a_retried_post_with_the_same_idempotency_key_is_stored_once(client, serving, served_bundle):
    item = first_items(served_bundle)[0]
    events = [{"user_id": f"retry-{i}", "item_id": item, "event": "view"} for i in range(3)]
    before = serving.activity.log_length()
    first = client.post("/v1/interactions", json=events, headers={**WRITE, "Idempotency-Key": "order-77"})
    again = client.post("/v1/interactions", json=events, headers={**WRITE, "Idempotency-Key": "order-77"})
    assert first.status_code == again.status_code == 202
    assert first.json["duplicate"] is False and again.json["duplicate"] is True
    assert again.json["ids"] == first.json["ids"] and len(first.json["ids"]) == 3
    assert serving.activity.log_length() == before + 3
    other = client.post("/v1/interactions", json=events, headers={**WRITE, "Idempotency-Key": "order-78"})
    assert other.json["duplicate"] is False and serving.activity.log_length() == before + 6
    assert_error(client.post("/v1/interactions", json=events, headers={**WRITE, "Idempotency-Key": "a\u200bb"}),
                 400, "invalid_request", "Idempotency-Key")


@pytest.mark.slow  # waits out a paused Redis
def test_a_slow_redis_answers_503_that_does_not_claim_nothing_was_stored(client, serving, served_bundle,
                                                                         redis_url):
    """Redis paused (slow, not down) past the client's timeout: the post may still be stored
    when Redis resumes, so the answer says so, and a retry with the key stores nothing twice."""
    from recsys.store import connect

    item = first_items(served_bundle)[0]
    event = {"user_id": "slow-1", "item_id": item, "event": "view"}
    admin = connect(redis_url)
    timeout = serving.settings.redis.socket_timeout
    admin.execute_command("CLIENT", "PAUSE", int((timeout + 1) * 1000), "WRITE")
    slow = client.post("/v1/interactions", json=event, headers={**WRITE, "Idempotency-Key": "slow-77"})
    assert_error(slow, 503, "unavailable", "may or may not have been stored")
    time.sleep(timeout + 1.2)  # the pause ends: the first transaction runs, or was dropped with its client
    deadline = time.monotonic() + 10
    while serving.breaker.open and time.monotonic() < deadline:
        time.sleep(0.1)
    retry = client.post("/v1/interactions", json=event, headers={**WRITE, "Idempotency-Key": "slow-77"})
    assert retry.status_code == 202
    logged = [fields for _, fields in serving.activity.read_log() if fields["user_id"] == "slow-1"]
    assert len(logged) == 1  # stored exactly once, whichever way the first attempt ended


@pytest.mark.slow  # embeds a photo and a text: about 2 seconds
def test_a_put_item_is_findable_at_once_and_a_deleted_one_disappears(client, served_bundle):
    items = served_bundle.items
    source = items.iloc[10]
    twin = {k: (None if v != v else v) for k, v in source[["title", "description", "tags", "colour",
                                                           "price", "category"]].items()}
    r = client.put("/v1/items/NEW-TWIN", json=twin, headers=WRITE)
    assert r.status_code == 201 and r.json["created"] and r.json["item"]["fresh"]
    assert set(r.json["modalities"]) == {"text", "tabular"}
    r = client.get(f"/v1/items/{source['item_id']}/similar?k=5")
    assert ids_of(r)[0] == "NEW-TWIN" and r.json["items"][0]["score"] > 0.99
    r = client.get("/v1/items/NEW-TWIN/similar?k=5")
    assert ids_of(r)[0] == source["item_id"]
    assert client.get("/v1/items/NEW-TWIN").json["item"]["title"] == twin["title"]
    r = client.put("/v1/items/NEW-TWIN", json={**twin, "price": 1.0}, headers=WRITE)
    assert r.status_code == 200 and not r.json["created"] and r.json["item"]["price"] == 1.0
    # a put item places a new user who bought it, by the content map the training kept
    event = {"user_id": "U-FRESH", "item_id": "NEW-TWIN", "event": "purchase"}
    assert client.post("/v1/interactions", json=event, headers=WRITE).status_code == 202
    r = client.get("/v1/users/U-FRESH/recommendations?k=3")
    assert r.json["strategy"] == "fold-in" and "placed by the recent items given" in r.json["message"]
    assert "NEW-TWIN" not in ids_of(r) and len(ids_of(r)) == 3

    neighbour = ids_of(client.get(f"/v1/items/{source['item_id']}/similar?k=5"))[1]
    assert client.delete(f"/v1/items/{neighbour}", headers=WRITE).json["deleted"]
    assert neighbour not in ids_of(client.get(f"/v1/items/{source['item_id']}/similar?k=50"))
    assert_error(client.get(f"/v1/items/{neighbour}"), 404, "not_found", "was deleted")
    assert_error(client.get(f"/v1/items/{neighbour}/similar"), 404, "not_found", "was deleted")
    user = str(served_bundle.collab.user_ids.ids[3])
    feed = ids_of(client.get(f"/v1/users/{user}/recommendations?k=1"))
    client.delete(f"/v1/items/{feed[0]}", headers=WRITE)
    assert feed[0] not in ids_of(client.get(f"/v1/users/{user}/recommendations?k=50"))
    assert_error(client.delete("/v1/items/NEVER-WAS", headers=WRITE), 404, "not_found")


def test_bad_items_are_refused(client):
    assert_error(client.put("/v1/items/x", json={"image": "/etc/passwd"}, headers=WRITE), 400,
                 "invalid_request", "image must be an http(s) URL")
    assert_error(client.put("/v1/items/x", json={"price": -1}, headers=WRITE), 400, "invalid_request", "price")
    assert_error(client.put("/v1/items/x", json={}, headers=WRITE), 400, "invalid_request", "nothing to embed")
    assert_error(client.put("/v1/items/x", json={"title": "t", "size": 9}, headers=WRITE), 400,
                 "invalid_request", "size: unknown field; the fields are title, description, tags, image")
    assert_error(client.put("/v1/items/x", json={"titel": "t"}, headers=WRITE), 400,
                 "invalid_request", "titel: unknown field (did you mean 'title'?)")


# -- operations ---------------------------------------------------------------------------------


def test_health_ready_metrics(client, served_bundle):
    assert client.get("/healthz").json == {"status": "ok", "version": served_bundle.version}
    r = client.get("/readyz")
    assert r.status_code == 200 and r.json["status"] == "ready" and r.json["reasons"] == []
    text = client.get("/metrics").get_data(as_text=True)
    for name in ("recsys_request_seconds_bucket", "recsys_bundle_info", "recsys_fresh_items",
                 "recsys_redis_up", "recsys_cache_total"):
        assert name in text
    assert f'recsys_bundle_info{{version="{served_bundle.version}"}} 1.0' in text


def test_the_openapi_document_matches_the_routes(app, client):
    doc = client.get("/openapi.json").json
    assert doc == document()
    documented = {(method.upper(), path) for path, ops in doc["paths"].items() for method in ops}
    served = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static" or rule.endpoint.startswith("web."):
            continue  # the demo page is not part of the API
        path = rule.rule.replace("<", "{").replace(">", "}")
        served |= {(m, path) for m in rule.methods - {"HEAD", "OPTIONS"}}
    assert documented == served


def test_a_bad_published_bundle_is_refused_and_the_old_one_keeps_serving(client, serving, served_bundle,
                                                                          tmp_path):
    # the same files under another version name, published, then damaged inside Redis
    copy = bundle_copy(served_bundle, tmp_path, "29990101T000000Z")
    serving.store.publish(copy, activate=False)
    key = serving.store.keys.file(copy.name, "vectors/combined.npy")
    serving.store.client.lset(key, 0, b"x" + serving.store.client.lindex(key, 0)[1:])
    serving.store.activate(copy.name)
    serving.refresh()
    r = client.get(f"/v1/items/{first_items(served_bundle)[0]}/similar?k=3")
    assert r.status_code == 200 and r.json["version"] == served_bundle.version
    ready = client.get("/readyz").json
    assert ready["status"] == "degraded"
    assert any(copy.name in reason and "sha256" in reason for reason in ready["reasons"])


def test_a_crafted_manifest_in_redis_is_refused_and_nothing_is_written_outside_the_cache(
        client, serving, served_bundle, tmp_path):
    import hashlib
    import json

    store, manifest = serving.store, json.loads((served_bundle.path / "manifest.json").read_text())
    escape = "../../../escape/x.txt"
    crafted = {
        "29990101T000000Z": {"files": {**manifest["files"],
                                       escape: {"sha256": hashlib.sha256(b"x").hexdigest(), "bytes": 1}}},
        "29990102T000000Z": {"name": "../../escape"},
        "29990103T000000Z": {"default_weights": {"text": float("inf")}},
    }
    for version, changes in crafted.items():  # written straight into Redis: publish would refuse it
        store.client.set(store.keys.manifest(version), json.dumps({**manifest, "version": version, **changes}))
        store.client.rpush(store.keys.file(version, escape), b"x")
        store.activate(version)
        serving.refresh()
        r = client.get(f"/v1/items/{first_items(served_bundle)[0]}/similar?k=3")
        assert r.status_code == 200 and r.json["version"] == served_bundle.version
        assert version in client.get("/readyz").json["reasons"][0]
    assert not [p for p in tmp_path.rglob("*escape*")]


# -- the shop's reads: catalog pages, search, images, the page itself ---------------------------


def test_the_catalog_is_listed_page_by_page(client, served_bundle):
    r = client.get("/v1/items?limit=5&offset=10")
    assert r.status_code == 200 and r.json["total"] == len(served_bundle.item_ids)
    assert ids_of(r) == [str(i) for i in served_bundle.item_ids.ids[10:15]]
    assert {"title", "category", "price", "image"} <= set(r.json["items"][0])
    category = served_bundle.items["category"].iloc[0].split("/")[0]
    r = client.get(f"/v1/items?category={category}&limit=1000")
    assert r.json["total"] == served_bundle.items["category"].str.split("/").str[0].eq(category).sum()
    assert all(row["category"].startswith(category) for row in r.json["items"])
    assert_error(client.get("/v1/items?limit=0"), 400, "invalid_request", "limit must be an integer")
    assert_error(client.get("/v1/items?offset=-1"), 400, "invalid_request", "offset")


def test_an_empty_result_says_when_its_category_is_none_of_the_shops(client, served_bundle):
    """A misspelt category gets an empty list with a message naming the categories there are; a
    category that only an item put since the bundle has is known."""
    item, user = first_items(served_bundle)[0], str(served_bundle.collab.user_ids.ids[0])
    tops = sorted(served_bundle.items["category"].str.split("/").str[0].unique())
    typo = tops[0][:-1] + "x"
    reads = [f"/v1/items/{item}/similar?k=5&category=", f"/v1/users/{user}/recommendations?k=5&category=",
             "/v1/items?category=", "/v1/search?q=red&category="]
    for path in reads:
        r = client.get(path + typo)
        assert r.status_code == 200 and r.json["items"] == [], path
        assert r.json["message"] == (f"no item is in category {typo!r}; the top-level categories are "
                                     f"{', '.join(tops)}"), path
        r = client.get(path + tops[0])
        assert r.json["items"] and r.json.get("message") is None, path
    r = client.post("/v1/recommendations", json={"recent_items": [item], "category": typo.upper()})
    assert r.json["items"] == [] and f"no item is in category {typo!r}" in r.json["message"]
    assert client.put("/v1/items/NEW-KIND", json={"title": "a new kind", "category": f"{typo}/new"},
                      headers=WRITE).status_code == 201
    r = client.get(f"/v1/items?category={typo}")
    assert ids_of(r) == ["NEW-KIND"] and "message" not in r.json
    r = client.get(f"/v1/search?q=red&category={typo}/other")  # the longest part that exists, and under it
    assert r.json["items"] == [] and r.json["message"].endswith(f"under {typo!r} there are new")


def test_search_finds_items_by_their_text(client, served_bundle):
    items = served_bundle.items
    colour = items["colour"].replace("", None).dropna().iloc[0]
    r = client.get(f"/v1/search?q={colour}&k=10")
    assert r.status_code == 200 and r.json["q"] == colour and len(r.json["items"]) == 10
    found = items.set_index("item_id").loc[ids_of(r)]
    assert (found["colour"] == colour).mean() >= 0.7, found[["title", "colour"]]
    scores = [row["score"] for row in r.json["items"]]
    assert scores == sorted(scores, reverse=True)
    assert_error(client.get("/v1/search"), 400, "invalid_request", "give q")
    assert_error(client.get("/v1/search?q=" + "x" * 501), 400, "invalid_request", "at most 500")
    # this shop has no photos, so no joint space: text is the default, and photos cannot be asked
    assert r.json["mode"] == "text"
    assert_error(client.get(f"/v1/search?q={colour}&mode=image"), 400, "invalid_request", "no joint text-image")
    assert_error(client.get(f"/v1/search?q={colour}&mode=sound"), 400, "invalid_request", "mode must be one of")


def test_item_images_are_served(client, served_bundle):
    item = first_items(served_bundle)[0]
    assert_error(client.get(f"/v1/items/{item}/image"), 404, "not_found", "has no image")  # no images here
    pixel = ("data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8"
             "DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg==")
    source = served_bundle.items.iloc[3]
    body = {"title": source["title"], "category": source["category"], "price": 9.5, "image": pixel}
    put = client.put("/v1/items/WITH-IMAGE", json=body, headers=WRITE)
    assert put.status_code == 201 and put.json["item"]["image"] == "/v1/items/WITH-IMAGE/image"
    r = client.get("/v1/items/WITH-IMAGE/image")  # re-encoded: the bytes sent are never the bytes put
    assert r.status_code == 200 and r.mimetype == "image/jpeg" and r.data.startswith(b"\xff\xd8")
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert Image.open(io.BytesIO(r.data)).size == (1, 1)
    row = client.get("/v1/items?limit=1000&offset=0").json
    assert_error(client.get("/v1/items/NOPE/image"), 404, "not_found")
    assert row["total"] == len(served_bundle.item_ids) + 1
    n = len(served_bundle.item_ids)  # the last page runs from the bundle's items into the put ones
    last = str(served_bundle.item_ids.ids[-1])
    assert ids_of(client.get(f"/v1/items?offset={n - 1}&limit=5")) == [last, "WITH-IMAGE"]
    assert ids_of(client.get(f"/v1/items?offset={n}&limit=5")) == ["WITH-IMAGE"]


@pytest.mark.parametrize("image, reason", [
    ("data:image/svg+xml;base64," + base64.b64encode(
        b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>').decode(), "cannot be used"),
    ("data:image/png;text/html;base64," + base64.b64encode(b"<html><script>alert(1)</script>").decode(),
     "cannot be used"),
    ("data:image/png;base64,not-base64!", "not valid base64"),
])
def test_only_raster_images_are_accepted_and_nothing_put_is_echoed(client, served_bundle, image, reason):
    r = client.put("/v1/items/XSS", json={"title": "a dress", "image": image}, headers=WRITE)
    assert_error(r, 400, "invalid_request", reason)
    assert_error(client.get("/v1/items/XSS/image"), 404, "not_found")
    policy = client.get("/v1/items?limit=1").headers["Content-Security-Policy"]
    assert policy == "default-src 'none'; frame-ancestors 'none'"


def test_the_shop_page_and_the_widget_script(client, served_bundle):
    page = client.get("/")
    assert page.status_code == 200 and page.mimetype == "text/html"
    users = ",".join(str(u) for u in served_bundle.collab.user_ids.ids[:5])
    assert f'data-users="{users}"' in page.get_data(as_text=True)
    assert client.get("/shop/static/shop.js").status_code == 200
    widget = client.get("/widget.js")
    assert widget.status_code == 200 and "data-recsys-similar" in widget.get_data(as_text=True)


def test_public_interactions_need_no_key(tmp_path, redis_url, redis_prefix, served_bundle):
    from recsys.api import create_app
    from tests.api.conftest import api_settings
    from tests.api.live import publish

    publish(redis_url, served_bundle.path, redis_prefix)
    app = create_app(api_settings(tmp_path, redis_url, redis_prefix, public_interactions=True))
    client = app.test_client()
    event = {"user_id": "visitor-x", "item_id": first_items(served_bundle)[0], "event": "click"}
    assert client.post("/v1/interactions", json=event).status_code == 202
    assert_error(client.put("/v1/items/X", json={"title": "x"}), 401, "unauthorized")  # item writes still need it
    app.extensions["recsys"].stop()


def test_a_feed_computed_before_an_interaction_is_never_served_after_it(client, serving, served_bundle):
    user = str(served_bundle.collab.user_ids.ids[9])
    path = f"/v1/users/{user}/recommendations?k=6&exclude_seen=false"  # computed and cached in Redis
    first = client.get(path)
    assert first.json["recent"] == 0
    key = serving.store.keys.result("user", user)
    [(field, stored)] = serving.client.hgetall(key).items()
    count, _, answer = stored.partition(b"\n")  # the answer, behind the activity count it was computed at
    decoded = Answer.decode(first.json["version"], answer)
    assert count == b"0" and orjson.loads(decoded.items) == first.json["items"]
    assert decoded.item_ids == ids_of(first) and len(decoded.item_ids) == 6  # what an impression logs
    event = {"user_id": user, "item_id": first_items(served_bundle)[0], "event": "click"}
    assert client.post("/v1/interactions", json=event, headers=WRITE).status_code == 202
    # a slow request that read the recent items before the post writes its feed only now
    serving.client.hset(key, field, stored)
    again = client.get(path)
    assert again.json["recent"] == 1 and again.data != first.data
