"""How recsys talks to Redis: a client that fails fast, a breaker that stops asking a dead server,
and the checks and redaction of what is said about a server."""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TypeVar

import redis

__all__ = ["Breaker", "connect", "durability_warning", "redact"]

logger = logging.getLogger(__name__)
T = TypeVar("T")


def redact(url: str) -> str:
    """A Redis URL without its password, for logs and messages."""
    if "@" not in url:
        return url
    scheme, _, rest = url.partition("://")
    return f"{scheme}://***@{rest.rpartition('@')[2]}"


def connect(url: str, *, socket_timeout: float = 0.5) -> redis.Redis:
    """A redis-py client that fails fast (no retries) so a caller can degrade instead of hang."""
    return redis.Redis.from_url(url, socket_timeout=socket_timeout,
                                socket_connect_timeout=socket_timeout, retry_on_timeout=False,
                                retry=None, health_check_interval=10)


class Breaker:
    """Stops calling Redis for ``retry_after`` seconds after a failure, so a dead server costs one
    timeout per interval instead of one per request.

    Attributes:
        error: the last failure, ``None`` while healthy.
    """

    def __init__(self, retry_after: float = 1.0):
        self.retry_after = retry_after
        self.error: str | None = None
        self._until = 0.0
        self._lock = threading.Lock()

    @property
    def open(self) -> bool:
        """True while calls are being skipped."""
        return time.monotonic() < self._until

    def call(self, fn: Callable[[], T], default: T = None) -> T:
        """``fn()``, or ``default`` when Redis failed now or recently (never raises RedisError)."""
        if self.open:
            return default
        try:
            result = fn()
        except (redis.RedisError, OSError) as exc:
            self.fail(exc)
            return default
        if self.error is not None:
            with self._lock:
                logger.warning("Redis is reachable again")
                self.error = None
        return result

    def fail(self, exc: BaseException) -> None:
        with self._lock:
            if self.error is None:
                logger.warning("Redis unavailable (%s: %s); serving without it", type(exc).__name__, exc)
            self.error = f"{type(exc).__name__}: {exc}"
            self._until = time.monotonic() + self.retry_after


def durability_warning(client: redis.Redis) -> str | None:
    """Why this Redis may lose acknowledged interactions on a restart (AOF off, or unknown), or
    ``None`` when its append-only file is on."""
    try:
        value = client.config_get("appendonly").get("appendonly")
    except redis.RedisError as exc:  # managed services often rename or forbid CONFIG
        return (f"could not read the Redis setting appendonly ({exc}); unless the server keeps an "
                "append-only file, a Redis restart loses acknowledged interactions")
    if value != "yes":
        return ("Redis runs with appendonly no: a Redis restart loses acknowledged interactions and "
                "published bundles; set appendonly yes (docker-compose.yml does)")
    return None
