"""Visual search: a photo in, the items that look like it out, through the bundle's own image
tower (the ``faulty`` real-photo shop: 120 fashion-products items and copies of some of them)."""
from __future__ import annotations

import json

import pandas as pd
import pytest
from click.testing import CliRunner
from PIL import Image

from recsys.errors import InvalidRequest
from recsys.serve import Recommender
from recsys.serve.embedder import ItemEmbedder
from tests.real_shops import FASHION


@pytest.fixture(scope="module")
def shop(faulty):
    return faulty[0]


def _group(bundle, item_id: str) -> int:
    """The item's group of duplicates, or -1 when it has none."""
    return int(bundle.duplicate_of[bundle.item_ids.row(item_id)])


def _same_listing(bundle, a: str, b: str) -> bool:
    return a == b or _group(bundle, a) == _group(bundle, b) >= 0


def test_an_items_own_photo_finds_that_item_first(faulty, tmp_path):
    shop, truth = faulty
    rec = Recommender(shop)
    embedder = ItemEmbedder(shop)
    # four products listed more than once (their copies must not fill the answer) and four others
    with_copies = truth.loc[truth["transform"] == "exact copy", "source"].head(2).tolist() + \
        truth.loc[truth["transform"] == "JPEG quality 50", "source"].head(2).tolist()
    others = shop.items.loc[~shop.items["item_id"].isin(truth["source"]) & shop.vectors.blocks["image"].mask,
                            "item_id"].head(4).tolist()
    items = shop.items.set_index("item_id").loc[with_copies + others].reset_index()
    # the listing's photo shot again: cropped and shrunk, so it is not the same file
    shots = []
    for n, source in enumerate(items["image"]):
        with Image.open(source) as image:
            width, height = image.size
            shot = image.crop((3, 4, width - 3, height - 4)).resize((width * 3 // 4, height * 3 // 4))
        shots.append(str(tmp_path / f"shot{n}.png"))
        shot.save(shots[-1])
    vectors = embedder.embed_photos(shots)
    for item_id, vector in zip(items["item_id"], vectors):
        found = rec.similar_to_photo(vector, k=5)
        assert len(found) == 5 and found.strategy == "similar"
        assert _same_listing(shop, found[0].item_id, item_id), (item_id, found)
        groups = [g for g in (_group(shop, s.item_id) for s in found) if g >= 0]
        assert len(set(groups)) == len(groups)  # one listing per group of duplicates
        everything = rec.similar_to_photo(vector, k=5, dedupe=False)
        assert len(everything) == 5
        if item_id in with_copies:  # without dedupe a copy of the product is the runner-up
            assert _same_listing(shop, everything[1].item_id, item_id), everything


def test_a_photo_from_outside_the_catalog_finds_its_kind(shop):
    catalog = pd.read_csv(FASHION / "catalog.csv", dtype=str)
    outside = catalog[~catalog["item_id"].isin(shop.items["item_id"])]
    shoes = outside[outside["category"].str.startswith("footwear/shoes")].head(3)
    rec = Recommender(shop)
    top = shop.items.set_index("item_id")["category"].str.split("/").str[0]
    for vector in ItemEmbedder(shop).embed_photos([str(FASHION / p) for p in shoes["image"]]):
        found = rec.similar_to_photo(vector, k=5)
        assert list(top[found.ids]).count("footwear") >= 4, found
        filtered = rec.similar_to_photo(vector, k=3, filters=_only("accessories"))
        assert all(top[i] == "accessories" for i in filtered.ids)


def _only(category: str):
    from recsys.serve.filters import ItemFilter

    return ItemFilter.create(category=category)


def test_unreadable_photos_and_shops_without_photos_are_clear_errors(shop, plain_shop, tmp_path):
    not_a_photo = tmp_path / "notes.png"
    not_a_photo.write_text("not an image")
    with pytest.raises(InvalidRequest, match="cannot read .*notes.png as a photo"):
        ItemEmbedder(shop).embed_photos([str(not_a_photo)])
    photo = shop.vectors.blocks["image"].vectors[0]
    with pytest.raises(InvalidRequest, match="k must be"):
        Recommender(shop).similar_to_photo(photo, k=0)
    with pytest.raises(InvalidRequest, match="no image encoder"):  # a shop without photos
        ItemEmbedder(plain_shop).embed_photos([str(shop.items["image"].iloc[0])])
    with pytest.raises(InvalidRequest, match="no image modality"):
        Recommender(plain_shop).similar_to_photo(photo)


def test_the_cli_finds_items_like_each_photo(shop):
    from recsys.cli import cli

    photo = str(shop.items["image"].iloc[0])
    result = CliRunner().invoke(cli, ["similar", "--bundle", str(shop.path), "--image", photo, "--k", "3", "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    rows = payload["results"][photo]
    assert "weights" not in payload  # a photo is compared by the image modality alone
    assert len(rows) == 3 and _same_listing(shop, rows[0]["item_id"], str(shop.items["item_id"].iloc[0]))

    result = CliRunner().invoke(cli, ["similar", "--bundle", str(shop.path)])
    assert result.exit_code == 2 and "give at least one ITEM_ID, or a photo with --image" in result.output
    result = CliRunner().invoke(cli, ["similar", "--bundle", str(shop.path), "--image", photo, "--weights", "text:1"])
    assert result.exit_code == 2 and "--weights applies to ITEM_IDs" in result.output
