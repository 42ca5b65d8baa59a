"""A tagger that stays: learned from a few examples of real photos (the ``faulty`` shop of
fashion-products), saved in the bundle with ``recsys curate label --save``, shown on reads over
the API and given to an item as it is put."""
from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from PIL import Image

from recsys.bundle import read_bundle
from recsys.cli import cli
from recsys.curation.tagger import fit_tagger
from recsys.errors import InvalidRequest
from tests.api.conftest import WRITE
from tests.curation.test_arrival import data_url, outside, put
from tests.real_shops import FASHION, served

KINDS = ("apparel", "footwear")


def kind_of(items: pd.DataFrame) -> pd.Series:
    return items["category"].fillna("").str.split("/").str[0]


def examples(shop, per_kind: int) -> pd.DataFrame:
    items = shop.items[shop.items["item_id"].str.fullmatch(r"\d+")]  # originals, not injected copies
    kind = kind_of(items)
    rows = [items[kind == k].head(per_kind) for k in KINDS]
    return pd.DataFrame({"label": [k for k, r in zip(KINDS, rows) for _ in range(len(r))],
                         "item_id": pd.concat(rows)["item_id"].tolist()})


@pytest.fixture
def tagged(tmp_path, faulty):
    """A copy of the ``faulty`` bundle with a tagger of the photo's kind saved by the CLI."""
    copy = tmp_path / "models" / "faulty" / faulty[0].version
    shutil.copytree(faulty[0].path, copy)
    ex = tmp_path / "examples.csv"
    examples(faulty[0], 6).to_csv(ex, index=False)
    result = CliRunner().invoke(cli, ["curate", "label", "--bundle", str(copy), "--examples", str(ex),
                                      "--save", "kind", "--modality", "image"])
    assert result.exit_code == 0, result.output
    assert "saved in" in result.output and "held-out examples: accuracy" in result.output
    return read_bundle(result.output.split("saved in ")[1].split("\n")[0].strip())


@pytest.fixture
def tagged_client(tmp_path, redis_url, redis_prefix, tagged):
    """A Flask test client over the tagged bundle, published to a real Redis."""
    with served(tagged.path, tmp_path, redis_url, redis_prefix) as client:
        yield client


def test_a_saved_tagger_tags_its_kinds_and_leaves_other_kinds_as_none(tagged):
    assert set(tagged.taggers) == {"kind"}
    from recsys.serve import Recommender

    rec = Recommender(tagged)
    kinds = kind_of(tagged.items).to_numpy()
    tags = np.array([rec.item(i)["labels"]["kind"] for i in tagged.items["item_id"]], object)
    inside = np.isin(kinds, KINDS)
    given = np.array([t is not None for t in tags])
    assert (tags[inside & given] == kinds[inside & given]).mean() >= 0.9  # the labelled kinds are told apart
    none_outside, none_inside = 1 - given[~inside].mean(), 1 - given[inside].mean()
    assert none_inside <= 0.4, none_inside
    assert none_outside > none_inside + 0.2, (none_outside, none_inside)  # bags, watches: mostly "none"
    # result rows carry the tag too
    row = rec.rows(rec.similar_items(tagged.items["item_id"].iloc[0], k=3))[0]
    assert set(row["labels"]) == {"kind"}


def test_an_item_put_into_a_tagged_bundle_is_tagged_as_it_arrives(tagged_client, faulty):
    client = tagged_client
    shoe = outside(faulty[0], "footwear/shoes")
    r = put(client, "new-shoe", title=shoe["title"], image=data_url(Image.open(FASHION / shoe["image"])))
    assert r.status_code == 201, r.json
    assert client.get("/v1/items/new-shoe").json["item"]["labels"] == {"kind": "footwear"}
    near = client.get("/v1/items/new-shoe/similar?k=3").json["items"][0]["item_id"]
    rows = {r["item_id"]: r for r in client.get(f"/v1/items/{near}/similar?k=200&dedupe=false").json["items"]}
    assert rows["new-shoe"]["labels"] == {"kind": "footwear"}
    assert client.delete("/v1/items/new-shoe", headers=WRITE).status_code == 200


def test_one_example_per_label_is_not_calibrated_and_bad_names_are_refused(faulty):
    shop = faulty[0]
    one = fit_tagger(shop, examples(shop, 1), "kind", modality="image")
    assert one.report["calibrated"] is False and one.min_similarity == -1.0 and one.min_confidence == 0.0
    assert all(t is not None for t in one.tag(shop.vectors.blocks["image"].vectors)[0])  # always a guess
    three = fit_tagger(shop, examples(shop, 3), "kind", modality="image")
    assert three.report["calibrated"] is True and three.temperature > 0 and three.min_similarity > 0
    with pytest.raises(InvalidRequest, match="a tagger's name"):
        fit_tagger(shop, examples(shop, 3), "Bad Name!")


def test_a_reviewer_sets_a_label_by_hand_and_it_shows_in_place_of_the_tag(tagged_client, tagged):
    from tests.api.test_routes import assert_error

    client = tagged_client
    # a bag: outside the tagger's kinds, so whatever it guessed, a reviewer says "none of these"
    bag = tagged.items[kind_of(tagged.items) == "accessories"]["item_id"].iloc[0]
    guessed = client.get(f"/v1/items/{bag}").json["item"]["labels"]["kind"]
    reviewer = {**WRITE, "X-Recsys-Actor": "ana"}
    r = client.put(f"/v1/admin/labels/{bag}/kind", json={"label": None}, headers=reviewer)
    assert r.status_code == 200 and r.json["item"]["labels"] == {"kind": None}, r.json
    shoe = tagged.items[kind_of(tagged.items) == "footwear"]["item_id"].iloc[0]
    assert client.put(f"/v1/admin/labels/{shoe}/kind", json={"label": "apparel"}, headers=WRITE).status_code == 200
    rows = {row["item_id"]: row for row in client.get(f"/v1/items/{shoe}/similar?k=200&dedupe=false").json["items"]}
    assert rows[bag]["labels"] == {"kind": None}  # result rows show the reviewer's label
    assert client.get(f"/v1/items/{shoe}").json["item"]["labels"] == {"kind": "apparel"}
    log = client.get("/v1/admin/audit?limit=2", headers=WRITE).json["entries"]
    assert [(e["action"], e["actor"], e["item_id"]) for e in log] == [("label", "api", shoe), ("label", "ana", bag)]
    assert log[1]["before"] == {"kind": guessed} and log[1]["after"] == {"kind": None}
    # undone: the tagger's own tag shows again
    assert client.delete(f"/v1/admin/labels/{shoe}/kind", headers=WRITE).status_code == 200
    assert client.get(f"/v1/items/{shoe}").json["item"]["labels"] == tagged_labels(tagged, shoe)
    assert_error(client.delete(f"/v1/admin/labels/{shoe}/kind", headers=WRITE), 404, "not_found", "set by hand")
    assert_error(client.put(f"/v1/admin/labels/{shoe}/colour", json={"label": "red"}, headers=WRITE), 400,
                 "invalid_request", "no saved tagger 'colour' (saved: kind)")
    assert_error(client.put(f"/v1/admin/labels/{shoe}/kind", json={"label": "hat"}, headers=WRITE), 400,
                 "invalid_request", "one of apparel, footwear, or null")
    assert_error(client.put(f"/v1/admin/labels/{shoe}/kind", json={"tag": "apparel"}, headers=WRITE), 400,
                 "invalid_request", '{"label": null}')
    assert_error(client.put("/v1/admin/labels/nope/kind", json={"label": None}, headers=WRITE), 404, "not_found",
                 "nope")
    assert client.put(f"/v1/admin/labels/{shoe}/kind", json={"label": None}).status_code == 401


def tagged_labels(bundle, item_id: str) -> dict:
    from recsys.serve import Recommender

    return Recommender(bundle).item(item_id)["labels"]


@pytest.mark.slow  # a second build: about 1.5 seconds
def test_a_fresh_build_carries_the_saved_tagger_and_the_labels_set_by_hand(tmp_path, tagged, faulty,
                                                                            _image_tower, _text_tower):
    """A new build into the tagged bundle's folder refits its tagger: from the examples still in
    the catalog, and the labels reviewers set, as an export's ``labels`` column carries them."""
    import json

    from recsys.data import validate_catalog
    from recsys.pipeline.build import build_item_bundle
    from recsys.towers import create_tower
    from tests.conftest import make_settings

    saved = tagged.taggers["kind"]
    gone = saved["examples"][:2]  # sold out: not in the new catalog
    catalog = tagged.items[~tagged.items["item_id"].isin(gone)].copy()
    apparel = catalog[(kind_of(catalog) == "apparel") & ~catalog["item_id"].isin(saved["examples"])]["item_id"]
    hand = {apparel.iloc[0]: "apparel", saved["examples"][-1]: None}  # a new example; an example unsaid
    catalog["labels"] = [json.dumps({"kind": hand[i]}) if i in hand else "" for i in catalog["item_id"]]
    towers = {"image": _image_tower, "text": _text_tower, "tabular": create_tower("tabular")}
    report = build_item_bundle(validate_catalog(catalog, source="export"), make_settings(tmp_path),
                               tagged.path.parent, show_progress=False, towers=towers)
    assert report.taggers == {"kind": {"from": tagged.version, "examples": len(saved["examples"]) - 2,
                                       "gone": 2, "by_hand": 2}}
    assert "carried from" in report.summary()
    fresh = read_bundle(report.path)
    refitted = fresh.taggers["kind"]
    assert apparel.iloc[0] in refitted["examples"] and saved["examples"][-1] not in refitted["examples"]
    from recsys.serve import Recommender

    before, after = Recommender(tagged), Recommender(fresh)
    same = [before.item(i)["labels"] == after.item(i)["labels"] for i in fresh.items["item_id"]]
    assert np.mean(same) >= 0.9, np.mean(same)  # the same photos, nearly the same examples: the same tags
    # a build that cannot keep a label's examples says so, and leaves the tagger out
    none_left = tagged.items[~tagged.items["item_id"].isin(saved["examples"])]
    again = build_item_bundle(validate_catalog(none_left, source="no examples"), make_settings(tmp_path),
                              tmp_path / "models" / "other", show_progress=False, towers=towers)
    assert again.taggers == {}
    other = build_item_bundle(validate_catalog(none_left, source="no examples"), make_settings(tmp_path),
                              tagged.path.parent, show_progress=False, towers=towers)
    assert other.taggers == {} and any("not carried" in w for w in other.warnings), other.warnings
