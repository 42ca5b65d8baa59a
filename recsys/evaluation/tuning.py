"""Baselines tuned on a validation cut of the training part, never on the test.

:class:`Tuned` wraps a model family: for each candidate setting it fits the model on the training
part less a held-out part, made as the test was (a temporal split holds out each user's latest 20%
of their training events; any other split the training part's last 20% by time), ranks the
held-out part, keeps the setting with the best NDCG@10, and fits that one on the whole training
part.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from recsys.evaluation.metrics import accuracy
from recsys.evaluation.models import EvalData, Model
from recsys.evaluation.splits import cutoff_split, temporal_split

__all__ = ["Tuned", "validation_part"]


def validation_part(data: EvalData) -> EvalData:
    """The training part split again as the test was: each user's latest 20% held out for a
    temporal split (a validation protocol unlike the test's chooses settings that do not carry
    over), else at its 80% time quantile."""
    train = data.split.train
    inner = temporal_split(train, test_fraction=0.2) if data.split.kind == "temporal" \
        else cutoff_split(train, quantile=0.8)
    return EvalData.build(data.bundle, inner, data.settings)


class Tuned(Model):
    """The model ``make(setting)`` with the setting of ``settings`` that ranks the validation part
    best (NDCG@10); ``chosen`` and ``scores`` say what was picked and why."""

    def __init__(self, name: str, make: Callable[[object], Model], settings: Sequence):
        self.name, self.make, self.settings = name, make, list(settings)

    def fit(self, data: EvalData) -> None:
        self.scores = {}
        if len(self.settings) > 1:
            inner = validation_part(data)
            has_truth = inner.truth.sizes > 0
            for setting in self.settings:
                model = self.make(setting)
                model.fit(inner)
                ndcg = accuracy(model.rank(inner, 10), inner.truth, 10)["ndcg"][has_truth]
                self.scores[str(setting)] = float(np.mean(ndcg))
        self.chosen = self.settings[int(np.argmax(list(self.scores.values())))] if self.scores else self.settings[0]
        self.model = self.make(self.chosen)
        self.model.fit(data)

    def rank(self, data: EvalData, n: int) -> np.ndarray:
        return self.model.rank(data, n)
