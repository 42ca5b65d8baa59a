"""Rules and diversity on the reads of a real (synthetic) market with its user tower."""
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
from pydantic import ValidationError

from recsys.control import Rule, Shaping
from recsys.errors import InvalidRequest
from recsys.serve.changes import ItemChanges
from recsys.serve.filters import ItemFilter


def _rules(*specs: dict) -> tuple[Rule, ...]:
    return tuple(Rule.model_validate({"id": f"r{i + 1}", **spec}) for i, spec in enumerate(specs))


def _with(rec, *specs: dict, attributes: dict | None = None):
    """``rec`` serving the rules ``specs`` (and attribute values), as a worker would after a write."""
    return rec.with_changes(ItemChanges.build(rec.bundle, gen=1, attributes=attributes, rules=_rules(*specs)))


def _categories(rec, ids):
    items = rec.bundle.items.set_index("item_id")
    return items.loc[ids, "category"].tolist()


@pytest.fixture(scope="module")
def rec(feeds):
    return feeds


@pytest.fixture(scope="module")
def item(rec):
    return rec.bundle.item_ids.ids[0]


def test_bad_rules_are_refused_with_the_reason():
    cases = [({"action": "pin", "match": {"item_ids": ["a"]}}, "needs a position"),
             ({"action": "boost", "match": {}}, "at least one of"),
             ({"action": "exclude", "match": {"category": "x"}, "factor": 2}, "factor is for boost and bury"),
             ({"action": "bury", "match": {"tag": "x"}, "start": "2026-02-01", "end": "2026-01-01"}, "not after start"),
             ({"action": "hide", "match": {"tag": "x"}}, "action"),
             ({"action": "boost", "match": {"colour": "red"}}, "colour")]
    for spec, reason in cases:
        with pytest.raises(ValidationError, match=reason):
            Rule.model_validate(spec)


def test_an_excluded_category_never_shows_and_the_read_keeps_k(rec, item):
    category = _categories(rec, [rec.bundle.item_ids.ids[1]])[0]
    shaped = _with(rec, {"action": "exclude", "match": {"category": category}})
    for found in (shaped.similar_items(item, k=20), shaped.recommend("U000001", k=20),
                  shaped.search("shoes", k=20)):
        assert len(found) == 20
        assert category not in _categories(rec, found.ids)
    assert category in _categories(rec, rec.recommend("U000001", k=100).ids)  # the rule made the difference


def test_a_pin_takes_its_position_and_says_why(rec, item):
    pinned = rec.bundle.item_ids.ids[-1]
    assert pinned not in rec.similar_items(item, k=10).ids
    shaped = _with(rec, {"action": "pin", "match": {"item_ids": [pinned]}, "position": 3, "note": "campaign"})
    found = shaped.similar_items(item, k=10)
    assert len(found) == 10 and found.ids[2] == pinned
    assert found[2].why["rules"][0] == {"rule": "r1", "action": "pin",
                                        "text": "pinned at position 3 by rule r1 (campaign)"}
    assert [s.why for s in found if s.item_id != pinned] == [None] * 9
    assert found.ids[:2] + found.ids[3:] == [i for i in rec.similar_items(item, k=10).ids][:9]


def test_a_buried_item_goes_below_the_others_and_a_boosted_one_up(rec):
    plain = rec.recommend("U000002", k=22).ids
    buried = _with(rec, {"action": "bury", "match": {"item_ids": plain[:2]}}).recommend("U000002", k=20)
    assert buried.ids == plain[2:22]  # after every other candidate: the next ones fill the read
    lowered = _with(rec, {"action": "bury", "match": {"item_ids": plain[:1]}, "factor": 5.5}).recommend("U000002", k=20)
    assert lowered.ids.index(plain[0]) == 4 and lowered[4].why["rules"][0]["action"] == "bury"
    boosted = _with(rec, {"action": "boost", "match": {"item_ids": [plain[9]]}, "factor": 5}).recommend("U000002", k=20)
    assert boosted.ids.index(plain[9]) == 2  # rank 10 competes as rank 2; the tie goes to the item ranked 2
    assert boosted[2].why["rules"][0]["text"] == "boosted by rule r1"


def test_a_rule_outside_its_window_or_scope_does_nothing(rec, item):
    now = datetime.now(timezone.utc)
    plain = rec.similar_items(item, k=10).ids
    later = _with(rec, {"action": "exclude", "match": {"item_ids": plain[:3]},
                        "start": (now + timedelta(hours=1)).isoformat()})
    assert later.similar_items(item, k=10).ids == plain
    assert later.changes.rules.phase() == 0 and later.changes.rules.phase((now + timedelta(hours=2)).timestamp()) == 1
    feeds_only = _with(rec, {"action": "exclude", "match": {"item_ids": plain[:3]}, "scope": "feeds"})
    assert feeds_only.similar_items(item, k=10).ids == plain


def test_an_attribute_set_since_the_bundle_is_matched(rec, item):
    plain = rec.similar_items(item, k=10).ids
    gone = plain[:2]
    shaped = _with(rec, {"action": "exclude", "match": {"attributes": {"in_stock": False}}},
                   attributes={i: {"in_stock": False} for i in gone})
    found = shaped.similar_items(item, k=10).ids
    assert not set(gone) & set(found) and found[:8] == plain[2:]
    assert shaped.changes.rules.unknown_attributes(Rule.model_validate(
        {"action": "exclude", "match": {"attributes": {"in_stok": False}}}).match) == ["in_stok"]


def test_a_category_cap_and_mmr_diversify_a_read(rec, item):
    plain = rec.recommend("U000003", k=20)
    capped = rec.recommend("U000003", k=20, shaping=Shaping(max_per_category=3))
    counts = np.unique(_categories(rec, capped.ids), return_counts=True)[1]
    assert len(capped) == 20 and counts.max() <= 3 < np.unique(_categories(rec, plain.ids), return_counts=True)[1].max()

    def redundancy(ids):  # what MMR lowers: each item's cosine to its closest other item, on average
        v = rec.bundle.vectors.combined[rec.bundle.item_ids.rows(ids)]
        similar = v @ v.T
        np.fill_diagonal(similar, -1)
        return float(similar.max(axis=1).mean())

    some, more = (rec.recommend("U000003", k=20, shaping=Shaping(diversity=d)) for d in (0.7, 0.9))
    assert len(some) == len(more) == 20 and some.ids[0] == more.ids[0] == plain.ids[0]
    assert redundancy(more.ids) < redundancy(some.ids) < redundancy(plain.ids) - 0.03


def test_a_requests_own_pin_beyond_k_is_refused(rec, item):
    shaping = Shaping(rules=_rules({"action": "pin", "match": {"item_ids": ["x"]}, "position": 11}))
    with pytest.raises(InvalidRequest, match="beyond k"):
        rec.similar_items(item, k=10, shaping=shaping)


def test_rotation_moves_shown_items_down_or_out(rec):
    plain = rec.recommend("U000004", k=10).ids
    shown = ((plain[0], 2), (plain[3], 1))
    down = rec.recommend("U000004", k=10, shaping=Shaping(rotation="down", shown=shown))
    # after every candidate not shown (30 of them): rank 4 shown once (4,000) before rank 1 shown twice (2,000 x 1)
    fresh = [i for i in rec.recommend("U000004", k=30).ids if i not in (plain[0], plain[3])]
    assert down.ids == fresh[:10]
    only = ItemFilter.create(include=plain)  # no other candidate: the shown items end the list
    last = rec.recommend("U000004", k=10, filters=only, shaping=Shaping(rotation="down", shown=shown))
    assert last.ids[-2:] == [plain[0], plain[3]]  # 1 x 2,000 before 4 x 1,000
    assert last[-1].why["rules"][0]["text"] == "buried by rule rotation (shown 1 time, not clicked)"
    out = rec.recommend("U000004", k=10, shaping=Shaping(rotation="out", shown=shown))
    assert out.ids == [i for i in rec.recommend("U000004", k=12).ids if i not in (plain[0], plain[3])]
    assert rec.recommend("U000004", k=10, shaping=Shaping(rotation="off", shown=shown)).ids == plain
