"""The synthetic shop: deterministic, stable per item, users with visible tastes."""
from pathlib import Path

import numpy as np
import pandas as pd

from recsys.data.synthetic import CATEGORIES, make_catalog, make_interactions


def test_deterministic_and_stable_per_item(tmp_path):
    small = make_catalog(120, seed=5, image_dir=tmp_path)
    again = make_catalog(120, seed=5, image_dir=tmp_path / "other")
    big = make_catalog(300, seed=5)
    cols = ["item_id", "title", "price", "category", "true_colour", "pattern"]
    pd.testing.assert_frame_equal(small[cols], again[cols])
    pd.testing.assert_frame_equal(small[cols], big[cols].iloc[:120])
    first = small["image"][small["image"] != ""].iloc[0]
    other = again["image"][again["image"] != ""].iloc[0]
    assert Path(first).read_bytes() == Path(other).read_bytes()
    assert not small[cols].equals(make_catalog(120, seed=6)[cols])


def test_catalog_shape():
    catalog = make_catalog(2000, seed=1, missing_image=0.1)
    assert set(catalog["category"]) == set(CATEGORIES)
    assert (catalog["price"] > 0).all()
    assert 0.15 < (catalog["colour"] == "").mean() < 0.25
    assert 0.01 < (catalog["title"] == "").mean() < 0.06
    # log-normal prices per category: watches cost more than mugs
    medians = catalog.groupby("category")["price"].median()
    assert medians["accessories/watches"] > 5 * medians["home/kitchen/mugs"]


def test_users_follow_their_tastes():
    catalog = make_catalog(3000, seed=2)
    events, users = make_interactions(catalog, 300, seed=2)
    joined = events.merge(catalog, on="item_id").merge(users, on="user_id", suffixes=("", "_user"))
    same_category = (joined["category"] == joined["category_user"]).mean()
    chance = 1 / len(CATEGORIES)
    assert same_category > 3 * chance, same_category
    views = events[events["event"] == "view"]
    counts = views["item_id"].value_counts().to_numpy()
    assert counts[: len(counts) // 10].sum() > 0.3 * counts.sum()  # popularity skew: top 10% > 30%
    funnel = events["event"].value_counts()
    assert funnel["view"] > funnel["click"] > funnel["add_to_cart"] > funnel["purchase"] > 0
    # timestamps: a click never precedes the view of the same item
    first = events.pivot_table(index=["user_id", "item_id"], columns="event", values="timestamp", aggfunc="min")
    clicked = first["click"].notna()
    assert (first.loc[clicked, "click"] > first.loc[clicked, "view"]).all()
    assert np.isin(users["price_band"], ["budget", "mid", "premium"]).all()
