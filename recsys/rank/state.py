"""What the shop knows at one moment: each user's purchases, each item's recent sales, what is
bought together. Candidate sources and features read it; it is computed from the log before the
moment only, so training (features at a past moment, labels after it) and serving (features now)
run the same code.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsys.data import schema as S
from recsys.rank.log import DAY, EventLog
from recsys.rank.sparse import top_per_row

__all__ = ["ItemFacts", "ShopState", "POPULARITY_DAYS", "HISTORY"]

POPULARITY_DAYS = (1, 7, 30)
HISTORY = 20  # the latest distinct items per user that taste and neighbour features read
_HALF_LIFE_DAYS = 7.0  # how fast a purchase fades from a user's taste and from co-purchase counts
_BASKET = 50  # co-purchase pairs are counted among a user's latest 50 items only
# the user tower the ranker's `als` source reads (implicit's ALS on decayed strengths): fixed
# settings, not tuned, since the source is off by default (benchmarks/quality_ranker_validation.py)
ALS_FACTORS, ALS_REGULARIZATION, ALS_ALPHA, ALS_ITERATIONS = 64, 0.1, 10.0, 15


@dataclass(frozen=True)
class ItemFacts:
    """What the catalog says of each item, fixed between events.

    Attributes:
        category: ``(items,)`` int64 code of the full category path, ``-1`` without one.
        group: ``(items,)`` int64 code of its first level (``ladieswear``), ``-1`` without one.
        price: ``(items,)`` float32, NaN without one.
        categories: the category paths the codes index.
        groups: the first levels the group codes index.
        title: ``(items,)`` int64 code of the title (lower case), ``-1`` without one; items with
            one title and another colour are variants of one product (explanations name them).
        colour: ``(items,)`` int64 code of the colour, ``-1`` without one.
        titles: the titles the title codes index, as the catalog writes them.
    """

    category: np.ndarray
    group: np.ndarray
    price: np.ndarray
    categories: list[str]
    groups: list[str]
    title: np.ndarray | None = None
    colour: np.ndarray | None = None
    titles: list[str] = field(default_factory=list)

    @classmethod
    def from_items(cls, items: pd.DataFrame) -> ItemFacts:
        paths = items[S.CATEGORY].fillna("").astype(str) if S.CATEGORY in items else pd.Series([""] * len(items))
        category, categories = pd.factorize(paths.where(paths != "", None))
        group, groups = pd.factorize(paths.str.split("/").str[0].where(paths != "", None))
        price = (pd.to_numeric(items[S.PRICE], errors="coerce").to_numpy(np.float32) if S.PRICE in items
                 else np.full(len(items), np.nan, np.float32))
        title, titles = _codes(items, S.TITLE)
        colour, _ = _codes(items, S.COLOUR)
        return cls(category.astype(np.int64), group.astype(np.int64), price,
                   [str(c) for c in categories], [str(g) for g in groups], title, colour, titles)


def _codes(items: pd.DataFrame, column: str) -> tuple[np.ndarray, list[str]]:
    """Codes of a text column compared without case or outer spaces (``-1``: none), and one
    spelling of each."""
    if column not in items:
        return np.full(len(items), -1, np.int64), []
    text = items[column].fillna("").astype(str).str.strip()
    codes, _ = pd.factorize(text.str.lower().where(text != "", None))
    first = pd.Series(text.to_numpy()).groupby(codes).first()
    return codes.astype(np.int64), [str(first[c]) for c in range(codes.max() + 1)] if (codes >= 0).any() else []


class ShopState:
    """The log up to ``now``, summarised per user, per item and per pair of items.

    Args:
        log: the events; only those before ``now`` are read.
        facts: the catalog's categories and prices.
        now: the moment; default one second after the log's newest event.
    """

    def __init__(self, log: EventLog, facts: ItemFacts, now: float | None = None):
        self.now = log.end + 1 if now is None else float(now)
        self.log = log.window(stop=self.now)
        self.facts = facts
        self.n_users, self.n_items = len(log.user_ids), log.n_items

    def _matrix(self, values: np.ndarray, users: np.ndarray | None = None, items: np.ndarray | None = None,
                shape: tuple[int, int] | None = None, reduce: str = "sum") -> sp.csr_matrix:
        users = self.log.users if users is None else users
        items = self.log.items if items is None else items
        shape = shape or (self.n_users, self.n_items)
        if reduce == "max":
            key = users * shape[1] + items
            best = pd.Series(values).groupby(key, sort=True).max()
            keys = best.index.to_numpy()
            return sp.csr_matrix((best.to_numpy(np.float64), (keys // shape[1], keys % shape[1])), shape=shape)
        m = sp.csr_matrix((values, (users, items)), shape=shape)
        m.sum_duplicates()
        return m

    @cached_property
    def decay(self) -> np.ndarray:
        """``(events,)`` each event's weight now: its strength halved every week since."""
        age = (self.now - self.log.seconds) / DAY
        return self.log.strength * np.power(0.5, age / _HALF_LIFE_DAYS, dtype=np.float32)

    # -- per user and item ----------------------------------------------------------------------

    @cached_property
    def bought(self) -> sp.csr_matrix:
        """``(users, items)`` decayed strength of each user's events on each item."""
        return self._matrix(self.decay.astype(np.float32))

    @cached_property
    def count(self) -> sp.csr_matrix:
        """``(users, items)`` how many events each user had on each item."""
        return self._matrix(np.ones(len(self.log), np.float32))

    @cached_property
    def last_seen(self) -> sp.csr_matrix:
        """``(users, items)`` epoch seconds of each user's latest event on each item."""
        return self._matrix(self.log.seconds, reduce="max")

    @cached_property
    def last_in_category(self) -> sp.csr_matrix:
        """``(users, categories)`` epoch seconds of each user's latest event in each category."""
        cats = self.facts.category[self.log.items]
        keep = cats >= 0
        return self._matrix(self.log.seconds[keep], self.log.users[keep], cats[keep],
                            (self.n_users, max(len(self.facts.categories), 1)), reduce="max")

    @cached_property
    def category_share(self) -> sp.csr_matrix:
        """``(users, categories)`` the share of each user's decayed strength in each category."""
        return self._shares(self.facts.category, len(self.facts.categories))

    @cached_property
    def group_share(self) -> sp.csr_matrix:
        """``(users, groups)`` the same for the categories' first level."""
        return self._shares(self.facts.group, len(self.facts.groups))

    def _shares(self, codes: np.ndarray, n: int) -> sp.csr_matrix:
        cats = codes[self.log.items]
        keep = cats >= 0
        m = self._matrix(self.decay[keep], self.log.users[keep], cats[keep], (self.n_users, max(n, 1)))
        total = np.asarray(m.sum(axis=1)).ravel()
        return sp.diags(np.divide(1.0, total, out=np.zeros_like(total), where=total > 0)) @ m

    # -- per user -----------------------------------------------------------------------------

    @cached_property
    def user_events(self) -> np.ndarray:
        return np.bincount(self.log.users, minlength=self.n_users).astype(np.float32)

    @cached_property
    def user_last(self) -> np.ndarray:
        """``(users,)`` seconds of each user's latest event, NaN for a user with none yet."""
        out = np.full(self.n_users, np.nan)
        out[self.log.users] = self.log.seconds  # sorted by time: the last write is the latest
        return out

    @cached_property
    def user_price(self) -> tuple[np.ndarray, np.ndarray]:
        """``(users,)`` mean and standard deviation of the prices of what each user bought (NaN
        without a priced item)."""
        price = self.facts.price[self.log.items].astype(np.float64)
        keep = np.isfinite(price)
        frame = pd.DataFrame({"u": self.log.users[keep], "p": price[keep]}).groupby("u")["p"].agg(["mean", "std"])
        mean, std = np.full(self.n_users, np.nan), np.full(self.n_users, np.nan)
        mean[frame.index] = frame["mean"]
        std[frame.index] = frame["std"]
        return mean.astype(np.float32), std.astype(np.float32)

    @cached_property
    def history(self) -> np.ndarray:
        """``(users, HISTORY)`` each user's latest distinct items, newest first, ``-1`` padding."""
        out = np.full((self.n_users, HISTORY), -1, np.int64)
        users, items = self.log.users[::-1], self.log.items[::-1]  # newest first
        first = ~pd.DataFrame({"u": users, "i": items}).duplicated().to_numpy()
        users, items = users[first], items[first]
        position = pd.Series(users).groupby(users).cumcount().to_numpy()
        keep = position < HISTORY
        out[users[keep], position[keep]] = items[keep]
        return out

    @cached_property
    def user_tower(self):
        """implicit's ALS fitted on :attr:`bought` (confidence ``1 + alpha * strength``), seeded:
        ``user_factors`` per user of the state, ``item_factors`` per item, and
        ``recalculate_user`` for a user it does not know."""
        from implicit.als import AlternatingLeastSquares
        from threadpoolctl import threadpool_limits

        with threadpool_limits(1, "blas"):  # implicit's own threads do the work
            model = AlternatingLeastSquares(factors=ALS_FACTORS, regularization=ALS_REGULARIZATION,
                                            alpha=ALS_ALPHA, iterations=ALS_ITERATIONS, random_state=0,
                                            use_gpu=False)
            model.fit(self.bought.astype(np.float32), show_progress=False)
        return model

    # -- per item ------------------------------------------------------------------------------

    @cached_property
    def sales(self) -> dict[float, np.ndarray]:
        """``(items,)`` events on each item in the last 1, 7 and 30 days before now (the
        :data:`POPULARITY_DAYS`)."""
        out = {}
        for days in POPULARITY_DAYS:
            lo = np.searchsorted(self.log.seconds, self.now - days * DAY + 1e-6)
            out[days] = np.bincount(self.log.items[lo:], minlength=self.n_items).astype(np.float32)
        return out

    def warm(self, user_tower: bool = False) -> ShopState:
        """Compute now every summary a ranking reads (a server does it once per bundle, not on
        its first request), and the :attr:`user_tower` where the ranker's sources use it.
        Returns self."""
        if user_tower:
            self.user_tower  # noqa: B018 - fitted now, kept for the requests
        for name in ("bought", "count", "last_seen", "last_in_category", "category_share", "group_share",
                     "user_events", "user_last", "user_price", "history", "sales", "trending", "best_sellers",
                     "category_best_sellers", "first_sold", "repurchase_rate", "copurchase"):
            getattr(self, name)
        return self

    @cached_property
    def trending(self) -> np.ndarray:
        """``(items,)`` decayed sales: the recent-popularity score (a week's half-life)."""
        return np.bincount(self.log.items, weights=self.decay, minlength=self.n_items).astype(np.float32)

    @cached_property
    def best_sellers(self) -> np.ndarray:
        """Item rows by :attr:`trending`, best first, those without a sale left out."""
        order = np.argsort(-self.trending, kind="stable")
        return order[self.trending[order] > 0]

    @cached_property
    def category_best_sellers(self) -> dict[int, np.ndarray]:
        """Per category code, its :attr:`best_sellers`, best first."""
        order = self.best_sellers[self.facts.category[self.best_sellers] >= 0]
        cats = self.facts.category[order]
        by = np.argsort(cats, kind="stable")  # stable: the trending order stays within a category
        order, cats = order[by], cats[by]
        bounds = np.flatnonzero(np.diff(cats)) + 1
        return {int(c[0]): rows for c, rows in zip(np.split(cats, bounds), np.split(order, bounds)) if len(c)}

    @cached_property
    def first_sold(self) -> np.ndarray:
        """``(items,)`` seconds of each item's first event in the log, NaN if none."""
        out = np.full(self.n_items, np.nan)
        out[self.log.items[::-1]] = self.log.seconds[::-1]  # reversed: the last write is the first event
        return out

    @cached_property
    def repurchase_rate(self) -> np.ndarray:
        """``(items,)`` the share of each item's buyers who had it more than once, smoothed
        towards the shop's share (a prior of 10 buyers)."""
        count = self.count.tocsc()
        buyers = np.diff(count.indptr).astype(np.float64)
        again = np.add.reduceat(np.append(count.data > 1, 0).astype(np.float64), count.indptr[:-1]) \
            if count.nnz else np.zeros(self.n_items)
        again[buyers == 0] = 0
        prior = again.sum() / max(buyers.sum(), 1)
        return ((again + 10 * prior) / (buyers + 10)).astype(np.float32)

    @cached_property
    def copurchase(self) -> sp.csr_matrix:
        """``(items, items)`` how often two items were bought by one user, each user's pair
        weighted by how recent the later of its events is (zero diagonal)."""
        bought = self.bought.copy()
        recent = top_per_row(bought, _BASKET)
        binary = recent.copy()
        binary.data = np.ones_like(binary.data)
        weight = sp.diags(np.asarray(recent.max(axis=1).todense()).ravel())  # the user's newest weight
        pairs = (binary.T @ weight @ binary).tocsr()
        pairs.setdiag(0)
        pairs.eliminate_zeros()
        return pairs.astype(np.float32)
