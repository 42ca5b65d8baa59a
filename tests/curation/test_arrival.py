"""Checks of an item as it arrives (``PUT /v1/items/{id}``) against a served shop of real photos
(``faulty``: 120 fashion-products items and their injected copies), through the API over a real
Redis, with the real image and text encoders embedding each put."""
from __future__ import annotations

import base64
import io

import pandas as pd
import pytest
from PIL import Image, ImageEnhance

from tests.api.conftest import WRITE
from tests.api.test_routes import assert_error, ids_of
from tests.real_shops import FASHION, served


def data_url(image: Image.Image) -> str:
    out = io.BytesIO()
    image.convert("RGB").save(out, format="JPEG", quality=90)
    return "data:image/jpeg;base64," + base64.b64encode(out.getvalue()).decode()


def reupload(path) -> Image.Image:
    """A seller's second upload of a photo: half the size, 10% brighter (and re-encoded)."""
    with Image.open(path) as image:
        image = image.convert("RGB")
        return ImageEnhance.Brightness(image.resize((image.width // 2, image.height // 2))).enhance(1.1)


def fields(row: pd.Series) -> dict:
    """A catalog row's fields as a put sends them."""
    return {k: row[k] for k in ("title", "category", "colour", "tags") if isinstance(row.get(k), str) and row[k]}


def alone(shop, truth) -> pd.Series:
    """An item of the shop with no copy and no variant in it."""
    items = shop.items
    kept = items[~items["item_id"].isin(truth["source"]) & ~items["item_id"].isin(truth["copy"])]
    return kept.iloc[3]


def outside(shop, category_prefix: str, n: int = 0) -> pd.Series:
    """A fashion-products item not in the shop, of a category starting with ``category_prefix``."""
    catalog = pd.read_csv(FASHION / "catalog.csv", dtype=str)
    new = ~catalog["item_id"].isin(shop.items["item_id"])
    rows = catalog[catalog["category"].str.startswith(category_prefix) & new]
    return rows.iloc[n]


def put(client, item_id: str, **fields):
    return client.put(f"/v1/items/{item_id}", json=fields, headers=WRITE)


def test_a_seller_reupload_is_flagged_as_a_duplicate_and_reads_show_one_listing(faulty_client, faulty):
    shop, truth = faulty
    source = alone(shop, truth)
    r = put(faulty_client, "reupload-1", **fields(source), image=data_url(reupload(source["image"])))
    assert r.status_code == 201, r.json
    duplicate = r.json["checks"]["duplicate"]
    assert duplicate["flagged"] and duplicate["of"][0]["item_id"] == source["item_id"], duplicate
    assert r.json["held"] == [] and not r.json["checks"]["quality"]["flagged"]
    # accepted and served, but a read that dedupes shows one listing of the two
    assert "reupload-1" in ids_of(faulty_client.get(f"/v1/items/{source['item_id']}/similar?k=10&dedupe=false"))
    assert "reupload-1" not in ids_of(faulty_client.get(f"/v1/items/{source['item_id']}/similar?k=10"))
    # the same photo under another id, put again: it duplicates the served item, or the put one
    again = put(faulty_client, "reupload-2", **fields(source), image=data_url(reupload(source["image"])))
    assert {d["item_id"] for d in again.json["checks"]["duplicate"]["of"]} == {source["item_id"], "reupload-1"}


def test_a_new_product_passes_and_a_blank_or_off_category_photo_is_reported(faulty_client, faulty):
    shop, _ = faulty
    new = outside(shop, "apparel/topwear/tshirts")
    r = put(faulty_client, "new-tee", **fields(new), image=data_url(Image.open(FASHION / new["image"])))
    assert r.status_code == 201
    assert not any(check["flagged"] for check in r.json["checks"].values()), r.json["checks"]
    blank = put(faulty_client, "blank", title=new["title"], category=new["category"],
                image=data_url(Image.new("RGB", (300, 400), (250, 250, 250))))
    assert blank.json["checks"]["quality"]["flagged"]
    assert "blank or nearly uniform photo" in blank.json["checks"]["quality"]["reasons"]
    shoe = outside(shop, "footwear/shoes")
    listed = put(faulty_client, "shoe-as-tee", title=shoe["title"], category="apparel/topwear/tshirts",
                 image=data_url(Image.open(FASHION / shoe["image"]))).json["checks"]["off_category"]
    assert listed["flagged"] and listed["suggested_category"].startswith("footwear/"), listed


@pytest.fixture
def strict_client(tmp_path, redis_url, redis_prefix, faulty):
    """The ``faulty`` shop served with duplicates refused and bad photos held."""
    with served(faulty[0].path, tmp_path, redis_url, redis_prefix,
                checks={"duplicate": "refuse", "quality": "hold"}) as client:
        yield client


def test_policies_refuse_a_duplicate_and_hold_a_blank_photo_until_released(strict_client, faulty):
    shop, truth = faulty
    source = alone(shop, truth)
    refused = put(strict_client, "reupload-1", **fields(source), image=data_url(reupload(source["image"])))
    assert_error(refused, 409, "conflict", f"it duplicates '{source['item_id']}'")
    assert strict_client.get("/v1/items/reupload-1").status_code == 404  # nothing stored
    held = put(strict_client, "blank", title="Plain white tee", category=source["category"],
               image=data_url(Image.new("RGB", (300, 400), (250, 250, 250))))
    assert held.status_code == 201 and held.json["held"] == ["quality"]
    assert strict_client.get("/v1/items/blank").json["item"]["held"] is True
    listed = strict_client.get(f"/v1/items?category={source['category']}&limit=1000").json
    assert "blank" not in [row["item_id"] for row in listed["items"]]
    released = strict_client.post("/v1/items/blank/release", headers=WRITE)
    assert released.status_code == 200 and released.json["item"]["held"] is False
    listed = strict_client.get(f"/v1/items?category={source['category']}&limit=1000").json
    assert "blank" in [row["item_id"] for row in listed["items"]]
    assert_error(strict_client.post("/v1/items/blank/release", headers=WRITE), 400, "invalid_request", "not held")
    assert_error(strict_client.post("/v1/items/nope/release", headers=WRITE), 404, "not_found", "nope")


def test_the_review_queue_dismisses_a_flag_for_good_and_the_audit_log_says_who_did_what(strict_client, faulty):
    shop, truth = faulty
    source = alone(shop, truth)
    reviewer = {**WRITE, "X-Recsys-Actor": "ana"}
    blank = {"title": "Plain white tee", "category": source["category"],
             "image": data_url(Image.new("RGB", (300, 400), (250, 250, 250)))}
    assert put(strict_client, "blank-2", **blank).json["held"] == ["quality"]
    queue = strict_client.get("/v1/admin/queue", headers=WRITE).json
    [row] = [r for r in queue["items"] if r["item_id"] == "blank-2"]
    assert row["held"] == ["quality"] and row["checks"]["quality"]["reasons"] and "blank-2" in queue["catalog"]
    assert_error(strict_client.post("/v1/admin/queue/blank-2/dismiss", json={"checks": ["duplicate"]}, headers=WRITE),
                 400, "invalid_request", "not flagged on this item: duplicate")
    assert_error(strict_client.post("/v1/admin/queue/blank-2/dismiss", json=["quality"], headers=WRITE),
                 400, "invalid_request", "a non-empty list of check names")
    dismissed = strict_client.post("/v1/admin/queue/blank-2/dismiss", headers=reviewer)
    assert dismissed.status_code == 200 and dismissed.json["dismissed"] == sorted(row["checks"])  # all flagged
    assert dismissed.json["item"]["held"] is False  # held only by the dismissed check: served
    assert "blank-2" not in [r["item_id"] for r in strict_client.get("/v1/admin/queue", headers=WRITE).json["items"]]
    # put again: still reported, but neither held nor queued (the dismissal is remembered)
    again = put(strict_client, "blank-2", **blank).json
    assert again["held"] == [] and again["checks"]["quality"]["dismissed"] is True
    assert "blank-2" not in [r["item_id"] for r in strict_client.get("/v1/admin/queue", headers=WRITE).json["items"]]
    assert_error(strict_client.post("/v1/admin/queue/blank-2/dismiss", headers=WRITE), 400, "invalid_request",
                 "no flagged check")
    log = strict_client.get("/v1/admin/audit?limit=3", headers=WRITE).json["entries"]
    assert [(e["action"], e["actor"], e["item_id"]) for e in log] == [
        ("put", "api", "blank-2"), ("dismiss", "ana", "blank-2"), ("put", "api", "blank-2")]
    assert log[0]["before"] == {"existed": True} and log[0]["after"] == {"flagged": [], "held": []}
    assert log[1]["after"] == {"dismissed": sorted(row["checks"])} and log[0]["at"] >= log[1]["at"]
    assert log[2]["after"]["held"] == ["quality"] and set(log[2]["after"]["flagged"]) == set(row["checks"])
    assert strict_client.get("/v1/admin/audit").status_code == 401
