"""The build runs the checks over the whole catalog, and the review queue shows what they flagged
beside the put items (real photos with injected faults, real encoders, a real Redis)."""
from __future__ import annotations

import pytest

from tests.api.conftest import WRITE
from tests.api.test_routes import assert_error
from tests.real_shops import served


@pytest.fixture
def broken_client(tmp_path, redis_url, redis_prefix, broken):
    """A Flask test client over the ``broken`` shop (blank, noise and swapped photos), published to
    a real Redis."""
    with served(broken[0].path, tmp_path, redis_url, redis_prefix) as client:
        yield client


def _queue(client, limit: int = 1000) -> dict[str, dict]:
    return {row["item_id"]: row for row in client.get(f"/v1/admin/queue?limit={limit}", headers=WRITE).json["items"]}


def test_the_build_flags_broken_photos_and_re_uploads_with_their_evidence(broken, faulty):
    bundle, truth = broken
    fault = dict(zip(truth["item_id"], truth["fault"]))
    flags = bundle.flags
    for item, kind in fault.items():
        if kind in ("blank", "noise"):
            assert flags[item]["quality"]["reasons"] and flags[item]["quality"]["severity"] >= 0.5, item
    swapped = [item for item, kind in fault.items() if kind == "swapped"]
    suggested = [flags[i]["off_category"]["suggested_category"] for i in swapped if "off_category" in flags.get(i, {})]
    assert len(suggested) >= len(swapped) // 2, flags
    # the untouched photos: none broken; a few whose leaf category looks like a neighbouring one
    # (a lip gloss like a lip liner, sports shoes like casual shoes), as the outliers view says too
    untouched = len(bundle.item_ids) - len(fault)
    assert not [i for i, checks in flags.items() if i not in fault and "quality" in checks]
    assert sum(i not in fault and "off_category" in checks for i, checks in flags.items()) <= 0.05 * untouched
    assert bundle.manifest["flags"]["quality"] == sum("quality" in c for c in flags.values())
    shop, copies = faulty
    found = {(checks["duplicate"]["of"][0]["item_id"], item) for item, checks in shop.flags.items()
             if "duplicate" in checks}
    pairs = set(zip(copies["source"], copies["copy"])) | set(zip(copies["copy"], copies["source"]))
    assert len(found & pairs) >= 15 and all(
        checks["duplicate"]["of"][0]["image"] is not None for checks in shop.flags.values() if "duplicate" in checks)


def test_the_queue_shows_the_build_s_flags_and_a_reviewer_fixes_them(broken_client, broken):
    bundle, truth = broken
    queue = _queue(broken_client)
    built = {i: row for i, row in queue.items() if row["source"] == "build"}
    assert set(built) == set(bundle.flags)
    assert all(row["held"] == [] and row["updated"] is None for row in built.values())
    blank = truth[truth["fault"] == "blank"]["item_id"].iloc[0]
    dismissed = broken_client.post(f"/v1/admin/queue/{blank}/dismiss", headers={**WRITE, "X-Recsys-Actor": "ana"})
    assert dismissed.status_code == 200 and "quality" in dismissed.json["dismissed"]
    assert blank not in _queue(broken_client)
    assert_error(broken_client.post(f"/v1/admin/queue/{blank}/dismiss", headers=WRITE), 400, "invalid_request",
                 "no flagged check")
    swapped = next(i for i in truth[truth["fault"] == "swapped"]["item_id"] if "off_category" in built.get(i, {}).get(
        "checks", {}))
    suggestion = built[swapped]["checks"]["off_category"]["suggested_category"]
    fixed = broken_client.post(f"/v1/admin/queue/{swapped}/category", headers=WRITE)
    assert fixed.status_code == 200 and fixed.json["item"]["category"] == suggestion
    assert "off_category" not in _queue(broken_client).get(swapped, {"checks": {}})["checks"]
    noise = truth[truth["fault"] == "noise"]["item_id"].iloc[0]
    assert broken_client.delete(f"/v1/items/{noise}", headers=WRITE).status_code == 200
    assert noise not in _queue(broken_client)  # hidden: nothing left to review
    log = broken_client.get("/v1/admin/audit?limit=3", headers=WRITE).json["entries"]
    assert [(e["action"], e["item_id"]) for e in log] == [("delete", noise), ("category", swapped), ("dismiss", blank)]


def test_the_queue_lists_put_items_first_and_keeps_its_limit(broken_client, broken):
    from PIL import Image

    from tests.curation.test_arrival import data_url

    blank = {"title": "Plain white tee", "category": broken[0].items["category"].iloc[0],
             "image": data_url(Image.new("RGB", (300, 400), (250, 250, 250)))}
    assert broken_client.put("/v1/items/blank-put", json=blank, headers=WRITE).status_code == 201
    rows = broken_client.get("/v1/admin/queue?limit=2", headers=WRITE).json["items"]
    assert [r["source"] for r in rows] == ["put", "build"] and rows[0]["item_id"] == "blank-put"


def test_flags_can_be_turned_off_at_build(tmp_path, shop, image_tower, text_tower):
    from recsys.bundle import read_bundle
    from recsys.pipeline.build import build_item_bundle
    from recsys.towers import create_tower
    from tests.conftest import make_settings

    towers = {"image": image_tower, "text": text_tower, "tabular": create_tower("tabular")}
    small = shop.head(60).reset_index(drop=True)
    on = read_bundle(build_item_bundle(small, make_settings(tmp_path), tmp_path / "models" / "on",
                                       show_progress=False, towers=towers).path)
    off = read_bundle(build_item_bundle(small, make_settings(tmp_path, checks={"at_build": False}),
                                        tmp_path / "models" / "off", show_progress=False, towers=towers).path)
    assert "flags" in on.manifest and (on.path / "curation" / "flags.json").is_file()
    assert off.flags == {} and "flags" not in off.manifest and not (off.path / "curation" / "flags.json").is_file()
