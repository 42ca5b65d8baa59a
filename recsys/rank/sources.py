"""Candidate sources: each takes the users to rank and proposes items with a score.

A source is one small class with one verb, :meth:`Source.propose`: an :class:`Audience` in, a
``(users, items)`` sparse matrix of scores out, at most ``n`` items a user, higher better. Every
source reads the same :class:`~recsys.rank.state.ShopState`, so a source runs per request or for
every user of an evaluation alike.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import NamedTuple

import numpy as np
import scipy.sparse as sp

from recsys.bundle import Bundle
from recsys.index.exact import top_k_rows
from recsys.rank.sparse import max_matrix, top_per_row
from recsys.rank.state import HISTORY, ShopState

__all__ = ["Audience", "Source", "Repurchase", "CoPurchase", "Trending", "CategoryTrending", "Taste",
           "Neighbours", "UserTower", "SOURCES", "create_sources", "taste_vectors"]

_POSITION_DECAY = 0.8  # a user's taste: each older item of their history weighs 0.8 of the next


class Audience(NamedTuple):
    """The users one ranking serves.

    Attributes:
        rows: ``(n,)`` rows of the state's users, ``-1`` for a user it does not know (anonymous,
            or new since).
        history: ``(n, HISTORY)`` item rows each user had, newest first, ``-1`` padding (a known
            user's from the state, an anonymous visitor's from their session).
        bought: ``(n, items)`` decayed strength of each user's events per item.
    """

    rows: np.ndarray
    history: np.ndarray
    bought: sp.csr_matrix

    @classmethod
    def of(cls, state: ShopState, rows: np.ndarray, recent: list[list[int]] | None = None) -> Audience:
        """Users by state row (``-1``: a user the state does not know), with the ``recent`` item
        rows each had since the state's moment, newest first (a session, the activity log): they
        come before the user's history, and weigh as much as an event of today, less for each
        older one."""
        rows = np.asarray(rows, np.int64)
        known = rows >= 0
        history = np.full((len(rows), HISTORY), -1, np.int64)
        history[known] = state.history[rows[known]]
        bought = sp.csr_matrix(sp.diags(known.astype(np.float32)) @ state.bought[np.maximum(rows, 0)]) \
            if state.n_users else sp.csr_matrix((len(rows), state.n_items), dtype=np.float32)
        if recent is not None:
            extra_rows, extra_cols, extra_values = [], [], []
            for u, items in enumerate(recent):
                if not len(items):
                    continue
                items = list(dict.fromkeys(int(i) for i in items))[:HISTORY]
                merged = list(dict.fromkeys(items + [int(i) for i in history[u] if i >= 0]))[:HISTORY]
                history[u, :len(merged)] = merged
                extra_rows += [u] * len(items)
                extra_cols += items
                extra_values += [_POSITION_DECAY ** p for p in range(len(items))]
            bought = bought + sp.csr_matrix((np.asarray(extra_values, np.float32), (extra_rows, extra_cols)),
                                            shape=bought.shape)
        return cls(rows, history, sp.csr_matrix(bought))

    def __len__(self) -> int:
        return len(self.rows)


class Source(ABC):
    """One way of finding items for a user."""

    name = "source"

    def __init__(self, n: int):
        self.n = n

    @abstractmethod
    def propose(self, state: ShopState, audience: Audience) -> sp.csr_matrix:
        """``(users, items)`` scores of at most ``n`` items per user, higher better."""


class Repurchase(Source):
    """Buy it again: what the user had, by decayed strength times the item's repurchase rate."""

    name = "repurchase"

    def propose(self, state, audience):
        return top_per_row(audience.bought @ sp.diags(state.repurchase_rate), self.n)


class CoPurchase(Source):
    """Bought together: items other users had with the user's items, time-decayed."""

    name = "copurchase"

    def propose(self, state, audience):
        return top_per_row(audience.bought @ state.copurchase, self.n)


class Trending(Source):
    """The shop's best sellers of late (a week's half-life), the same for everyone."""

    name = "trending"

    def propose(self, state, audience):
        top = state.best_sellers[:self.n]
        rows = np.repeat(np.arange(len(audience)), len(top))
        values = np.tile(state.trending[top], len(audience))
        return sp.csr_matrix((values, (rows, np.tile(top, len(audience)))), shape=(len(audience), state.n_items))


class CategoryTrending(Source):
    """Best sellers of late in the category the user buys most in."""

    name = "category_trending"

    def propose(self, state, audience):
        shares = _share_rows(state.category_share, audience)
        favourite = np.asarray(shares.argmax(axis=1)).ravel()
        has = np.asarray(shares.max(axis=1).todense()).ravel() > 0
        out_rows, out_cols, out_values = [], [], []
        for cat in np.unique(favourite[has]):
            top = state.category_best_sellers.get(int(cat), np.zeros(0, np.int64))[:self.n]
            users = np.flatnonzero(has & (favourite == cat))
            out_rows.append(np.repeat(users, len(top)))
            out_cols.append(np.tile(top, len(users)))
            out_values.append(np.tile(state.trending[top], len(users)))
        if not out_rows:
            return sp.csr_matrix((len(audience), state.n_items), dtype=np.float32)
        return sp.csr_matrix((np.concatenate(out_values), (np.concatenate(out_rows), np.concatenate(out_cols))),
                             shape=(len(audience), state.n_items))


def _share_rows(shares: sp.csr_matrix, audience: Audience) -> sp.csr_matrix:
    if not shares.shape[0]:
        return sp.csr_matrix((len(audience), shares.shape[1]), dtype=np.float32)
    known = audience.rows >= 0
    return sp.csr_matrix(sp.diags(known.astype(np.float32)) @ shares[np.maximum(audience.rows, 0)])


def taste_vectors(vectors: np.ndarray, history: np.ndarray) -> np.ndarray:
    """``(users, dim)`` each user's taste: the position-decayed mean of their history's vectors,
    unit length (zero for a user without history)."""
    weights = np.where(history >= 0, _POSITION_DECAY ** np.arange(history.shape[1]), 0.0).astype(np.float32)
    taste = np.einsum("uh,uhd->ud", weights, vectors[np.maximum(history, 0)])
    norms = np.linalg.norm(taste, axis=1, keepdims=True)
    return np.divide(taste, norms, out=np.zeros_like(taste), where=norms > 0)


class Taste(Source):
    """Looks like what the user had: cosine of each item to their taste in the item tower.

    A block of users scores every item in all the dimensions: one matrix product, bound by
    arithmetic. A feed of a few users (a request) would spend its time reading the vectors
    instead, so below ``few`` users every item is scored in the combined vectors' leading
    ``dims`` directions (an uncentred randomised SVD of a seeded sample), the ``pool`` times
    ``n`` best of those are scored exactly, and the best ``n`` are proposed with their exact
    cosines: a sixteenth of the memory read, and nearly the same items (docs/ranking.md measures
    both). Vectors of at most ``2 * dims`` dimensions are always scanned as they are."""

    name = "taste"

    def __init__(self, n: int, bundle: Bundle, block: int = 1024, dims: int = 128, pool: int = 8, few: int = 8,
                 sample: int = 4096, seed: int = 0):
        super().__init__(n)
        self.vectors = np.asarray(bundle.vectors.combined, np.float32)
        self.block, self.pool, self.few = block, pool, few
        self.axes = self.reduced = None
        if self.vectors.shape[1] > 2 * dims and len(self.vectors) > pool * n:
            from sklearn.utils.extmath import randomized_svd

            rng = np.random.default_rng(seed)
            rows = rng.choice(len(self.vectors), min(sample, len(self.vectors)), replace=False)
            _, _, vt = randomized_svd(self.vectors[np.sort(rows)], dims, random_state=seed)
            self.axes = np.ascontiguousarray(vt.T, np.float32)
            self.reduced = self.vectors @ self.axes

    def propose(self, state, audience):
        parts = []
        for start in range(0, len(audience), self.block):
            taste = taste_vectors(self.vectors, audience.history[start:start + self.block])
            reduced = self.reduced is not None and len(taste) < self.few
            parts.append(self._best(taste) if reduced else top_per_row(self._all(taste), self.n))
        return sp.vstack(parts).tocsr() if parts else sp.csr_matrix((0, state.n_items))

    def _all(self, taste: np.ndarray) -> np.ndarray:
        scores = taste @ self.vectors.T
        scores[~taste.any(axis=1)] = 0
        return scores

    def _best(self, taste: np.ndarray) -> sp.csr_matrix:
        pool, _ = top_k_rows((taste @ self.axes) @ self.reduced.T, self.pool * self.n)
        exact = np.einsum("ud,ukd->uk", taste, self.vectors[np.maximum(pool, 0)])
        exact[(pool < 0) | ~taste.any(axis=1, keepdims=True)] = -np.inf
        picked, values = top_k_rows(exact, self.n)
        cols = np.take_along_axis(pool, np.maximum(picked, 0), axis=1)
        keep = (picked >= 0) & np.isfinite(values) & (values != 0)
        rows = np.repeat(np.arange(len(cols)), cols.shape[1]).reshape(cols.shape)
        return sp.csr_matrix((values[keep], (rows[keep], cols[keep])), shape=(len(taste), len(self.vectors)))


class UserTower(Source):
    """Liked by users like this one: the dot product of the user's ALS factors
    (:attr:`~recsys.rank.state.ShopState.user_tower`) with each item's. A user the state does not
    know is solved from their session's items."""

    name = "als"

    def __init__(self, n: int, block: int = 1024):
        super().__init__(n)
        self.block = block

    def propose(self, state, audience):
        users = user_factors(state, audience)
        items = np.asarray(state.user_tower.item_factors, np.float32)
        parts = [top_per_row(users[start:start + self.block] @ items.T, self.n)
                 for start in range(0, len(audience), self.block)]
        return sp.vstack(parts).tocsr() if parts else sp.csr_matrix((0, state.n_items))


def user_factors(state: ShopState, audience: Audience) -> np.ndarray:
    """``(users, factors)`` each user's ALS factors: a known user's from the state, a user it does
    not know solved from their session's items (zero without any)."""
    model = state.user_tower
    users = np.zeros((len(audience), model.factors), np.float32)
    known = audience.rows >= 0
    users[known] = np.asarray(model.user_factors, np.float32)[audience.rows[known]]
    extra = np.flatnonzero(~known & (np.diff(audience.bought.indptr) > 0))
    if len(extra):
        from threadpoolctl import threadpool_limits

        with threadpool_limits(1, "blas"):
            users[extra] = model.recalculate_user(extra, audience.bought[extra].astype(np.float32))
    return users


class Neighbours(Source):
    """Close to one of the user's latest items (another colour or size of the same product, a
    near twin): the bundle's precomputed similar lists of each history item, best cosine kept."""

    name = "neighbours"

    def __init__(self, n: int, bundle: Bundle, per_item: int = 10):
        super().__init__(n)
        lists = bundle.similar.get("combined")
        self.rows = None if lists is None else np.asarray(lists.rows[:, :per_item])
        self.scores = None if lists is None else np.asarray(lists.scores[:, :per_item])

    def propose(self, state, audience):
        if self.rows is None:
            return sp.csr_matrix((len(audience), state.n_items), dtype=np.float32)
        history = audience.history[:, :5]  # the latest items: a session's drift, not a lifetime's
        users, slots = np.nonzero(history >= 0)
        items = history[users, slots]
        cols, values = self.rows[items], self.scores[items]
        keep = cols >= 0
        rows = np.repeat(users, cols.shape[1]).reshape(cols.shape)
        m = max_matrix(rows[keep], cols[keep], values[keep], (len(audience), state.n_items))
        return top_per_row(m, self.n)


SOURCES = ("repurchase", "copurchase", "trending", "category_trending", "taste", "neighbours", "als")


def create_sources(bundle: Bundle, counts: dict[str, int]) -> list[Source]:
    """The sources named in ``counts`` (name to items proposed per user; 0 leaves one out)."""
    made = {"repurchase": lambda n: Repurchase(n), "copurchase": lambda n: CoPurchase(n),
            "trending": lambda n: Trending(n), "category_trending": lambda n: CategoryTrending(n),
            "taste": lambda n: Taste(n, bundle), "neighbours": lambda n: Neighbours(n, bundle),
            "als": lambda n: UserTower(n)}
    return [made[name](n) for name, n in counts.items() if n > 0]
