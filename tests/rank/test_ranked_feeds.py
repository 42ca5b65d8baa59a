"""Ranked feeds served from a bundle's ranker: shoppers who rebuy get their staples back, with the
reason; filters, seen items, sessions and put items keep working; without a ranker, the blend."""
from __future__ import annotations

import numpy as np
import pytest

from recsys.serve import FeedQuery, Recommender
from recsys.serve.filters import ItemFilter
from tests.rank.shop import ranked_shop, rebuyers
from tests.test_feed import put_copies


@pytest.fixture(scope="module")
def shop(store, tmp_path_factory):
    from recsys.bundle import read_bundle

    bundle = read_bundle(ranked_shop(tmp_path_factory.mktemp("ranked"), store).path)
    assert bundle.collab.ranker is not None
    return bundle, rebuyers()


def _staples(events, user: str) -> set[str]:
    """The items a user bought more than once."""
    mine = events[events["user_id"] == user]["item_id"].value_counts()
    return set(mine[mine >= 2].index)


def test_a_ranked_feed_gives_rebuyers_their_staples_and_says_why(shop):
    bundle, events = shop
    rec = Recommender(bundle)
    users = [f"U{u:05d}" for u in range(40)]
    hits = explained = 0
    for user in users:
        feed = rec.recommend(user, 5, explain=True)
        assert feed.strategy == "ranked" and len(feed) == 5
        assert [s.score for s in feed] == sorted((s.score for s in feed), reverse=True)
        staples = _staples(events, user)
        hits += bool(staples & set(feed.ids[:2]))
        for s in feed:
            assert s.why["sources"] and all(r["contribution"] > 0 for r in s.why["reasons"])
            if s.item_id in staples and s.why["reasons"] and s.why["reasons"][0]["reason"] == "bought":
                explained += 1
                assert s.why["reasons"][0]["text"].startswith("you bought it")
    assert hits >= 30  # the blend alone places a staple in the top 2 far less often (below)
    assert explained >= 20
    blend = Recommender(bundle, rank=False, exclude_seen=False)
    blend_hits = sum(bool(_staples(events, u) & set(blend.recommend(u, 2).ids)) for u in users)
    assert blend.recommend(users[0], 5).strategy == "collaborative"
    assert hits > blend_hits
    assert all(s.why is None for s in rec.recommend(users[0], 5))  # only when asked


def test_seen_items_filters_and_dedupe_hold_in_ranked_feeds(shop):
    bundle, events = shop
    rec = Recommender(bundle)
    user = "U00003"
    had = set(events[events["user_id"] == user]["item_id"])
    unseen = rec.recommend(user, 20, exclude_seen=True)
    assert unseen.strategy == "ranked" and len(unseen) == 20 and not had & set(unseen.ids)
    # a narrow filter: the sources propose few of its items, the blend's join them, k is filled
    kind = ItemFilter.create(category="dept1/kind4")
    members = set(bundle.items.loc[bundle.items["category"] == "dept1/kind4", "item_id"])
    narrow = rec.recommend(user, 20, filters=kind)
    assert narrow.strategy == "ranked" and set(narrow.ids) <= members and len(narrow) == 20 < len(members)
    cheap = rec.recommend(user, 10, filters=ItemFilter.create(max_price=20, exclude=["I001"]))
    prices = bundle.items.set_index("item_id")["price"]
    assert all(prices[i] <= 20 for i in cheap.ids) and "I001" not in cheap.ids


def test_sessions_and_new_users_are_ranked_from_their_recent_items(shop):
    bundle, events = shop
    rec = Recommender(bundle)
    staple = sorted(_staples(events, "U00007"))[0]
    session = rec.recommend(None, 10, recent_items=[staple, "I100"], explain=True)
    assert session.strategy == "ranked"
    assert staple in session.ids  # a visitor may buy again what they just looked at
    newcomer = rec.recommend("nobody-yet", 10, recent_items=[staple])
    assert newcomer.strategy == "ranked" and "placed by the recent items" in newcomer.message
    # a trained user's activity since the bundle comes first in their history
    before = rec.recommend("U00007", 10)
    after = rec.recommend("U00007", 10, recent_items=["I250", "I251", "I252"])
    assert before.ids != after.ids
    # nothing known: the ranker orders the best sellers, and says so
    nobody = rec.recommend(None, 10, explain=True)
    assert nobody.strategy == "ranked" and len(nobody) == 10 and "popular" in nobody.message
    assert all("trending" in s.why["sources"] for s in nobody)
    assert nobody.ids == rec.recommend("nobody-yet", 10).ids
    # read from the one list ranked at load, as the computed feed would be, filters included
    assert rec.plan(FeedQuery(None, 10)).source == "lookup"
    assert rec.plan(FeedQuery(None, 10, explain=True)).source == "compute"
    cheap = ItemFilter.create(max_price=30)
    assert rec.plan(FeedQuery(None, 5, filters=cheap)).source == "lookup"
    assert rec.recommend(None, 5, filters=cheap).ids == rec.recommend(None, 5, filters=cheap, explain=True).ids


def test_put_items_take_the_place_the_blend_gives_them(shop):
    bundle, _ = shop
    rec = Recommender(bundle)
    user = "U00011"
    blend_ids = Recommender(bundle, rank=False, exclude_seen=False).recommend(user, 10).ids
    with_put = put_copies(rec, bundle.item_ids.rows(blend_ids[:2]))
    feed = with_put.recommend(user, 10, explain=True)
    put = [s for s in feed if s.item_id.startswith("PUT-")]
    assert put and all(s.why["sources"] == ["new"] for s in put)
    assert [s.score for s in feed] == sorted((s.score for s in feed), reverse=True)
    assert len(feed) == 10


def test_a_trained_users_feed_is_read_from_the_bundles_ranked_lists_as_it_would_be_ranked(shop):
    bundle, _ = shop
    assert bundle.collab.ranker.feed is not None and bundle.collab.ranker.config["feed"]["k"] == 100
    rec = Recommender(bundle, feed_lists=100)
    plan = rec.plan(FeedQuery("U00001", 10))
    assert plan.source == "lookup" and plan.inputs.ranked and not plan.inputs.exclude_seen
    assert rec.plan(FeedQuery("U00001", 10, exclude_seen=True)).inputs.exclude_seen
    assert rec.plan(FeedQuery("U00001", 10, explain=True)).source == "compute"
    assert rec.plan(FeedQuery("U00001", 10, recent_items=("I005",))).source == "compute"
    cheap = ItemFilter.create(max_price=30)
    for user in ("U00001", "U00002", "U00040"):
        for options in ({}, {"exclude_seen": True}, {"filters": cheap}):
            listed = rec.recommend(user, 10, **options)
            ranked = rec.recommend(user, 10, explain=True, **options)  # computed: explanations are not listed
            assert listed.strategy == ranked.strategy == "ranked"
            assert listed.ids == ranked.ids, (user, options)
    ids, scores = rec.recommend(["U00001", None, "U00002"], k=5)
    assert ids.shape == (3, 5) and np.isfinite(scores[0]).all()


def test_a_batch_ranks_its_users_in_blocks_and_answers_as_the_single_calls(shop):
    bundle, _ = shop
    rec = Recommender(bundle)
    users = [f"U{u:05d}" for u in range(0, 300, 7)] + ["nobody", None]
    recents = [["I010"] if u % 5 == 0 else [] for u in range(len(users))]
    for options in ({}, {"exclude_seen": True}, {"filters": ItemFilter.create(category="dept2")}):
        ids, scores = rec.recommend(users, k=8, recent_items=recents, **options)
        for row, row_scores, user, recent in zip(ids, scores, users, recents):
            single = rec.recommend(user, 8, recent_items=recent, **options)
            assert list(row[:len(single)]) == single.ids
            # a cosine feature computed in another block of users may differ in its last bits, and
            # now and then that crosses a tree's threshold
            np.testing.assert_allclose(row_scores[:len(single)], [s.score for s in single], atol=2e-3)


@pytest.mark.slow  # starts recsys serve
def test_the_api_explains_ranked_feeds_and_refuses_bad_explain_values(shop, tmp_path):
    import json

    from tests.api.live import LiveServer, request

    bundle, _ = shop
    server = LiveServer(tmp_path, {}, bundle=bundle.path, workers=1)
    try:
        server.wait_ready()
        status, _, body = request(server.port, "GET", "/v1/users/U00001/recommendations?k=5&explain=true")
        feed = json.loads(body)
        assert status == 200 and feed["strategy"] == "ranked" and len(feed["items"]) == 5
        assert all(item["why"]["sources"] for item in feed["items"])
        status, _, body = request(server.port, "GET", "/v1/users/U00001/recommendations?k=5")
        assert status == 200 and all("why" not in item for item in json.loads(body)["items"])
        status, _, body = request(server.port, "GET", "/v1/users/U00001/recommendations?explain=maybe")
        assert status == 400 and "explain must be true or false" in json.loads(body)["error"]["message"]
        status, _, body = request(server.port, "POST", "/v1/recommendations",
                                  {"recent_items": ["I001"], "k": 4, "explain": True})
        assert status == 200 and all("why" in item for item in json.loads(body)["items"])
        status, _, body = request(server.port, "POST", "/v1/recommendations", {"recent_items": ["I001"],
                                                                               "explain": "maybe"})
        assert status == 400 and "explain" in json.loads(body)["error"]["message"]
    finally:
        server.stop()


def test_the_cli_writes_a_batch_of_feeds_and_explains_one(shop, tmp_path):
    import pandas as pd
    from click.testing import CliRunner

    from recsys.cli import cli

    bundle, _ = shop
    users = tmp_path / "users.txt"
    users.write_text("U00001\nU00002\n\nnobody\n")
    out = tmp_path / "feeds.csv"
    done = CliRunner().invoke(cli, ["recommend", "--bundle", str(bundle.path), "U00003", "--users-file", str(users),
                                     "--k", "6", "--out", str(out)])
    assert done.exit_code == 0, done.output
    assert "4 feeds of up to 6 items written" in done.output
    feeds = pd.read_csv(out, dtype={"user_id": str})
    assert list(feeds.columns) == ["user_id", "rank", "item_id", "score"]
    assert feeds.groupby("user_id").size().to_dict() == {"U00001": 6, "U00002": 6, "U00003": 6, "nobody": 6}
    rec = Recommender(bundle)
    assert feeds[feeds["user_id"] == "U00002"]["item_id"].tolist() == rec.recommend("U00002", 6).ids
    shown = CliRunner().invoke(cli, ["recommend", "--bundle", str(bundle.path), "U00001", "--k", "4", "--explain"])
    assert shown.exit_code == 0 and "why:" in shown.output and "(ranked)" in shown.output, shown.output


@pytest.mark.slow  # trains a ranker: about 5 seconds
def test_a_ranker_with_the_user_tower_serves_users_and_sessions(store, tmp_path):
    from recsys.bundle import read_bundle

    bundle = read_bundle(ranked_shop(tmp_path, store, n_users=600, sources={"als": 20}).path)
    rec = Recommender(bundle)
    feed = rec.recommend("U00001", 5, explain=True)
    assert feed.strategy == "ranked" and len(feed) == 5
    assert any("als" in s.why["sources"] for s in rec.recommend("U00001", 40, explain=True))
    session = rec.recommend(None, 5, recent_items=["I010", "I020"])
    assert session.strategy == "ranked" and len(session) == 5
