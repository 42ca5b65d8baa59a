"""Annoy indexes: recall against exact search, cosine scores, save/load, exclusions."""
import numpy as np
import pytest

from recsys.errors import BundleError
from recsys.index import AnnIndex, measure_recall


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
