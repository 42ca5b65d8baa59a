"""Experiments in one worker (docs/experiments.md): which variant a read goes to, the query that
variant asks, the read's ``request_id`` and the impression the experiment's report counts
(queued, :mod:`recsys.worker.impressions`); and the experiments' writes and report."""
from __future__ import annotations

import dataclasses
import random

from recsys.control.experiments import HOLDOUT, Experiment, Variant, assign, check_new, prices_of, report
from recsys.errors import NotFound
from recsys.serve import FeedQuery, Recommender, SimilarQuery
from recsys.worker import writes
from recsys.worker.serving import Serving

__all__ = ["Routed", "route", "log_impression", "request_id", "create_experiment", "stop_experiment",
           "experiment_report"]


class Routed:
    """Where one read went: its query (the variant's configuration applied), its request id and,
    inside an experiment, the experiment, the variant's name (``holdout`` for a held-out user)
    and the bundle version the variant is served from (``None``: the active one)."""

    __slots__ = ("query", "request_id", "experiment", "variant", "version")

    def __init__(self, query, request_id: str, experiment: Experiment | None = None, variant: str | None = None,
                 version: str | None = None):
        self.query, self.request_id, self.experiment, self.variant = query, request_id, experiment, variant
        self.version = version

    def describe(self) -> dict | None:
        """The body's ``experiment`` field, or ``None`` outside one."""
        return None if self.experiment is None else {"id": self.experiment.id, "variant": self.variant}


def request_id(experiment: Experiment | None = None, variant: str | None = None) -> str:
    """A new read's id; inside an experiment it ends with the experiment and the variant, so any
    worker can tell where an impression or a click posted with it belongs without a lookup.

    The token is 64 random bits from :mod:`random` (reseeded in every forked worker): an id
    names a read, it guards nothing, and the operating system's random source costs tens of
    microseconds a call on some machines, as much as the rest of a cached read."""
    token = f"{random.getrandbits(64):016x}"
    return token if experiment is None else f"{token}.{experiment.id}.{variant}"


def route(serving: Serving, read: str, unit_id: str | None, query: SimilarQuery | FeedQuery) -> Routed:
    """The read's experiment and variant, if a running experiment of the served changes takes
    reads of kind ``read`` (``feeds`` or ``similar``) and the read names a user or session.

    A variant served from a bundle this worker has not loaded yet (it loads when the experiment
    starts) answers as outside the experiment, and its read is not logged: the report counts only
    what the variant served."""
    current = serving.current
    if unit_id is None or current is None:
        return Routed(query, request_id())
    experiment = next((e for e in current.changes.experiments if e.applies(read)), None)
    if experiment is None:
        return Routed(query, request_id())
    variant = assign(experiment, unit_id)
    if variant is None:
        return Routed(query, request_id(experiment, HOLDOUT), experiment, HOLDOUT)
    if variant.bundle is not None and not serving.holds(variant.bundle):
        return Routed(query, request_id())
    return Routed(_configured(query, variant), request_id(experiment, variant.name), experiment, variant.name,
                  variant.bundle)


def _configured(query: SimilarQuery | FeedQuery, variant: Variant) -> SimilarQuery | FeedQuery:
    """``query`` as ``variant`` asks it: its rules before the read's own, its diversity and cap
    where the read sets none, its weights (similar items) and ranking (feeds)."""
    if not variant.changes:
        return query
    own, theirs = query.shaping, variant.shaping
    shaping = dataclasses.replace(
        own, rules=theirs.rules + own.rules,
        diversity=own.diversity if own.diversity is not None else theirs.diversity,
        max_per_category=own.max_per_category if own.max_per_category is not None else theirs.max_per_category)
    if isinstance(query, SimilarQuery):
        return query._replace(shaping=shaping, weights=query.weights or variant.weights)
    return query._replace(shaping=shaping, rank=variant.rank if variant.rank is not None else query.rank)


def log_impression(serving: Serving, routed: Routed, unit_id: str, items: list[str]) -> None:
    """Log a read of an experiment as an impression (a share of them, ``experiments.log_share``):
    queued here, written to Redis within a tenth of a second (:class:`~recsys.worker.impressions.ImpressionLog`).

    Args:
        items: the ids of the items the answer showed.
    """
    if routed.experiment is None or serving.impressions is None:
        return
    if random.random() < serving.settings.experiments.log_share:
        serving.impressions.add(routed.experiment.id, routed.request_id, unit_id, routed.variant, items)


def create_experiment(serving: Serving, experiment: Experiment) -> Experiment:
    """Store a new experiment, served by every worker from its next read.

    Raises:
        InvalidRequest: see :func:`~recsys.control.experiments.check_new`.
        Unavailable: Redis is down (nothing was stored).
    """
    store = _store(serving, "the experiment")
    check_new(experiment, writes.write(serving, "the experiment", store.all),
              writes.write(serving, "the experiment", serving.store.versions))
    stored, gen = writes.write(serving, "the experiment", lambda: store.create(experiment))
    writes.changed(serving, gen)
    return stored


def stop_experiment(serving: Serving, experiment_id: str) -> Experiment:
    """Stop an experiment on every worker from its next read (its report stays)."""
    store = _store(serving, "the stop")
    stopped = writes.write(serving, "the stop", lambda: store.stop(experiment_id))
    if stopped is None:
        raise NotFound(f"no experiment {experiment_id!r}", experiment_id=experiment_id)
    writes.changed(serving, stopped[1])
    return stopped[0]


def experiment_report(serving: Serving, recommender: Recommender, experiment: Experiment) -> dict:
    """The experiment's report (:func:`recsys.control.experiments.report`) from its logged
    impressions and the interaction log, revenue at the served catalog's prices."""
    store = _store(serving, "the report")
    if serving.impressions is not None:
        serving.impressions.flush()  # this worker's last tenth of a second
    impressions = writes.write(serving, "the report", lambda: store.impressions(experiment.id))
    events = writes.write(serving, "the report", lambda: serving.activity.log_frame(requests=True))
    prices = prices_of(recommender.bundle.items, recommender.changes.items)
    return {"experiment": experiment.model_dump(mode="json"), **report(experiment, impressions, events, prices)}


def _store(serving: Serving, what: str):
    if serving.store is None or serving.breaker.open:
        raise writes.redis_down(serving, what)
    return serving.store.experiments
