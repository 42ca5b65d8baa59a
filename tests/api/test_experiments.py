"""Experiments over HTTP: a stable split across requests, each variant's configuration served,
impressions and clicks logged with the read's request_id, and a report (docs/experiments.md)."""
from tests.api.conftest import WRITE, bundle_copy
from tests.api.test_routes import assert_error, ids_of


def test_an_experiment_serves_each_variant_and_reports_what_it_logged(client, served_bundle):
    pinned = served_bundle.item_ids.ids[-1]
    r = client.post("/v1/experiments", headers=WRITE, json={
        "name": "pin the new season", "variants": [
            {"name": "control"},
            {"name": "pinned", "rules": [{"action": "pin", "match": {"item_ids": [pinned]}, "position": 1}]}]})
    assert r.status_code == 201 and r.json["experiment"]["id"] == "e1"
    users = list(served_bundle.collab.user_ids.ids[:40])
    seen = {}
    for _ in range(2):
        for user in users:
            body = client.get(f"/v1/users/{user}/recommendations?k=5").json
            variant = body["experiment"]["variant"]
            assert seen.setdefault(user, variant) == variant  # stable across requests
            assert body["request_id"].endswith(f".e1.{variant}")
            assert (ids_of_body(body)[0] == pinned) == (variant == "pinned")
            if variant == "pinned" and user in users[:10]:  # a click on the pinned item, with its request id
                client.post("/v1/interactions", headers=WRITE, json={
                    "user_id": user, "item_id": pinned, "event": "click", "request_id": body["request_id"]})
    assert set(seen.values()) == {"control", "pinned"}
    report = client.get("/v1/experiments/e1/report", headers=WRITE).json
    rows = report["variants"]
    assert rows["control"]["users"] + rows["pinned"]["users"] == 40
    assert rows["pinned"]["impressions"] == 5 * 2 * rows["pinned"]["users"]
    assert rows["pinned"]["clicks"] == 2 * sum(seen[u] == "pinned" for u in users[:10])
    assert rows["control"]["clicks"] == 0
    assert rows["pinned"]["ctr_vs_control"]["value"] > 0 and report["srm"]["p_value"] is not None
    similar = client.get(f"/v1/items/{pinned}/similar?k=3&user_id={users[0]}").json
    assert "experiment" not in similar and similar["request_id"]  # the experiment takes feeds only
    stopped = client.post("/v1/experiments/e1/stop", headers=WRITE).json["experiment"]
    assert stopped["status"] == "stopped" and stopped["stopped"]
    assert "experiment" not in client.get(f"/v1/users/{users[0]}/recommendations?k=5").json


def ids_of_body(body) -> list[str]:
    return [row["item_id"] for row in body["items"]]


def test_bad_experiments_are_400s_and_one_read_goes_to_one_experiment(client, served_bundle):
    assert_error(client.post("/v1/experiments", headers=WRITE, json={"name": "x", "variants": [{"name": "a"}]}),
                 400, "invalid_request", "at least 2")
    assert_error(client.post("/v1/experiments", headers=WRITE, json={
        "name": "x", "variants": [{"name": "a"}, {"name": "b", "colour": 1}]}), 400, "invalid_request", "colour")
    two = {"name": "x", "variants": [{"name": "a"}, {"name": "b"}], "target": "all"}
    assert client.post("/v1/experiments", headers=WRITE, json=two).status_code == 201
    assert_error(client.post("/v1/experiments", headers=WRITE, json={**two, "target": "feeds"}), 400,
                 "invalid_request", "already takes all reads")
    assert client.post("/v1/experiments", json=two).status_code == 401
    assert_error(client.get("/v1/experiments/e9/report", headers=WRITE), 404, "not_found", "no experiment 'e9'")
    assert [e["id"] for e in client.get("/v1/experiments", headers=WRITE).json["experiments"]] == ["e1"]
    user = served_bundle.collab.user_ids.ids[0]
    feed = client.get(f"/v1/users/{user}/recommendations?k=5").json
    assert feed["experiment"]["id"] == "e1" and ids_of(client.get(
        f"/v1/items/{served_bundle.item_ids.ids[0]}/similar?k=3&user_id={user}")) != []


def test_a_variant_adds_its_configuration_to_the_reads_own():
    from recsys.control import Rule, Shaping
    from recsys.control.experiments import Variant
    from recsys.serve import FeedQuery, SimilarQuery
    from recsys.worker.experiments import _configured

    pin = Rule.model_validate({"action": "pin", "match": {"item_ids": ["A"]}, "position": 1})
    bury = Rule.model_validate({"action": "bury", "match": {"item_ids": ["B"]}})
    variant = Variant.model_validate({"name": "v", "rules": [pin.model_dump()], "diversity": 0.3, "rank": False,
                                      "weights": {"image": 1.0}})
    feed = _configured(FeedQuery("u", shaping=Shaping(rules=(bury,), max_per_category=2, rotation="down")), variant)
    assert feed.shaping == Shaping(rules=(pin, bury), diversity=0.3, max_per_category=2, rotation="down")
    assert feed.rank is False
    assert _configured(SimilarQuery("i"), variant).weights == {"image": 1.0}
    assert _configured(SimilarQuery("i", weights={"text": 1.0}), variant).weights == {"text": 1.0}  # the read's win
    plain = FeedQuery("u")
    assert _configured(plain, Variant(name="same")) is plain


def test_a_variant_served_from_another_bundle(client, serving, served_bundle, tmp_path):
    assert_error(client.post("/v1/experiments", headers=WRITE, json={
        "name": "next", "variants": [{"name": "a"}, {"name": "b", "bundle": "29990101T000000Z"}]}),
        400, "invalid_request", "'29990101T000000Z' is not published")
    serving.store.publish(bundle_copy(served_bundle, tmp_path, "29990101T000000Z"), activate=False)
    r = client.post("/v1/experiments", headers=WRITE, json={
        "name": "next", "variants": [{"name": "now"}, {"name": "next", "bundle": "29990101T000000Z"}]})
    assert r.status_code == 201
    serving.refresh()  # as the worker's follower thread does on the experiment's message
    assert set(serving.variant_bundles) == {"29990101T000000Z"}
    assert serving.store.prune(keep=1) == []  # a running variant's bundle is kept
    users = list(served_bundle.collab.user_ids.ids[:30])
    item = served_bundle.item_ids.ids[0]
    versions = {"now": served_bundle.version, "next": "29990101T000000Z"}
    for user in users:
        for body in (client.get(f"/v1/users/{user}/recommendations?k=5").json,
                     client.post("/v1/recommendations", json={"recent_items": [item], "session_id": user}).json):
            assert body["version"] == versions[body["experiment"]["variant"]]
    answered = {client.get(f"/v1/users/{u}/recommendations?k=5").headers["X-Recsys-Version"] for u in users}
    assert answered == set(versions.values())
    client.post("/v1/experiments/e1/stop", headers=WRITE)
    serving.refresh()
    assert serving.variant_bundles == {}
    assert {client.get(f"/v1/users/{u}/recommendations?k=5").json["version"] for u in users} == {served_bundle.version}
