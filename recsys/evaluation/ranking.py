"""The models #48's evaluation adds: the simple baselines a shop would try first (recent best
sellers, buy again, bought together), item-kNN, EASE^R and ALS tuned on a validation cut
(:mod:`~recsys.evaluation.tuning`), and the learned ranker.

The source-based models and the ranker read the training events as an :class:`~recsys.rank.log.EventLog` and rank at the
moment just after the training part's newest event, with the same ``exclude_seen`` rule as every
other model.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from recsys.evaluation.models import ALSModel, EvalData, ItemKNNModel, Model
from recsys.evaluation.tuning import Tuned
from recsys.rank.log import EventLog
from recsys.rank.ranker import Ranker
from recsys.rank.sources import Audience, create_sources
from recsys.rank.state import ItemFacts, ShopState

__all__ = ["SourcesModel", "EASEModel", "RankerModel", "RANKING_MODELS", "shop_state"]


def shop_state(data: EvalData) -> tuple[EventLog, ShopState, Audience]:
    """The training log, the shop at the moment after it, and the test users as an audience (a
    user the log does not know stands on their ``given`` items)."""
    log = EventLog.from_frame(data.split.train, data.bundle.item_ids, data.settings.collab.event_weights)
    state = ShopState(log, ItemFacts.from_items(data.bundle.items), now=log.end + 1)
    rows = log.users_of([str(u) for u in data.users])
    # a known user's items are in the log already; the others stand on their given items
    recent = [[] if row >= 0 else [i for i in data.bundle.item_ids.find(items) if i >= 0]
              for row, items in zip(rows.tolist(), data.recent)]
    return log, state, Audience.of(state, rows, recent)


class SourcesModel(Model):
    """Sources one after another: the first source's items in its order, then the next source's
    new ones, and so on (``repurchase`` then ``trending`` is "buy it again, then best sellers")."""

    def __init__(self, name: str, sources: list[str], n: int = 100):
        self.name, self.sources, self.n = name, sources, n

    def rank(self, data: EvalData, n: int) -> np.ndarray:
        _, state, audience = shop_state(data)
        scores = sp.csr_matrix((len(audience), state.n_items), dtype=np.float32)
        for tier, source in enumerate(reversed(create_sources(data.bundle, {s: self.n for s in self.sources}))):
            proposed = sp.csr_matrix(source.propose(state, audience), dtype=np.float32)
            proposed.data = tier + _unit(proposed.data)  # an earlier source's items rank above
            scores = scores.maximum(proposed)
        def ranked(block: slice) -> np.ndarray:
            dense = scores[block].toarray()
            return dense - (dense == 0)  # items no source proposed come after, in catalog order
        return data.rank(ranked, n)


def _unit(values: np.ndarray) -> np.ndarray:
    """Scores squeezed into (0, 1), in the same order."""
    return (0.5 + np.arctan(values.astype(np.float64)) / np.pi).astype(np.float32) * 0.999 + 5e-4


class EASEModel(Model):
    """EASE^R (Steck, 2019): a closed-form item-item model, ``B = I - P / diag(P)`` with
    ``P = (X'X + λI)^-1``, over the ``max_items`` most popular items (the inverse is items^3:
    10,000 items take about half a minute on 2 cores). :data:`RANKING_MODELS`' ``ease`` chooses λ
    on a validation cut (:class:`~recsys.evaluation.tuning.Tuned`)."""

    name = "ease"

    def __init__(self, lam: float = 300.0, max_items: int = 10_000):
        self.lam, self.max_items = lam, max_items

    def fit(self, data: EvalData) -> None:
        x = data.train.matrix.copy()
        x.data = np.ones_like(x.data)
        items = np.argsort(-data.item_users, kind="stable")[:self.max_items]
        self._items = np.sort(items[data.item_users[items] > 0])
        sub = x[:, self._items].astype(np.float32)
        with threadpool_limits(None, "blas"):
            gram = (sub.T @ sub).toarray()
            gram[np.diag_indices_from(gram)] += self.lam
            p = np.linalg.inv(gram)
        b = -p / np.diag(p)
        b[np.diag_indices_from(b)] = 0
        self._weights = b.astype(np.float32)

    def rank(self, data: EvalData, n: int) -> np.ndarray:
        known = data.known.copy()
        known.data = np.ones_like(known.data)
        sub = known[:, self._items].tocsr()
        n_items = len(data.bundle.item_ids)

        def scores(block: slice) -> np.ndarray:
            out = np.full((block.stop - block.start, n_items), -np.inf, np.float32)
            out[:, self._items] = sub[block] @ self._weights
            return out
        return data.rank(scores, n)


class RankerModel(Model):
    """The learned ranker: candidates from every source, LightGBM over their features (LambdaMART
    or pointwise, whichever validates better), trained on the training part's own last periods
    (``rank.label_days``)."""

    name = "ranker"

    def fit(self, data: EvalData) -> None:
        log = EventLog.from_frame(data.split.train, data.bundle.item_ids, data.settings.collab.event_weights)
        self.ranker = Ranker.fit(log, ItemFacts.from_items(data.bundle.items), data.bundle, now=log.end + 1,
                                 settings=data.settings.rank, seed=data.settings.seed)

    def rank(self, data: EvalData, n: int) -> np.ndarray:
        _, state, audience = shop_state(data)
        exclude = data.known if data.settings.collab.exclude_seen else None
        ranked = self.ranker.rank(state, data.bundle, audience, n, exclude=exclude)
        fill = SourcesModel("trending", ["trending"], n=n + 100).rank(data, n)  # a short list ends in best sellers
        return _filled(ranked.rows, fill)


def _filled(rows: np.ndarray, fill: np.ndarray) -> np.ndarray:
    """Each row's items, then the fill's items it lacks, ``n`` in all."""
    n = rows.shape[1]
    out = np.full_like(rows, -1)
    for u in range(len(rows)):
        mine = rows[u][rows[u] >= 0]
        extra = fill[u][(fill[u] >= 0) & ~np.isin(fill[u], mine)]
        merged = np.concatenate([mine, extra])[:n]
        out[u, :len(merged)] = merged
    return out


RANKING_MODELS = {
    "recent-popular": lambda: SourcesModel("recent-popular", ["trending"]),
    "repurchase": lambda: SourcesModel("repurchase", ["repurchase", "trending"]),
    "repurchase-copurchase": lambda: SourcesModel("repurchase-copurchase", ["repurchase", "copurchase", "trending"]),
    "itemknn-tuned": lambda: Tuned("itemknn-tuned", lambda p: ItemKNNModel(**p), axes={
        "neighbours": (20, 100, None), "shrinkage": (0.0, 10.0, 100.0)}),
    "ease": lambda: Tuned("ease", lambda p: EASEModel(**p), axes={"lam": (10.0, 30.0, 100.0, 300.0, 1000.0, 3000.0)}),
    "als-tuned": lambda: Tuned("als-tuned", lambda p: ALSModel(**p), axes={
        "factors": (64, 128, 256), "regularization": (0.01, 0.1, 1.0), "alpha": (1.0, 10.0, 40.0)}),
    "ranker": RankerModel,
}
