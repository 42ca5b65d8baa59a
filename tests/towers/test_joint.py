"""The joint text-image space: trained at build on real photos and their texts, kept in the bundle,
and searched by text (the ``faulty`` real-photo shop: 120 fashion-products items and copies)."""
from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from recsys.errors import InvalidRequest
from recsys.serve import Recommender
from recsys.serve.embedder import ItemEmbedder
from recsys.towers.joint import train_joint_space


def test_training_pairs_each_photo_with_its_own_text(capsys):
    rng = np.random.default_rng(0)
    concepts = rng.normal(size=(400, 16))  # one hidden concept per item, seen by both towers
    image = concepts @ rng.normal(size=(16, 40)) + 0.1 * rng.normal(size=(400, 40))
    text = concepts @ rng.normal(size=(16, 24)) + 0.1 * rng.normal(size=(400, 24))
    joint = train_joint_space(image, text, dim=16, seed=0)
    assert joint.image.shape == (40, 16) and joint.text.shape == (24, 16)
    assert joint.validation["pairs"] == 40 and joint.validation["text_to_image_recall@10"] >= 0.8
    unpaired = text[rng.permutation(400)]
    shuffled = train_joint_space(image, unpaired, dim=16, seed=0)
    assert shuffled.validation["text_to_image_recall@10"] <= 0.5  # nothing to learn without true pairs
    # learning noise fast, it overfits and stops early: the progress bar ends full and says why
    noise = train_joint_space(image, unpaired, dim=16, seed=0, learning_rate=1e-2, show_progress=True)
    epochs = len(noise.history)
    last = capsys.readouterr().err.split("\r")[-1]
    assert epochs < 50 and "100%" in last and f"{epochs}/{epochs}" in last and "stopped" in last
    with pytest.raises(ValueError, match="at least 20"):
        train_joint_space(image[:10], text[:10])


def test_a_large_catalog_learns_from_a_sample_of_its_pairs():
    from recsys.pipeline.align import fit_joint_space
    from recsys.settings import load_settings
    from recsys.towers.base import TowerOutput, l2_normalise

    rng = np.random.default_rng(0)
    concepts = rng.normal(size=(1000, 16))
    blocks = {m: TowerOutput(*l2_normalise(concepts @ rng.normal(size=(16, d)), np.ones(1000, bool)))
              for m, d in (("image", 40), ("text", 24))}
    sampled = fit_joint_space(blocks, load_settings(towers={"joint": {"dim": 16, "max_pairs": 300}}),
                              show_progress=False)
    assert sampled.validation["pairs"] == 30  # a tenth of the 300 it learned from
    assert sampled.validation["text_to_image_recall@10"] >= 0.8
    whole = fit_joint_space(blocks, load_settings(towers={"joint": {"dim": 16}}), show_progress=False)
    assert whole.validation["pairs"] == 100


@pytest.fixture(scope="module")
def shop(faulty):
    return faulty[0]


def test_the_build_keeps_the_joint_space_with_its_validation(shop):
    assert shop.joint is not None and shop.manifest["joint"]["dim"] == shop.joint.dim
    validation = shop.manifest["joint"]["validation"]
    assert validation["pairs"] >= 10 and validation["text_to_image_recall@10"] > 10 / validation["pairs"]


def _top_levels(bundle, found) -> list[str]:
    category = bundle.items.set_index("item_id")["category"]
    return [category[s.item_id].split("/")[0] for s in found]


def test_a_text_query_finds_photos(shop):
    rec = Recommender(shop)
    vector = ItemEmbedder(shop).embed_query("a pair of shoes")
    for mode in ("image", "both"):
        found = rec.search(vector, k=5, mode=mode)
        assert _top_levels(shop, found).count("footwear") >= 4, (mode, found)
    # items without text are found by their photo alone
    assert rec.search(vector, k=5).ids == rec.search(vector, k=5, mode="both").ids  # both is the default
    with pytest.raises(InvalidRequest, match="mode must be one of"):
        rec.search(vector, mode="sound")


def test_the_cli_searches_each_query(shop):
    from recsys.cli import cli

    result = CliRunner().invoke(cli, ["search", "--bundle", str(shop.path), "a pair of shoes", "a wrist watch",
                                      "--mode", "image", "--k", "3", "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["mode"] == "image" and list(payload["results"]) == ["a pair of shoes", "a wrist watch"]
    assert all(len(rows) == 3 for rows in payload["results"].values())

    result = CliRunner().invoke(cli, ["search", "--bundle", str(shop.path), "a pair of shoes", "  "])
    assert result.exit_code == 2 and "a QUERY is empty" in result.output


def test_align_writes_a_new_version_with_its_own_joint_space(shop, plain_shop, tmp_path):
    import shutil

    from recsys.bundle import read_bundle
    from recsys.cli import cli

    source = tmp_path / "models" / "shop" / shop.version
    shutil.copytree(shop.path, source)
    config = tmp_path / "recsys.yaml"
    config.write_text("towers:\n  joint:\n    dim: 32\n")
    result = CliRunner().invoke(cli, ["--config", str(config), "align", "--bundle", str(source), "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "text_to_image_recall@10" in result.output
    aligned = read_bundle(tmp_path / "models" / "shop")  # the newest version
    assert aligned.version != shop.version and aligned.manifest["parent"] == shop.version
    assert aligned.joint.dim == 32 and aligned.manifest["joint"]["validation"]["pairs"] >= 10
    unchanged = {rel: entry for rel, entry in shop.manifest["files"].items() if not rel.startswith("joint/")}
    assert {rel: aligned.manifest["files"][rel] for rel in unchanged} == unchanged  # linked, not recomputed
    vector = ItemEmbedder(aligned).embed_query("a pair of shoes")
    assert _top_levels(aligned, Recommender(aligned).search(vector, k=5, mode="image")).count("footwear") >= 4

    result = CliRunner().invoke(cli, ["align", "--bundle", str(plain_shop.path), "--no-progress"])
    assert result.exit_code == 2 and "has no image and no text modality" in result.output
