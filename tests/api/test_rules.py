"""The merchandising rules over HTTP: stored, applied to every read, explained, and refused with a
message when bad (docs/rules.md)."""
import json

from tests.api.conftest import WRITE
from tests.api.test_routes import assert_error, ids_of


def _user(served_bundle) -> str:
    return served_bundle.collab.user_ids.ids[0]


def test_a_stored_rule_shapes_every_read_and_says_why(client, served_bundle):
    item = served_bundle.item_ids.ids[0]
    plain = ids_of(client.get(f"/v1/items/{item}/similar?k=6"))
    last = served_bundle.item_ids.ids[-1]
    r = client.post("/v1/rules", json={"action": "pin", "match": {"item_ids": [last]}, "position": 1,
                                       "note": "new season"}, headers=WRITE)
    assert r.status_code == 201 and r.json["rule"]["id"] == "r1" and r.json["rule"]["matches"] == 1
    r = client.post("/v1/rules", json={"action": "exclude", "match": {"item_ids": plain[:2]}, "scope": "similar"},
                    headers=WRITE)
    assert r.status_code == 201 and r.json["rule"]["active"] is True
    shaped = client.get(f"/v1/items/{item}/similar?k=6")
    rows = shaped.json["items"]
    assert ids_of(shaped)[0] == last
    assert rows[0]["why"]["rules"][0]["text"] == "pinned at position 1 by rule r1 (new season)"
    assert not set(plain[:2]) & set(ids_of(shaped)) and len(rows) == 6
    user = _user(served_bundle)
    feed = client.get(f"/v1/users/{user}/recommendations?k=5")
    assert ids_of(feed)[0] == last  # the pin is for every read; the exclusion only for similar items
    listed = client.get("/v1/rules", headers=WRITE).json
    assert [r["id"] for r in listed["rules"]] == ["r1", "r2"] and listed["rules_version"] == 2
    assert client.delete("/v1/rules/r1", headers=WRITE).json == {"rule_id": "r1", "deleted": True}
    assert ids_of(client.get(f"/v1/items/{item}/similar?k=6"))[0] != last
    assert_error(client.delete("/v1/rules/r1", headers=WRITE), 404, "not_found", "no rule 'r1'")


def test_an_attribute_set_without_a_rebuild_is_matched_by_a_rule(client, served_bundle):
    item = served_bundle.item_ids.ids[0]
    plain = ids_of(client.get(f"/v1/items/{item}/similar?k=6"))
    assert_error(client.post("/v1/rules", json={"action": "exclude", "match": {"attributes": {"in_stock": False}}},
                             headers=WRITE), 400, "invalid_request", "unknown attribute(s) 'in_stock'")
    r = client.patch(f"/v1/items/{plain[0]}", json={"attributes": {"in_stock": False}}, headers=WRITE)
    assert r.status_code == 200 and r.json["item"]["in_stock"] is False
    r = client.post("/v1/rules", json={"action": "exclude", "match": {"attributes": {"in_stock": False}}},
                    headers=WRITE)
    assert r.status_code == 201 and r.json["rule"]["matches"] == 1
    assert plain[0] not in ids_of(client.get(f"/v1/items/{item}/similar?k=6"))
    client.patch(f"/v1/items/{plain[0]}", json={"attributes": {"in_stock": True}}, headers=WRITE)
    assert ids_of(client.get(f"/v1/items/{item}/similar?k=6")) == plain
    assert_error(client.patch("/v1/items/NOPE", json={"attributes": {"in_stock": True}}, headers=WRITE), 404,
                 "not_found")
    assert_error(client.patch(f"/v1/items/{item}", json={"attributes": {"item_id": "x"}}, headers=WRITE), 400,
                 "invalid_request", "item_id is the item's name")


def test_a_reads_own_rules_and_diversity(client, served_bundle):
    item = served_bundle.item_ids.ids[0]
    plain = ids_of(client.get(f"/v1/items/{item}/similar?k=6"))
    rules = json.dumps([{"action": "bury", "match": {"item_ids": plain[:1]}, "factor": 3.5}])
    moved = client.get(f"/v1/items/{item}/similar", query_string={"k": 6, "rules": rules})
    assert ids_of(moved).index(plain[0]) == 2 and moved.json["items"][2]["why"]["rules"][0]["action"] == "bury"
    capped = client.get(f"/v1/items/{item}/similar?k=6&max_per_category=1&diversity=0.5")
    assert capped.status_code == 200 and len(capped.json["items"]) == 6
    session = client.post("/v1/recommendations", json={"recent_items": [item], "k": 4, "rules": [
        {"action": "pin", "match": {"item_ids": [plain[-1]]}, "position": 2}]})
    assert ids_of(session)[1] == plain[-1]


def test_bad_rules_are_400s_with_a_message(client, served_bundle):
    item = served_bundle.item_ids.ids[0]
    cases = [({"action": "pin", "match": {"item_ids": ["a"]}}, "a pin needs a position"),
             ({"action": "boost", "match": {"colour": "red"}}, "match.colour: unknown field"),
             ({"action": "bury", "match": {"tag": "x"}, "start": "2026-02-01", "end": "2026-01-01"},
              "is not after start"),
             ({"action": "bury", "match": {"tag": "x"}, "start": "soon"}, "start:"),
             ({"id": "mine", "action": "bury", "match": {"tag": "x"}}, "given by the server")]
    for body, message in cases:
        assert_error(client.post("/v1/rules", json=body, headers=WRITE), 400, "invalid_request", message)
    assert client.post("/v1/rules", json={"action": "bury", "match": {"tag": "x"}}).status_code == 401
    pin = json.dumps([{"action": "pin", "match": {"item_ids": [item]}, "position": 7}])
    assert_error(client.get(f"/v1/items/{item}/similar", query_string={"k": 6, "rules": pin}), 400,
                 "invalid_request", "beyond k (6)")
    assert_error(client.get(f"/v1/items/{item}/similar?rules=nope"), 400, "invalid_request", "JSON array")
    assert_error(client.get(f"/v1/items/{item}/similar?diversity=2"), 400, "invalid_request", "from 0 to 1")
    assert_error(client.put("/v1/rules/r9", json={"action": "bury", "match": {"tag": "x"}}, headers=WRITE), 404,
                 "not_found", "POST /v1/rules creates one")


def test_a_rotated_feed_moves_what_it_showed_down_until_the_user_clicks_it(client, serving, served_bundle):
    user = served_bundle.collab.user_ids.ids[3]
    path = f"/v1/users/{user}/recommendations?k=6&rotation=down"
    first = ids_of(client.get(path))
    serving.impressions.flush()  # what the first read showed is counted (a background thread does it)
    second = ids_of(client.get(path))
    assert len(second) == 6 and set(second).isdisjoint(first)  # a fresh page: the shown items come after
    client.post("/v1/interactions", headers=WRITE, json={"user_id": user, "item_id": first[0], "event": "click"})
    serving.impressions.flush()
    out = ids_of(client.get(f"/v1/users/{user}/recommendations?k=6&rotation=out"))
    assert not set(first[1:]) & set(out)  # shown and not clicked: left out
    assert_error(client.get(f"/v1/users/{user}/recommendations?rotation=sideways"), 400, "invalid_request",
                 "rotation must be one of off, down, out")
