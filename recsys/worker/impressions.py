"""What a worker logs of what it showed, written to Redis in batches off the request path: the
impressions of the experiments' reads (docs/experiments.md), and the items rotated feeds showed
(docs/rules.md). A read only appends to a list in memory; a background thread writes what is
there every ``interval`` seconds in one pipelined round trip per kind."""
from __future__ import annotations

import atexit
import logging
import threading
import time
from collections import deque

import orjson
import redis

from recsys.store.activity import ActivityStore
from recsys.store.experiments import ExperimentStore

__all__ = ["ImpressionLog"]

logger = logging.getLogger(__name__)


class ImpressionLog:
    """A worker's buffer of impressions.

    Args:
        store: where the experiments' impressions go.
        activity: where the counts of what rotated feeds showed go.
        interval: seconds between two writes; a worker killed with ``kill -9`` loses at most the
            impressions of its last interval, in every variant alike (fewer users and
            impressions, and the clicks on the lost reads with them: less precision, no bias).
        limit: the most impressions kept while Redis does not answer; older ones are dropped
            (and counted in the log).
    """

    def __init__(self, store: ExperimentStore, activity: ActivityStore | None = None, interval: float = 0.1,
                 limit: int = 100_000):
        self.store, self.activity, self.interval = store, activity, interval
        self._queue: deque = deque(maxlen=limit)
        self._shown: deque = deque(maxlen=limit)
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

    def shown(self, user_id: str, items: bytes | list[str]) -> None:
        """Queue what a rotated feed showed a user (its result rows as JSON, or its item ids)."""
        self._shown.append((user_id, items))
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
        """Write everything queued now; how many impressions were written. On a Redis error what
        was taken stays queued for the next try."""
        self._write(self._shown, lambda batch: self.activity.count_shown(
            [(user, [row["item_id"] for row in orjson.loads(items)] if isinstance(items, bytes) else items)
             for user, items in batch]))
        written = self._write(self._queue, self.store.log_many)
        self.written += written
        return written

    @staticmethod
    def _write(queue: deque, write) -> int:
        batch = []
        while queue:
            batch.append(queue.popleft())
        if not batch:
            return 0
        try:
            write(batch)
        except (redis.RedisError, OSError) as exc:
            logger.warning("%d impressions not written yet (%s); kept for the next try", len(batch), exc)
            queue.extendleft(reversed(batch))
            return 0
        return len(batch)

    def stop(self) -> None:
        self._stop.set()
        self.flush()
