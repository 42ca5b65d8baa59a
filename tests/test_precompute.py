"""Precomputed similar items and feeds: the same answers as computing them, and the fallbacks."""
import dataclasses
import functools

import numpy as np
import pytest

from recsys.bundle import TopLists
from recsys.serve import Recommender, Scored
from recsys.serve.changes import ItemChanges
from recsys.serve.filters import ItemFilter


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
    return Recommender(dataclasses.replace(market, similar={}))


def test_the_build_writes_the_similar_lists(market):
    width = market.list_cosines.rows.shape[1]
    assert market.manifest["precomputed"]["similar"] == {"k": 100, "lists": ["combined", "text", "tabular"],
                                                         "cosines_width": width}
    assert list(market.similar) == ["combined", "text", "tabular"]
    own = np.arange(len(market.item_ids))[:, None]
    for name, lists in market.similar.items():
        assert lists.k == 100 and lists.rows.shape == (len(market.item_ids), 100)
        stem = "similar" if name == "combined" else f"similar.{name}"
        assert f"precomputed/{stem}.rows.npy" in market.manifest["files"]
        assert not (lists.rows == own).any()  # an item is never its own neighbour
        assert (np.diff(lists.scores, axis=1) <= 1e-6).all()  # best first
    text = market.vectors.blocks["text"]
    lacking = np.flatnonzero(~text.mask)
    assert len(lacking)  # the market has items without text: they are in no text list, and have none
    assert not np.isin(market.similar["text"].rows, lacking).any()
    assert (market.similar["text"].rows[lacking] == -1).all()
    row = 7
    cos = np.asarray(text.vectors) @ np.asarray(text.vectors[row])
    cos[row] = -np.inf
    cos[~text.mask] = -np.inf
    np.testing.assert_allclose(market.similar["text"].scores[row], np.sort(cos)[::-1][:100], atol=1e-5)


@pytest.mark.parametrize("n", [1, 10, 100])
def test_listed_similar_items_equal_the_computed_ones(market, computing, n):
    serving = Recommender(market)
    for item in market.item_ids.ids[::97]:
        assert_same_ranking(serving.similar_items(item, k=n), computing.similar_items(item, k=n))


def test_a_filter_takes_the_first_listed_items_that_pass_or_computes(market, computing):
    serving = Recommender(market)
    categories = market.items["category"].str.split("/").str[0]
    common, rare = categories.value_counts().index[0], categories.value_counts().index[-1]
    for category in (common, rare):
        f = ItemFilter(category=category, max_price=200.0)
        for item in market.item_ids.ids[:300:31]:
            listed = serving.similar_items(item, k=10, filters=f)
            assert_same_ranking(listed, computing.similar_items(item, k=10, filters=f))
            rows = market.item_ids.rows([s.item_id for s in listed])
            assert categories.iloc[rows].eq(category).all()


def test_deleted_and_changed_items_leave_the_listed_results(market, computing):
    item = market.item_ids.ids[5]
    top = [s.item_id for s in Recommender(market).similar_items(item, k=5)]
    changes = ItemChanges.build(market, gen=1, deleted={top[0], top[2]})
    serving = Recommender(market).with_changes(changes)
    found = serving.similar_items(item, k=10)
    assert not {top[0], top[2]} & {s.item_id for s in found}
    assert_same_ranking(found, computing.with_changes(changes).similar_items(item, k=10))


def test_deleted_items_leave_per_request_weights_answered_from_stored_cosines(market, computing):
    item, weights = market.item_ids.ids[9], {"text": 0.4, "tabular": 0.6}
    top = [s.item_id for s in Recommender(market).similar_items(item, k=5, weights=weights)]
    changes = ItemChanges.build(market, gen=1, deleted={top[0], top[3]})
    serving = Recommender(market).with_changes(changes)
    row = market.item_ids.row(item)
    assert all(b.mask[row] for b in market.vectors.blocks.values())
    allowed = serving.columns.allowed(None) & ~changes.hidden
    allowed[row] = False
    query = {m: np.asarray(b.vectors[row]) for m, b in market.vectors.blocks.items()}
    assert serving.similar.threshold(row, 10, query, weights, list(weights), allowed) is not None  # from the lists
    found = serving.similar_items(item, k=10, weights=weights)
    assert not {top[0], top[3]} & {s.item_id for s in found}
    assert_same_ranking(found, computing.with_changes(changes).similar_items(item, k=10, weights=weights))


def test_large_k_is_computed(market):
    serving = Recommender(market)
    item = market.item_ids.ids[0]
    assert serving.similar.is_listed(item, 100, None, serving.changes)
    assert not serving.similar.is_listed(item, 101, None, serving.changes)
    found = serving.similar_items(item, k=300)  # more than the 100 listed
    assert len(found) == 300 and [s.score for s in found] == sorted((s.score for s in found), reverse=True)


WEIGHTS = [{"text": 0.7, "tabular": 0.3}, {"text": 0.2, "tabular": 0.8}, {"text": 1.0}, {"tabular": 1.0},
           {"image": 0.5, "text": 0.5}]


@pytest.mark.parametrize("weights", WEIGHTS, ids=lambda w: ",".join(f"{m}:{v}" for m, v in w.items()))
def test_per_request_weights_from_the_modality_lists_equal_the_computed_ones(market, computing, weights):
    serving = Recommender(market)
    answered = asked = 0
    text = market.vectors.blocks["text"].mask
    for item in market.item_ids.ids[::61]:
        row = market.item_ids.row(item)
        if not text[row] and set(weights) <= {"text", "image"}:
            continue  # nothing to compare (a 400 from the API)
        for n, filters in [(1, None), (10, None), (40, None), (10, ItemFilter(max_price=80.0))]:
            assert serving.similar.is_listed(item, n, weights, serving.changes)
            listed = serving.similar_items(item, k=n, weights=weights, filters=filters)
            assert_same_ranking(listed, computing.similar_items(item, k=n, weights=weights, filters=filters))
            query = {m: (np.asarray(b.vectors[row]) if b.mask[row] else None)
                     for m, b in market.vectors.blocks.items()}
            usable = [m for m, w in weights.items() if w > 0 and query.get(m) is not None]
            allowed = serving.columns.allowed(filters)
            allowed[row] = False
            asked += 1
            answered += serving.similar.threshold(row, n, query, weights, usable, allowed) is not None
    assert answered >= 0.9 * asked  # the lists, not the fallback, answer nearly all of them


def test_the_listed_cosines_hold_every_listed_item_once_with_each_modality(market):
    cosines = market.list_cosines
    names = list(market.vectors.blocks)
    assert market.manifest["precomputed"]["similar"]["cosines_width"] == cosines.rows.shape[1]
    assert "precomputed/listed.cosines.npy" in market.manifest["files"]
    assert cosines.cosines.shape == (*cosines.rows.shape, len(names))
    text = market.vectors.blocks["text"]
    lacking = np.flatnonzero(~text.mask)
    for row in [0, 7, int(lacking[0]), len(market.item_ids) - 1]:
        listed = np.concatenate([market.similar[m].rows[row] for m in names])
        union = np.unique(listed[listed >= 0])
        rows = cosines.rows[row]
        np.testing.assert_array_equal(rows[:len(union)], union)
        assert (rows[len(union):] == -1).all() and (cosines.cosines[row, len(union):] == 0).all()
        for j, m in enumerate(names):
            vectors = np.asarray(market.vectors.blocks[m].vectors)
            np.testing.assert_allclose(cosines.cosines[row, :len(union), j], vectors[union] @ vectors[row],
                                       atol=1e-5)
    # an item without text has a text cosine of 0 with everything, and nothing without text has one
    assert (cosines.cosines[lacking, :, names.index("text")] == 0).all()


def test_listed_cosines_kept_in_mapped_files_equal_those_in_memory_and_leave_no_file(market, tmp_path):
    from recsys.pipeline.precompute import list_cosines
    from recsys.pipeline.scratch import mapped_copy

    in_memory = list_cosines(market.vectors, market.similar)
    mapped = list_cosines(market.vectors, market.similar, folder=tmp_path / "scratch")
    np.testing.assert_array_equal(mapped.rows, in_memory.rows)
    np.testing.assert_array_equal(mapped.cosines, in_memory.cosines)
    copy = mapped_copy(in_memory.cosines, tmp_path / "scratch")
    np.testing.assert_array_equal(copy, in_memory.cosines)
    assert not copy.flags.writeable and type(copy) is np.ndarray
    assert list((tmp_path / "scratch").iterdir()) == []  # unlinked once mapped


@pytest.mark.parametrize("weights", WEIGHTS[:3], ids=lambda w: ",".join(f"{m}:{v}" for m, v in w.items()))
def test_per_request_weights_score_the_same_from_stored_cosines_and_from_vectors(market, weights):
    stored = Recommender(market)
    from_vectors = Recommender(dataclasses.replace(market, list_cosines=None))
    text = market.vectors.blocks["text"].mask
    for item in market.item_ids.ids[::83]:
        if not text[market.item_ids.row(item)] and "tabular" not in weights:
            continue  # nothing to compare (a 400 from the API)
        for n, filters in [(10, None), (30, ItemFilter(category="women")), (5, ItemFilter(min_price=50.0))]:
            a = stored.similar_items(item, k=n, weights=weights, filters=filters)
            b = from_vectors.similar_items(item, k=n, weights=weights, filters=filters)
            assert_same_ranking(a, b)


def test_the_threshold_scores_every_item_of_a_pattern_an_unlisted_item_could_win_from(market):
    from recsys.serve.candidates import best as _best
    from recsys.towers.item import weighted_scores

    row, weights, usable = 11, {"text": 0.5, "tabular": 0.5}, ["text", "tabular"]
    query = {m: np.asarray(b.vectors[row]) for m, b in market.vectors.blocks.items()}
    allowed = np.ones(len(market.item_ids), bool)
    allowed[row] = False
    answered = Recommender(market).similar.threshold(row, 10, query, weights, usable, allowed)
    assert answered is not None
    # the listed items filtered away: the best candidates left fall to the bound of the items
    # with both modalities, so these are scored from their vectors, within the exact budget ...
    for m in usable:
        allowed[market.similar[m].rows[row][:85]] = False
    rows = np.flatnonzero(allowed)
    exact = _best(10, rows, weighted_scores(market.vectors.blocks, query, rows, weights))
    serving = Recommender(market)
    candidates, scores = serving.similar.listed_scores(row, serving.similar.weighting(weights, usable), allowed)
    nth = np.sort(scores)[-10]
    assert len(candidates) >= 10 and any(nth <= bound for _, bound in serving.similar.unlisted_bounds(
        serving.similar.weighting(weights, usable), serving.similar.list_ends[row].tolist()))
    found = serving.similar.threshold(row, 10, query, weights, usable, allowed)
    np.testing.assert_allclose(found[1], exact[1], atol=1e-5)
    # the bounds hold: no item outside the lists scores above its pattern's bound
    unlisted = np.setdiff1d(np.arange(len(market.item_ids)),
                            np.concatenate([market.similar[m].rows[row] for m in usable] + [[row]]))
    unlisted_scores = weighted_scores(market.vectors.blocks, query, unlisted, weights)
    codes = serving.similar.patterns[0][unlisted]
    similar = serving.similar
    bounds = similar.unlisted_bounds(similar.weighting(weights, usable), similar.list_ends[row].tolist())
    assert bounds and {p for p, _ in bounds} >= set(codes.tolist())
    for p, bound in bounds:
        assert unlisted_scores[codes == p].max(initial=0.0) <= bound + 1e-5
    # ... and without one, the threshold cannot tell
    assert Recommender(market, exact_budget=0).similar.threshold(row, 10, query, weights, usable, allowed) is None


def _bounds_by_pattern(bundle, weights: dict, last: dict) -> dict[tuple, float]:
    """The unlisted bounds written out: per combination of modalities some item has (and some
    weighted one), the best weighted score its last listed cosines allow, leaving out the
    combinations with a modality whose list holds every item with it (``last`` None)."""
    names = list(bundle.vectors.blocks)
    masks = np.stack([np.asarray(b.mask, bool) for b in bundle.vectors.blocks.values()], axis=1)
    w_q, bounds = sum(weights[m] for m in last), {}
    for combo in np.unique(masks, axis=0):
        has = {m for m, h in zip(names, combo) if h}
        w_c = sum(weights.get(m, 0.0) for m in has)
        if w_c > 0 and not any(last[m] is None for m in has & last.keys()):
            top = sum(weights[m] * max(last[m], 0.0) for m in has & last.keys())
            bounds[tuple(combo.tolist())] = top / np.sqrt(w_q * w_c)
    return bounds


@pytest.mark.parametrize("weights", WEIGHTS, ids=lambda w: ",".join(f"{m}:{v}" for m, v in w.items()))
@pytest.mark.parametrize("which", ["market", "built"])
def test_the_unlisted_bounds_are_per_modality_pattern_of_the_catalog(request, which, weights):
    serving = Recommender(request.getfixturevalue("market")) if which == "market" \
        else request.getfixturevalue("built")[1]
    bundle, names = serving.bundle, list(serving.bundle.vectors.blocks)
    usable = [m for m in weights if m in bundle.similar]
    patterns = [tuple(bool(h) for h in combo) for combo in serving.similar.patterns[1].tolist()]
    for p, rows in enumerate(serving.similar.pattern_rows):  # the items of each pattern
        masks = np.stack([np.asarray(b.mask, bool)[rows] for b in bundle.vectors.blocks.values()], axis=1)
        assert len(rows) and (masks == patterns[p]).all()
    assert sum(map(len, serving.similar.pattern_rows)) == len(bundle.item_ids)
    for row in range(0, len(bundle.item_ids), 37):
        ends = serving.similar.list_ends[row].tolist()
        for m in names:  # the ends are the lists' last cosines, NaN for a list that is not full
            full = bundle.similar[m].rows[row, -1] >= 0
            assert ends[names.index(m)] == float(bundle.similar[m].scores[row, -1]) if full \
                else np.isnan(ends[names.index(m)])
        for exhaustive in [None, *usable]:  # as they are, then as if each list held every item
            if exhaustive is not None:
                ends[names.index(exhaustive)] = float("nan")
            last = {m: None if np.isnan(ends[names.index(m)]) else ends[names.index(m)] for m in usable}
            found = serving.similar.unlisted_bounds(serving.similar.weighting(weights, usable), ends)
            expected = _bounds_by_pattern(bundle, weights, last)
            assert {patterns[p]: bound for p, bound in found} == pytest.approx(expected, abs=1e-12)


def test_items_lacking_the_weighted_modality_are_found_from_the_lists_of_the_others(market, computing):
    """An item without text, asked with text and tabular weights, is compared by tabular alone:
    items without text score their tabular cosine and those with text less; the unlisted items
    without text could beat the listed ones, so they are scored too, and the answer is exact."""
    serving = Recommender(market)
    weights, text = {"text": 0.7, "tabular": 0.3}, np.asarray(market.vectors.blocks["text"].mask)
    lacking = np.flatnonzero(~text)[:10]
    assert len(lacking) == 10
    for row in lacking:
        item = market.item_ids.ids[row]
        assert serving.similar.threshold(row, 10, None, weights, ["tabular"], None) is not None
        assert_same_ranking(serving.similar_items(item, k=10, weights=weights),
                            computing.similar_items(item, k=10, weights=weights))


def test_a_bundle_without_modality_lists_computes_per_request_weights(market, computing):
    only_combined = Recommender(dataclasses.replace(market, similar={"combined": market.similar["combined"]}))
    item = market.item_ids.ids[3]
    weights = {"text": 0.6, "tabular": 0.4}
    assert not only_combined.similar.is_listed(item, 10, weights, only_combined.changes)
    assert_same_ranking(only_combined.similar_items(item, k=10, weights=weights),
                        computing.similar_items(item, k=10, weights=weights))


def test_the_training_writes_the_feeds_with_the_scoring_it_used(feeds):
    collab = feeds.bundle.collab
    assert collab.feed is not None and collab.feed.rows.shape == (len(collab.user_ids), 100)
    assert collab.params["feed"] == {"k": 100, "scoring": "unit-user",
                                     "content_weight": collab.params["content_weight"],
                                     "history_items": 20, "history_decay": 0.6}
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
        listed = feeds.recommend(user, k=n, filters=filters)
        computed = computing.recommend(user, k=n, filters=filters)
        assert listed.strategy == computed.strategy == "collaborative"
        assert_same_ranking(listed.items, computed.items)
        assert [s.cold for s in listed.items][:5] == [s.cold for s in computed.items][:5]


@pytest.mark.parametrize("weight", [0.0, 0.3, 1.0])
def test_one_pass_over_every_weight_scores_each_as_the_service_does(feeds, weight):
    """The content weight's choice scores every weight of its grid in one pass: each weight's lists
    equal the feeds the service computes at that weight (at 0 and 1 a blend of excluded items
    must not turn NaN)."""
    from recsys.pipeline.content_weight import GRID
    from recsys.pipeline.precompute import blended_lists

    bundle = dataclasses.replace(feeds.bundle, collab=dataclasses.replace(feeds.bundle.collab, feed=None))
    collab, users = bundle.collab, np.arange(0, len(bundle.collab.user_ids), 97)
    lists = blended_lists(collab.user_factors, collab.user_items, collab.item_factors, collab.item_state,
                          bundle.vectors, 10, GRID, history_items=20, history_decay=0.6, users=users)
    top = lists[GRID.index(weight)]
    computing = Recommender(bundle, content_weight=weight, history_items=20, history_decay=0.6)
    for i, user in enumerate(users):
        computed = computing.recommend(str(collab.user_ids.ids[user]), k=10)
        listed = [Scored(str(bundle.item_ids.ids[r]), float(s)) for r, s in zip(top.rows[i], top.scores[i])]
        assert computed.strategy == "collaborative" and len(listed) == 10
        assert_same_ranking(listed, computed.items)


def test_feeds_listed_with_another_content_weight_are_not_used(feeds):
    user = feeds.bundle.collab.user_ids.ids[3]
    assert feeds.feeds.source(10, user, True, (), feeds.changes) == "lookup"
    assert feeds.feeds.source(101, user, True, (), feeds.changes) != "lookup"
    chosen = feeds.feeds.content_weight
    other = Recommender(feeds.bundle, content_weight=0.6 if chosen != 0.6 else 0.3)
    assert other.feeds.source(10, user, True, (), other.changes) != "lookup"
    # lists made with raw factor scores (bundles trained before the unit-user scoring)
    made = {k: v for k, v in feeds.bundle.collab.params["feed"].items() if k != "scoring"}
    collab = dataclasses.replace(feeds.bundle.collab, params={**feeds.bundle.collab.params, "feed": made})
    older = Recommender(dataclasses.replace(feeds.bundle, collab=collab))
    assert older.feeds.source(10, user, True, (), older.changes) != "lookup"
    assert feeds.feeds.source(10, user, False, (), feeds.changes) != "lookup"
    assert feeds.feeds.source(10, "nobody", True, (), feeds.changes) != "lookup"


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
    assert full.head(0, 2)[0].tolist() == [4, 2] and full.head(0, 4) is None  # unfiltered: the head
    assert short.head(0, 3)[0].tolist() == [4, 2] and short.head(0, 3)[1].tolist() == pytest.approx([0.9, 0.5])


def test_precompute_k_zero_writes_no_lists(session_dir, market):
    from recsys.bundle import read_bundle
    from recsys.pipeline.build import build_item_bundle
    from recsys.settings import load_settings
    from recsys.towers import create_tower

    settings = load_settings(state_dir=session_dir / "state",
                             index={"n_trees": 5, "recall_sample": 0, "precompute_k": 0})
    report = build_item_bundle(market.items.head(200), settings, session_dir / "models" / "nolists",
                               show_progress=False, towers={"tabular": create_tower("tabular")})
    bundle = read_bundle(report.path)
    assert bundle.similar == {} and "precomputed" not in bundle.manifest
    assert len(Recommender(bundle).similar_items(bundle.item_ids.ids[0], k=5)) == 5


def test_a_feed_list_made_in_another_process_is_kept_as_a_lookup(feeds):
    """What a worker sends with a post (feed_list, through JSON) another keeps (keep_list): its
    next feed is a lookup that equals the computed one; a list that does not fit is refused."""
    import json

    from recsys.errors import InvalidRequest

    bundle = feeds.bundle
    items = bundle.item_ids.ids.tolist()
    trained = bundle.collab.user_ids.ids[4]
    maker, keeper = Recommender(bundle, feed_lists=100), Recommender(bundle, feed_lists=100)
    for user, recent in [(trained, [items[10], items[20]]), ("visitor", [items[33], items[34]])]:
        made = maker.feeds.feed_list(user, recent, maker.changes)
        assert made is maker.feeds.feed_list(user, recent, maker.changes)  # kept: made once
        sent = json.loads(json.dumps({"rows": made.rows[0].tolist(), "scores": made.scores[0].tolist()}))
        assert keeper.feeds.source(10, user, True, recent, keeper.changes) == "list"
        keeper.feeds.keep_list(user, recent, sent["rows"], sent["scores"], keeper.changes)
        assert keeper.feeds.source(10, user, True, recent, keeper.changes) == "lookup"
        kept = keeper.recommend(user, k=50, recent_items=recent)
        assert [(s.item_id, s.score) for s in kept.items] == \
            [(s.item_id, s.score) for s in maker.recommend(user, k=50, recent_items=recent).items]
        assert_same_ranking(kept.items, feeds.recommend(user, k=50, recent_items=recent).items)
    # a trained user's list is their own; visitors (unknown to the model) share by recent items
    assert keeper.feeds.source(10, bundle.collab.user_ids.ids[5], True, [items[10], items[20]],
                               keeper.changes) == "list"
    assert keeper.feeds.source(10, "another visitor", True, [items[33], items[34]], keeper.changes) == "lookup"
    good = maker.feeds.feed_list("visitor", [items[33], items[34]], maker.changes)
    rows, scores = good.rows[0].tolist(), good.scores[0].tolist()
    for bad in [(rows[:-1], scores[:-1]), ([len(items)] + rows[1:], scores), ([float(r) for r in rows], scores),
                (rows, [float("nan")] + scores[1:]), (["x"] * len(rows), scores)]:
        with pytest.raises(InvalidRequest, match="not a feed list"):
            keeper.feeds.keep_list("v2", [items[1]], *bad, keeper.changes)
    with pytest.raises(InvalidRequest, match="unknown item_id"):
        keeper.feeds.keep_list("v2", ["no such item"], rows, scores, keeper.changes)
    assert feeds.feeds.feed_list("visitor", [items[1]], feeds.changes) is None  # lists off
    assert maker.feeds.feed_list("visitor", [], maker.changes) is None
    assert maker.feeds.usable_recent(["no such item", items[1], items[1]], maker.changes) == [items[1], items[1]]
    assert len(maker.feeds.usable_recent(items, maker.changes)) == 5 * maker.feeds.history_items


def test_feeds_with_recent_items_are_kept_as_lists_and_equal_the_computed_ones(feeds):
    bundle = feeds.bundle
    keeping = Recommender(bundle, feed_lists=100)
    items = bundle.item_ids.ids
    for user, recent in [(bundle.collab.user_ids.ids[4], [items[10], items[20]]), ("visitor", [items[33]]),
                         (None, [items[5], items[6], items[7]])]:
        assert keeping.feeds.source(10, user, True, recent, keeping.changes) != "lookup"
        for n, filters in [(10, None), (100, None), (20, ItemFilter(max_price=60.0)), (150, None)]:
            kept = keeping.recommend(user, k=n, recent_items=recent, filters=filters)
            computed = feeds.recommend(user, k=n, recent_items=recent, filters=filters)
            assert kept.strategy == computed.strategy and kept.message == computed.message
            assert_same_ranking(kept.items, computed.items)
            assert not {s.item_id for s in kept.items} & set(recent)
        assert keeping.feeds.source(100, user, True, recent, keeping.changes) == "lookup"  # kept since the first feed
        assert keeping.feeds.source(101, user, True, recent, keeping.changes) != "lookup"
        assert keeping.feeds.source(10, user, True, recent[::-1] + [items[40]], keeping.changes) != "lookup"
    changes = ItemChanges.build(bundle, gen=1, deleted={s.item_id for s in keeping.recommend(
        "visitor", k=3, recent_items=[items[33]]).items})
    after = keeping.with_changes(changes).recommend("visitor", k=10, recent_items=[items[33]])
    assert not {s.item_id for s in after.items} & changes.deleted_ids
    assert_same_ranking(after.items, feeds.with_changes(changes).recommend(
        "visitor", k=10, recent_items=[items[33]]).items)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_cell_lists_score_the_rows_of_the_cells_they_probe_exactly(precision):
    """Each row is scored exactly against the rows of the k-means cells its own cell probes: with
    every cell probed the lists are the exact ones; with a few, the near neighbours are still
    found, a far one can be missed, and the recall measured against exact search says so. Votes
    in bfloat16 pick the cells; the scores stay exact."""
    from recsys.index import cells
    from recsys.index.exact import nearest
    from recsys.index.lists import list_recall

    cell_nearest = functools.partial(cells.cell_nearest, precision=precision)
    rng = np.random.default_rng(1)
    centres = rng.normal(size=(150, 48))
    v = centres[rng.integers(150, size=4000)] + 0.5 * rng.normal(size=(4000, 48))
    v = (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)
    mask = np.ones(len(v), bool)
    mask[::50] = False
    exact_rows, exact_scores = nearest(v, mask, 30, only_with=True)

    rows, scores = cell_nearest(v, mask, 30, cell_items=40, probe=100)  # 97 cells, all probed
    np.testing.assert_allclose(scores, exact_scores, atol=1e-5)
    assert (rows == exact_rows).mean() > 0.99  # where two rows tie, either may come first
    assert (rows[~mask] == -1).all() and not np.isin(rows, np.flatnonzero(~mask)).any()
    assert not (rows == np.arange(len(v))[:, None]).any()

    few, few_scores = cell_nearest(v, mask, 30, cell_items=40, probe=6)
    listed = few >= 0
    dots = np.einsum("nkd,nd->nk", v[np.maximum(few, 0)], v)
    np.testing.assert_allclose(few_scores[listed], dots[listed], atol=1e-5)  # exact scores
    recall = list_recall(v, mask, few, ks=(10, 30), sample=400)
    assert recall["recall@10"] >= 0.98, recall
    alone = list_recall(v, mask, cell_nearest(v, mask, 30, cell_items=40, probe=1)[0], ks=(10, 30), sample=400)
    assert alone["recall@30"] < recall["recall@30"] < 1.0, (alone, recall)  # fewer cells, more missed

    tiny, _ = cell_nearest(v[:3], np.ones(3, bool), 5)
    assert sorted(tiny[0, :2]) == [1, 2] and (tiny[:, 2:] == -1).all()

    # a score is symmetric: a row that lists another above that row's 10th score is in its list
    lone, lone_scores = cell_nearest(v, mask, 30, cell_items=40, probe=1)
    for q in np.flatnonzero(mask):
        listers = np.flatnonzero(((lone == q) & (lone_scores > lone_scores[q, 9])).any(1))
        assert np.isin(listers, lone[q, :10]).all(), q
    assert all(len(np.unique(r[r >= 0])) == (r >= 0).sum() for r in lone)  # no row listed twice


def test_hnsw_lists_hold_the_near_neighbours_with_exact_scores():
    """The graph's lists score exactly and find the near neighbours; they leave out the row
    itself (also among identical rows) and the rows outside the mask."""
    from recsys.index.hnsw import hnsw_nearest
    from recsys.index.lists import list_recall

    rng = np.random.default_rng(2)
    centres = rng.normal(size=(150, 24))
    v = centres[rng.integers(150, size=4000)] + 0.5 * rng.normal(size=(4000, 24))
    v[101:111] = v[101]  # ten identical rows
    v = (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)
    mask = np.ones(len(v), bool)
    mask[::50] = False
    rows, scores = hnsw_nearest(v, mask, 30)
    listed = rows >= 0
    assert listed[mask].all() and (rows[~mask] == -1).all() and not np.isin(rows, np.flatnonzero(~mask)).any()
    assert not (rows == np.arange(len(v))[:, None]).any()
    assert sorted(rows[102, :9]) == [r for r in range(101, 111) if r != 102]
    dots = np.einsum("nkd,nd->nk", v[np.maximum(rows, 0)], v)
    np.testing.assert_allclose(scores[listed], dots[listed], atol=1e-5)
    assert (np.diff(scores[mask], axis=1) <= 1e-6).all()
    assert list_recall(v, mask, rows, ks=(10, 30), sample=400)["recall@10"] >= 0.98
    tiny, _ = hnsw_nearest(v[:3], np.ones(3, bool), 5)
    assert sorted(tiny[0, :2]) == [1, 2] and (tiny[:, 2:] == -1).all()


def test_list_recall_counts_a_tied_row_as_a_hit():
    """Rows 0-19 share one vector and 20-29 another: any 5 of a row's 19 twins are its exact top
    5, so a list of other twins than exact search picked is perfect, and a stranger is a miss."""
    from recsys.index.lists import list_recall

    v = np.zeros((30, 4), np.float32)
    v[:20, 0], v[20:, 1] = 1, 1
    group = [np.arange(20), np.arange(20, 30)]
    lists = np.array([[t for t in group[i >= 20][::-1] if t != i][:5] for i in range(30)], np.int32)
    mask = np.ones(30, bool)
    assert list_recall(v, mask, lists, ks=(5,), sample=30) == {"recall@5": 1.0}
    lists[:, 4] = np.where(np.arange(30) < 20, 25, 5)
    assert list_recall(v, mask, lists, ks=(5,), sample=30) == {"recall@5": 0.8}


def test_cell_lists_take_in_the_rows_that_list_them():
    """Row 0 holds 1 and 2; row 3 lists 0 with a score above 0's last, so it moves in (before 2);
    row 4 lists 0 below it and stays out; a short list takes rows in where it has room."""
    from recsys.index.lists import take_reverse

    rows = np.array([[1, 2], [0, -1], [0, 1], [0, 1], [0, -1]], np.int32)
    scores = np.array([[0.9, 0.5], [0.9, 0.0], [0.5, 0.4], [0.7, 0.2], [0.3, 0.0]], np.float32)
    take_reverse(rows, scores, top=2)
    assert rows[0].tolist() == [1, 3] and np.allclose(scores[0], [0.9, 0.7])
    assert rows[1].tolist() == [0, 2] and np.allclose(scores[1], [0.9, 0.4])  # 3 lists 1 at 0.2 < 0.4


@pytest.mark.parametrize("hnsw_max_dim", [0, 128])
def test_approximate_lists_hold_the_exact_neighbours_with_exact_scores(market, hnsw_max_dim):
    """Above index.exact_lists_max the lists come from k-means cells or, in few dimensions, an
    HNSW graph, scored exactly: on the market's vectors they hold the exact neighbours, with the
    exact scores, and never the item itself or an item without the modality."""
    from recsys.pipeline.precompute import list_methods, lists_recall, similar_lists

    methods = list_methods(market.vectors, approximate=True, hnsw_max_dim=hnsw_max_dim)
    dims = {"combined": market.vectors.combined.shape[1], **{m: b.dim for m, b in market.vectors.blocks.items()}}
    assert methods == {name: "hnsw" if dim <= hnsw_max_dim else "cells" for name, dim in dims.items()}
    assert set(methods.values()) == ({"cells"} if hnsw_max_dim == 0 else {"cells", "hnsw"})
    exact, approx = market.similar, similar_lists(market.vectors, 100, methods=methods)
    assert list(approx) == list(exact)
    for name, lists in approx.items():
        assert lists.rows.shape == exact[name].rows.shape
        # rank by rank the same scores (where two items tie, either may be listed)
        found = (lists.scores >= exact[name].scores - 1e-5) | (exact[name].rows < 0)
        assert found.mean() >= 0.98, name
        same = lists.rows == exact[name].rows
        np.testing.assert_allclose(lists.scores[same], exact[name].scores[same], atol=1e-5)
        assert not (lists.rows == np.arange(len(lists.rows))[:, None]).any()
    text = market.vectors.blocks["text"]
    assert not np.isin(approx["text"].rows, np.flatnonzero(~text.mask)).any()
    recall = lists_recall(market.vectors, approx, sample=100)
    assert set(recall) == set(approx) and all(r["recall@10"] >= 0.98 for r in recall.values())
    wrong = {name: TopLists(np.roll(lists.rows, 1, axis=0), lists.scores) for name, lists in approx.items()}
    assert lists_recall(market.vectors, wrong, sample=100)["combined"]["recall@10"] < 0.2  # it can fail


def test_a_catalog_above_exact_lists_max_gets_approximate_lists_with_their_recall(session_dir, market):
    from recsys.bundle import read_bundle
    from recsys.pipeline.build import build_item_bundle
    from recsys.settings import load_settings
    from recsys.towers import create_tower

    settings = load_settings(state_dir=session_dir / "state",
                             index={"n_trees": 5, "recall_sample": 50, "precompute_k": 20, "exact_lists_max": 100})
    report = build_item_bundle(market.items.head(300), settings, session_dir / "models" / "cells",
                               show_progress=False, towers={"tabular": create_tower("tabular")})
    bundle = read_bundle(report.path)
    lists = bundle.manifest["lists"]
    assert lists["method"] == "approximate" and set(lists["recall"]) == {"combined", "tabular"}
    assert lists["methods"] == {"combined": "hnsw", "tabular": "hnsw"}  # few dimensions
    assert all(r["recall@10"] >= 0.95 and r["recall@20"] >= 0.95 for r in lists["recall"].values())
    item = bundle.item_ids.ids[3]
    assert_same_ranking(Recommender(bundle).similar_items(item, k=10),
                        Recommender(dataclasses.replace(bundle, similar={})).similar_items(item, k=10))
    # per-request weights whose bound the lists cannot beat (the whole list asked for) and whose
    # other items are past the exact budget: approximate lists answer with their best, exact lists
    # go to Annoy
    weights, k = {"tabular": 1.0}, 20
    cells = Recommender(bundle, exact_budget=0).similar
    exact = Recommender(dataclasses.replace(bundle, manifest={**bundle.manifest, "lists": {"method": "exact"}}),
                        exact_budget=0).similar
    older = Recommender(dataclasses.replace(bundle, manifest={**bundle.manifest, "lists": {"method": "cells"}}))
    assert cells.approximate_lists and older.similar.approximate_lists and not exact.approximate_lists
    for row in (3, 50, 299):
        assert exact.threshold(row, k, None, weights, ["tabular"], None) is None
        rows, scores = cells.threshold(row, k, None, weights, ["tabular"], None)
        listed = bundle.similar["tabular"].rows[row]
        assert set(rows) == set(listed[listed >= 0])
        tabular = np.asarray(bundle.vectors.blocks["tabular"].vectors)
        np.testing.assert_allclose(scores, tabular[rows] @ tabular[row], atol=1e-5)
