"""Similar items and feeds collapse duplicate listings (the bundle's groups) unless told not to."""
from __future__ import annotations

import numpy as np
import pandas as pd

from recsys.curation import find_duplicates
from recsys.data import validate_interactions
from recsys.serve import Recommender


def _groups_of(bundle, ids: list[str]) -> list[int]:
    return [int(bundle.duplicate_of[bundle.item_ids.row(i)]) for i in ids]


def test_the_build_keeps_the_duplicate_groups(faulty):
    bundle, _ = faulty
    found = find_duplicates(bundle)
    assert bundle.duplicate_of is not None
    assert np.array_equal(bundle.duplicate_of, found.first_rows(bundle.item_ids))
    assert bundle.manifest["duplicates"]["groups"] == len(found.groups) == len(set(bundle.duplicate_of) - {-1})
    firsts = bundle.item_ids.rows([group[0] for group in found.groups])
    assert (bundle.duplicate_of[firsts] == firsts).all()


def test_similar_items_show_one_listing_per_product(faulty):
    bundle, truth = faulty
    rec = Recommender(bundle)
    exact = truth[truth["transform"] == "exact copy"]
    for source in exact["source"]:
        copies = set(truth.loc[truth["source"] == source, "copy"])
        plain = rec.similar_items(source, k=10, dedupe=False).ids
        assert copies & set(plain[:2]), plain  # the copy is the nearest listing
        shown = rec.similar_items(source, k=10).ids
        assert len(shown) == 10 and not copies & set(shown)
        groups = [g for g in _groups_of(bundle, shown) if g >= 0]
        assert len(groups) == len(set(groups)) and bundle.duplicate_of[bundle.item_ids.row(source)] not in groups


def test_feeds_show_one_listing_per_product(faulty, tmp_path):
    from tests.conftest import train

    bundle, truth = faulty
    rng = np.random.default_rng(0)
    # shoppers who bought sources and their copies alike, so both rank high in feeds
    items = pd.concat([truth["source"], truth["copy"]]).tolist()
    events = pd.DataFrame([(f"u{u}", item, "purchase") for u in range(40) for item in rng.choice(items, 6)],
                          columns=["user_id", "item_id", "event"]).drop_duplicates()
    trained = train(bundle, validate_interactions(events, source="test"), tmp_path)
    rec = Recommender(trained)
    collapsed = 0
    for user in [f"u{u}" for u in range(40)]:
        plain = rec.recommend(user, k=20, dedupe=False).ids
        shown = rec.recommend(user, k=20).ids
        groups = [g for g in _groups_of(trained, shown) if g >= 0]
        assert len(shown) == 20 and len(groups) == len(set(groups))
        collapsed += plain != shown
    assert collapsed > 0  # some feeds held two listings of one product
