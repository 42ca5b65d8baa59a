"""Prometheus metrics of the API: latency per endpoint, cache hits, bundle version, fresh items.

Under gunicorn every worker writes its samples to ``PROMETHEUS_MULTIPROC_DIR`` (``recsys serve``
sets it) and ``/metrics`` adds them up across workers; without it each app has its own registry.
"""
from __future__ import annotations

import os

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, multiprocess

__all__ = ["Metrics", "CONTENT_TYPE"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)


class Metrics:
    """The API's metrics, registered in a registry of their own."""

    def __init__(self):
        self.multiprocess = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
        self.registry = CollectorRegistry()
        r = self.registry
        self.latency = Histogram("recsys_request_seconds", "request latency", ["endpoint", "status"],
                                 buckets=_BUCKETS, registry=r)
        self.cache = Counter("recsys_cache_total", "result cache lookups", ["endpoint", "result"],
                             registry=r)
        self.interactions = Counter("recsys_interactions_total", "interactions accepted", registry=r)
        self.unexpected = Counter("recsys_unexpected_errors_total", "requests that failed with an "
                                  "unexpected exception in the fast path (answered 500, traceback logged)",
                                  ["endpoint"],
                                  registry=r)
        self.bundle = Gauge("recsys_bundle_info", "1 for the bundle version a worker serves",
                            ["version"], registry=r, multiprocess_mode="liveall")
        self.fresh = Gauge("recsys_fresh_items", "items put since the bundle (served exactly)",
                           registry=r, multiprocess_mode="livemax")
        self.redis_up = Gauge("recsys_redis_up", "1 when Redis answered the last call",
                              registry=r, multiprocess_mode="livemin")
        self._version: str | None = None
        self._redis_up: bool | None = None
        self._latency: dict[tuple[str, str], object] = {}  # labelled children, looked up once
        self._cache: dict[tuple[str, str], object] = {}

    def request(self, rule: str, status: int, seconds: float, redis_up: bool) -> None:
        """Record one request: its latency under its URL rule and status, and Redis's health."""
        key = (rule, str(status))
        child = self._latency.get(key)
        if child is None:
            child = self._latency[key] = self.latency.labels(*key)
        child.observe(seconds)
        self.redis(redis_up)

    def cached(self, endpoint: str, result: str) -> None:
        """Count how a result was answered (``local``, ``hit``, ``miss``, ``lookup``, ...)."""
        key = (endpoint, result)
        child = self._cache.get(key)
        if child is None:
            child = self._cache[key] = self.cache.labels(*key)
        child.inc()

    def serving(self, version: str, fresh_items: int) -> None:
        if self._version is not None and self._version != version:
            self.bundle.labels(self._version).set(0)
        self._version = version
        self.bundle.labels(version).set(1)
        self.fresh.set(fresh_items)

    def redis(self, up: bool) -> None:
        """Record whether Redis answered (written only when it changes: it is asked per request)."""
        if up != self._redis_up:
            self._redis_up = up
            self.redis_up.set(1 if up else 0)

    def render(self) -> bytes:
        if self.multiprocess:
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return generate_latest(registry)
        return generate_latest(self.registry)
