"""Ranking and catalog metrics against hand-computed values and scikit-learn."""
import numpy as np
import pandas as pd
import pytest

from recsys.data import validate_interactions
from recsys.errors import DataError
from recsys.evaluation import metrics as M
from recsys.evaluation import ndcg_at_k, recall_at_k, temporal_split


def test_recall_and_ndcg_by_hand():
    ranked = [["a", "b", "c", "d"], ["x", "y"], ["p", "q"]]
    relevant = [{"b", "d", "z"}, {"x"}, set()]
    np.testing.assert_allclose(recall_at_k(ranked, relevant, 2), [1 / 3, 1.0, 0.0])
    np.testing.assert_allclose(recall_at_k(ranked, relevant, 4), [2 / 3, 1.0, 0.0])
    # user 0: hits at ranks 2 and 4 -> (1/log2 3 + 1/log2 5) / (1 + 1/log2 3 + 1/log2 4)
    dcg = 1 / np.log2(3) + 1 / np.log2(5)
    ideal = 1 + 1 / np.log2(3) + 1 / np.log2(4)
    np.testing.assert_allclose(ndcg_at_k(ranked, relevant, 4), [dcg / ideal, 1.0, 0.0])
    # a short list counts its missing ranks as misses
    np.testing.assert_allclose(ndcg_at_k([["z"]], [{"a", "z"}], 3), [1 / (1 + 1 / np.log2(3))])


def test_ndcg_and_map_match_sklearn():
    """NDCG@10 against ``ndcg_score``; AP over a full ranking (every relevant item listed) against
    ``average_precision_score``."""
    sklearn = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    for _ in range(40):
        relevant = rng.random(40) < 0.15
        if not relevant.any():
            continue
        scores = rng.random(40)
        ranked = np.argsort(-scores)[None]
        truth = M.Truth([np.flatnonzero(relevant)], 40)
        ours = M.accuracy(ranked, truth, 10)["ndcg"][0]
        assert ours == pytest.approx(sklearn.ndcg_score(relevant[None].astype(float), scores[None], k=10))
        ours = M.accuracy(ranked, truth, 40)["map"][0]
        assert ours == pytest.approx(sklearn.average_precision_score(relevant, scores), abs=1e-12)


def test_temporal_split_holds_out_each_users_latest():
    frame = validate_interactions(pd.DataFrame({
        "user_id": ["a"] * 10 + ["b"] * 3 + ["c"],
        "item_id": [f"i{k}" for k in range(14)],
        "event": "view",
        "timestamp": list(range(10, 0, -1)) + [5, 6, 7] + [1],
    }), source="test")
    split = temporal_split(frame, test_fraction=0.2)
    train, test = split.train, split.test
    assert sorted(test.loc[test["user_id"] == "a", "item_id"]) == ["i0", "i1"]  # the two latest
    assert test.loc[test["user_id"] == "b", "item_id"].tolist() == ["i12"]  # ceil(0.6) = 1
    assert "c" not in set(test["user_id"])  # one event: it stays in training
    assert len(train) + len(test) == len(frame)
    for user, group in test.groupby("user_id"):
        assert group["timestamp"].min() >= train.loc[train["user_id"] == user, "timestamp"].max()
    with pytest.raises(DataError, match="test_fraction"):
        temporal_split(frame, test_fraction=1.5)


def test_temporal_split_keeps_a_basket_on_one_side():
    """Events at one moment are one basket: the held-out part takes all of it, unless that would
    leave nothing to train on, and then the basket stays in training."""
    frame = validate_interactions(pd.DataFrame({
        "user_id": ["a"] * 6 + ["b"] * 3,
        "item_id": ["i1", "i2", "i3", "i3", "i4", "i5", "j1", "j1", "j2"],
        "event": "purchase",
        "timestamp": [1, 2, 3, 3, 3, 4, 7, 7, 7],
    }), source="test")
    split = temporal_split(frame, test_fraction=0.5)  # a: 3 of 6 held out, b: 2 of 3
    test = split.test
    assert sorted(test.loc[test["user_id"] == "a", "item_id"]) == ["i3", "i3", "i4", "i5"]
    assert sorted(split.train.loc[split.train["user_id"] == "a", "item_id"]) == ["i1", "i2"]
    assert "b" not in set(test["user_id"])  # b's one basket is all b has: it stays in training
    assert len(split.train) + len(test) == len(frame)


@pytest.mark.slow  # ranx compiles its metrics with numba on first use
def test_accuracy_matches_ranx(monkeypatch):
    """Every accuracy metric against ranx on random rankings. ranx's AP@k divides by all relevant
    items, ours by the most a top k can hold, ``min(|R|, k)``: compared after rescaling."""
    import warnings

    # ranx's functions run once here, on a few users: LLVM's optimisations would cost more than
    # they save (numba reads this when it is first imported; nothing else in the tests uses it)
    monkeypatch.setenv("NUMBA_OPT", "0")
    ranx = pytest.importorskip("ranx")
    rng = np.random.default_rng(3)
    n_users, n_items, k = 60, 80, 10
    relevant = [np.flatnonzero(rng.random(n_items) < rng.uniform(0.02, 0.3)) for _ in range(n_users)]
    ranked = np.array([rng.permutation(n_items)[:k] for _ in range(n_users)])
    users = [u for u in range(n_users) if len(relevant[u])]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # numba's type-cast and caching notes
        qrels = ranx.Qrels({f"u{u:03d}": {f"i{i}": 1 for i in relevant[u]} for u in users})
        run = ranx.Run({f"u{u:03d}": {f"i{i}": float(k - r) for r, i in enumerate(ranked[u])} for u in users})
        theirs = ranx.evaluate(qrels, run, [f"{m}@{k}" for m in ("precision", "recall", "ndcg", "map",
                                                                  "hit_rate", "mrr")], return_mean=False)
    ours = M.accuracy(ranked, M.Truth(relevant, n_items), k)
    sizes = np.array([len(relevant[u]) for u in users], float)
    for name, theirs_name in [("precision", "precision"), ("recall", "recall"), ("ndcg", "ndcg"),
                              ("hitrate", "hit_rate"), ("mrr", "mrr")]:
        np.testing.assert_allclose(ours[name][users], theirs[f"{theirs_name}@{k}"], atol=1e-9, err_msg=name)
    np.testing.assert_allclose(ours["map"][users] * np.minimum(sizes, k) / sizes, theirs[f"map@{k}"], atol=1e-9)


def test_every_accuracy_metric_by_hand():
    truth = M.Truth([[1, 3, 9], [5], [], [2]], n_items=10)
    ranked = np.array([[0, 1, 2, 3], [5, 6, -1, -1], [1, 2, 3, 4], [0, 4, 6, 7]])
    acc = M.accuracy(ranked, truth, 4)
    # user 0: hits at ranks 2 and 4 of 3 relevant
    np.testing.assert_allclose(acc["precision"], [0.5, 0.25, 0.0, 0.0])
    np.testing.assert_allclose(acc["recall"], [2 / 3, 1.0, 0.0, 0.0])
    np.testing.assert_allclose(acc["hitrate"], [1, 1, 0, 0])
    np.testing.assert_allclose(acc["mrr"], [0.5, 1.0, 0.0, 0.0])
    # AP@4 = (1/2 + 2/4) / min(3, 4)
    np.testing.assert_allclose(acc["map"], [(0.5 + 0.5) / 3, 1.0, 0.0, 0.0])
    ideal = 1 + 1 / np.log2(3) + 1 / np.log2(4)
    np.testing.assert_allclose(acc["ndcg"], [(1 / np.log2(3) + 1 / np.log2(5)) / ideal, 1.0, 0.0, 0.0])
    # k beyond the list: missing ranks are misses; the padding never hits
    np.testing.assert_allclose(M.accuracy(ranked[:, :2], truth, 3)["precision"], [1 / 3, 1 / 3, 0, 0])


def test_catalog_metrics_by_hand():
    ranked = np.array([[0, 1], [0, 2], [0, -1]])
    assert M.coverage(ranked, 5, 2) == pytest.approx(3 / 5)
    item_users = np.array([8, 4, 2, 0, 1])  # of 8 training users
    # recommended 0,1,0,2,0: p = 1, .5, 1, .25, 1
    assert M.novelty(ranked, item_users, 8, 2) == pytest.approx((0 + 1 + 0 + 2 + 0) / 5)
    # percentiles of popularity 8,4,2,0,1 -> 1, .75, .5, 0, .25
    assert M.popularity_percentile(ranked, item_users, 2) == pytest.approx((1 + .75 + 1 + .5 + 1) / 5)
    exposure = np.array([3, 1, 1, 0, 0], float)  # the textbook mean-absolute-difference Gini
    gini = np.abs(exposure[:, None] - exposure[None]).sum() / (2 * len(exposure) ** 2 * exposure.mean())
    assert M.exposure_gini(ranked, 5, 2) == pytest.approx(gini)
    assert M.exposure_gini(np.array([[0, 1], [2, 3], [4, -1]]), 5, 2) == pytest.approx(0.0)


def test_intra_list_diversity_by_hand():
    vectors = np.array([[1, 0], [0, 1], [1, 0], [0.6, 0.8]], np.float32)
    mask = np.array([True, True, True, False])
    ranked = np.array([[0, 1, 2], [0, 2, -1], [3, 0, -1]])
    # list 0: distances 1, 0, 1 -> 2/3; list 1: identical -> 0; list 2: one item with a vector: skipped
    assert M.intra_list_diversity(ranked, vectors, mask, 3) == pytest.approx((2 / 3 + 0) / 2)


def test_new_items_drop_what_the_user_had_from_lists_and_truth():
    import scipy.sparse as sp

    known = sp.csr_matrix(np.array([[1, 0, 0, 1, 0], [0, 0, 0, 0, 0]], np.float32))
    ranked = np.array([[0, 2, 3, 4], [1, 0, -1, -1]])
    assert M.drop_known(ranked, known).tolist() == [[2, 4, -1, -1], [1, 0, -1, -1]]
    truth = M.Truth([[0, 2], [1]], 5).without(known)
    assert [list(truth.matrix[u].indices) for u in range(2)] == [[2], [1]]


def test_paired_gain_has_an_interval_around_it_and_none_for_equal_models():
    rng = np.random.default_rng(0)
    base = rng.random(2000)
    better = base + 0.1 * rng.random(2000)
    gain, low, high = M.paired_gain(better, base)
    assert low < gain < high and low > 0
    assert gain == pytest.approx(better.mean() / base.mean() - 1)
    assert M.paired_gain(base, base) == (0.0, 0.0, 0.0)
    assert all(np.isnan(M.paired_gain(base, np.zeros(2000))))
