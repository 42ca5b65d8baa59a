"""Labels from a few examples and from prompts, on real products (the ``broken`` shop)."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from recsys.curation import label_from_examples, label_from_prompts
from recsys.errors import InvalidRequest
from recsys.serve.embedder import ItemEmbedder


def _top(bundle) -> pd.Series:
    return bundle.items.set_index("item_id")["category"].str.split("/").str[0]


def _examples(bundle, per_label: int) -> pd.DataFrame:
    top = _top(bundle)
    common = top.value_counts()[lambda c: c > 2 * per_label].index
    picked = top[top.isin(common)].groupby(level=0).first()  # one row per item
    picked = top[top.isin(common)].reset_index().groupby("category").head(per_label)
    return pd.DataFrame({"label": picked["category"], "item_id": picked["item_id"]})


def test_a_few_examples_label_the_rest_of_the_catalog(broken):
    bundle, truth = broken
    examples = _examples(bundle, 3)
    found = label_from_examples(bundle, examples)
    assert found.method == "examples" and set(found.labels) == set(examples["label"])
    assert not set(found.items["item_id"]) & set(examples["item_id"])
    assert len(found.items) == len(bundle.item_ids) - len(examples)
    judged = found.items[~found.items["item_id"].isin(truth["item_id"])]  # broken photos aside
    top = _top(bundle)[judged["item_id"]].to_numpy()
    known = np.isin(top, examples["label"])
    accuracy = (judged["label"].to_numpy()[known] == top[known]).mean()
    assert accuracy >= 0.8, accuracy
    assert found.items["confidence"].between(1 / len(found.labels), 1).all()


def test_prompts_label_items_by_their_text_and_photos(broken):
    bundle, truth = broken
    prompts = pd.DataFrame({"label": ["apparel", "footwear", "accessories"],
                            "text": ["clothing: a shirt, t-shirt, top, dress, jeans or trousers",
                                     "footwear: shoes, sneakers, sandals, heels or flip flops",
                                     "an accessory: a watch, bag, wallet, belt, sunglasses or jewellery"]})
    encode = ItemEmbedder(bundle).embed_queries
    assert bundle.joint is not None
    for shop in (bundle, dataclasses.replace(bundle, joint=None)):  # text and photos, then text alone
        found = label_from_prompts(shop, prompts, encode)
        assert len(found.items) == len(bundle.item_ids)
        top = _top(bundle)[found.items["item_id"]].to_numpy()
        judged = np.isin(top, prompts["label"]) & ~found.items["item_id"].isin(truth["item_id"]).to_numpy()
        accuracy = (found.items["label"].to_numpy()[judged] == top[judged]).mean()
        assert accuracy >= 0.7, (shop.joint is not None, accuracy)


@pytest.mark.parametrize("rows, message", [
    ([("a", "x")], "at least two labels"),
    ([("a", "no-such-item"), ("b", "other-missing")], "not in bundle"),
])
def test_bad_examples_are_refused(broken, rows, message):
    bundle, _ = broken
    if rows[0][1] == "x":
        rows = [("a", str(bundle.item_ids.ids[0]))]
    with pytest.raises(InvalidRequest, match=message):
        label_from_examples(bundle, pd.DataFrame(rows, columns=["label", "item_id"]))
    item = str(bundle.item_ids.ids[0])
    with pytest.raises(InvalidRequest, match="more than one label"):
        label_from_examples(bundle, pd.DataFrame([("a", item), ("b", item)], columns=["label", "item_id"]))


def test_the_cli_labels_from_a_csv(broken, tmp_path):
    from recsys.cli import cli

    bundle, _ = broken
    examples = _examples(bundle, 2)
    path = tmp_path / "examples.csv"
    examples.to_csv(path, index=False)
    result = CliRunner().invoke(cli, ["curate", "label", "--bundle", str(bundle.path), "--examples", str(path),
                                       "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    assert payload["version"] == bundle.version and len(payload["items"]) == len(bundle.item_ids) - len(examples)
    assert set(payload["items"][0]) == {"item_id", "label", "confidence"}
    neither = CliRunner().invoke(cli, ["curate", "label", "--bundle", str(bundle.path)])
    assert neither.exit_code == 2 and "one of --examples or --prompts" in neither.output
