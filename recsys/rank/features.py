"""Candidates from every source, and the features of each (user, candidate) pair, in batches.

Training and serving call the same :func:`gather` and :func:`features`: the training on the log
up to a past moment, serving on the log up to now.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from recsys.bundle import Bundle
from recsys.rank.log import DAY
from recsys.rank.sources import Audience, Source, taste_vectors, user_factors
from recsys.rank.sparse import pair_values, ranks_in_rows
from recsys.rank.state import POPULARITY_DAYS, ShopState

__all__ = ["Candidates", "gather", "features", "feature_names"]

_MAX_COSINE_ITEMS = 10  # the best cosine to any of the user's latest 10 items


@dataclass(frozen=True)
class Candidates:
    """Every (user, item) pair some source proposed, grouped by user.

    Attributes:
        users: ``(pairs,)`` positions in the audience, ascending.
        items: ``(pairs,)`` item rows.
        scores: ``(pairs, sources)`` each source's score, NaN where it did not propose the item.
        ranks: ``(pairs, sources)`` the item's place in that source's list (1 = its best), NaN
            where it did not propose it.
        sources: the source names, in column order.
    """

    users: np.ndarray
    items: np.ndarray
    scores: np.ndarray
    ranks: np.ndarray
    sources: list[str]

    def __len__(self) -> int:
        return len(self.users)

    def take(self, keep: np.ndarray) -> Candidates:
        return Candidates(self.users[keep], self.items[keep], self.scores[keep], self.ranks[keep], self.sources)

    def bounds(self, n_users: int) -> np.ndarray:
        """``(n_users + 1,)`` where each user's pairs start."""
        return np.searchsorted(self.users, np.arange(n_users + 1))


def gather(state: ShopState, audience: Audience, sources: list[Source],
           more: sp.csr_matrix | None = None) -> Candidates:
    """Run every source for the audience and join what they propose, with the further candidates
    ``more`` names (``(users, items)``, nonzero: a candidate no source proposed)."""
    n_items = state.n_items
    proposed, keys = [], []
    for source in sources:
        m = sp.csr_matrix(source.propose(state, audience), dtype=np.float32)
        m.sum_duplicates()
        m.eliminate_zeros()
        m.sort_indices()  # ties in a source's ranks go to the lower item row
        proposed.append(m)
        keys.append(_pair_keys(m, n_items))
    if more is not None:
        extra = sp.csr_matrix(more, dtype=np.float32)
        extra.eliminate_zeros()
        keys.append(_pair_keys(extra, n_items))
    union = np.unique(np.concatenate(keys)) if keys else np.zeros(0, np.int64)  # sorted: by user, then item
    users, items = union // n_items, union % n_items
    scores = np.full((len(union), len(sources)), np.nan, np.float32)
    ranks = np.full((len(union), len(sources)), np.nan, np.float32)
    for j, m in enumerate(proposed):
        at = np.searchsorted(union, keys[j])
        scores[at, j] = m.data
        ranks[at, j] = ranks_in_rows(m).data  # the same entries in the same order as m.data
    return Candidates(users, items, scores, ranks, [s.name for s in sources])


def _pair_keys(m: sp.csr_matrix, n_items: int) -> np.ndarray:
    """``user * n_items + item`` of each stored entry, in storage order."""
    return np.repeat(np.arange(m.shape[0], dtype=np.int64), np.diff(m.indptr)) * n_items + m.indices


def feature_names(sources: list[str], modalities: list[str]) -> list[str]:
    """The feature columns :func:`features` returns, in order."""
    return ([f"{s}_score" for s in sources] + [f"{s}_rank" for s in sources] + ["sources"]
            + [f"cos_{m}" for m in modalities] + ["cos_max"]
            + [f"sales_{d}d" for d in POPULARITY_DAYS]
            + ["trend", "trending", "item_age_days", "repurchase_rate", "price", "price_ratio", "price_z",
               "category_share", "group_share", "user_events", "user_days_since", "user_item_strength",
               "user_item_count", "days_since_item", "days_since_category"]
            + (["als_dot"] if "als" in sources else []))


def features(state: ShopState, bundle: Bundle, audience: Audience, cands: Candidates) -> np.ndarray:
    """``(pairs, features)`` float32, the columns of :func:`feature_names` (NaN: unknown)."""
    u, i = cands.users, cands.items
    row = audience.rows[u]
    known = row >= 0
    safe = np.maximum(row, 0)
    cols: list[np.ndarray] = [cands.scores.T, cands.ranks.T, np.isfinite(cands.scores).sum(axis=1)[None]]
    blocks = bundle.vectors.blocks
    for name in blocks:
        cols.append(_taste_cosines(np.asarray(blocks[name].vectors, np.float32), blocks[name].mask,
                                   audience.history, u, i)[None])
    cols.append(_max_cosines(np.asarray(bundle.vectors.combined, np.float32), audience.history, u, i)[None])
    sales = state.sales
    cols += [sales[d][i][None] for d in POPULARITY_DAYS]
    cols.append((sales[1][i] / (sales[7][i] / 7 + 1))[None])
    cols.append(state.trending[i][None])
    cols.append(((state.now - state.first_sold[i]) / DAY)[None])
    cols.append(state.repurchase_rate[i][None])
    price = state.facts.price[i]
    mean, std = state.user_price
    user_mean = np.where(known, mean[safe], np.nan)
    user_std = np.where(known, std[safe], np.nan)
    cols += [price[None], (price / user_mean)[None], ((price - user_mean) / (user_std + 1e-3))[None]]
    cat, group = state.facts.category[i], state.facts.group[i]
    cols.append(_user_lookup(state.category_share, row, cat)[None])
    cols.append(_user_lookup(state.group_share, row, group)[None])
    cols.append(np.where(known, state.user_events[safe], 0)[None])
    cols.append(np.where(known, (state.now - state.user_last[safe]) / DAY, np.nan)[None])
    cols.append(pair_values(audience.bought, u, i)[None])
    cols.append(_user_lookup(state.count, row, i)[None])
    cols.append(_days_since(state, state.last_seen, row, i)[None])
    cols.append(_days_since(state, state.last_in_category, row, cat)[None])
    if "als" in cands.sources:  # the user tower's score of every pair, not only of those it proposed
        users = user_factors(state, audience)
        items = np.asarray(state.user_tower.item_factors, np.float32)
        cols.append(np.einsum("pf,pf->p", users[u], items[i])[None])
    return np.concatenate([np.asarray(c, np.float32) for c in cols], axis=0).T.copy()


def _user_lookup(m: sp.csr_matrix, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """``m[row, col]`` per pair; 0 for a user the state does not know or a column of -1."""
    out = np.zeros(len(rows), np.float32)
    ok = (rows >= 0) & (cols >= 0)
    if m.shape[0] and ok.any():
        out[ok] = pair_values(m, rows[ok], cols[ok])
    return out


def _days_since(state: ShopState, last: sp.csr_matrix, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    seen = _user_lookup(last, rows, cols).astype(np.float64)
    return np.where(seen > 0, (state.now - seen) / DAY, np.nan).astype(np.float32)


def _by_user(u: np.ndarray) -> list[tuple[int, slice]]:
    """Each user with pairs, and the slice of their pairs (``u`` ascending, as candidates are)."""
    if not len(u):
        return []
    bounds = np.searchsorted(u, np.arange(int(u[-1]) + 2))
    return [(int(user), slice(int(bounds[user]), int(bounds[user + 1]))) for user in np.flatnonzero(np.diff(bounds))]


def _taste_cosines(vectors: np.ndarray, mask: np.ndarray, history: np.ndarray, u: np.ndarray,
                   i: np.ndarray) -> np.ndarray:
    """Cosine of each candidate to its user's taste in one modality (NaN where either lacks it)."""
    taste = taste_vectors(vectors, np.where(mask[np.maximum(history, 0)], history, -1))
    out = np.full(len(u), np.nan, np.float32)
    has_taste = taste.any(axis=1)
    for user, s in _by_user(u):
        if has_taste[user]:  # one product per user: no copy of the taste per pair
            out[s] = vectors[i[s]] @ taste[user]
    out[~mask[i]] = np.nan
    return out


def _max_cosines(vectors: np.ndarray, history: np.ndarray, u: np.ndarray, i: np.ndarray) -> np.ndarray:
    """The best cosine of each candidate to one of its user's latest items (NaN without any)."""
    latest = history[:, :_MAX_COSINE_ITEMS]
    out = np.full(len(u), np.nan, np.float32)
    for user, s in _by_user(u):
        h = latest[user][latest[user] >= 0]
        if not len(h):
            continue
        cos = vectors[i[s]] @ vectors[h].T  # (candidates, history): one product per user
        cos[i[s, None] == h[None, :]] = -np.inf  # the item itself says nothing new
        best = cos.max(axis=1)
        out[s] = np.where(np.isfinite(best), best, np.nan)
    return out
