"""Precomputed similar items and feeds: the same answers as computing them, and the fallbacks."""
import dataclasses

import numpy as np
import pytest

from recsys.filters import ItemFilter
from recsys.fresh import ItemChanges
from recsys.precompute import TopLists
from recsys.service import Recommender


def assert_same_ranking(listed, computed):
    """Same scores rank by rank; the same ids except where two scores tie (within float error)."""
    a, b = [s.score for s in listed], [s.score for s in computed]
    np.testing.assert_allclose(a, b, atol=1e-5)
    if not b:
        return
    last = b[-1]
    clear = lambda found: {s.item_id for s in found if s.score > last + 1e-5}  # noqa: E731
    assert clear(listed) == clear(computed)


@pytest.fixture(scope="module")
def computing(market):
    """The market bundle without its precomputed lists: every query is computed."""
    return Recommender(dataclasses.replace(market, similar=None))


def test_the_build_writes_the_similar_lists(market):
    lists = market.similar
    assert lists is not None and lists.k == market.manifest["precomputed"]["similar"]["k"] == 100
    assert lists.rows.shape == (len(market.item_ids), 100)
    assert "precomputed/similar.rows.npy" in market.manifest["files"]
    own = np.arange(len(market.item_ids))[:, None]
    assert not (lists.rows == own).any()  # an item is never its own neighbour
    assert (np.diff(lists.scores, axis=1) <= 1e-6).all()  # best first


@pytest.mark.parametrize("n", [1, 10, 100])
def test_listed_similar_items_equal_the_computed_ones(market, computing, n):
    serving = Recommender(market)
    for item in market.item_ids.ids[::97]:
        assert_same_ranking(serving.similar_items(item, n=n), computing.similar_items(item, n=n))


def test_a_filter_takes_the_first_listed_items_that_pass_or_computes(market, computing):
    serving = Recommender(market)
    categories = market.items["category"].str.split("/").str[0]
    common, rare = categories.value_counts().index[0], categories.value_counts().index[-1]
    for category in (common, rare):
        f = ItemFilter(category=category, max_price=200.0)
        for item in market.item_ids.ids[:300:31]:
            listed = serving.similar_items(item, n=10, filters=f)
            assert_same_ranking(listed, computing.similar_items(item, n=10, filters=f))
            rows = market.item_ids.rows([s.item_id for s in listed])
            assert categories.iloc[rows].eq(category).all()


def test_deleted_and_changed_items_leave_the_listed_results(market, computing):
    item = market.item_ids.ids[5]
    top = [s.item_id for s in Recommender(market).similar_items(item, n=5)]
    changes = ItemChanges.build(market, gen=1, deleted={top[0], top[2]})
    serving = Recommender(market).with_changes(changes)
    found = serving.similar_items(item, n=10)
    assert not {top[0], top[2]} & {s.item_id for s in found}
    assert_same_ranking(found, computing.with_changes(changes).similar_items(item, n=10))


def test_per_request_weights_and_large_k_are_computed(market):
    serving = Recommender(market)
    item = market.item_ids.ids[0]
    assert serving.precomputed(item_id=item)
    assert not serving.precomputed(item_id=item, weights={"text": 1.0})
    found = serving.similar_items(item, n=300)  # more than the 100 listed
    assert len(found) == 300 and [s.score for s in found] == sorted((s.score for s in found), reverse=True)


def test_the_training_writes_the_feeds_with_the_scoring_it_used(feeds):
    collab = feeds.bundle.collab
    assert collab.feed is not None and collab.feed.rows.shape == (len(collab.user_ids), 100)
    assert collab.params["feed"] == {"k": 100, "content_weight": 0.3, "history_items": 20}
    seen = collab.user_items.matrix
    for u in range(0, len(collab.user_ids), 101):
        listed = collab.feed.rows[u][collab.feed.rows[u] >= 0]
        assert not set(listed) & set(seen.indices[seen.indptr[u]:seen.indptr[u + 1]])


@pytest.mark.parametrize("n, filters", [(10, None), (100, None), (150, None),
                                        (10, ItemFilter(max_price=50.0))])
def test_listed_feeds_equal_the_computed_ones(feeds, n, filters):
    bundle = feeds.bundle
    computing = Recommender(dataclasses.replace(bundle, collab=dataclasses.replace(bundle.collab, feed=None)))
    for user in bundle.collab.user_ids.ids[::53]:
        listed = feeds.recommend(user, n=n, filters=filters)
        computed = computing.recommend(user, n=n, filters=filters)
        assert listed.strategy == computed.strategy == "collaborative"
        assert_same_ranking(listed.items, computed.items)
        assert [s.cold for s in listed.items][:5] == [s.cold for s in computed.items][:5]


def test_feeds_listed_with_another_content_weight_are_not_used(feeds):
    user = feeds.bundle.collab.user_ids.ids[3]
    assert feeds.precomputed(user_id=user)
    other = Recommender(feeds.bundle, content_weight=0.6)
    assert not other.precomputed(user_id=user)
    assert not feeds.precomputed(user_id=user, exclude_seen=False)
    assert not feeds.precomputed(user_id="nobody")


def test_first_returns_the_allowed_prefix_or_says_it_cannot_tell():
    full = TopLists(np.array([[4, 2, 7]], np.int32), np.array([[0.9, 0.5, 0.1]], np.float32))
    allowed = np.ones(8, bool)
    rows, scores = full.first(0, 2, allowed)
    assert rows.tolist() == [4, 2] and scores.tolist() == pytest.approx([0.9, 0.5])
    allowed[2] = False
    assert full.first(0, 2, allowed)[0].tolist() == [4, 7]
    assert full.first(0, 3, allowed) is None  # more may pass beyond the list
    short = TopLists(np.array([[4, 2, -1]], np.int32), np.array([[0.9, 0.5, 0.0]], np.float32))
    assert short.first(0, 3, allowed)[0].tolist() == [4]  # the list held every candidate


def test_precompute_k_zero_writes_no_lists(session_dir, market):
    from recsys.bundle import read_bundle
    from recsys.pipeline import build_item_bundle
    from recsys.settings import load_settings
    from recsys.towers import create_tower

    settings = load_settings(state_dir=session_dir / "state",
                             index={"n_trees": 5, "recall_sample": 0, "precompute_k": 0})
    report = build_item_bundle(market.items.head(200), settings, session_dir / "models" / "nolists",
                               show_progress=False, towers={"tabular": create_tower("tabular")})
    bundle = read_bundle(report.path)
    assert bundle.similar is None and "precomputed" not in bundle.manifest
    assert len(Recommender(bundle).similar_items(bundle.item_ids.ids[0], n=5)) == 5
