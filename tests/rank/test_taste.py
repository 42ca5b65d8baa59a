"""The taste source: every item scored in the item tower's leading directions, the best re-scored
exactly."""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from recsys.rank.sources import Audience, Taste
from recsys.rank.state import HISTORY


class _Items:
    def __init__(self, n: int):
        self.n_items = n


def _histories(n_items: int, users: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    history = np.full((users, HISTORY), -1, np.int64)
    for u in range(users):
        size = int(rng.integers(1, HISTORY + 1))
        history[u, :size] = rng.choice(n_items, size, replace=False)
    history[-1] = -1  # a user with no history gets nothing
    return history


def test_the_reduced_scan_proposes_the_exact_best_with_exact_cosines(market):
    fast = Taste(50, market, dims=64, few=1000)  # every block of users a few: the reduced scan
    assert fast.reduced is not None and fast.reduced.shape == (len(market.item_ids), 64)
    exact = Taste(50, market)
    exact.reduced = None  # every item scored in all the dimensions
    state = _Items(len(market.item_ids))
    history = _histories(state.n_items, 200)
    audience = Audience(np.full(len(history), -1), history, sp.csr_matrix((len(history), state.n_items)))
    found, truth = fast.propose(state, audience), exact.propose(state, audience)
    overlap = [len(set(found[u].indices) & set(truth[u].indices)) / 50 for u in range(len(history) - 1)]
    assert np.mean(overlap) >= 0.95 and min(overlap) >= 0.8, (np.mean(overlap), min(overlap))
    for u in range(len(history) - 1):
        mine, right = dict(zip(found[u].indices, found[u].data)), dict(zip(truth[u].indices, truth[u].data))
        assert all(abs(mine[i] - right[i]) < 1e-4 for i in set(mine) & set(right))
    assert found[len(history) - 1].nnz == truth[len(history) - 1].nnz == 0
    many = Taste(50, market, dims=64)  # a block of 200 users scans every item in all dimensions
    assert (many.propose(state, audience) != truth).nnz == 0


def test_narrow_vectors_are_scanned_as_they_are(plain_shop):
    assert Taste(5, plain_shop).reduced is None
