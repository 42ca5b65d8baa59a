"""Experiments in Redis: the experiments themselves (JSON, :class:`~recsys.control.experiments.Experiment`)
and the impressions their reads log, which their reports read."""
from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import datetime, timezone

import orjson
import pandas as pd
import redis
from pydantic import ValidationError

from recsys.control.experiments import Experiment
from recsys.store.keys import Keys

__all__ = ["ExperimentStore", "IMPRESSION_COLUMNS"]

logger = logging.getLogger(__name__)

IMPRESSION_COLUMNS = ("request_id", "user_id", "variant", "items", "n", "at")


class ExperimentStore:
    """The experiments of one namespace.

    Args:
        client: a redis-py client.
        keys: the namespace's keys.
        moved: runs a pipeline with the item generation moved and tells the workers (a change of
            experiments reaches every worker as item changes do); returns the new generation.
    """

    def __init__(self, client: redis.Redis, keys: Keys, moved: Callable):
        self.client, self.keys, self._moved = client, keys, moved

    def create(self, experiment: Experiment) -> tuple[Experiment, int]:
        """Store a new experiment, named ``e<n>``: it as stored, and the new generation."""
        n = int(self.client.incr(self.keys.experiments_next))
        stored = experiment.model_copy(update={"id": f"e{n}"})
        pipe = self.client.pipeline(transaction=True)
        pipe.hset(self.keys.experiments, stored.id, stored.model_dump_json())
        return stored, self._moved(pipe)

    def stop(self, experiment_id: str) -> tuple[Experiment, int] | None:
        """Stop an experiment (its users are served as without it from the next read); ``None``
        if there is none of that id. Stopping a stopped one keeps its first stop time."""
        experiment = self.get(experiment_id)
        if experiment is None:
            return None
        if experiment.status == "stopped":
            return experiment, int(self.client.get(self.keys.items_gen) or 0)
        stopped = experiment.model_copy(update={"status": "stopped", "stopped": datetime.now(timezone.utc)})
        pipe = self.client.pipeline(transaction=True)
        pipe.hset(self.keys.experiments, experiment_id, stopped.model_dump_json())
        return stopped, self._moved(pipe)

    def get(self, experiment_id: str) -> Experiment | None:
        raw = self.client.hget(self.keys.experiments, experiment_id)
        return None if raw is None else Experiment.model_validate_json(raw)

    def all(self) -> list[Experiment]:
        """Every experiment, oldest first."""
        return parse_experiments(self.client.hgetall(self.keys.experiments))

    def log_many(self, entries) -> None:
        """Log answers of experiments' reads, ``(experiment id, [request id, user id, variant,
        when it was answered, item ids shown])`` each, as one stream entry per experiment: one
        round trip, one command per experiment."""
        batches: dict[str, list] = {}
        for experiment_id, entry in entries:
            batches.setdefault(experiment_id, []).append(entry)
        pipe = self.client.pipeline(transaction=False)
        for experiment_id, batch in batches.items():
            pipe.xadd(self.keys.impressions(experiment_id), {"batch": orjson.dumps(batch)})
        pipe.execute()

    def impressions(self, experiment_id: str, batch: int = 1000) -> pd.DataFrame:
        """The experiment's logged answers, oldest first (:data:`IMPRESSION_COLUMNS`; ``items``
        the item ids shown, comma-separated)."""
        rows, start, key = [], "-", self.keys.impressions(experiment_id)
        while chunk := self.client.xrange(key, min=start, count=batch):
            for _, fields in chunk:
                for request_id, user_id, variant, at, shown in orjson.loads(fields[b"batch"]):
                    rows.append((request_id, user_id, variant, ",".join(shown), len(shown), float(at)))
            start = "(" + chunk[-1][0].decode()
        return pd.DataFrame(rows, columns=list(IMPRESSION_COLUMNS))


def parse_experiments(raw: dict) -> list[Experiment]:
    """Experiments from their stored JSON, oldest first; one that no longer validates is left out
    with a log line (it must not stop reads)."""
    parsed = []
    for experiment_id, text in raw.items():
        try:
            parsed.append(Experiment.model_validate(json.loads(text)))
        except (ValidationError, ValueError) as exc:
            logger.warning("stored experiment %s is left out: %s", experiment_id.decode(), exc)
    return sorted(parsed, key=lambda e: (len(e.id or ""), e.id or ""))
