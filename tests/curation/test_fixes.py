"""Fixes a reviewer applies from the review queue (merges, an accepted category), through the API
over a real Redis, on the ``faulty`` shop of real photos, each read back as shoppers see it."""
from __future__ import annotations

from PIL import Image

from tests.api.conftest import WRITE
from tests.api.test_routes import assert_error, ids_of
from tests.curation.test_arrival import alone, data_url, fields, outside, put, reupload
from tests.real_shops import FASHION


def test_a_merged_listing_leaves_every_result_and_its_reads_answer_for_the_kept_one(faulty_client, faulty):
    shop, truth = faulty
    source = alone(shop, truth)["item_id"]
    reviewer = {**WRITE, "X-Recsys-Actor": "ana"}
    row = shop.items[shop.items["item_id"] == source].iloc[0]
    assert put(faulty_client, "reupload-1", **fields(row), image=data_url(reupload(row["image"]))).status_code == 201
    assert "reupload-1" in [r["item_id"] for r in faulty_client.get("/v1/admin/queue", headers=WRITE).json["items"]]
    neighbour = ids_of(faulty_client.get(f"/v1/items/{source}/similar?k=3&dedupe=false"))[1]

    merged = faulty_client.post("/v1/admin/merges", json={"keep": source, "merge": ["reupload-1", neighbour]},
                                headers=reviewer)
    assert merged.status_code == 200, merged.json
    assert merged.json["merged"] == ["reupload-1", neighbour] and merged.json["item"]["item_id"] == source
    shown = ids_of(faulty_client.get(f"/v1/items/{source}/similar?k=50&dedupe=false"))
    assert "reupload-1" not in shown and neighbour not in shown
    listed = [r["item_id"] for r in faulty_client.get("/v1/items?limit=1000").json["items"]]
    assert source in listed and "reupload-1" not in listed and neighbour not in listed
    # the merged listings' own reads answer for the kept one
    assert faulty_client.get("/v1/items/reupload-1").json["item"] == {
        **faulty_client.get(f"/v1/items/{source}").json["item"], "redirected_from": "reupload-1"}
    assert ids_of(faulty_client.get(f"/v1/items/{neighbour}/similar?k=10")) == ids_of(
        faulty_client.get(f"/v1/items/{source}/similar?k=10"))
    assert faulty_client.get(f"/v1/items/{neighbour}/image").data == faulty_client.get(f"/v1/items/{source}/image").data
    assert "reupload-1" not in [r["item_id"] for r in faulty_client.get("/v1/admin/queue", headers=WRITE).json["items"]]
    assert faulty_client.get("/v1/admin/merges", headers=WRITE).json["merged"] == {"reupload-1": source,
                                                                                     neighbour: source}
    # a kept listing merged in turn takes its merged listings along (one hop)
    third, other = ids_of(faulty_client.get(f"/v1/items/{source}/similar?k=2"))
    assert faulty_client.post("/v1/admin/merges", json={"keep": third, "merge": [source]},
                              headers=WRITE).status_code == 200
    assert faulty_client.get("/v1/admin/merges", headers=WRITE).json["merged"] == {
        "reupload-1": third, neighbour: third, source: third}
    assert_error(faulty_client.post("/v1/admin/merges", json={"keep": source, "merge": [other]}, headers=WRITE),
                 400, "invalid_request", f"{source!r} is merged into {third!r}")
    assert_error(faulty_client.post("/v1/admin/merges", json={"keep": third, "merge": ["no-such"]}, headers=WRITE),
                 400, "invalid_request", "not served: 'no-such'")
    assert_error(faulty_client.post("/v1/admin/merges", json={"keep": third, "merge": [third]}, headers=WRITE),
                 400, "invalid_request", "other than the one kept")
    assert_error(faulty_client.post("/v1/admin/merges", json={"keep": third}, headers=WRITE),
                 400, "invalid_request", '"merge"')
    assert faulty_client.post("/v1/admin/merges", json={"keep": third, "merge": [source]}).status_code == 401

    # undone: served on its own again
    assert faulty_client.delete(f"/v1/admin/merges/{neighbour}", headers=reviewer).status_code == 200
    assert neighbour in ids_of(faulty_client.get(f"/v1/items/{third}/similar?k=50&dedupe=false"))
    assert_error(faulty_client.delete(f"/v1/admin/merges/{neighbour}", headers=WRITE), 404, "not_found", "not merged")
    log = faulty_client.get("/v1/admin/audit?limit=3", headers=WRITE).json["entries"]
    assert [(e["action"], e["actor"], e["item_id"]) for e in log] == [
        ("unmerge", "ana", neighbour), ("merge", "api", third), ("merge", "ana", source)]
    assert log[0]["before"] == {"merged_into": third}
    assert log[2]["after"] == {"merged": ["reupload-1", neighbour]}


def test_accepting_a_suggested_category_fixes_the_item_everywhere_it_shows(faulty_client, faulty):
    shop, _ = faulty
    shoe = outside(shop, "footwear/shoes")
    checks = put(faulty_client, "shoe-as-tee", title=shoe["title"], category="apparel/topwear/tshirts",
                 image=data_url(Image.open(FASHION / shoe["image"]))).json["checks"]
    suggested = checks["off_category"]["suggested_category"]
    assert checks["off_category"]["flagged"] and suggested.startswith("footwear/")
    assert_error(faulty_client.post(f"/v1/admin/queue/{shop.items['item_id'].iloc[0]}/category", headers=WRITE),
                 400, "invalid_request", "no off-category flag")
    assert_error(faulty_client.post("/v1/admin/queue/shoe-as-tee/category", json={"category": ""}, headers=WRITE),
                 400, "invalid_request", '"category" must be a non-empty string')

    fixed = faulty_client.post("/v1/admin/queue/shoe-as-tee/category", headers={**WRITE, "X-Recsys-Actor": "ana"})
    assert fixed.status_code == 200 and fixed.json["category"] == suggested
    assert fixed.json["item"]["category"] == suggested
    queued = {r["item_id"]: r for r in faulty_client.get("/v1/admin/queue", headers=WRITE).json["items"]}
    assert "off_category" not in queued.get("shoe-as-tee", {"checks": {}})["checks"]
    # result rows show the fixed category
    rows = faulty_client.get("/v1/items/shoe-as-tee/similar?k=5").json["items"]
    near = rows[0]["item_id"]
    shown = {r["item_id"]: r for r in faulty_client.get(f"/v1/items/{near}/similar?k=200&dedupe=false").json["items"]}
    assert shown["shoe-as-tee"]["category"] == suggested
    [entry] = faulty_client.get("/v1/admin/audit?limit=1", headers=WRITE).json["entries"]
    assert (entry["action"], entry["actor"], entry["before"], entry["after"]) == (
        "category", "ana", {"category": "apparel/topwear/tshirts"}, {"category": suggested})
