"""Precomputed similar items and feeds: the same answers as computing them, and the fallbacks."""
import dataclasses
import functools

import numpy as np
import pytest

from recsys.bundle import TopLists
from recsys.serve import FeedQuery, Recommender, Scored, SimilarQuery
from recsys.serve.changes import ItemChanges
from recsys.serve.filters import ItemFilter
from recsys.serve.threshold import ModalityLists


def assert_same_ranking(listed, computed):
    """Same scores rank by rank; the same ids except where two scores tie (within float error)."""
    a, b = [s.score for s in listed], [s.score for s in computed]
    np.testing.assert_allclose(a, b, atol=1e-5)
    if not b:
        return
    last = b[-1]
    clear = lambda found: {s.item_id for s in found if s.score > last + 1e-5}  # noqa: E731
    assert clear(listed) == clear(computed)


def similar_source(rec: Recommender, item: str, k: int, weights=None, filters=None) -> str:
    """Where the recommender's plan takes an answer from (see recsys.serve.queries)."""
    return rec.plan(SimilarQuery(item, k, weights, filters or ItemFilter())).source


def feed_source(rec: Recommender, user, k: int = 10, recent=(), exclude_seen: bool = True) -> str:
    return rec.plan(FeedQuery(user, k, tuple(recent), exclude_seen)).source


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
    assert similar_source(serving, item, 10, weights) == "lookup"  # from the lists
    found = serving.similar_items(item, k=10, weights=weights)
    assert not {top[0], top[3]} & {s.item_id for s in found}
    assert_same_ranking(found, computing.with_changes(changes).similar_items(item, k=10, weights=weights))


def test_large_k_is_computed(market):
    serving = Recommender(market)
    item = market.item_ids.ids[0]
    assert similar_source(serving, item, 100) == "lookup"
    assert similar_source(serving, item, 101) == "compute"
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
            listed = serving.similar_items(item, k=n, weights=weights, filters=filters)
            assert_same_ranking(listed, computing.similar_items(item, k=n, weights=weights, filters=filters))
            asked += 1
            answered += similar_source(serving, item, n, weights, filters) == "lookup"
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
        assert similar_source(serving, item, 10, weights) == "lookup"
        assert_same_ranking(serving.similar_items(item, k=10, weights=weights),
                            computing.similar_items(item, k=10, weights=weights))


def test_a_bundle_without_modality_lists_computes_per_request_weights(market, computing):
    only_combined = Recommender(dataclasses.replace(market, similar={"combined": market.similar["combined"]}))
    item = market.item_ids.ids[3]
    weights = {"text": 0.6, "tabular": 0.4}
    assert similar_source(only_combined, item, 10, weights) == "compute"
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
    assert feed_source(feeds, user, 10) == "lookup"
    assert feed_source(feeds, user, 101) != "lookup"
    chosen = feeds.content_weight
    other = Recommender(feeds.bundle, content_weight=0.6 if chosen != 0.6 else 0.3)
    assert feed_source(other, user, 10) != "lookup"
    # lists made with raw factor scores (bundles trained before the unit-user scoring)
    made = {k: v for k, v in feeds.bundle.collab.params["feed"].items() if k != "scoring"}
    collab = dataclasses.replace(feeds.bundle.collab, params={**feeds.bundle.collab.params, "feed": made})
    older = Recommender(dataclasses.replace(feeds.bundle, collab=collab))
    assert feed_source(older, user, 10) != "lookup"
    assert feed_source(feeds, user, 10, exclude_seen=False) != "lookup"
    assert feed_source(feeds, "nobody", 10) != "lookup"


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


def test_exact_lists_are_chosen_by_their_cost_timed_on_this_machine():
    """Above 20,000 items the build times 512 rows of each exact list and takes the approximate
    lists when the whole would pass the limit (CPUs differ several times in this cost); a catalog
    over the item limit is approximate untimed, a small one exact untimed."""
    from recsys.pipeline.precompute import EXACT_UNTIMED_ITEMS, approximate_lists, exact_lists_seconds
    from recsys.towers import TowerOutput
    from recsys.towers.item import combine

    def vectors(n: int):
        rng = np.random.default_rng(0)
        x = rng.normal(size=(n, 16)).astype(np.float32)
        return combine({"tabular": TowerOutput(x / np.linalg.norm(x, axis=1, keepdims=True), np.ones(n, bool))},
                       {"tabular": 1.0})

    large, small = vectors(EXACT_UNTIMED_ITEMS + 5_000), vectors(2_000)
    estimate = exact_lists_seconds(large, 10)
    assert estimate > 0 and exact_lists_seconds(vectors(EXACT_UNTIMED_ITEMS * 2), 10) > estimate  # grows with n
    approximate, timed = approximate_lists(large, 10, max_items=10**6, max_seconds=0.0)
    assert approximate and timed > 0
    assert approximate_lists(large, 10, max_items=10**6, max_seconds=1e9)[0] is False
    assert approximate_lists(large, 10, max_items=1000, max_seconds=1e9) == (True, None)
    assert approximate_lists(small, 10, max_items=10**6, max_seconds=0.0) == (False, None)


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
    """What a worker sends with a post (feed_list, through JSON) another keeps (receive_feed_list):
    its next feed is a lookup that equals the computed one; a list that does not fit is refused."""
    import json

    from recsys.errors import InvalidRequest

    bundle = feeds.bundle
    items = bundle.item_ids.ids.tolist()
    trained = bundle.collab.user_ids.ids[4]
    maker, keeper = Recommender(bundle, feed_lists=100), Recommender(bundle, feed_lists=100)
    for user, recent in [(trained, [items[10], items[20]]), ("visitor", [items[33], items[34]])]:
        assert feed_source(maker, user, 10, recent) == "list"
        made = maker.feed_list(user, recent)
        assert feed_source(maker, user, 10, recent) == "lookup"  # kept: made once
        assert maker.feed_list(user, recent) == made
        sent = json.loads(json.dumps({"recent": made[0], "rows": made[1], "scores": made[2]}))
        assert sent["recent"] == recent
        assert feed_source(keeper, user, 10, recent) == "list"
        keeper.receive_feed_list(user, sent["recent"], sent["rows"], sent["scores"])
        assert feed_source(keeper, user, 10, recent) == "lookup"
        kept = keeper.recommend(user, k=50, recent_items=recent)
        assert [(s.item_id, s.score) for s in kept.items] == \
            [(s.item_id, s.score) for s in maker.recommend(user, k=50, recent_items=recent).items]
        assert_same_ranking(kept.items, feeds.recommend(user, k=50, recent_items=recent).items)
    # a trained user's list is their own; visitors (unknown to the model) share by recent items
    assert feed_source(keeper, bundle.collab.user_ids.ids[5], 10, [items[10], items[20]]) == "list"
    assert feed_source(keeper, "another visitor", 10, [items[33], items[34]]) == "lookup"
    _, rows, scores = maker.feed_list("visitor", [items[33], items[34]])
    for bad in [(rows[:-1], scores[:-1]), ([len(items)] + rows[1:], scores), ([float(r) for r in rows], scores),
                (rows, [float("nan")] + scores[1:]), (["x"] * len(rows), scores)]:
        with pytest.raises(InvalidRequest, match="not a feed list"):
            keeper.receive_feed_list("v2", [items[1]], *bad)
    with pytest.raises(InvalidRequest, match="unknown item_id"):
        keeper.receive_feed_list("v2", ["no such item"], rows, scores)
    assert feeds.feed_list("visitor", [items[1]]) is None  # lists off
    assert maker.feed_list("visitor", []) is None
    # the recent items of the activity log: those the bundle lacks are dropped, at most 5 x history_items (20)
    assert maker.feed_list("v3", ["no such item", items[1], items[1]])[0] == [items[1]]
    assert len(maker.feed_list("v4", items)[0]) == 5 * 20


def test_feeds_with_recent_items_are_kept_as_lists_and_equal_the_computed_ones(feeds):
    bundle = feeds.bundle
    keeping = Recommender(bundle, feed_lists=100)
    items = bundle.item_ids.ids
    for user, recent in [(bundle.collab.user_ids.ids[4], [items[10], items[20]]), ("visitor", [items[33]]),
                         (None, [items[5], items[6], items[7]])]:
        assert feed_source(keeping, user, 10, recent) != "lookup"
        for n, filters in [(10, None), (100, None), (20, ItemFilter(max_price=60.0)), (150, None)]:
            kept = keeping.recommend(user, k=n, recent_items=recent, filters=filters)
            computed = feeds.recommend(user, k=n, recent_items=recent, filters=filters)
            assert kept.strategy == computed.strategy and kept.message == computed.message
            assert_same_ranking(kept.items, computed.items)
            assert not {s.item_id for s in kept.items} & set(recent)
        assert feed_source(keeping, user, 100, recent) == "lookup"  # kept since the first feed
        assert feed_source(keeping, user, 101, recent) != "lookup"
        assert feed_source(keeping, user, 10, recent[::-1] + [items[40]]) != "lookup"
    changes = ItemChanges.build(bundle, gen=1, deleted={s.item_id for s in keeping.recommend(
        "visitor", k=3, recent_items=[items[33]]).items})
    after = keeping.with_changes(changes).recommend("visitor", k=10, recent_items=[items[33]])
    assert not {s.item_id for s in after.items} & changes.deleted_ids
    assert_same_ranking(after.items, feeds.with_changes(changes).recommend(
        "visitor", k=10, recent_items=[items[33]]).items)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
@pytest.mark.slow  # 4,000 rows listed three ways, twice: about 2 seconds
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
    cells = ModalityLists(bundle, exact_budget=0)
    exact = ModalityLists(dataclasses.replace(bundle, manifest={**bundle.manifest, "lists": {"method": "exact"}}),
                          exact_budget=0)
    older = ModalityLists(dataclasses.replace(bundle, manifest={**bundle.manifest, "lists": {"method": "cells"}}),
                          exact_budget=0)
    assert cells.approximate_lists and older.approximate_lists and not exact.approximate_lists
    for row in (3, 50, 299):
        assert exact.threshold(row, k, weights, ["tabular"], None) is None
        rows, scores = cells.threshold(row, k, weights, ["tabular"], None)
        listed = bundle.similar["tabular"].rows[row]
        assert set(rows) == set(listed[listed >= 0])
        tabular = np.asarray(bundle.vectors.blocks["tabular"].vectors)
        np.testing.assert_allclose(scores, tabular[rows] @ tabular[row], atol=1e-5)
