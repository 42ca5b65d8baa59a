"""`recsys demo`: builds, trains, publishes and serves; a second run reuses; Ctrl-C stops it all."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.api.live import free_port, request

pytestmark = pytest.mark.slow  # end to end: `make check` leaves it out


def start_demo(tmp_path, port: int) -> subprocess.Popen:
    env = {**os.environ, "RECSYS_STATE_DIR": str(tmp_path / "state"), "RECSYS_MODELS_DIR": str(tmp_path / "models"),
           "RECSYS_INDEX__N_TREES": "5", "RECSYS_API__WORKERS": "1"}
    return subprocess.Popen([sys.executable, "-m", "recsys", "demo", "--catalog", "synthetic:150", "--users", "60",
                             "--port", str(port), "--no-progress"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def wait_ready(process: subprocess.Popen, port: int, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stdout.read()
        try:
            if request(port, "GET", "/readyz", timeout=2)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.3)
    raise TimeoutError("recsys demo did not become ready")


def stop(process: subprocess.Popen) -> str:
    process.send_signal(signal.SIGINT)  # what Ctrl-C sends
    output, _ = process.communicate(timeout=60)
    return output


def test_demo_serves_the_shop_then_reuses_what_it_built(tmp_path):
    port = free_port()
    process = start_demo(tmp_path, port)
    try:
        wait_ready(process, port)
        status, _, body = request(port, "GET", "/")
        assert status == 200 and b"recsys demo shop" in body
        items = json.loads(request(port, "GET", "/v1/items?limit=3")[2])["items"]
        assert len(items) == 3 and items[0]["image"]
        assert request(port, "GET", items[0]["image"])[0] == 200  # the rendered product image
        event = {"user_id": "visitor-1", "item_id": items[0]["item_id"], "event": "click"}
        assert request(port, "POST", "/v1/interactions", event)[0] == 202  # no key: the page posts clicks
        assert request(port, "GET", "/admin")[0] == 200
        assert request(port, "GET", "/v1/admin/outliers")[0] == 401  # the demo made a key: curation needs it
    finally:
        first = stop(process)
    assert "recsys demo: open http://127.0.0.1:" in first and "users     60" in first
    key = first.split("/admin  (API key: ")[1].split(")")[0]
    assert len(key) >= 12 and "RECSYS_API_KEY" not in key
    assert process.returncode is not None
    assert not _redis_running(tmp_path)  # the embedded Redis the demo started is gone too

    process = start_demo(tmp_path, port)
    try:
        wait_ready(process, port)
    finally:
        second = stop(process)
    assert "reusing" in second and "users     60" not in second  # nothing built or trained again


def _redis_running(tmp_path) -> bool:
    import redis

    try:
        return redis.Redis(unix_socket_path=str(tmp_path / "state" / "redis" / "redis.sock")).ping()
    except (redis.RedisError, OSError):
        return False
