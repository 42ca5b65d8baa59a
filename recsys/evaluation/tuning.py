"""Baselines tuned on a validation cut of the training part, never on the test.

:class:`Tuned` wraps a model family: for each candidate setting it fits the model on the training
part less a held-out part, made as the test was (a temporal split holds out each user's latest 20%
of their training events; any other split the training part's last 20% by time), ranks the
held-out part, keeps the setting with the best NDCG@10, and fits that one on the whole training
part. A grid given as axes is tried one step past any edge its best setting sits on, since a
choice on the edge says the best may lie outside the grid.
"""
from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence

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
    """The model ``make(setting)`` with the setting that ranks the validation part best (NDCG@10).

    The settings are ``settings``, or the product of ``axes`` (each axis's values in increasing
    order, as dicts of axis to value). With axes, where the best setting holds an axis's first or
    last value, that axis is tried one step further, the others held (the ratio of the edge's two
    values: after 10 and 100, 1,000; a 0 or ``None`` at the edge is a bound and goes no further).

    Attributes (after :meth:`fit`):
        chosen: the setting picked.
        scores: every tried setting's validation NDCG@10, by ``str(setting)``.
        edges: the axes whose step past the grid won, so whose choice still sits on the edge of
            what was tried.
    """

    def __init__(self, name: str, make: Callable[[object], Model], settings: Sequence | None = None, *,
                 axes: Mapping[str, Sequence] | None = None):
        if (settings is None) == (axes is None):
            raise ValueError("give either settings or axes, one of the two")
        self.name, self.make, self.axes = name, make, dict(axes or {})
        self.settings = list(settings) if settings is not None else \
            [dict(zip(self.axes, values)) for values in itertools.product(*self.axes.values())]

    def fit(self, data: EvalData) -> None:
        self.scores, self.edges = {}, []
        best = self.settings[0]
        if len(self.settings) > 1:
            inner = validation_part(data)
            has_truth = inner.truth.sizes > 0

            def score(setting) -> float:
                if str(setting) not in self.scores:
                    model = self.make(setting)
                    model.fit(inner)
                    ndcg = accuracy(model.rank(inner, 10), inner.truth, 10)["ndcg"][has_truth]
                    self.scores[str(setting)] = float(np.mean(ndcg))
                return self.scores[str(setting)]

            best = max(self.settings, key=score)  # the first of equals, in the grid's order
            for axis, values in self.axes.items():
                further = _past_edge(values, best[axis])
                if further is not None and score(trial := {**best, axis: further}) > score(best):
                    best = trial
                    self.edges.append(axis)
        self.chosen = best
        self.model = self.make(best)
        self.model.fit(data)

    def rank(self, data: EvalData, n: int) -> np.ndarray:
        return self.model.rank(data, n)


def _past_edge(values: Sequence, value) -> float | int | None:
    """The next value past ``value`` if it is an edge of ``values`` (geometrically, as the edge's
    two values step; whole for whole numbers), else ``None``."""
    if len(values) < 2 or value not in (values[0], values[-1]):
        return None
    edge, inner = (values[-1], values[-2]) if value == values[-1] else (values[0], values[1])
    if not all(isinstance(v, (int, float)) and v > 0 for v in (edge, inner)):
        return None  # 0 and None (every neighbour) are bounds
    step = edge * edge / inner
    return int(round(step)) if all(isinstance(v, int) for v in values) else step
