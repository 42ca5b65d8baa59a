"""Bundles: round trip, atomic versions, corrupt or partial bundles refused."""
import json
import shutil

import numpy as np
import pytest

from recsys.bundle import read_bundle, resolve_bundle_path
from recsys.errors import BundleError


def test_round_trip(built):
    report, recommender = built
    bundle = recommender.bundle
    manifest = bundle.manifest
    assert manifest["counts"]["items"] == 600 == len(bundle.items)
    assert set(manifest["modalities"]) == {"image", "text", "tabular"}
    assert manifest["default_weights"] == {"image": 0.4, "text": 0.4, "tabular": 0.2}
    assert manifest["indexes"]["combined"]["recall@10"] > 0.9
    assert all(len(meta["sha256"]) == 64 for meta in manifest["files"].values())
    assert bundle.vectors.combined.shape == (600, manifest["dims"]["combined"])
    assert bundle.tabular_state["parts"] == ["colour", "price", "category"]
    assert manifest["encoders"]["image"]["weights"] == "offline"


def test_the_bundle_holds_a_jpeg_thumbnail_of_every_readable_image(built, shop):
    import io

    from PIL import Image

    recommender = built[1]
    has_image = (shop["image"] != "").to_numpy()
    thumbnails = recommender.bundle.thumbnails
    assert (thumbnails.present() == has_image).all() and has_image.sum() > 100
    assert recommender.bundle.manifest["thumbnails"] == {"items": int(has_image.sum()), "size": 256}
    item = str(shop["item_id"][has_image].iloc[0])
    data = recommender.image(item)
    with Image.open(io.BytesIO(data)) as image:
        assert image.format == "JPEG" and max(image.size) <= 256
    # rows and the item show the API's image path, never the catalog's file path
    assert recommender.item(item)["image"] == f"/v1/items/{item}/image"
    assert recommender.rows(recommender.similar_items(item, k=3))[0]["image"].startswith("/v1/items/")
    without = str(shop["item_id"][~has_image].iloc[0])
    assert recommender.image(without) is None and recommender.item(without)["image"] is None


@pytest.fixture
def copy_of(built, tmp_path):
    source = built[0].path
    target = tmp_path / "shop" / source.name
    shutil.copytree(source, target)
    return target


def _flip_byte_and_expect_refusal(bundle_dir, rel):
    path = bundle_dir / rel
    data = bytearray(path.read_bytes())
    data[-5] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(BundleError, match=f"{rel} does not match its sha256"):
        read_bundle(bundle_dir)


def test_flipped_byte_is_refused(copy_of):
    _flip_byte_and_expect_refusal(copy_of, "vectors/text.npy")


def test_missing_file_and_bad_manifest(copy_of):
    (copy_of / "index" / "image.ann").unlink()
    with pytest.raises(BundleError, match="incomplete: index/image.ann is missing"):
        read_bundle(copy_of)
    (copy_of / "manifest.json").write_text("{")
    with pytest.raises(BundleError, match="unreadable"):
        read_bundle(copy_of)


def test_unknown_format(copy_of):
    manifest = json.loads((copy_of / "manifest.json").read_text())
    manifest["format"] = 99
    (copy_of / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="format 99 is not supported"):
        read_bundle(copy_of)


@pytest.mark.parametrize("field, value, message", [
    ("files", "escape", "is not a plain relative name"),
    ("name", "../../escape", "bundle name '../../escape' is not allowed"),
    ("name", "..", "bundle name '..' is not allowed"),
    ("version", "v/../../x", "bundle version 'v/../../x' is not allowed"),
    ("default_weights", {"image": float("nan"), "text": 1.0}, "default weight of 'image' is nan"),
    ("default_weights", {"image": -1.0, "text": 1.0}, "weights must be finite numbers >= 0"),
    ("default_weights", {"image": 0, "text": 0}, "default_weights are all zero"),
])
def test_a_manifest_that_names_paths_outside_the_bundle_or_bad_weights_is_refused(
        built, tmp_path, field, value, message):
    # the manifest alone: it is refused before any file it names is opened
    manifest = json.loads((built[0].path / "manifest.json").read_text())
    if value == "escape":  # a real file, listed under a name that climbs out of the bundle
        (tmp_path / "escape.txt").write_text("x")
        value = {**manifest["files"], "../../escape.txt": {"sha256": "0" * 64, "bytes": 1}}
    bundle = tmp_path / "shop" / "v1"
    bundle.mkdir(parents=True)
    (bundle / "manifest.json").write_text(json.dumps({**manifest, field: value}))
    with pytest.raises(BundleError, match=message.replace("(", r"\(").replace("[", r"\[")):
        read_bundle(bundle)


def test_a_bundle_name_must_be_one_plain_path_component(shop, tmp_path):
    import recsys

    with pytest.raises(BundleError, match="bundle name 'my shop' is not allowed"):
        recsys.build(shop.head(5), tmp_path / "my shop", show_progress=False)
    assert not (tmp_path / "my shop").exists()


def test_parent_resolves_newest_and_ignores_partial(copy_of):
    parent = copy_of.parent
    (parent / ".tmp-29990101T000000Z-1").mkdir()  # a write in progress: never picked
    (parent / "29990101T000000Z").mkdir()  # a directory without a manifest: never picked
    newer = parent / "20991231T000000Z"
    shutil.copytree(copy_of, newer)
    assert resolve_bundle_path(parent) == newer
    assert read_bundle(parent).path == newer
    with pytest.raises(BundleError, match="holds no complete bundle"):
        resolve_bundle_path(parent / "29990101T000000Z")


def test_vectors_are_mmapped_read_only(built):
    vectors = built[1].bundle.vectors.blocks["image"].vectors
    # a plain ndarray view (no copy) of the file mapping, so workers share the page cache
    assert isinstance(vectors.base, np.memmap) and not vectors.flags.owndata
    assert not vectors.flags.writeable


def test_user_tower_version_reuses_the_item_side(feeds, market):
    trained = feeds.bundle
    manifest = trained.manifest
    assert manifest["parent"] == market.version and manifest["counts"]["users"] == 2000
    assert manifest["collab"]["model"] == "als" and manifest["collab"]["counts"]["items_trained"] > 2500
    for rel, meta in market.manifest["files"].items():
        assert manifest["files"][rel]["sha256"] == meta["sha256"], rel
    collab = trained.collab
    assert collab.user_factors.shape == (2000, manifest["collab"]["factors"])
    assert collab.item_factors.shape[0] == len(trained.items)
    assert collab.index.search_effort > 1


def test_corrupt_user_tower_is_refused(feeds, tmp_path):
    target = tmp_path / "copy"
    shutil.copytree(feeds.bundle.path, target)
    _flip_byte_and_expect_refusal(target, "collab/user_factors.npy")
