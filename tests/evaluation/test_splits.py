"""Splits: deterministic for a seed, and nothing of the test leaks into training."""
import numpy as np
import pandas as pd
import pytest

from recsys.data import validate_interactions
from recsys.errors import DataError
from recsys.evaluation import make_split


@pytest.fixture(scope="module")
def events():
    rng = np.random.default_rng(4)
    n = 3000
    frame = pd.DataFrame({"user_id": [f"u{u}" for u in rng.integers(0, 120, n)],
                          "item_id": [f"i{i}" for i in rng.integers(0, 300, n)],
                          "event": "click", "timestamp": 1.6e9 + rng.permutation(n) * 60.0})
    return validate_interactions(frame, source="test")


def key(frame):
    return set(zip(frame["user_id"], frame["item_id"], frame["timestamp"]))


@pytest.mark.parametrize("kind, options", [
    ("random", {"test_fraction": 0.25, "seed": 1}), ("temporal", {"test_fraction": 0.2}),
    ("temporal", {"last_n": 2}), ("cutoff", {"quantile": 0.7}), ("cold-items", {"seed": 2}),
    ("cold-users", {"given": 3, "seed": 3})])
def test_splits_partition_the_events_and_repeat_for_a_seed(events, kind, options):
    split = make_split(kind, events, **options)
    again = make_split(kind, events, **options)
    assert key(split.test) == key(again.test) and key(split.train) == key(again.train)
    parts = [split.train, split.test, split.given, split.newcomers]
    assert sum(map(len, parts)) == len(events)
    assert not key(split.train) & key(split.test) and not key(split.given) & key(split.test)
    known = set(split.train["user_id"]) | set(split.given["user_id"])
    assert set(split.test["user_id"]) <= known and len(split.test) > 0
    # test users nothing is known about are kept apart, and counted
    assert not set(split.newcomers["user_id"]) & known
    assert split.dropped_users == split.newcomers["user_id"].nunique()


def test_temporal_and_cutoff_test_only_the_future(events):
    split = make_split("temporal", events, last_n=2)
    assert (split.test.groupby("user_id").size() <= 2).all()
    latest_train = split.train.groupby("user_id")["timestamp"].max()
    assert (split.test.groupby("user_id")["timestamp"].min() >= latest_train[split.test_users]).all()
    cut = make_split("cutoff", events, cutoff="2020-09-14")
    assert cut.train["timestamp"].max() <= pd.Timestamp("2020-09-14", tz="UTC") < cut.test["timestamp"].min()


def test_cold_splits_withhold_items_and_users(events):
    items = make_split("cold-items", events, item_fraction=0.3, seed=0)
    assert items.cold_items and set(items.test["item_id"]) <= items.cold_items
    assert not set(items.train["item_id"]) & items.cold_items
    users = make_split("cold-users", events, user_fraction=0.3, given=4, seed=0)
    assert not set(users.test["user_id"]) & set(users.train["user_id"])
    assert (users.given.groupby("user_id").size() == 4).all()
    times = pd.DataFrame({"given": users.given.groupby("user_id")["timestamp"].max(),
                          "test": users.test.groupby("user_id")["timestamp"].min()}).dropna()
    assert len(times) and (times["given"] <= times["test"]).all()


@pytest.mark.parametrize("kind, options, message", [
    ("sideways", {}, "unknown split 'sideways'"), ("random", {"test_fraction": 0}, "test_fraction"),
    ("temporal", {"last_n": 0}, "last_n"), ("cutoff", {"cutoff": "2001-01-01"}, "nothing to train"),
    ("cold-users", {"given": 0}, "given"), ("random", {"last_n": 3}, "unexpected keyword")])
def test_bad_split_options_name_the_problem(events, kind, options, message):
    with pytest.raises(DataError, match=message):
        make_split(kind, events, **options)
