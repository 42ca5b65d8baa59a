"""The user tower: interactions -> a confidence matrix -> implicit ALS (or BPR) factors."""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from functools import cached_property
from typing import Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from recsys.data import schema as S
from recsys.data.ids import IdMap
from recsys.errors import DataError, ModelFitError

__all__ = ["UserItems", "interaction_matrix", "event_seconds", "event_strength", "CollabModel", "popularity"]

logger = logging.getLogger(__name__)

_DAY = 86400.0


@dataclass(frozen=True)
class UserItems:
    """Interactions as a sparse users x items matrix.

    Attributes:
        user_ids: users in row order.
        matrix: ``(users, items)`` float32 CSR; each entry is the summed (and decayed) strength of
            the user's events on the item, columns in the order of the catalog's :class:`IdMap`.
        last_seen: float64 epoch seconds of the user's latest event on the item, aligned with
            ``matrix.data`` (NaN where the events carry no timestamp).
    """

    user_ids: IdMap
    matrix: sp.csr_matrix
    last_seen: np.ndarray

    def history(self, row: int) -> tuple[np.ndarray, np.ndarray]:
        """Item rows of one user and their strengths, most recent first."""
        start, end = self.matrix.indptr[row], self.matrix.indptr[row + 1]
        rows, strengths = self.by_recency
        return rows[start:end], strengths[start:end]

    @cached_property
    def by_recency(self) -> tuple[np.ndarray, np.ndarray]:
        """Every user's item rows (int64) and strengths, sorted most recent first within each user
        (events without a timestamp last, ties in column order): sorted once, sliced per request."""
        m = self.matrix
        owner = np.repeat(np.arange(m.shape[0]), np.diff(m.indptr))
        order = np.lexsort((-np.nan_to_num(self.last_seen, nan=-np.inf), owner))
        return m.indices[order].astype(np.int64), m.data[order]


def interaction_matrix(
    interactions: pd.DataFrame,
    item_ids: IdMap,
    *,
    event_weights: dict[str, float],
    half_life_days: float | None = None,
) -> UserItems:
    """Sum the strength of each user's events per item.

    An event's strength is ``event_weights[event]``, times its ``value`` for ratings, times
    ``0.5 ** (age / half_life_days)`` when decay is on, where age is measured back from the newest
    event in the frame (so the same data always gives the same matrix).

    Args:
        interactions: validated interactions (:func:`recsys.data.validate_interactions`).
        item_ids: the bundle's items; the matrix has one column per item.
        event_weights: strength per event type (types not named weigh 0).
        half_life_days: time decay; ``None`` for none.

    Returns:
        UserItems: users in sorted id order.

    Raises:
        DataError: an event names an item the bundle does not have, or nothing has positive
            strength.
    """
    if len(interactions) == 0:
        raise DataError("interactions are empty; the user tower needs at least one event")
    items = pd.Index(item_ids.ids)
    cols = items.get_indexer(interactions[S.ITEM_ID])
    if (cols < 0).any():
        unknown = interactions[S.ITEM_ID].to_numpy()[cols < 0]  # only on the error path
        raise DataError(f"interactions name {len(unknown):,} event(s) on items not in the bundle "
                        f"(e.g. {unknown[0]!r}); rebuild the bundle with those items or drop them")
    # factorize hashes; sorting 1M strings (np.unique) cost a third of the fit time
    user_codes, users = pd.factorize(interactions[S.USER_ID], sort=True)
    strength = event_strength(interactions, event_weights)
    seconds = event_seconds(interactions[S.TIMESTAMP])
    if half_life_days is not None and np.isfinite(seconds).any():
        age_days = (np.nanmax(seconds) - seconds) / _DAY
        strength = strength * np.where(np.isfinite(age_days), 0.5 ** (age_days / half_life_days), 1.0)
    keep = strength > 0
    if not keep.any():
        raise DataError("no interaction has a positive strength; check collab.event_weights "
                        f"({', '.join(sorted(set(interactions[S.EVENT])))} are present)")
    shape = (len(users), len(items))
    coo = sp.coo_matrix((strength[keep], (user_codes[keep], cols[keep])), shape=shape)
    matrix = coo.tocsr()  # duplicates are summed: repeated events add up
    matrix.sum_duplicates()
    matrix.sort_indices()
    matrix.data = matrix.data.astype(np.float32)
    last_seen = _latest_per_cell(user_codes[keep], cols[keep], seconds[keep], matrix)
    return UserItems(IdMap(users, kind="user"), matrix, last_seen)


def event_strength(interactions: pd.DataFrame, event_weights: dict[str, float]) -> np.ndarray:
    """``(events,)`` float64: each event type's weight (0 for a type not named), times the
    rating for ratings."""
    event_codes, events = pd.factorize(interactions[S.EVENT])
    strength = np.array([event_weights.get(e, 0.0) for e in events], np.float64)[event_codes]
    is_rating = event_codes == (events.get_loc("rating") if "rating" in events else -1)
    if is_rating.any():
        values = interactions[S.VALUE].to_numpy(dtype=np.float64)
        strength = np.where(is_rating, strength * np.nan_to_num(values, nan=1.0), strength)
    return strength


def event_seconds(timestamps: pd.Series) -> np.ndarray:
    """Event times as float64 epoch seconds (NaN where a time is missing)."""
    # through total_seconds: the integer view depends on the column's resolution (s, ms, us, ns)
    values = pd.to_datetime(timestamps, utc=True)
    return (values - pd.Timestamp(0, tz="UTC")).dt.total_seconds().to_numpy(dtype=np.float64, copy=True)


def _latest_per_cell(rows: np.ndarray, cols: np.ndarray, seconds: np.ndarray,
                     matrix: sp.csr_matrix) -> np.ndarray:
    # one int64 key per cell, sorted: the order of a CSR matrix with sorted indices
    key = rows.astype(np.int64) * matrix.shape[1] + cols
    latest = pd.Series(seconds).groupby(key, sort=True).max()
    assert len(latest) == matrix.nnz
    return latest.to_numpy(dtype=np.float64)


def popularity(user_items: UserItems, window_days: float) -> np.ndarray:
    """Item popularity for the no-history fallback, ``(items,)`` float32, higher first.

    Counts distinct users per item within ``window_days`` before the newest event; all-time
    distinct users break ties (and rank alone when the window is empty).
    """
    matrix, last = user_items.matrix, user_items.last_seen
    all_time = np.bincount(matrix.indices, minlength=matrix.shape[1]).astype(np.float64)
    recent = np.zeros_like(all_time)
    if np.isfinite(last).any():
        in_window = last >= np.nanmax(last) - window_days * _DAY
        recent = np.bincount(matrix.indices[in_window], minlength=matrix.shape[1]).astype(np.float64)
    return (recent + all_time / (all_time.max() + 1.0)).astype(np.float32)


class CollabModel:
    """Collaborative factors from implicit feedback: implicit's ALS (default) or BPR.

    ALS sees confidence ``1 + alpha * strength`` for each interaction (Hu, Koren and Volinsky's
    form), BPR sees which items each user touched.

    Args:
        model: ``"als"`` or ``"bpr"``.
        factors: latent dimension (BPR adds one item-bias column).
        regularization: L2 penalty; ``None``: 20 for ALS, 0.01 for BPR.
        iterations: ALS sweeps or BPR epochs; ``None``: 15 for ALS, 100 for BPR.
        alpha: ALS confidence slope.
        learning_rate: BPR step size.
        seed: seeds the factor initialisation; the same seed and data give the same ALS factors
            (BPR's parallel SGD is bit-exact only with ``num_threads=1``).
        num_threads: fitting threads (0 = all cores).

    Example:
        >>> model = CollabModel(factors=8, iterations=5).fit(user_items.matrix)
        >>> model.item_factors_.shape[1]
        8
    """

    # per model: (regularization, iterations); ALS's were chosen on a MovieLens validation split
    DEFAULTS = {"als": (20.0, 15), "bpr": (0.01, 100)}

    def __init__(self, model: Literal["als", "bpr"] = "als", *, factors: int = 64,
                 regularization: float | None = None, iterations: int | None = None,
                 alpha: float = 0.5, learning_rate: float = 0.01, seed: int = 0, num_threads: int = 0):
        if model not in self.DEFAULTS:
            raise ValueError(f"unknown collab model {model!r}; choose als or bpr")
        default_reg, default_iterations = self.DEFAULTS[model]
        self.model, self.factors = model, factors
        self.regularization = default_reg if regularization is None else regularization
        self.iterations = default_iterations if iterations is None else iterations
        self.alpha, self.learning_rate = alpha, learning_rate
        self.seed, self.num_threads = seed, num_threads

    def confidence(self, strength: np.ndarray) -> np.ndarray:
        """The ALS confidence of interactions with the given strengths (float32)."""
        return (1.0 + self.alpha * np.asarray(strength, dtype=np.float32)).astype(np.float32)

    def implicit_model(self):
        """The configured, unfitted implicit model (BLAS limited to one thread, as implicit asks)."""
        from implicit.als import AlternatingLeastSquares
        from implicit.bpr import BayesianPersonalizedRanking

        with threadpool_limits(1, "blas"):
            if self.model == "als":
                return AlternatingLeastSquares(
                    factors=self.factors, regularization=self.regularization,
                    iterations=self.iterations, random_state=self.seed, num_threads=self.num_threads,
                    use_gpu=False)
            return BayesianPersonalizedRanking(
                factors=self.factors, learning_rate=self.learning_rate,
                regularization=self.regularization, iterations=self.iterations,
                random_state=self.seed, num_threads=self.num_threads, use_gpu=False)

    def fit(self, user_items: sp.csr_matrix, *, show_progress: bool = True) -> CollabModel:
        """Learn ``user_factors_`` ``(users, f)`` and ``item_factors_`` ``(items, f)``, float32.

        Args:
            user_items: strengths from :func:`interaction_matrix` (users x items CSR).
            show_progress: implicit's tqdm bar.

        Raises:
            ModelFitError: the factors came out non-finite (lower ``alpha`` or raise
                ``regularization``).
        """
        if not sp.isspmatrix_csr(user_items):
            user_items = sp.csr_matrix(user_items)
        train = user_items.copy()
        if self.model == "als":
            train.data = self.confidence(train.data)
        else:
            train.data = np.ones_like(train.data, dtype=np.float32)
        started = time.perf_counter()
        implicit_model = self.implicit_model()
        with threadpool_limits(1, "blas"):
            implicit_model.fit(train, show_progress=show_progress)
        self.fit_seconds_ = time.perf_counter() - started
        self.user_factors_ = np.ascontiguousarray(implicit_model.user_factors, dtype=np.float32)
        self.item_factors_ = np.ascontiguousarray(implicit_model.item_factors, dtype=np.float32)
        if not (np.isfinite(self.user_factors_).all() and np.isfinite(self.item_factors_).all()):
            raise ModelFitError(f"{self.model} factors are not finite; lower collab.alpha or raise "
                                "collab.regularization")
        logger.debug("%s fitted: %d users x %d items, %d factors, %.2f s", self.model,
                     *user_items.shape, self.item_factors_.shape[1], self.fit_seconds_)
        return self
