"""The feed's content weight, chosen on the shop's own interactions.

How much a feed should follow content depends on the shop: photos and descriptions say a lot about
which dress a customer buys next, a film's title little about which film a person watches next.
So ``recsys train`` holds out each sampled user's latest 20% of events (whole baskets), fits the
user tower on the rest, and keeps the weight of :data:`GRID` whose feeds find the held-out items
best (NDCG@10, the feeds scored exactly as they are served, the user's own items left out unless
``collab.exclude_seen`` is false). Only the last basket would favour
content: the films rated in one sitting are alike, more than the films of the weeks after.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from recsys.bundle import Bundle
from recsys.collab.als import interaction_matrix
from recsys.collab.blend import FALLBACK_WEIGHT
from recsys.data import schema as S
from recsys.data.holdout import latest_events
from recsys.pipeline.factors import fit_factors
from recsys.pipeline.precompute import blended_lists
from recsys.settings import Settings

__all__ = ["GRID", "MIN_USERS", "WeightChoice", "choose_content_weight", "held_out"]

GRID = tuple(i / 10 for i in range(11))
# fewer held-out baskets than this say too little to choose by
MIN_USERS = 50


@dataclass(frozen=True)
class WeightChoice:
    """The chosen weight and what it was chosen on.

    Attributes:
        weight: the content weight feeds use.
        users: the users whose latest events were held out (fewer than :data:`MIN_USERS`: none, and
            ``weight`` is :data:`~recsys.collab.blend.FALLBACK_WEIGHT`).
        ndcg: NDCG@``k`` of their feeds for each weight of :data:`GRID` (empty when not chosen).
        k: the feed length judged.
    """

    weight: float
    users: int
    ndcg: dict[float, float] = field(default_factory=dict)
    k: int = 10

    def summary(self) -> str:
        if not self.ndcg:
            return (f"{self.weight:g} (too few users with events at two moments to choose on: "
                    f"{self.users}, fewer than {MIN_USERS})")
        return (f"{self.weight:g}, chosen on the latest events of {self.users:,} users (NDCG@{self.k} "
                f"{self.ndcg[self.weight]:.4f}; content weight 0: {self.ndcg[0.0]:.4f}, "
                f"1: {self.ndcg[1.0]:.4f})")

    def to_json(self) -> dict:
        return {"users": self.users, "k": self.k,
                f"ndcg@{self.k}": {f"{w:g}": round(v, 4) for w, v in self.ndcg.items()}}


def held_out(interactions: pd.DataFrame, max_users: int, fraction: float = 0.2,
             seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(rest, held)``: for up to ``max_users`` sampled users, their latest ``fraction`` of
    events is held out (:func:`~recsys.data.holdout.latest_events`: baskets whole, an earlier
    event kept; without timestamps, by the file order); everything else is the rest."""
    frame = interactions.reset_index(drop=True)
    latest = latest_events(frame, fraction=fraction)
    users = frame[S.USER_ID]
    eligible = pd.unique(users[latest])
    picked = np.random.default_rng(seed).choice(eligible, size=min(max_users, len(eligible)), replace=False)
    held = latest & users.isin(picked).to_numpy()  # hashed, where np.isin sorts the strings
    return frame[~held], frame[held]


def choose_content_weight(bundle: Bundle, interactions: pd.DataFrame, settings: Settings, *,
                          max_users: int = 1000, k: int = 10, show_progress: bool = False) -> WeightChoice:
    """The content weight of :data:`GRID` whose feeds find the held-out latest events best
    (:func:`held_out`), the user tower fitted on the rest with ``settings.collab``; the lower
    weight on a tie. :data:`~recsys.collab.blend.FALLBACK_WEIGHT` with fewer than
    :data:`MIN_USERS` users to judge on."""
    rest, held = held_out(interactions, max_users, seed=settings.seed)
    n_users = held[S.USER_ID].nunique()
    if n_users < MIN_USERS:
        return WeightChoice(FALLBACK_WEIGHT, n_users, k=k)
    opts = settings.collab
    user_items = interaction_matrix(rest, bundle.item_ids, event_weights=opts.event_weights,
                                    half_life_days=opts.half_life_days)
    factors = fit_factors(bundle, user_items, settings, show_progress=show_progress)
    held_users = user_items.user_ids.rows(held[S.USER_ID].unique().tolist())
    bought = held.groupby(S.USER_ID, sort=False)[S.ITEM_ID].agg(list)
    truth = [set(bundle.item_ids.rows(bought[u]).tolist()) for u in user_items.user_ids.ids[held_users]]
    lists = blended_lists(factors.model.user_factors_, user_items, factors.item_factors, factors.state,
                          bundle.vectors, k, GRID, history_items=opts.history_items,
                          history_decay=opts.history_decay, users=held_users, exclude_seen=opts.exclude_seen,
                          show_progress=show_progress, desc="content weight")
    ndcg = {w: float(np.mean(_ndcg(top.rows, truth, k))) for w, top in zip(GRID, lists)}
    best = max(GRID, key=lambda w: (ndcg[w], -w))
    return WeightChoice(best, len(held_users), ndcg, k)


def _ndcg(ranked: np.ndarray, relevant: list[set[int]], k: int) -> np.ndarray:
    """Per user, NDCG@``k`` of ``ranked`` rows (``-1``: nothing) against the ``relevant`` rows."""
    discount = 1.0 / np.log2(np.arange(2, k + 2))
    hits = np.array([[r in rel for r in row[:k]] for row, rel in zip(ranked.tolist(), relevant)], float)
    ideal = np.array([discount[:min(len(rel), k)].sum() for rel in relevant])
    return (hits @ discount[:hits.shape[1]]) / ideal
