"""The models an evaluation compares, behind one interface, and the data they are evaluated on.

Every model is fitted on the training events of a :class:`~recsys.evaluation.splits.Split` and
ranks the whole catalog for each test user. With ``settings.collab.exclude_seen`` (the default)
each leaves out what is known about the user at query time (their training events and any
``given`` events), the same rule the service applies; without it, every model may rank a user's
known items again (repurchases).
"""
from __future__ import annotations

import shutil
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from recsys.bundle import Bundle, read_bundle
from recsys.collab.als import UserItems, interaction_matrix
from recsys.data import schema as S
from recsys.errors import ConfigError
from recsys.evaluation.metrics import Truth
from recsys.evaluation.splits import Split
from recsys.index.exact import top_k_rows
from recsys.settings import Settings
from recsys.towers.item import content_query

__all__ = ["EvalData", "Model", "MODELS", "RandomModel", "PopularModel",
           "ItemKNNModel", "ALSModel", "ContentModel", "HybridModel", "BundleModel"]

_BLOCK_VALUES = 1 << 24


@dataclass
class EvalData:
    """A split laid over a bundle's item space, ready for models and metrics.

    Attributes:
        bundle: the item side (ids, attributes, content vectors).
        split: the split.
        settings: event weights, collab and index settings for the models that train.
        users: the test users, sorted.
        known: ``(test users, items)`` strengths of what is known about each test user at query
            time (training events plus given events).
        recent: per test user, the item ids known at query time, most recent first.
        train: the training interactions as a users x items matrix.
        truth: each test user's held-out items.
        item_users: ``(items,)`` distinct training users per item (popularity).
    """

    bundle: Bundle
    split: Split
    settings: Settings
    users: list
    known: sp.csr_matrix
    recent: list[list[str]]
    train: UserItems
    truth: Truth
    item_users: np.ndarray

    @classmethod
    def build(cls, bundle: Bundle, split: Split, settings: Settings) -> EvalData:
        item_ids = bundle.item_ids
        weights = settings.collab.event_weights
        train = interaction_matrix(split.train, item_ids, event_weights=weights)
        users = split.test_users
        known_events = pd.concat([split.train[split.train[S.USER_ID].isin(users)], split.given])
        known_events = known_events[known_events[S.USER_ID].isin(users)]
        known = sp.csr_matrix((len(users), len(item_ids)), dtype=np.float32)
        recent: list[list[str]] = [[] for _ in users]
        if len(known_events):
            known_items = interaction_matrix(known_events, item_ids, event_weights=weights)
            rows = pd.Index(users).get_indexer(known_items.user_ids.ids)
            coo = known_items.matrix.tocoo()
            known = sp.csr_matrix((coo.data, (rows[coo.row], coo.col)), shape=(len(users), len(item_ids)))
            if S.TIMESTAMP in known_events and known_events[S.TIMESTAMP].notna().all():
                known_events = known_events.sort_values(S.TIMESTAMP, ascending=False, kind="stable")
            by_user = known_events.groupby(S.USER_ID, sort=False)[S.ITEM_ID].agg(
                lambda s: list(dict.fromkeys(s.astype(str))))
            position = {u: i for i, u in enumerate(users)}
            for user, items in by_user.items():
                recent[position[user]] = items
        held = split.test.groupby(S.USER_ID)[S.ITEM_ID].agg(lambda s: item_ids.rows(s.astype(str)))
        truth = Truth([held[u] for u in users], len(item_ids))
        item_users = np.bincount(train.matrix.indices, minlength=len(item_ids))
        return cls(bundle, split, settings, users, known, recent, train, truth, item_users)

    def rank(self, scores_for, n: int, block_users: int | None = None) -> np.ndarray:
        """``(test users, n)`` item rows from ``scores_for(user_slice) -> (b, items)`` scores,
        known items left out unless ``settings.collab.exclude_seen`` is off (``-1`` pads when
        fewer items remain)."""
        n_items = len(self.bundle.item_ids)
        size = block_users or max(1, min(2048, _BLOCK_VALUES // n_items))
        out = np.full((len(self.users), n), -1, np.int64)
        for start in range(0, len(self.users), size):
            block = slice(start, min(len(self.users), start + size))
            scores = np.array(scores_for(block), dtype=np.float32, copy=True)
            if self.settings.collab.exclude_seen:
                seen = self.known[block]
                scores[np.repeat(np.arange(seen.shape[0]), np.diff(seen.indptr)), seen.indices] = -np.inf
            out[block] = top_k_rows(scores, n)[0]
        return out


class Model(ABC):
    """A ranking model: :meth:`fit` on the training events, then :meth:`rank` every test user."""

    name = "model"

    def fit(self, data: EvalData) -> None:  # noqa: B027 - a model without training keeps this
        """Learn from ``data.train`` (nothing, for models that only count or draw)."""

    @abstractmethod
    def rank(self, data: EvalData, n: int) -> np.ndarray:
        """``(test users, n)`` item rows, best first, ``-1`` padding; known items left out
        unless ``settings.collab.exclude_seen`` is off."""


class RandomModel(Model):
    """Uniformly random items (a floor every model must clear)."""

    name = "random"

    def __init__(self, seed: int = 0):
        self.seed = seed

    def rank(self, data: EvalData, n: int) -> np.ndarray:
        rng = np.random.default_rng(self.seed)
        return data.rank(lambda b: rng.random((b.stop - b.start, len(data.bundle.item_ids))), n)


class PopularModel(Model):
    """The items most training users interacted with."""

    name = "popular"

    def rank(self, data: EvalData, n: int) -> np.ndarray:
        pop = data.item_users.astype(np.float32)
        return data.rank(lambda b: np.broadcast_to(pop, (b.stop - b.start, len(pop))), n)


class ItemKNNModel(Model):
    """Item-based collaborative filtering: ``score(i) = sum over known items j of sim(i, j)``,
    ``sim`` the cosine between items' binary user vectors, its denominator raised by
    ``shrinkage`` (a pair seen together by few users counts less), each item keeping its
    ``neighbours`` most similar items (``None``: every one). ``itemknn-tuned`` chooses both on a
    validation cut."""

    name = "itemknn"

    def __init__(self, neighbours: int | None = None, shrinkage: float = 0.0):
        self.neighbours, self.shrinkage = neighbours, shrinkage

    def fit(self, data: EvalData) -> None:
        from recsys.rank.sparse import top_per_row

        x = data.train.matrix.copy()
        x.data = np.ones_like(x.data)
        x = x.tocsc()
        together = (x.T @ x).tocsr().astype(np.float32)  # (items, items) users who had both
        norms = np.sqrt(together.diagonal())
        rows = np.repeat(np.arange(together.shape[0]), np.diff(together.indptr))
        together.data /= norms[rows] * norms[together.indices] + self.shrinkage
        self._sim = top_per_row(together, self.neighbours) if self.neighbours else together

    def rank(self, data: EvalData, n: int) -> np.ndarray:
        known = data.known.copy()
        known.data = np.ones_like(known.data)
        sim_t = self._sim.T.tocsr()
        return data.rank(lambda block: (known[block] @ sim_t).toarray(), n)


class ALSModel(Model):
    """``implicit``'s ALS, by default as it comes (its regularisation 0.01 and confidence alpha 1),
    with our event strengths; users unseen in training are solved from what is known about them.
    ``als-tuned`` chooses factors, regularisation and alpha on a validation cut."""

    name = "als"

    def __init__(self, factors: int = 64, seed: int = 0, regularization: float = 0.01, alpha: float = 1.0):
        self.factors, self.seed, self.regularization, self.alpha = factors, seed, regularization, alpha

    def fit(self, data: EvalData) -> None:
        from implicit.als import AlternatingLeastSquares

        with threadpool_limits(1, "blas"):
            self._model = AlternatingLeastSquares(factors=self.factors, regularization=self.regularization,
                                                  alpha=self.alpha, random_state=self.seed, use_gpu=False)
            self._model.fit(data.train.matrix.astype(np.float32), show_progress=False)

    def rank(self, data: EvalData, n: int) -> np.ndarray:
        model = self._model
        item_factors = np.asarray(model.item_factors)
        rows = data.train.user_ids
        users = np.zeros((len(data.users), item_factors.shape[1]), np.float32)
        trained = np.array([u in rows for u in data.users])
        if trained.any():
            users[trained] = np.asarray(model.user_factors)[rows.rows([u for u, t in zip(data.users, trained) if t])]
        cold = np.flatnonzero(~trained)
        if len(cold):
            with threadpool_limits(1, "blas"):
                users[cold] = model.recalculate_user(cold, data.known[cold].astype(np.float32))
        return data.rank(lambda b: users[b] @ item_factors.T, n)


class ContentModel(Model):
    """Content only: cosine between each item and the user's taste, the recency-weighted mean of
    their latest items' combined vectors (the item tower alone, as the feed's content term)."""

    name = "content"

    def rank(self, data: EvalData, n: int) -> np.ndarray:
        combined = np.asarray(data.bundle.vectors.combined, dtype=np.float32)
        item_ids = data.bundle.item_ids
        history_items, decay = data.settings.collab.history_items, data.settings.collab.history_decay
        queries = np.zeros((len(data.users), combined.shape[1]), np.float32)
        for u, items in enumerate(data.recent):
            q = content_query(data.bundle.vectors, item_ids.rows(items), history_items, decay)
            if q is not None:
                queries[u] = q
        return data.rank(lambda b: queries[b] @ combined.T, n)


class HybridModel(Model):
    """Our feed: the user tower trained on the split (``recsys train``), served by
    :class:`~recsys.serve.Recommender` with the settings' content weight; users unseen in
    training are placed by their given events (fold-in)."""

    name = "hybrid"

    def fit(self, data: EvalData) -> None:
        from recsys.pipeline.train import train_user_tower

        # the blend alone: the learned ranker is the `ranker` model
        settings = data.settings.model_copy(update={"rank": data.settings.rank.model_copy(update={"enabled": False})})
        report = train_user_tower(data.bundle, data.split.train, settings, show_progress=False,
                                  source=f"evaluation: {data.split.name}")
        self._trained = read_bundle(report.path)
        shutil.rmtree(report.path, ignore_errors=True)  # the arrays stay mapped; nothing else needs it

    def rank(self, data: EvalData, n: int) -> np.ndarray:
        from recsys.serve import Recommender

        return _rank_with(Recommender.configured(self._trained, data.settings), data, n)


class BundleModel(Model):
    """A trained bundle evaluated as it is (no fitting): compare any published version."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.name = f"bundle:{self.path.name}"

    def fit(self, data: EvalData) -> None:
        self._bundle = read_bundle(self.path)
        if self._bundle.collab is None:
            raise ConfigError(f"bundle {self.path} has no user tower; run `recsys train` on it first")

    def rank(self, data: EvalData, n: int) -> np.ndarray:
        from recsys.serve import Recommender

        seen = data.settings.collab.exclude_seen  # the same rule for its ranked feeds as for every model
        return _rank_with(Recommender(self._bundle, exclude_seen=seen, ranked_exclude_seen=seen), data, n)


def _rank_with(recommender, data: EvalData, n: int) -> np.ndarray:
    """Rank every test user through the service's batch call: a trained user by id, any other by
    the items known about them (the ``given`` events), as the API would."""
    known_users = recommender.bundle.collab.user_ids
    known_items = recommender.bundle.item_ids
    trained = data.train.user_ids
    users = [str(u) for u in data.users]
    given = [[] if user in trained else [i for i in data.recent[u] if i in known_items]
             for u, user in enumerate(users)]
    # every model is scored on the same lists: no collapse of duplicate listings, which the
    # others do not have
    ids, _ = recommender.recommend([u if u in known_users else None for u in users], k=n, recent_items=given,
                                   dedupe=False)
    rows = data.bundle.item_ids.find(ids.ravel().tolist()).reshape(ids.shape)  # "" (a short list) and unknown: -1
    out = np.full((len(users), n), -1, np.int64)
    for u, found in enumerate(rows):  # keep each list's known items in order, at the front
        found = found[found >= 0]
        out[u, :len(found)] = found
    return out


MODELS = {"random": RandomModel, "popular": PopularModel, "itemknn": ItemKNNModel, "als": ALSModel,
          "content": ContentModel, "hybrid": HybridModel}
