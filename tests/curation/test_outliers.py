"""Outlier scores on real photos with broken and swapped photos injected (the ``broken`` shop)."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
from click.testing import CliRunner
from sklearn.metrics import roc_auc_score

from recsys.curation import find_outliers


def _faults(found: pd.DataFrame, truth: pd.DataFrame) -> pd.Series:
    return found["item_id"].map(dict(zip(truth["item_id"], truth["fault"])))


def test_blank_and_noise_photos_score_highest_with_a_quality_reason(broken):
    bundle, truth = broken
    found = find_outliers(bundle).items
    fault = _faults(found, truth)
    bad = found[fault.isin(["blank", "noise"])]
    assert len(bad) == 6
    assert bad.index.max() < 8, found.head(10)[["item_id", "score", "reasons"]]  # all six near the top
    for reasons, kind in zip(bad["reasons"], fault[bad.index]):
        expected = "blank or nearly uniform photo" if kind == "blank" else "photo is noise"
        assert expected in reasons, (kind, reasons)


def test_swapped_photos_look_like_their_photo_s_category(broken):
    bundle, truth = broken
    found = find_outliers(bundle).items
    fault = _faults(found, truth)
    judged = found[fault.isna() | (fault == "swapped")]
    auroc = roc_auc_score(fault[judged.index] == "swapped", judged["off_category"].fillna(0))
    assert auroc >= 0.9, auroc
    swapped = found[fault == "swapped"]
    category = bundle.items.set_index("item_id")["category"]
    # the suggestion names the top-level category of the photo the item now shows
    top = swapped["suggested_category"].fillna("").str.split("/").str[0]
    assert (top != category[swapped["item_id"]].str.split("/").str[0].to_numpy()).mean() >= 0.75


def test_scores_are_sorted_and_every_item_is_scored(broken):
    bundle, _ = broken
    found = find_outliers(bundle)
    assert len(found.items) == len(bundle.item_ids) and found.items["item_id"].is_unique
    assert np.all(np.diff(found.items["score"].to_numpy()) <= 0)
    assert found.top(5).equals(found.items.head(5)) and len(found.top(0)) == len(found.items)
    assert all(c is None or isinstance(c, str) for c in found.items["suggested_category"])  # never NaN
    # below both reason thresholds (z 3, severity 0.5) a score stays under 3 + 0.5 * QUALITY_Z
    from recsys.curation.outliers import QUALITY_Z, REASON_Z

    bound = REASON_Z + 0.5 * QUALITY_Z
    assert all(reasons for score, reasons in zip(found.items["score"], found.items["reasons"]) if score >= bound)
    assert found.items["reasons"].str.len().gt(0).mean() < 0.2  # most real photos give no reason


def test_the_cli_prints_the_top_items_as_json(broken):
    from recsys.cli import cli

    bundle, _ = broken
    result = CliRunner().invoke(cli, ["curate", "outliers", "--bundle", str(bundle.path), "--top", "5", "--json",
                                       "--no-progress"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    assert payload["version"] == bundle.version and len(payload["items"]) == 5
    assert set(payload["items"][0]) == {"item_id", "score", "reasons", "suggested_category"}
    everything = CliRunner().invoke(cli, ["curate", "outliers", "--bundle", str(bundle.path), "--top", "0",
                                           "--json", "--no-progress"])
    assert len(json.loads(everything.output)["items"]) == len(bundle.item_ids)
