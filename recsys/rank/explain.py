"""Why the ranker placed an item: the sources that proposed it and the features that added most to
its score (LightGBM's own contributions), in words a shopper or a merchandiser reads.

Features are grouped into reasons (the repurchase features are one reason, "you bought it
before"); a reason's contribution is the sum of its features'. The reasons that raised the score
most are kept, best first.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from recsys.rank.ranker import Ranked, Ranker
from recsys.rank.state import ShopState

__all__ = ["Reason", "Why", "explain", "REASONS"]

# feature name prefixes (or names) of each reason, in the order ties are broken
REASONS = {
    "bought": ("repurchase_", "user_item_", "days_since_item", "repurchase_rate"),
    "together": ("copurchase_",),
    "shoppers": ("als_",),
    "trending": ("trending", "sales_", "trend", "item_age_days"),
    "category": ("category_trending_", "category_share", "group_share", "days_since_category"),
    "looks": ("taste_", "cos_image", "cos_max", "neighbours_"),
    "described": ("cos_text",),
    "attributes": ("cos_tabular",),
    "price": ("price",),
}


class Reason(NamedTuple):
    """One reason: its name (a key of :data:`REASONS`), how much it added to the score, and
    the sentence."""

    name: str
    contribution: float
    text: str


class Why(NamedTuple):
    """The explanation of one listed item."""

    sources: list[str]
    reasons: list[Reason]


def _reason_of(feature: str) -> str | None:
    for name, prefixes in REASONS.items():
        if any(feature.startswith(p) for p in prefixes):
            return name
    return None


def explain(ranker: Ranker, ranked: Ranked, state: ShopState, user: int, *, top: int = 2,
            history: np.ndarray | None = None) -> list[Why]:
    """The explanation of each item listed for the audience's ``user``-th user, in list order;
    with the user's ``history`` (item rows, ``-1`` padding), a likeness reason for another colour
    of a product in it says so ("another colour of the Brit Baby Tee you bought or viewed")."""
    names = ranker.features
    groups = [_reason_of(f) for f in names]
    pairs = np.flatnonzero(ranked.candidates.users == user)
    by_item = {int(item): pair for pair, item in zip(pairs, ranked.candidates.items[pairs])}
    listed = [int(i) for i in ranked.rows[user] if i >= 0]
    rows = np.array([by_item[i] for i in listed], np.int64)
    if not len(rows):
        return []
    contributions = ranker.contributions(ranked.x[rows])[:, :-1]  # the last column is the bias
    out = []
    for item, pair, contrib in zip(listed, rows, contributions):
        totals: dict[str, float] = {}
        for group, value in zip(groups, contrib):
            if group is not None:
                totals[group] = totals.get(group, 0.0) + float(value)
        best = sorted((g for g in totals if totals[g] > 0), key=lambda g: -totals[g])[:top]
        sources = [s for s, score in zip(ranked.candidates.sources, ranked.candidates.scores[pair])
                   if np.isfinite(score)]
        features = dict(zip(names, ranked.x[pair]))
        variant = _variant(state, item, history)
        out.append(Why(sources, [Reason(g, round(totals[g], 4), variant if variant and g in _LIKENESS
                                        else _text(g, features, item, state)) for g in best]))
    return out


_LIKENESS = {"looks", "described", "attributes", "together"}


def _variant(state: ShopState, item: int, history: np.ndarray | None) -> str | None:
    """The sentence for an item with the title of one in the user's history, or ``None``."""
    facts = state.facts
    if history is None or facts.title is None or facts.title[item] < 0:
        return None
    same = [h for h in history.tolist() if h >= 0 and h != item and facts.title[h] == facts.title[item]]
    if not same:
        return None
    name = facts.titles[facts.title[item]]
    colour = facts.colour[item] if facts.colour is not None else -1
    if colour >= 0 and all(facts.colour[h] != colour for h in same):
        return f"another colour of the {name} you bought or viewed"
    return f"like the {name} you bought or viewed"


def _text(reason: str, features: dict[str, float], item: int, state: ShopState) -> str:
    if reason == "bought":
        times, days = features.get("user_item_count", 0), features.get("days_since_item", np.nan)
        if times >= 1 and np.isfinite(days):
            when = "today" if days < 1 else "yesterday" if days < 2 else f"{int(days)} days ago"
            return f"you bought it {_times(times)}, last {when}"
        return "you bought it before"
    if reason == "together":
        return "often bought with items you bought"
    if reason == "shoppers":
        return "chosen by shoppers who buy what you buy"
    if reason == "trending":
        return f"a best seller: {int(features.get('sales_7d', 0))} sold in the last 7 days"
    if reason == "category":
        group = state.facts.group[item]
        where = state.facts.groups[group] if group >= 0 else "its category"
        return f"trending in {where}, where you shop most"
    if reason == "looks":
        return "looks like what you bought or viewed"
    if reason == "described":
        return "described like what you bought or viewed"
    if reason == "attributes":
        return "the kind, colour and price you pick"
    return "in your price range"


def _times(n: float) -> str:
    n = int(n)
    return "once" if n == 1 else "twice" if n == 2 else f"{n} times"
