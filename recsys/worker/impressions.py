"""The impressions a worker logs for the experiments' reads, written to Redis in batches off the
request path (docs/experiments.md): a read only appends to a list in memory, a background thread
writes what is there every ``interval`` seconds in one pipelined round trip."""
from __future__ import annotations

import atexit
import logging
import threading
import time
from collections import deque

import redis

from recsys.store.experiments import ExperimentStore

__all__ = ["ImpressionLog"]

logger = logging.getLogger(__name__)


class ImpressionLog:
    """A worker's buffer of impressions.

    Args:
        store: where the experiments' impressions go.
        interval: seconds between two writes; a worker killed with ``kill -9`` loses at most the
            impressions of its last interval, in every variant alike (fewer users and
            impressions, and the clicks on the lost reads with them: less precision, no bias).
        limit: the most impressions kept while Redis does not answer; older ones are dropped
            (and counted in the log).
    """

    def __init__(self, store: ExperimentStore, interval: float = 0.1, limit: int = 100_000):
        self.store, self.interval = store, interval
        self._queue: deque = deque(maxlen=limit)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.written = 0

    def add(self, experiment_id: str, request_id: str, user_id: str, variant: str, items: bytes | list[str]) -> None:
        """Queue one answer: ``items`` its result rows as JSON, or its item ids (a deque append:
        safe from any thread, no lock)."""
        if len(self._queue) == self._queue.maxlen:
            logger.warning("the impression buffer is full (Redis unreachable?): the oldest impression is dropped")
        self._queue.append((experiment_id, request_id, user_id, variant, items, time.time()))
        if self._thread is None:
            self._start()

    def _start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="recsys-impressions", daemon=True)
                self._thread.start()
                atexit.register(self.flush)  # a worker stopped with SIGTERM writes what it holds

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.flush()

    def flush(self) -> int:
        """Write every queued impression now; how many were written. On a Redis error they stay
        queued for the next try."""
        batch = []
        while self._queue:
            batch.append(self._queue.popleft())
        if not batch:
            return 0
        try:
            self.store.log_many(batch)
        except (redis.RedisError, OSError) as exc:
            logger.warning("%d impressions not written yet (%s); kept for the next try", len(batch), exc)
            self._queue.extendleft(reversed(batch))
            return 0
        self.written += len(batch)
        return len(batch)

    def stop(self) -> None:
        self._stop.set()
        self.flush()
