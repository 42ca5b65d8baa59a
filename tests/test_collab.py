"""The user tower's parts: confidence matrix, ALS/BPR fit, fold-in, content projection."""
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from recsys.collab.als import CollabModel, interaction_matrix, popularity
from recsys.collab.foldin import fold_in, gramian
from recsys.collab.project import ContentProjection
from recsys.data import validate_interactions
from recsys.data.ids import IdMap
from recsys.errors import DataError
from recsys.settings import CollabSettings

WEIGHTS = CollabSettings().event_weights


def _events(rows):
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "event", "value", "timestamp"])
    return validate_interactions(frame, source="test")


def test_events_add_up_by_type_and_rating():
    items = IdMap(["a", "b", "c"])
    events = _events([
        ("u1", "a", "view", None, 100), ("u1", "a", "view", None, 200), ("u1", "a", "purchase", None, 300),
        ("u1", "b", "click", None, 150), ("u2", "c", "rating", 4.5, 50),
    ])
    ui = interaction_matrix(events, items, event_weights=WEIGHTS)
    dense = ui.matrix.toarray()
    u1, u2 = ui.user_ids.row("u1"), ui.user_ids.row("u2")
    assert dense[u1].tolist() == [1 + 1 + 8, 2, 0]  # view + view + purchase, one click
    assert dense[u2].tolist() == [0, 0, 4.5]  # a rating counts weight x value
    rows, strength = ui.history(u1)
    assert rows.tolist() == [0, 1] and strength.tolist() == [10, 2]  # a last seen at 300, b at 150


def test_time_decay_halves_per_half_life():
    items = IdMap(["a", "b"])
    day = 86400
    events = _events([("u", "a", "view", None, 0), ("u", "b", "view", None, 10 * day)])
    ui = interaction_matrix(events, items, event_weights=WEIGHTS, half_life_days=10)
    np.testing.assert_allclose(ui.matrix.toarray()[0], [0.5, 1.0], rtol=1e-6)


def test_bad_interactions_are_named():
    items = IdMap(["a"])
    with pytest.raises(DataError, match="items not in the bundle .*'zzz'"):
        interaction_matrix(_events([("u", "zzz", "view", None, 1)]), items, event_weights=WEIGHTS)
    with pytest.raises(DataError, match="no interaction has a positive strength"):
        interaction_matrix(_events([("u", "a", "view", None, 1)]), items, event_weights={"view": 0})


def test_popularity_prefers_the_recent_window():
    items = IdMap(["old", "new"])
    day = 86400
    events = _events([(f"u{i}", "old", "view", None, 0) for i in range(5)]
                     + [("u9", "new", "view", None, 100 * day), ("u8", "new", "view", None, 99 * day)])
    pop = popularity(interaction_matrix(events, items, event_weights=WEIGHTS), window_days=30)
    assert pop[1] > pop[0] > 0  # "old" has more users all-time, but none in the window


def _checkerboard(n=40):
    """Even users touch even items, odd users odd items (implicit's known-answer test data)."""
    rows, cols = zip(*[(u, i) for u in range(n) for i in range(n) if (u + i) % 2 == 0 and u != i])
    return sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(n, n))


@pytest.mark.parametrize("model, options", [("als", {}), ("bpr", {"iterations": 200, "learning_rate": 0.05,
                                                                  "num_threads": 1})])
def test_checkerboard(model, options):
    matrix = _checkerboard()
    fitted = CollabModel(model, factors=4, regularization=0.01, seed=0, **options).fit(matrix, show_progress=False)
    scores = fitted.user_factors_ @ fitted.item_factors_.T
    for u in range(matrix.shape[0]):
        top = np.argsort(-scores[u])[:5]
        assert (top % 2 == u % 2).all(), (model, u, top)


def test_seeded_fit_is_reproducible():
    matrix = _checkerboard()
    a = CollabModel(factors=8, seed=3).fit(matrix, show_progress=False)
    b = CollabModel(factors=8, seed=3).fit(matrix, show_progress=False)
    np.testing.assert_array_equal(a.item_factors_, b.item_factors_)
    bpr = [CollabModel("bpr", factors=8, seed=3, num_threads=1).fit(matrix, show_progress=False)
           for _ in range(2)]
    np.testing.assert_array_equal(bpr[0].item_factors_, bpr[1].item_factors_)


def test_fold_in_equals_implicit_recalculate_user():
    matrix = _checkerboard()
    model = CollabModel(factors=6, regularization=0.5, alpha=2.0, seed=0)
    model.fit(matrix, show_progress=False)
    implicit_model = model.implicit_model()
    implicit_model.item_factors = model.item_factors_
    implicit_model.user_factors = model.user_factors_
    rows = np.array([2, 4, 10])
    strength = np.array([1.0, 3.0, 0.5], np.float32)
    confidence = model.confidence(strength)
    user_items = sp.csr_matrix((confidence, (np.zeros(3, int), rows)), shape=(1, matrix.shape[1]))
    with threadpool_limits(1, "blas"):
        expected = implicit_model.recalculate_user(0, user_items)
    got = fold_in(model.item_factors_, rows, confidence, regularization=0.5, yty=gramian(model.item_factors_))
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
    # a trained user's own history gives back (nearly) their trained factors
    user = 6
    hist = matrix[user].indices
    again = fold_in(model.item_factors_, hist, model.confidence(matrix[user].data), regularization=0.5)
    cos = again @ model.user_factors_[user] / np.linalg.norm(again) / np.linalg.norm(model.user_factors_[user])
    assert cos > 0.99


def test_projection_recovers_a_linear_map():
    rng = np.random.default_rng(0)
    content = rng.normal(size=(400, 20)).astype(np.float32)
    true_map = rng.normal(size=(20, 5))
    factors = content @ true_map + 0.01 * rng.normal(size=(400, 5))
    projection = ContentProjection(regularization=0.1).fit(content[:300], factors[:300])
    predicted = projection.transform(content[300:])
    residual = np.linalg.norm(predicted - factors[300:]) / np.linalg.norm(factors[300:])
    assert residual < 0.05
    # fewer items than dimensions takes the dual form and still fits the training items
    wide = ContentProjection(0.01).fit(content[:10, :], factors[:10])
    assert np.linalg.norm(wide.transform(content[:10]) - factors[:10]) < 0.1 * np.linalg.norm(factors[:10])
    # more rows than one block: each block the same as the rows alone
    many = rng.normal(size=(70_000, 20)).astype(np.float32)
    projected = projection.transform(many)
    assert projected.shape == (70_000, 5) and projected.dtype == np.float32
    np.testing.assert_allclose(projected[[0, 65_535, 65_536, 69_999]],
                               projection.transform(many[[0, 65_535, 65_536, 69_999]]), rtol=1e-6)
    np.testing.assert_allclose(projected[65_536:65_540], (many[65_536:65_540] - projection.mean_x_)
                               @ projection.weights_ + projection.mean_y_, rtol=1e-5)


def test_projection_gives_the_length_asked_and_survives_its_arrays():
    rng = np.random.default_rng(1)
    content = rng.normal(size=(200, 12)).astype(np.float32)
    factors = content @ rng.normal(size=(12, 4))
    free = ContentProjection(0.1).fit(content, factors)
    fixed = ContentProjection(0.1).fit(content, factors, norm=2.5)
    placed = fixed.transform(content[:50])
    np.testing.assert_allclose(np.linalg.norm(placed, axis=1), 2.5, rtol=1e-5)
    cos = np.sum(placed * free.transform(content[:50]), axis=1) / 2.5 / np.linalg.norm(
        free.transform(content[:50]), axis=1)
    np.testing.assert_allclose(cos, 1.0, rtol=1e-5)  # the direction is the projection's
    for original in (free, fixed):
        again = ContentProjection.from_arrays(original.to_arrays())
        assert again.norm_ == original.norm_
        np.testing.assert_array_equal(again.transform(content), original.transform(content))
