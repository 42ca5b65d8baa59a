"""What a worker logs of what it showed, written to Redis in batches off the request path: the
impressions of the experiments' reads (docs/experiments.md), and the items rotated feeds showed
(docs/rules.md). A read appends what it showed, already in the form Redis keeps, to a list in
memory; a background thread writes what is there every ``interval`` seconds in pipelined round
trips.

The read does the preparing (a few microseconds) because the thread must not: a thread running
Python keeps the interpreter until the switch interval (5 ms) takes it away, so a request that
arrives meanwhile waits, and the worker's slowest reads would pay for every flush."""
from __future__ import annotations

import atexit
import logging
import threading
import time
from collections import deque

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
        self._flushing = threading.Lock()
        self._thread: threading.Thread | None = None
        self.written = 0

    def add(self, experiment_id: str, request_id: str, user_id: str, variant: str, items: list[str]) -> None:
        """Queue one answer and the ids of the items it showed (a deque append: safe from any
        thread, no lock)."""
        if len(self._queue) == self._queue.maxlen:
            logger.warning("the impression buffer is full (Redis unreachable?): the oldest impression is dropped")
        self._queue.append((experiment_id, [request_id, user_id, variant, time.time(), items]))
        if self._thread is None:
            self._start()

    def shown(self, user_id: str, items: list[str]) -> None:
        """Queue the ids of what a rotated feed showed a user."""
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
        was taken stays queued for the next try.

        One flush at a time: a caller that reads the log next (a report) waits for a batch the
        background thread has taken from the queue and not written yet."""
        with self._flushing:
            if self.activity is not None:
                self._write(self._shown, self.activity.count_shown)
            written = self._write(self._queue, self.store.log_many)
            self.written += written
            return written

    @staticmethod
    def _write(queue: deque, write, chunk: int = 200) -> int:
        """Write what ``queue`` holds now in batches of ``chunk``: each batch's round trip lets the
        worker's requests run (the thread holds the interpreter while it prepares a batch, and a
        whole interval's impressions at once would hold it for milliseconds)."""
        written = 0
        for _ in range(-(-len(queue) // chunk)):
            batch = [queue.popleft() for _ in range(min(chunk, len(queue)))]
            try:
                write(batch)
            except (redis.RedisError, OSError) as exc:
                logger.warning("%d impressions not written yet (%s); kept for the next try", len(batch), exc)
                queue.extendleft(reversed(batch))
                break
            written += len(batch)
        return written

    def stop(self) -> None:
        self._stop.set()
        self.flush()
