"""Experiments in Redis: the experiments themselves (JSON, :class:`~recsys.control.experiments.Experiment`)
and the impressions their reads log, which their reports read."""
from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from datetime import datetime, timezone

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

    def log(self, experiment_id: str, request_id: str, user_id: str, variant: str, items: list[str]) -> None:
        """Log one answer of the experiment's reads (before it is sent: an answer the user saw is
        in Redis, as an acknowledged interaction is)."""
        self.client.xadd(self.keys.impressions(experiment_id), {
            "request_id": request_id, "user_id": user_id, "variant": variant, "items": ",".join(items),
            "n": str(len(items)), "at": repr(time.time())})

    def impressions(self, experiment_id: str, batch: int = 10_000) -> pd.DataFrame:
        """The experiment's logged answers, oldest first (:data:`IMPRESSION_COLUMNS`)."""
        rows, start, key = [], "-", self.keys.impressions(experiment_id)
        while chunk := self.client.xrange(key, min=start, count=batch):
            rows += [{k.decode(): v.decode() for k, v in fields.items()} for _, fields in chunk]
            start = "(" + chunk[-1][0].decode()
        frame = pd.DataFrame(rows, columns=list(IMPRESSION_COLUMNS))
        frame["n"] = pd.to_numeric(frame["n"]).astype(int)
        frame["at"] = pd.to_numeric(frame["at"])
        return frame


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
