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
from recsys.rank.sources import Audience, Source, taste_vectors
from recsys.rank.sparse import pair_values, ranks_in_rows
from recsys.rank.state import POPULARITY_DAYS, ShopState

__all__ = ["Candidates", "gather", "features", "feature_names"]

_MAX_COSINE_ITEMS = 10  # the best cosine to any of the user's latest 10 items
_PAIR_BLOCK = 16_384


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
    proposed = []
    for source in sources:
        m = sp.csr_matrix(source.propose(state, audience), dtype=np.float32)
        m.eliminate_zeros()
        m.sort_indices()
        proposed.append(m)
    union = sp.csr_matrix((len(audience), state.n_items), dtype=np.float32)
    for m in proposed + ([sp.csr_matrix(more, dtype=np.float32)] if more is not None else []):
        union = union + abs(m).sign()
    union.sort_indices()
    users = np.repeat(np.arange(union.shape[0]), np.diff(union.indptr))
    items = union.indices.astype(np.int64)
    scores = np.full((len(users), len(sources)), np.nan, np.float32)
    ranks = np.full((len(users), len(sources)), np.nan, np.float32)
    for j, m in enumerate(proposed):
        present = pair_values(abs(m).sign(), users, items) > 0
        scores[present, j] = pair_values(m, users[present], items[present])
        ranks[present, j] = pair_values(ranks_in_rows(m), users[present], items[present])
    return Candidates(users, items, scores, ranks, [s.name for s in sources])


def feature_names(sources: list[str], modalities: list[str]) -> list[str]:
    """The feature columns :func:`features` returns, in order."""
    return ([f"{s}_score" for s in sources] + [f"{s}_rank" for s in sources] + ["sources"]
            + [f"cos_{m}" for m in modalities] + ["cos_max"]
            + [f"sales_{d}d" for d in POPULARITY_DAYS]
            + ["trend", "trending", "item_age_days", "repurchase_rate", "price", "price_ratio", "price_z",
               "category_share", "group_share", "user_events", "user_days_since", "user_item_strength",
               "user_item_count", "days_since_item", "days_since_category"])


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


def _taste_cosines(vectors: np.ndarray, mask: np.ndarray, history: np.ndarray, u: np.ndarray,
                   i: np.ndarray) -> np.ndarray:
    """Cosine of each candidate to its user's taste in one modality (NaN where either lacks it)."""
    taste = taste_vectors(vectors, np.where(mask[np.maximum(history, 0)], history, -1))
    out = np.empty(len(u), np.float32)
    for start in range(0, len(u), _PAIR_BLOCK):
        s = slice(start, start + _PAIR_BLOCK)
        out[s] = np.einsum("pd,pd->p", taste[u[s]], vectors[i[s]])
    has_taste = taste.any(axis=1)[u]
    out[~(has_taste & mask[i])] = np.nan
    return out


def _max_cosines(vectors: np.ndarray, history: np.ndarray, u: np.ndarray, i: np.ndarray) -> np.ndarray:
    """The best cosine of each candidate to one of its user's latest items (NaN without any)."""
    latest = history[:, :_MAX_COSINE_ITEMS]
    out = np.empty(len(u), np.float32)
    block = max(256, (1 << 24) // (_MAX_COSINE_ITEMS * vectors.shape[1]))  # 64 MB of gathered vectors
    for start in range(0, len(u), block):
        s = slice(start, start + block)
        h = latest[u[s]]
        cos = np.einsum("phd,pd->ph", vectors[np.maximum(h, 0)], vectors[i[s]])
        cos[h < 0] = -np.inf
        cos[h == i[s, None]] = -np.inf  # the item itself says nothing new
        out[s] = cos.max(axis=1)
    out[~np.isfinite(out)] = np.nan
    return out
