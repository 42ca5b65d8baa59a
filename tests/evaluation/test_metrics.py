"""Ranking metrics against hand-computed values, and the temporal split."""
import numpy as np
import pandas as pd
import pytest

from recsys.data import validate_interactions
from recsys.errors import DataError
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


def test_ndcg_matches_sklearn_on_binary_relevance():
    sklearn = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    for _ in range(20):
        truth = rng.random(30) < 0.2
        if not truth.any():
            continue
        scores = rng.random(30)
        ranked = [list(np.argsort(-scores))]
        ours = ndcg_at_k(ranked, [set(np.flatnonzero(truth).tolist())], 10)[0]
        theirs = sklearn.ndcg_score(truth[None].astype(float), scores[None], k=10)
        assert ours == pytest.approx(theirs, abs=1e-9)


def test_temporal_split_holds_out_each_users_latest():
    frame = validate_interactions(pd.DataFrame({
        "user_id": ["a"] * 10 + ["b"] * 3 + ["c"],
        "item_id": [f"i{k}" for k in range(14)],
        "event": "view",
        "timestamp": list(range(10, 0, -1)) + [5, 6, 7] + [1],
    }), source="test")
    train, test = temporal_split(frame, test_fraction=0.2)
    assert sorted(test.loc[test["user_id"] == "a", "item_id"]) == ["i0", "i1"]  # the two latest
    assert test.loc[test["user_id"] == "b", "item_id"].tolist() == ["i12"]  # ceil(0.6) = 1
    assert "c" not in set(test["user_id"])  # one event: it stays in training
    assert len(train) + len(test) == len(frame)
    for user, group in test.groupby("user_id"):
        assert group["timestamp"].min() >= train.loc[train["user_id"] == user, "timestamp"].max()
    with pytest.raises(DataError, match="test_fraction"):
        temporal_split(frame, test_fraction=1.5)
