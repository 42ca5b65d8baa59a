"""The curation admin reads through the Flask test client over the real-photo shop with injected
re-uploads (``faulty``) published to a real Redis."""
from __future__ import annotations

import pytest

from tests.api.conftest import WRITE
from tests.api.test_routes import assert_error

pytestmark = pytest.mark.slow  # end to end over real photos: `make check` leaves it out; the library and CLI tests stay


READS = ["/v1/admin/duplicates", "/v1/admin/outliers?top=5", "/v1/admin/clusters?k=4",
         "/v1/admin/subset?n=10&balance=category"]


@pytest.mark.parametrize("path", READS)
def test_admin_reads_need_the_api_key(faulty_client, faulty_shop, path):
    assert_error(faulty_client.get(path), 401, "unauthorized", "API key")
    assert_error(faulty_client.get(path, headers={"X-API-Key": "wrong"}), 401, "unauthorized", "not valid")
    ok = faulty_client.get(path, headers=WRITE)
    assert ok.status_code == 200, ok.json
    assert ok.json["version"] == ok.headers["X-Recsys-Version"] == faulty_shop.version


def test_admin_reads_answer_what_the_cli_prints(faulty_client, faulty_shop):
    outliers = faulty_client.get("/v1/admin/outliers?top=5", headers=WRITE).json
    assert len(outliers["items"]) == 5
    assert set(outliers["items"][0]) == {"item_id", "score", "reasons", "suggested_category"}
    assert set(outliers["catalog"]) == {item["item_id"] for item in outliers["items"]}
    scores = [item["score"] for item in outliers["items"]]
    assert scores == sorted(scores, reverse=True)

    clusters = faulty_client.get("/v1/admin/clusters?k=4&map=true", headers=WRITE).json
    assert len(clusters["clusters"]) == 4
    assert sum(c["size"] for c in clusters["clusters"]) == len(clusters["map"]) == int(faulty_shop.vectors.mask.sum())
    assert {p["cluster"] for p in clusters["map"]} == {0, 1, 2, 3}

    categories = set(faulty_shop.items["category"])
    subset = faulty_client.get(f"/v1/admin/subset?n={len(categories) + 3}&balance=category", headers=WRITE).json
    chosen = faulty_shop.items.set_index("item_id").loc[subset["items"], "category"]
    assert len(subset["items"]) == len(categories) + 3 and set(chosen) == categories
    assert subset["radius"] > 0 and set(subset["catalog"]) == set(subset["items"])


def test_labels_from_examples_and_prompts(faulty_client, faulty_shop):
    items = faulty_shop.items
    top = items["category"].str.split("/").str[0]
    examples = [{"label": label, "item_id": str(item_id)}
                for label, group in items.groupby(top) for item_id in group["item_id"].head(3)]
    body = faulty_client.post("/v1/admin/labels", json={"examples": examples}, headers=WRITE).json
    assert body["method"] == "examples" and len(body["items"]) == len(items) - len(examples)
    truth = dict(zip(items["item_id"].astype(str), top))
    accuracy = sum(truth[i["item_id"]] == i["label"] for i in body["items"]) / len(body["items"])
    assert accuracy >= 0.8, accuracy

    prompts = [{"label": "shoes", "text": "a pair of shoes"}, {"label": "watch", "text": "a wrist watch"}]
    body = faulty_client.post("/v1/admin/labels", json={"prompts": prompts}, headers=WRITE).json
    assert body["method"] == "prompts" and len(body["items"]) == len(items)
    assert {i["label"] for i in body["items"]} == {"shoes", "watch"}


def test_duplicates_are_the_groups_the_bundle_keeps(faulty_client, faulty_shop):
    body = faulty_client.get("/v1/admin/duplicates", headers=WRITE).json
    assert body["threshold"] == faulty_shop.manifest["duplicates"]["threshold"] and len(body["groups"]) >= 10
    kept = faulty_shop.duplicate_of
    for group in body["groups"]:
        assert set(kept[faulty_shop.item_ids.rows(group)]) == {faulty_shop.item_ids.row(group[0])}
    assert set(body["catalog"]) == {i for group in body["groups"] for i in group}


@pytest.mark.parametrize("body, text", [
    ({}, "send {\"examples\""),
    ({"examples": [], "prompts": []}, "send {\"examples\""),
    ({"examples": [{"label": "a"}]}, "string fields label and item_id"),
    ({"examples": [{"label": "a", "item_id": "no-such-item"}, {"label": "b", "item_id": "nope"}]}, "not in bundle"),
    ({"prompts": [{"label": "a", "text": "x"}]}, "at least two labels"),
])
def test_bad_label_requests_are_400(faulty_client, faulty_shop, body, text):
    assert_error(faulty_client.post("/v1/admin/labels", json=body, headers=WRITE), 400, "invalid_request", text)
    assert_error(faulty_client.post("/v1/admin/labels", json=body), 401, "unauthorized")


@pytest.mark.parametrize("path, text", [
    ("/v1/admin/duplicates?threshold=2", "threshold must be a number from 0 to 1"),
    ("/v1/admin/clusters?k=1", "k must be between 2"),
    ("/v1/admin/clusters?modality=sound", "unknown modality"),
    ("/v1/admin/subset?n=0", "n must be an integer"),
    ("/v1/admin/subset?n=5&balance=nope", "no such column"),
    ("/v1/admin/outliers?top=-1", "top must be an integer"),
    ("/v1/admin/outliers?bogus=1", "unknown query parameter"),
])
def test_bad_admin_queries_are_400(faulty_client, faulty_shop, path, text):
    assert_error(faulty_client.get(path, headers=WRITE), 400, "invalid_request", text)
