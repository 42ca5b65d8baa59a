"""The feed's content weight, chosen by the training on the shop's own later events."""
import numpy as np
import pandas as pd
import pytest

from recsys.collab.blend import FALLBACK_WEIGHT
from recsys.data import validate_interactions
from recsys.pipeline.content_weight import GRID, MIN_USERS, choose_content_weight, held_out
from recsys.pipeline.precompute import blended_lists
from recsys.serve import Recommender
from tests.conftest import make_settings, train


def _events(rows):
    return validate_interactions(pd.DataFrame(rows, columns=["user_id", "item_id", "event", "timestamp"]),
                                 source="test")


def test_the_latest_fifth_is_held_out_in_whole_baskets():
    rows = [("a", f"i{n}", "view", 100 + n) for n in range(10)]  # 10 events: the last 2 held out
    rows += [("b", "i1", "view", 50), ("b", "i2", "view", 50)]  # one moment: nothing earlier stays
    # 3 events: the last one is held out, and the basket it is in with it
    rows += [("c", "i3", "view", 10), ("c", "i4", "view", 20), ("c", "i5", "view", 20)]
    rest, held = held_out(_events(rows), max_users=10)
    assert sorted(map(tuple, held[["user_id", "item_id"]].values.tolist())) == [
        ("a", "i8"), ("a", "i9"), ("c", "i4"), ("c", "i5")]
    assert len(rest) + len(held) == len(rows) and set(rest["user_id"]) == {"a", "b", "c"}


def test_without_timestamps_the_file_order_tells_the_latest():
    events = _events([("a", "i1", "view", None), ("a", "i2", "view", None), ("a", "i3", "view", None)])
    _, held = held_out(events, max_users=10)
    assert held["item_id"].tolist() == ["i3"]


def test_at_most_max_users_are_held_out():
    rows = [(f"u{u}", f"i{n}", "view", n) for u in range(30) for n in range(5)]
    _, held = held_out(_events(rows), max_users=12)
    assert held["user_id"].nunique() == 12


def test_too_few_users_keep_the_fallback_weight(market, tmp_path):
    rows = [(f"u{u}", str(market.item_ids.ids[n]), "view", n) for u in range(MIN_USERS - 1) for n in range(3)]
    choice = choose_content_weight(market, _events(rows), make_settings(tmp_path))
    assert choice.weight == FALLBACK_WEIGHT and choice.users == MIN_USERS - 1 and not choice.ndcg
    assert "too few users" in choice.summary()


def test_the_training_chooses_the_weight_whose_feeds_find_the_later_events_best(feeds):
    collab = feeds.bundle.collab
    chosen, judged = collab.params["content_weight"], collab.params["content_weight_choice"]
    scores = {float(w): v for w, v in judged["ndcg@10"].items()}
    assert set(scores) == set(GRID) and judged["users"] == 1000
    assert scores[chosen] == max(scores.values())
    # the synthetic users follow both their co-browsers and the looks of what they browse
    assert scores[chosen] > scores[0.0] and scores[chosen] > scores[1.0]
    assert feeds.content_weight == chosen == collab.params["feed"]["content_weight"]


@pytest.mark.slow  # trains a shop: about 1.5 seconds
def test_a_set_content_weight_is_used_as_it_is(market, market_events, tmp_path):
    bundle = train(market, market_events[0], tmp_path, content_weight=0.3)
    assert bundle.collab.params["content_weight"] == 0.3
    assert bundle.collab.params["content_weight_choice"] is None
    assert Recommender(bundle).content_weight == 0.3


@pytest.mark.parametrize("weight", [1.2, -0.1])
def test_a_weight_outside_0_to_1_is_refused(feeds, weight):
    from recsys.errors import InvalidRequest

    with pytest.raises(InvalidRequest, match="between 0 and 1"):
        Recommender(feeds.bundle, content_weight=weight)


def test_with_repurchases_allowed_the_weight_is_judged_on_feeds_that_may_hold_own_items(feeds):
    collab, users = feeds.bundle.collab, np.arange(50)
    args = (collab.user_factors, collab.user_items, collab.item_factors, collab.item_state,
            feeds.bundle.vectors, 10, [1.0])
    allowed = blended_lists(*args, history_items=20, users=users, exclude_seen=False)[0]
    left_out = blended_lists(*args, history_items=20, users=users)[0]

    def own(lists):
        return sum(len(set(lists.rows[i].tolist()) & set(collab.user_items.history(u)[0].tolist()))
                   for i, u in enumerate(users))

    assert own(allowed) > 0 and own(left_out) == 0
