"""Similar items on the synthetic shop: neighbours match the ground truth far above chance.

The shop has 10 categories, 14 colours and 3 price bands, so chance agreement is about 0.10,
0.07 and 0.35. The measured figures are printed (pytest -s) and recorded as test properties.
"""
import numpy as np
import pandas as pd
import pytest

from recsys.errors import InvalidRequest, NotFound

K = 10


def agreement(recommender, shop, weights=None, queries=None, attributes=("category", "true_colour", "price_band")):
    truth = shop.set_index("item_id")
    queries = queries if queries is not None else shop["item_id"].iloc[::4]
    hits = {a: [] for a in attributes}
    for item_id in queries:
        found = [s.item_id for s in recommender.similar_items(item_id, k=K, weights=weights)]
        assert len(found) == K and item_id not in found
        for a in attributes:
            hits[a].append(np.mean(truth.loc[found, a].to_numpy() == truth.loc[item_id, a]))
    return {a: float(np.mean(h)) for a, h in hits.items()}


def chance(shop, attribute):
    return float((shop[attribute].value_counts(normalize=True) ** 2).sum())


def test_default_weights_neighbours(built, shop, record_property):
    rates = agreement(built[1], shop)
    record_property("agreement_default", rates)
    print("\ndefault weights:", rates)
    assert rates["category"] > 0.8
    assert rates["true_colour"] > 4 * chance(shop, "true_colour")


@pytest.mark.parametrize("modality, needs, floors", [
    # image: same silhouette and colour; tabular: same colour and price band (multiples of chance)
    ("image", "image", {"category": 5, "true_colour": 4}),
    ("tabular", None, {"true_colour": 4, "price_band": 2}),
])
def test_single_modality_weights_steer(built, shop, record_property, modality, needs, floors):
    queries = shop[shop[needs] != ""]["item_id"].iloc[::4] if needs else None
    rates = agreement(built[1], shop, {modality: 1.0}, queries=queries)
    record_property(f"agreement_{modality}", rates)
    print(f"\n{modality} only:", rates)
    for attribute, times in floors.items():
        assert rates[attribute] > times * chance(shop, attribute), (attribute, rates)


def test_text_weight_finds_items_that_say_the_same_thing(built, shop, record_property):
    # titles use synonyms ("trainers", "sneakers", "kicks"): the text tower must see through them
    has_text = shop[shop["title"] != ""]["item_id"].iloc[::4]
    rates = agreement(built[1], shop, {"text": 1.0}, queries=has_text)
    record_property("agreement_text", rates)
    print("\ntext only:", rates)
    assert rates["category"] > 0.8
    truth = shop.set_index("item_id")
    nouns = {c: set(v[1]) for c, v in __import__("recsys.data.synthetic", fromlist=["x"]).CATEGORIES.items()}
    query = has_text.iloc[0]
    found = built[1].similar_items(query, k=K, weights={"text": 1.0})
    words = {n for n in nouns[truth.loc[query, "category"]]}
    assert sum(any(w in truth.loc[s.item_id, "title"].lower() for w in words) for s in found) >= 8


def test_weights_change_the_ranking(built, shop):
    item = shop[(shop["image"] != "") & (shop["title"] != "")]["item_id"].iloc[0]
    looks = [s.item_id for s in built[1].similar_items(item, k=K, weights={"image": 1.0})]
    words = [s.item_id for s in built[1].similar_items(item, k=K, weights={"text": 1.0})]
    assert looks != words


def test_items_missing_a_modality_still_get_neighbours(built, shop):
    no_image = shop[shop["image"] == ""]["item_id"]
    no_text = shop[shop["title"] == ""]["item_id"]
    assert len(no_image) and len(no_text)
    truth = shop.set_index("item_id")
    for item_id in [*no_image.iloc[:5], *no_text.iloc[:5]]:
        found = built[1].similar_items(item_id, k=K)
        same = np.mean([truth.loc[s.item_id, "category"] == truth.loc[item_id, "category"] for s in found])
        assert same >= 0.5, (item_id, same)
    with pytest.raises(InvalidRequest, match="has no image data"):
        built[1].similar_items(no_image.iloc[0], weights={"image": 1.0})


def test_scores_sorted_and_exact(built, shop):
    recommender = built[1]
    found = recommender.similar_items("SKU-000010", k=20, weights={"image": 0.2, "text": 0.5, "tabular": 0.3})
    scores = [s.score for s in found]
    assert scores == sorted(scores, reverse=True)
    assert all(-1.0 <= s <= 1.0 + 1e-6 for s in scores)


def test_bad_queries(built):
    recommender = built[1]
    with pytest.raises(NotFound, match="unknown item_id 'nope' \\(600 items known\\)"):
        recommender.similar_items("nope")
    for k in (0, 1001, 2.5, True):
        with pytest.raises(InvalidRequest, match="k must be an integer from 1 to 1000"):
            recommender.similar_items("SKU-000001", k=k)


def test_text_only_catalog(tmp_path, text_tower, image_tower):
    from recsys.bundle import read_bundle
    from recsys.pipeline.build import build_item_bundle
    from recsys.serve import Recommender
    from recsys.towers import create_tower
    from tests.conftest import make_settings

    catalog = pd.DataFrame({"item_id": [f"b{i}" for i in range(8)], "title": [
        "red running shoes", "crimson trainers", "blue sneakers for jogging", "ceramic coffee mug",
        "tea cup with saucer", "espresso cup", "desk lamp", "reading light"]})
    towers = {"image": image_tower, "text": text_tower, "tabular": create_tower("tabular")}
    report = build_item_bundle(catalog, make_settings(tmp_path), tmp_path / "models" / "books",
                               show_progress=False, towers=towers)
    assert list(report.modalities) == ["text"]
    recommender = Recommender(read_bundle(report.path))
    assert recommender.bundle.manifest["default_weights"] == {"text": 0.4}
    top = [s.item_id for s in recommender.similar_items("b0", k=2)]
    assert set(top) == {"b1", "b2"}
    with pytest.raises(InvalidRequest, match="has no image data"):
        recommender.similar_items("b0", weights={"image": 1.0})


@pytest.mark.parametrize("budget", [0, 10**9], ids=["annoy", "exact"])
def test_filters_hold_and_fill_k(built, shop, budget):
    from recsys.serve import Recommender
    from recsys.serve.filters import ItemFilter

    recommender = Recommender(built[1].bundle, exact_budget=budget)
    meta = shop.set_index("item_id")
    query = "SKU-000005"
    cases = {
        "category": (ItemFilter.create(category="accessories"), lambda m: m["category"].str.startswith("accessories/")),
        "price": (ItemFilter.create(min_price=30, max_price=60), lambda m: m["price"].between(30, 60)),
        "narrow": (ItemFilter.create(category="home/kitchen/mugs", max_price=10),
                   lambda m: (m["category"] == "home/kitchen/mugs") & (m["price"] <= 10)),
    }
    for name, (item_filter, holds) in cases.items():
        matching = int(holds(meta.drop(index=query)).sum())
        items = recommender.similar_items(query, 25, filters=item_filter)
        assert len(items) == min(25, matching), name
        assert holds(meta.loc[[s.item_id for s in items]]).all(), name
    plain = [s.item_id for s in recommender.similar_items(query, 5)]
    excluded = recommender.similar_items(query, 5, filters=ItemFilter.create(exclude=plain[:2]))
    assert [s.item_id for s in excluded][:3] == plain[2:]


@pytest.mark.slow  # a second build: about 2 seconds
def test_a_bundle_with_the_hnsw_backend_serves_from_its_graphs(session_dir, shop, _image_tower, _text_tower):
    from recsys.bundle import read_bundle
    from recsys.index.hnsw import HnswIndex
    from recsys.pipeline.build import build_item_bundle
    from recsys.serve import Recommender
    from recsys.towers import create_tower
    from tests.conftest import make_settings

    # no precomputed lists and no exact pass: every answer comes from the graphs
    settings = make_settings(session_dir)
    settings = settings.model_copy(update={"index": settings.index.model_copy(
        update={"backend": "hnsw", "precompute_k": 0})})
    towers = {"image": _image_tower, "text": _text_tower, "tabular": create_tower("tabular")}
    report = build_item_bundle(shop, settings, session_dir / "models" / "shop-hnsw", show_progress=False,
                               towers=towers)
    assert "(HNSW, 100 candidates re-scored, vs exact search)" in report.summary()
    assert min(report.recall.values()) > 0.95
    bundle = read_bundle(report.path)
    assert bundle.manifest["indexes"]["combined"]["backend"] == "hnsw"
    assert all(isinstance(index, HnswIndex) for index in bundle.indexes.values())
    recommender = Recommender(bundle, exact_budget=0)
    vectors, ids = bundle.vectors.combined, bundle.item_ids
    hits = []
    for row in range(0, len(shop), 15):
        exact = np.argsort(-(vectors @ vectors[row]))
        exact = ids.ids[exact[exact != row][:K]]
        found = recommender.similar_items(ids.ids[row], k=K)
        hits.append(len({s.item_id for s in found} & set(exact)) / K)
    assert np.mean(hits) > 0.95, np.mean(hits)
    assert len(recommender.similar_items(ids.ids[0], k=K, weights={"image": 1.0})) == K


@pytest.mark.slow  # a second build: about 2 seconds
def test_the_build_tunes_annoys_search_effort_and_the_service_searches_with_it(session_dir, shop, _image_tower,
                                                                               _text_tower):
    """One tree over the few tabular dimensions inspects too few nodes at Annoy's default search
    to find the neighbours: the build doubles the effort until the sample reaches the target
    recall, records it, and the service's answers from the index reach it too."""
    from recsys.bundle import read_bundle
    from recsys.pipeline.build import build_item_bundle
    from recsys.serve import Recommender
    from recsys.towers import create_tower
    from tests.conftest import make_settings

    settings = make_settings(session_dir)
    settings = settings.model_copy(update={"index": settings.index.model_copy(
        update={"n_trees": 1, "target_recall": 0.99, "max_search_effort": 64, "precompute_k": 0,
                "recall_sample": 200})})
    towers = {"image": _image_tower, "text": _text_tower, "tabular": create_tower("tabular")}
    report = build_item_bundle(shop, settings, session_dir / "models" / "shop-one-tree", show_progress=False,
                               towers=towers)
    effort = report.search_effort["tabular"]
    assert effort > 1 and report.recall["tabular"] >= 0.99 and f"(effort {effort:g})" in report.summary()
    bundle = read_bundle(report.path)
    assert bundle.manifest["indexes"]["tabular"]["search_effort"] == effort
    assert bundle.indexes["tabular"].search_effort == effort
    untuned = read_bundle(report.path)
    untuned.indexes["tabular"].search_effort = 1.0
    vectors, ids = bundle.vectors.blocks["tabular"].vectors, bundle.item_ids
    recall = {}
    for name, served in (("tuned", bundle), ("untuned", untuned)):
        recommender, hits = Recommender(served, exact_budget=0), []
        for row in range(0, len(shop), 5):
            exact = np.delete(vectors @ vectors[row], row)
            kth = np.sort(exact)[-K]  # items that tie with the K-th best count as found
            found = recommender.similar_items(ids.ids[row], k=K, weights={"tabular": 1.0})
            hits.append(np.mean([vectors[ids.row(s.item_id)] @ vectors[row] >= kth - 1e-5 for s in found]))
        recall[name] = np.mean(hits)
    assert recall["untuned"] < recall["tuned"] and recall["tuned"] >= 0.95, recall
