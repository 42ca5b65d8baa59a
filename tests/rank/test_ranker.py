"""The ranking stage on synthetic shoppers with planted habits: sources propose what they should,
features never read the future, and the ranker learns that shoppers rebuy."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from recsys.data import validate_interactions
from recsys.errors import DataError
from recsys.evaluation import evaluate
from recsys.evaluation.models import EvalData
from recsys.evaluation.splits import cutoff_split
from recsys.rank.features import feature_names, features, gather
from recsys.rank.log import DAY, EventLog
from recsys.rank.ranker import Ranker
from recsys.rank.sources import Audience, CoPurchase, Repurchase, Trending, UserTower, create_sources
from recsys.rank.state import ItemFacts, ShopState
from recsys.settings import RankSettings
from tests.conftest import make_settings
from tests.rank.shop import START, WEIGHTS, rebuyers


def test_the_state_never_reads_events_after_its_moment(store):
    events = rebuyers(50, days=4)
    log = EventLog.from_frame(events, store.item_ids, WEIGHTS)
    facts = ItemFacts.from_items(store.items)
    moment = START + 2 * DAY
    early = ShopState(log.window(stop=moment), facts, now=moment)
    later = ShopState(log, facts, now=moment)
    assert (early.bought != later.bought).nnz == 0
    assert np.array_equal(early.trending, later.trending)
    assert early.log.seconds.max() < moment


def test_sources_propose_what_each_is_for(store):
    # U0 bought I001 twice and I002; U1 bought I001 and I003 together; I005 sold the most lately
    events = validate_interactions(pd.DataFrame({
        "user_id": ["U0", "U0", "U0", "U1", "U1", "U2", "U3", "U4"],
        "item_id": ["I001", "I001", "I002", "I001", "I003", "I005", "I005", "I005"],
        "event": "purchase",
        "timestamp": pd.to_datetime(START + np.array([0, 1, 1, 2, 2, 3, 3, 3]) * DAY, unit="s", utc=True)}),
        source="test")
    log = EventLog.from_frame(events, store.item_ids, WEIGHTS)
    state = ShopState(log, ItemFacts.from_items(store.items))
    audience = Audience.of(state, log.users_of(["U0", "U1"]))
    rows = store.item_ids.rows
    again = Repurchase(10).propose(state, audience)
    assert set(again[0].indices) == set(rows(["I001", "I002"]))
    assert again[0, rows(["I001"])[0]] > again[0, rows(["I002"])[0]]  # bought twice
    together = CoPurchase(10).propose(state, audience)
    assert rows(["I003"])[0] in together[0].indices  # U0 has I001, which U1 bought with I003
    best = Trending(1).propose(state, audience)
    assert list(best[1].indices) == list(rows(["I005"]))
    anonymous = Audience.of(state, np.array([-1]), [list(rows(["I001"]))])
    assert rows(["I003"])[0] in CoPurchase(10).propose(state, anonymous)[0].indices


def test_the_user_tower_proposes_what_shoppers_like_them_bought(store):
    # two kinds of shoppers: the even ones buy among I000..I009, the odd ones among I010..I019
    rng = np.random.default_rng(0)
    rows = [(f"U{u:03d}", f"I{item + 10 * (u % 2):03d}", day) for u in range(200)
            for day, item in enumerate(rng.choice(10, 4, replace=False))]
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "day"])
    frame["event"] = "purchase"
    frame["timestamp"] = pd.to_datetime(START + frame.pop("day") * DAY, unit="s", utc=True)
    log = EventLog.from_frame(validate_interactions(frame, source="test"), store.item_ids, WEIGHTS)
    state = ShopState(log, ItemFacts.from_items(store.items))
    rows_of = store.item_ids.rows
    kind = {0: set(rows_of([f"I{i:03d}" for i in range(10)])), 1: set(rows_of([f"I{i:03d}" for i in range(10, 20)]))}
    users = ["U000", "U001", "U002", "U003"]
    proposed = UserTower(5).propose(state, Audience.of(state, log.users_of(users)))
    for u, user in enumerate(users):
        assert set(proposed[u].indices) <= kind[u % 2], user
    # a session the state does not know is solved from its items
    session = Audience.of(state, np.array([-1]), [list(rows_of(["I011", "I012", "I013"]))])
    assert set(UserTower(5).propose(state, session)[0].indices) <= kind[1]


@pytest.mark.parametrize("als", [0, 20])
def test_features_have_one_column_per_name_and_no_future(store, als):
    events = rebuyers(80, days=5)
    log = EventLog.from_frame(events, store.item_ids, WEIGHTS)
    facts = ItemFacts.from_items(store.items)
    settings = RankSettings(sources={"als": als})
    sources = create_sources(store, settings.sources)
    moment = START + 3 * DAY
    state = ShopState(log.window(stop=moment), facts, now=moment)
    audience = Audience.of(state, np.arange(10))
    cands = gather(state, audience, sources)
    x = features(state, store, audience, cands)
    names = feature_names([s.name for s in sources], list(store.vectors.blocks))
    assert x.shape == (len(cands), len(names))
    assert np.all(np.diff(cands.users) >= 0)
    days_since = x[:, names.index("days_since_item")]
    assert np.nanmin(days_since) > 0  # everything the features know happened before the moment


@pytest.mark.slow  # trains three models on 1,500 shoppers: half a minute
def test_a_ranker_learns_that_shoppers_rebuy_and_beats_the_baselines(store, tmp_path):
    events = rebuyers()
    settings = make_settings(tmp_path, collab={"exclude_seen": False},
                             rank={"enabled": True, "label_days": 1.0, "objectives": ["binary"]})
    split = cutoff_split(events, cutoff=START + 9.5 * DAY)
    data = EvalData.build(store, split, settings)
    report = evaluate(data, ["recent-popular", "hybrid", "ranker"], ks=(10,), show_progress=False)
    ndcg = report.metrics["ndcg@10"]
    assert ndcg["ranker"] > 1.5 * ndcg["recent-popular"]
    assert ndcg["ranker"] > 1.2 * ndcg["hybrid"]  # the blend finds the staples too, but not when they are due
    gain = report.gains.set_index(["model", "metric"]).loc[("ranker", "ndcg@10")]
    assert gain["low"] > 0  # the whole interval above the best baseline
    assert report.info["exclude_seen"] is False
    # what the model leans on: whether the user had the item
    log = EventLog.from_frame(split.train, store.item_ids, WEIGHTS)
    ranker = Ranker.fit(log, ItemFacts.from_items(store.items), store, settings=settings.rank)
    importance = dict(zip(ranker.features, ranker.booster.feature_importance("gain")))
    top = max(importance, key=importance.get)
    assert top in {"repurchase_score", "repurchase_rank", "user_item_strength", "user_item_count",
                   "days_since_item"}, importance


@pytest.mark.slow  # fits the ranker twice
def test_train_keeps_the_ranker_in_the_bundle_and_it_ranks_the_same_loaded(store, tmp_path):
    from recsys.bundle import read_bundle
    from recsys.pipeline.train import train_user_tower

    events = rebuyers()
    # both objectives, so that the choice between them is made; few rounds, since it is fitted twice
    settings = make_settings(tmp_path, rank={"enabled": True, "label_days": 1.0, "rounds": 60})
    report = train_user_tower(store, events, settings, show_progress=False)
    assert report.ranker["objective"] in ("lambdarank", "binary") and "ranker" in report.summary()
    trained = read_bundle(report.path)
    assert trained.manifest["collab"]["ranker"]["train_groups"] >= 200
    assert trained.collab.ranker.model.startswith("tree")  # LightGBM's text format, no pickle
    ranker, log = Ranker.from_files(trained.collab.ranker, trained.collab.user_ids, len(trained.item_ids))
    fresh = Ranker.fit(EventLog.from_frame(events, store.item_ids, settings.collab.event_weights),
                       ItemFacts.from_items(store.items), store, settings=settings.rank, seed=settings.seed)
    facts = ItemFacts.from_items(store.items)
    state = ShopState(log, facts)
    audience = Audience.of(state, np.arange(20))
    first, second = fresh.rank(state, store, audience, 10), ranker.rank(state, store, audience, 10)
    assert np.array_equal(first.rows, second.rows)
    contributions = ranker.contributions(second.x[:5])
    assert contributions.shape == (5, len(ranker.features) + 1)
    assert np.allclose(contributions.sum(axis=1), second.pair_scores[:5], atol=1e-4)
    exclude = sp.csr_matrix(state.bought[:20] != 0, dtype=np.float32)
    kept = ranker.rank(state, store, audience, 10, exclude=exclude)
    listed = kept.rows[kept.rows >= 0]
    assert not np.asarray(exclude[np.nonzero(kept.rows >= 0)[0], listed]).any()


def test_train_without_enough_events_keeps_the_blend_and_says_why(store, tmp_path):
    from recsys.bundle import read_bundle
    from recsys.pipeline.train import train_user_tower
    from recsys.serve import Recommender

    settings = make_settings(tmp_path, rank={"enabled": True, "label_days": 1.0})
    # 8 shoppers over 4 days: at most 8 groups in each of the 3 training days, fewer than rank.min_groups
    report = train_user_tower(store, rebuyers(8, days=4), settings, show_progress=False)
    trained = read_bundle(report.path)
    assert trained.collab.ranker is None
    assert f"needs {settings.rank.min_groups}" in trained.manifest["collab"]["ranker"]["skipped"]
    assert "no ranker in this bundle" in report.summary()
    assert Recommender(trained).recommend("U00001", 5).strategy == "collaborative"  # the blend serves


@pytest.mark.slow  # fits the ranker
def test_explanations_name_the_planted_reason(store):
    from recsys.rank.explain import explain

    events = rebuyers()
    log = EventLog.from_frame(events, store.item_ids, WEIGHTS)
    facts = ItemFacts.from_items(store.items)
    ranker = Ranker.fit(log, facts, store, settings=RankSettings(label_days=1.0))
    state = ShopState(log, facts)
    audience = Audience.of(state, np.arange(30))
    ranked = ranker.rank(state, store, audience, 5)
    staples_explained = 0
    for u in range(30):
        whys = explain(ranker, ranked, state, u)
        assert len(whys) == int((ranked.rows[u] >= 0).sum())
        for item, why in zip(ranked.rows[u], whys):
            assert why.sources and all(r.contribution > 0 for r in why.reasons)
            if state.count[audience.rows[u], item] >= 2:  # a staple: the user rebought it
                assert "repurchase" in why.sources
                if why.reasons and why.reasons[0].name == "bought":
                    staples_explained += 1
                    assert why.reasons[0].text.startswith("you bought it")
    assert staples_explained >= 20
    # another colour of a product the user had is named as such (items 2j and 2j + 1 here: one
    # title, two colours), whatever likeness raised it
    items = store.items.assign(title=[f"Tee {i // 2}" for i in range(len(store.items))],
                               colour=["black", "white"] * (len(store.items) // 2))
    state = ShopState(log, ItemFacts.from_items(items))
    variants = 0
    for u in range(30):
        siblings = np.array([r ^ 1 for r in ranked.rows[u] if r >= 0])
        for item, why in zip(ranked.rows[u], explain(ranker, ranked, state, u, history=siblings)):
            for reason in why.reasons:
                if reason.name in ("looks", "described", "attributes", "together"):
                    assert reason.text == f"another colour of the Tee {item // 2} you bought or viewed"
                    variants += 1
                else:
                    assert "another colour" not in reason.text
    assert variants > 0


def test_a_log_with_quiet_days_gives_no_ranker_and_no_crash(store):
    events = rebuyers(60, days=3)
    later = events.copy()
    later["timestamp"] = later["timestamp"] + pd.Timedelta(days=10)  # days 10-12: days 3-9 are quiet
    log = EventLog.from_frame(pd.concat([events, later]), store.item_ids, WEIGHTS)
    with pytest.raises(DataError, match="too few events for a ranker"):
        Ranker.fit(log, ItemFacts.from_items(store.items), store, now=log.end + 5 * DAY,
                   settings=RankSettings(label_days=1.0))
