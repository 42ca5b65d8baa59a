"""The learned ranker: LightGBM over (user, candidate) features, trained on the shop's own later
events.

Training looks back from ``now``: the events of the last ``label_days`` before it are the
validation labels (features from everything earlier), the ``train_periods`` periods of the same
length before those the training labels. One booster is fitted per objective (LambdaMART's
``lambdarank`` and the pointwise ``binary`` by default), each stopped early on the validation
period's NDCG@12, and the best is kept. The model is kept in LightGBM's text format, never pickled.

    >>> ranker = Ranker.fit(log, facts, bundle)                            # doctest: +SKIP
    >>> ranked = ranker.rank(ShopState(log, facts), bundle, audience, 12)  # doctest: +SKIP
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from recsys.bundle import Bundle, RankerFiles, TopLists
from recsys.data.ids import IdMap
from recsys.errors import DataError
from recsys.rank.features import Candidates, feature_names, features, gather
from recsys.rank.log import DAY, EventLog
from recsys.rank.sources import Audience, Source, create_sources
from recsys.rank.sparse import pair_values
from recsys.rank.state import ItemFacts, ShopState
from recsys.settings import RankSettings

__all__ = ["Ranker", "Ranked", "TrainingSet", "labelled"]

_PARALLEL_PAIRS = 10_000  # fewer pairs are predicted on one thread


@dataclass(frozen=True)
class TrainingSet:
    """Features and graded labels of one period's candidates, grouped by user."""

    x: np.ndarray
    y: np.ndarray
    groups: np.ndarray
    recall: float  # the share of the period's bought items that some source proposed

    @property
    def n_groups(self) -> int:
        return len(self.groups)

    @classmethod
    def join(cls, parts: list[TrainingSet]) -> TrainingSet:
        """Several periods as one set (their groups one after another); none: an empty set."""
        parts = [p for p in parts if p.n_groups]
        if not parts:
            return cls(np.zeros((0, 0), np.float32), np.zeros(0, np.int32), np.zeros(0, np.int64), 0.0)
        weights = np.array([p.groups.sum() for p in parts], np.float64)
        return cls(np.concatenate([p.x for p in parts]), np.concatenate([p.y for p in parts]),
                   np.concatenate([p.groups for p in parts]),
                   float(np.average([p.recall for p in parts], weights=weights if weights.sum() else None)))


def labelled(log: EventLog, facts: ItemFacts, bundle: Bundle, settings: RankSettings, start: float,
             stop: float, *, seed: int = 0) -> TrainingSet:
    """The candidates of the users who had events in ``[start, stop)``, their features from the
    log before ``start``, labelled by those events (graded by the event type's strength)."""
    later = log.window(start, stop)
    if not len(later):  # a quiet period (a log with gaps) teaches nothing
        return TrainingSet.join([])
    state = ShopState(log.window(stop=start), facts, now=start)
    users = np.unique(later.users)
    rng = np.random.default_rng(seed)
    if len(users) > settings.max_users:
        users = np.sort(rng.choice(users, settings.max_users, replace=False))
    audience = Audience.of(state, users)
    sources = create_sources(bundle, settings.sources)
    cands = gather(state, audience, sources)
    position = np.full(len(log.user_ids), -1)
    position[users] = np.arange(len(users))
    at = position[later.users]
    keep = at >= 0
    truth = sp.csr_matrix((later.strength[keep], (at[keep], later.items[keep])),
                          shape=(len(users), log.n_items))
    truth.sum_duplicates()
    grades = _grades(truth, later.strength)
    y = pair_values(grades, cands.users, cands.items)
    recall = float((y > 0).sum() / max(grades.nnz, 1))
    has_positive = np.bincount(cands.users, weights=(y > 0), minlength=len(users)) > 0
    keep = has_positive[cands.users]
    cands, y = cands.take(keep), y[keep]
    x = features(state, bundle, audience, cands)
    groups = np.bincount(cands.users, minlength=len(users))
    return TrainingSet(x, y.astype(np.int32), groups[groups > 0], recall)


def _grades(truth: sp.csr_matrix, strengths: np.ndarray) -> sp.csr_matrix:
    """Labels 1.. from the summed strength of each (user, item): the levels of the event types
    (a purchase above a click), or 1 when one type is all there is."""
    levels = np.unique(strengths)
    graded = truth.copy()
    graded.data = (np.searchsorted(levels, np.minimum(graded.data, levels[-1]), side="right")).astype(np.float32)
    graded.data = np.maximum(graded.data, 1)
    return graded


def _boost(objective: str, train: TrainingSet, valid: TrainingSet, names: list[str], rounds: int, seed: int):
    """One booster for ``objective``, stopped early on the validation period's NDCG@12."""
    import lightgbm

    params = {"objective": objective, "metric": "ndcg", "eval_at": [12], "learning_rate": 0.05,
              "num_leaves": 31, "min_data_in_leaf": 100, "feature_fraction": 0.8, "bagging_fraction": 0.8,
              "bagging_freq": 1, "verbosity": -1, "seed": seed, "deterministic": True, "force_row_wise": True}
    # a pointwise objective takes relevant or not; the pairwise ones keep the grades
    labels = (lambda y: (y > 0).astype(np.int32)) if objective == "binary" else (lambda y: y)
    train_set = lightgbm.Dataset(train.x, labels(train.y), group=train.groups, feature_name=names)
    valid_set = lightgbm.Dataset(valid.x, labels(valid.y), group=valid.groups, reference=train_set)
    return lightgbm.train(params, train_set, num_boost_round=rounds, valid_sets=[valid_set], valid_names=["validation"],
                          callbacks=[lightgbm.early_stopping(30, verbose=False)])


@dataclass
class Ranked:
    """One ranking: per user of the audience, the best items and their ranker scores."""

    rows: np.ndarray
    scores: np.ndarray
    candidates: Candidates
    x: np.ndarray
    pair_scores: np.ndarray


class Ranker:
    """A fitted LambdaMART model with the settings that made its candidates.

    Args:
        booster: the ``lightgbm.Booster``.
        settings: the candidate counts and training settings.
        report: what the training measured (periods, groups, validation NDCG, candidate recall).
    """

    def __init__(self, booster, settings: RankSettings, report: dict):
        self.booster = booster
        self.settings = settings
        self.report = report

    @classmethod
    def fit(cls, log: EventLog, facts: ItemFacts, bundle: Bundle, now: float | None = None,
            settings: RankSettings | None = None, seed: int = 0) -> Ranker:
        """Train on the label periods before ``now`` (default: just after the newest event): one
        booster per objective of ``settings.objectives``, the one with the best validation NDCG@12
        kept.

        Raises:
            DataError: the training period has fewer than ``settings.min_groups`` users with a
                bought candidate (the message names the threshold).
        """
        settings = settings or RankSettings()
        now = log.end + 1 if now is None else now
        span = settings.label_days * DAY
        valid = labelled(log, facts, bundle, settings, now - span, now, seed=seed)
        periods = [labelled(log, facts, bundle, settings, now - (p + 1) * span, now - p * span, seed=seed + p)
                   for p in range(1, settings.train_periods + 1) if now - (p + 1) * span >= log.start]
        train = TrainingSet.join(periods)
        if train.n_groups < settings.min_groups or valid.n_groups < max(1, settings.min_groups // 4):
            raise DataError(f"too few events for a ranker: {train.n_groups:,} users with a bought candidate in "
                            f"the training period and {valid.n_groups:,} in the validation period "
                            f"(ranker needs {settings.min_groups:,} and {max(1, settings.min_groups // 4):,})")
        names = feature_names([name for name, n in settings.sources.items() if n > 0], list(bundle.vectors.blocks))
        fitted = {objective: _boost(objective, train, valid, names, settings.rounds, seed)
                  for objective in settings.objectives}
        scores = {objective: float(b.best_score["validation"]["ndcg@12"]) for objective, b in fitted.items()}
        chosen = max(scores, key=scores.get)
        booster = fitted[chosen]
        report = {"now": now, "label_days": settings.label_days, "train_groups": train.n_groups,
                  "valid_groups": valid.n_groups, "train_pairs": int(len(train.y)),
                  "valid_pairs": int(len(valid.y)), "candidate_recall": {"train": train.recall,
                                                                        "validation": valid.recall},
                  "objective": chosen, "validation_ndcg@12": scores, "best_iteration": int(booster.best_iteration)}
        return cls(booster, settings, report)

    @property
    def features(self) -> list[str]:
        return list(self.booster.feature_name())

    def sources(self, bundle: Bundle) -> list[Source]:
        """The candidate sources this ranker was trained with, over ``bundle`` (made once per
        bundle by a server: some copy the bundle's lists)."""
        return create_sources(bundle, self.settings.sources)

    def rank(self, state: ShopState, bundle: Bundle, audience: Audience, k: int,
             exclude: sp.csr_matrix | None = None, allowed: np.ndarray | None = None, *,
             more: sp.csr_matrix | None = None, sources: list[Source] | None = None) -> Ranked:
        """Each user's best ``k`` candidates by the model (``-1`` pads a short list).

        Args:
            exclude: ``(users, items)``; items where it is nonzero are left out for that user.
            allowed: ``(items,)`` bool; only these items are listed (filters, deleted items).
            more: ``(users, items)``, nonzero: candidates besides the sources' (scored alike).
            sources: :meth:`sources` made already; default: made now.
        """
        cands = gather(state, audience, self.sources(bundle) if sources is None else sources, more)
        if allowed is not None and len(cands):
            cands = cands.take(allowed[cands.items])
        if exclude is not None and len(cands):
            cands = cands.take(pair_values(exclude, cands.users, cands.items) == 0)
        x = features(state, bundle, audience, cands)
        scores = self._predict(x) if len(x) else np.zeros(0)
        order = np.lexsort((-scores, cands.users))
        bounds = cands.bounds(len(audience))
        rows = np.full((len(audience), k), -1, np.int64)
        best = np.full((len(audience), k), np.nan, np.float32)
        sorted_users = cands.users[order]
        place = np.arange(len(order)) - bounds[sorted_users]
        keep = place < k
        rows[sorted_users[keep], place[keep]] = cands.items[order][keep]
        best[sorted_users[keep], place[keep]] = scores[order][keep]
        return Ranked(rows, best, cands, x, scores)

    def lists(self, state: ShopState, bundle: Bundle, k: int, *, block: int = 1_000,
              show_progress: bool = False) -> TopLists:
        """Every user of ``state``'s best ``k`` items, ranked in blocks of users (a bundle's
        precomputed feeds), the items each user had included: a pair's score does not depend on
        the other candidates, so a feed without them is this list without them."""
        from tqdm.auto import tqdm

        sources = self.sources(bundle)
        out = TopLists(np.full((state.n_users, k), -1, np.int32), np.zeros((state.n_users, k), np.float32))
        for start in tqdm(range(0, state.n_users, block), desc="ranked feeds", unit="block",
                          disable=not show_progress):
            users = np.arange(start, min(start + block, state.n_users))
            ranked = self.rank(state, bundle, Audience.of(state, users), k, sources=sources)
            out.rows[users] = ranked.rows
            out.scores[users] = np.nan_to_num(ranked.scores, nan=0.0)
        return out

    def _predict(self, x: np.ndarray, **options) -> np.ndarray:
        # one feed's few hundred pairs: starting LightGBM's threads costs ten times the prediction
        threads = 1 if len(x) < _PARALLEL_PAIRS else 0
        return self.booster.predict(x, num_iteration=self.booster.best_iteration or None, num_threads=threads,
                                    **options)

    def contributions(self, x: np.ndarray) -> np.ndarray:
        """``(pairs, features + 1)`` each feature's share of each score (the last column: the
        bias), LightGBM's own SHAP values."""
        return self._predict(x, pred_contrib=True)

    def to_files(self, log: EventLog, user_ids: IdMap) -> RankerFiles:
        """What a bundle keeps of this ranker and of ``log``, its users as rows of ``user_ids``
        (the user tower's)."""
        rows = user_ids.find(log.user_ids.ids.tolist())[log.users]
        keep = rows >= 0
        return RankerFiles(self.booster.model_to_string(num_iteration=self.booster.best_iteration or None),
                           {"settings": self.settings.model_dump(), "report": self.report},
                           {"users": rows[keep], "items": log.items[keep], "seconds": log.seconds[keep],
                            "strength": log.strength[keep]})

    @classmethod
    def from_files(cls, files: RankerFiles, user_ids: IdMap, n_items: int) -> tuple[Ranker, EventLog]:
        """The ranker and its event log from a bundle's files."""
        import lightgbm

        booster = lightgbm.Booster(model_str=files.model)
        log = EventLog(user_ids, files.log["users"].astype(np.int64), files.log["items"].astype(np.int64),
                       files.log["seconds"], files.log["strength"], n_items)
        return cls(booster, RankSettings(**files.config["settings"]), files.config["report"]), log
