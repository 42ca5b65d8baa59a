"""Serving indexes (Annoy, HNSW): recall against exact search, cosine scores, save/load, exclusions."""
import numpy as np
import pytest

from recsys.errors import BundleError
from recsys.index import AnnIndex, measure_recall
from recsys.index.hnsw import HnswIndex


@pytest.fixture(scope="module")
def clustered():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(40, 32))
    v = centres[rng.integers(40, size=3000)] + 0.3 * rng.normal(size=(3000, 32))
    return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


def test_recall_against_exact(clustered):
    index = AnnIndex.build(clustered, n_trees=30, seed=1)
    recall = measure_recall(index, clustered, k=10, sample=200)
    assert recall > 0.9, recall


def test_the_build_tunes_annoys_search_effort_to_a_recall_and_a_bundle_keeps_it(tmp_path):
    """A few trees over many clusters miss neighbours at Annoy's default search; doubling the
    effort until a sample reaches the target recall finds them, the effort is capped, and it
    travels with the index (describe, save, load) as a configured search_k does."""
    from recsys.bundle import load_index
    from recsys.index import tune_search_effort

    rng = np.random.default_rng(3)
    v = rng.normal(size=(400, 48))[rng.integers(400, size=8000)] + 0.6 * rng.normal(size=(8000, 48))
    v = (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)
    index = AnnIndex.build(v, n_trees=2, seed=1)
    default = measure_recall(index, v, k=10, fetch=50, sample=200)
    assert default < 0.9, default
    assert measure_recall(index, v, k=10, sample=200) < default  # Annoy's own top 10, not re-scored
    capped = tune_search_effort(AnnIndex.build(v, n_trees=2, seed=1), v, target=0.99, max_effort=2, fetch=50)
    reached = tune_search_effort(index, v, target=0.95, max_effort=64, fetch=50)
    assert default < capped < reached and reached >= 0.95 and index.search_effort in (2, 4, 8, 16, 32, 64)
    assert measure_recall(index, v, k=10, fetch=50, sample=200) == reached
    assert index.inspects(50) == int(2 * 50 * index.search_effort)
    index.save(tmp_path / "x.ann")
    loaded = load_index(tmp_path, "x", 48, index.describe())
    assert loaded.search_effort == index.search_effort
    np.testing.assert_array_equal(loaded.query(v[5], n=50)[0], index.query(v[5], n=50)[0])
    fixed = AnnIndex.build(v, n_trees=2, seed=1, search_k=4000)
    fixed.save(tmp_path / "fixed.ann")
    assert load_index(tmp_path, "fixed", 48, fixed.describe()).inspects(50) == 4000


def test_scores_are_cosines_and_exclude_works(clustered):
    index = AnnIndex.build(clustered, n_trees=10)
    rows, scores = index.query(clustered[7], n=5, exclude={7})
    assert 7 not in rows and len(rows) == 5
    np.testing.assert_allclose(scores, clustered[rows] @ clustered[7], atol=1e-5)
    assert (np.diff(scores) <= 1e-6).all()


def test_subset_rows_and_round_trip(tmp_path, clustered):
    rows = np.arange(0, 3000, 3)
    index = AnnIndex.build(clustered, rows, n_trees=5, seed=2)
    found, _ = index.query(clustered[4], n=20)
    assert set(found) <= set(rows)
    index.save(tmp_path / "x.ann")
    loaded = AnnIndex.load(tmp_path / "x.ann", 32, 5)
    again, _ = loaded.query(clustered[4], n=20)
    np.testing.assert_array_equal(found, again)
    (tmp_path / "bad.ann").write_bytes(b"junk")
    np.save(tmp_path / "bad.rows.npy", rows)
    with pytest.raises(BundleError):
        AnnIndex.load(tmp_path / "bad.ann", 32, 5)


def test_mips_augmentation_ranks_by_inner_product():
    from recsys.index.mips import augment_items, augment_query, build_mips_index

    rng = np.random.default_rng(1)
    factors = rng.normal(size=(500, 16)).astype(np.float32) * rng.lognormal(0, 1, (500, 1)).astype(np.float32)
    augmented = augment_items(factors)
    norms = np.linalg.norm(augmented, axis=1)
    np.testing.assert_allclose(norms, norms.max(), rtol=1e-5)
    user = rng.normal(size=16).astype(np.float32)
    # the angle to an augmented item orders items exactly as the inner product does
    cosines = augmented @ augment_query(user) / norms
    np.testing.assert_array_equal(np.argsort(-cosines)[:20], np.argsort(-(factors @ user))[:20])
    index = build_mips_index(factors, np.arange(500), n_trees=20, seed=0)
    rows, _ = index.query(augment_query(user), n=50)
    exact = set(np.argsort(-(factors @ user))[:10].tolist())
    assert len(exact & set(rows.tolist())) >= 9


def test_a_query_inspects_search_k_items_at_most_the_whole_index(clustered):
    index = AnnIndex.build(clustered[:500], n_trees=10)
    assert index.inspects(20) == 200  # Annoy's default search_k: n_trees * n
    assert index.inspects(100) == 500  # more than the index: every item
    assert AnnIndex(index.annoy, index.rows, index.dim, 10, search_k=50).inspects(100) == 50


def test_annoy_is_asked_only_where_it_compares_fewer_items_than_an_exact_pass(clustered):
    from recsys.serve.candidates import annoy_wants

    index = AnnIndex.build(clustered, n_trees=5)  # 3,000 items of 32 dimensions
    plan = {"exact_budget": 1, "overfetch": 10}
    # k = 10: 100 candidates, Annoy compares 5 * 100 of the 3,000 items
    assert annoy_wants(10, 3000, 3000, [index], 32, **plan) == [100]
    # a 100-item list: 1,000 candidates, and Annoy would compare all 3,000
    assert annoy_wants(100, 3000, 3000, [index], 32, **plan) == []
    # a filter keeping a fifth: five times the candidates to find 100 that pass
    assert annoy_wants(10, 600, 3000, [index], 32, **plan) == []
    assert annoy_wants(10, 3000, 3000, [index], 32, exact_budget=10**6, overfetch=10) == []  # cheap
    assert annoy_wants(10, 80, 3000, [index], 32, **plan) == []  # fewer items than candidates
    assert annoy_wants(100, 3000, 3000, [index], 32, exact_budget=0, overfetch=10) == [1000]


def test_the_hnsw_index_answers_as_annoy_does_with_exact_scores(tmp_path, clustered):
    rows = np.arange(0, 3000, 2)
    index = HnswIndex.build(clustered, rows, links=16, ef_search=32)
    assert measure_recall(index, clustered, k=10, sample=200) > 0.95
    found, scores = index.query(clustered[4], n=20, exclude={4})
    assert set(found) <= set(rows) and 4 not in found and len(found) == 20
    np.testing.assert_allclose(scores, clustered[found] @ clustered[4], atol=1e-5)
    assert (np.diff(scores) <= 1e-6).all()
    assert len(index.query(clustered[4], n=len(rows) + 5)[0]) == len(rows)  # asking past the end
    assert index.inspects(10) == 32 * 16 and index.inspects(10_000) == len(rows)
    index.save(tmp_path / "x.hnsw")
    loaded = HnswIndex.load(tmp_path / "x.hnsw", 32, 16, 32)
    np.testing.assert_array_equal(loaded.query(clustered[4], n=20, exclude={4})[0], found)
    with pytest.raises(BundleError, match="dimensions"):
        HnswIndex.load(tmp_path / "x.hnsw", 64, 16, 32)
    (tmp_path / "bad.hnsw").write_bytes(b"junk")
    np.save(tmp_path / "bad.rows.npy", rows)
    with pytest.raises(BundleError):
        HnswIndex.load(tmp_path / "bad.hnsw", 32, 16, 32)


def test_top_k_rows_keeps_the_best_columns_ties_in_column_order():
    """The best ``k`` of each row, best first, equal scores among those kept in column order (a tie
    across the k-th place keeps any of its columns); excluded (``-inf``) columns come back as -1
    when too few qualify."""
    from recsys.index.exact import top_k_rows

    scores = np.array([[0.5, 0.9, 0.5, 0.1, 0.5, 0.9],
                       [-np.inf, 0.2, -np.inf, -np.inf, -np.inf, -np.inf]], dtype=np.float32)
    rows, best = top_k_rows(scores, 3)
    assert rows[0, :2].tolist() == [1, 5] and rows[0, 2] in (0, 2, 4)
    np.testing.assert_allclose(best[0], [0.9, 0.9, 0.5])
    assert rows[1].tolist() == [1, -1, -1] and best[1].tolist() == [np.float32(0.2), 0.0, 0.0]
    rows, best = top_k_rows(scores, 4)
    assert rows[0].tolist()[:2] == [1, 5] and rows[0, 2] < rows[0, 3]  # ties among the picked: column order

    rng = np.random.default_rng(0)
    wide = rng.standard_normal((7, 5000)).astype(np.float32)
    rows, best = top_k_rows(wide, 50)
    expected = np.argsort(-wide, axis=1, kind="stable")[:, :50]
    assert (rows == expected).all()
    np.testing.assert_array_equal(best, np.take_along_axis(wide, expected, axis=1))
    rows, _ = top_k_rows(wide[:, :30], 50)  # k above the width: every column, then -1
    assert (rows[:, :30] == np.argsort(-wide[:, :30], axis=1, kind="stable")).all() and (rows[:, 30:] == -1).all()
