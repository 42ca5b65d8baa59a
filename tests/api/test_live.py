"""The service as deployed: ``recsys serve`` (gunicorn, 2 workers) in a subprocess over real Redis
servers, under load, with Redis killed, a bundle published and workers restarted mid-load."""
from __future__ import annotations

import json
import threading
import time

import pytest

from recsys.store import ActivityStore, RedisStore, connect
from tests.api.conftest import API_KEY, WRITE
from tests.api.live import LiveServer, RedisProcess, publish, read_paths, request, run_load
from tests.conftest import LOCAL_REDIS, _local_redis_up, train

pytestmark = pytest.mark.slow  # end to end: `make check` leaves it out


@pytest.fixture(params=["embedded", pytest.param("server", marks=pytest.mark.redis_server)])
def live(request, tmp_path, served_bundle):
    """A running service: with no RECSYS_REDIS__URL (serve starts the embedded Redis) or on the
    local server under a namespace of its own."""
    env = {"RECSYS_API__API_KEY": API_KEY}
    if request.param == "server":
        if not _local_redis_up():
            pytest.skip(f"no Redis server at {LOCAL_REDIS}")
        prefix = f"live-{tmp_path.name[-20:]}-{int(time.time() * 1000) % 100000}"
        env |= {"RECSYS_REDIS__URL": LOCAL_REDIS, "RECSYS_REDIS__PREFIX": prefix}
    server = LiveServer(tmp_path, env, bundle=served_bundle.path)
    server.wait_ready()
    yield server
    server.stop()
    if request.param == "server":
        RedisStore(connect(LOCAL_REDIS), prefix=server.prefix).clear()


def test_20000_requests_at_concurrency_16_without_an_error(live, served_bundle):
    result = run_load(live.port, read_paths(served_bundle), n=20_000, concurrency=16)
    assert result.failures == [] and dict(result.statuses) == {200: 20_000}


def test_redis_killed_and_restarted_during_load(tmp_path, served_bundle):
    redis_server = RedisProcess(tmp_path).start()
    stop, results = threading.Event(), []
    load = None
    server = LiveServer(tmp_path, {"RECSYS_REDIS__URL": redis_server.url, "RECSYS_API__API_KEY": API_KEY,
                                   "RECSYS_REDIS__RETRY_AFTER": "0.5"}, bundle=served_bundle.path)
    try:
        server.wait_ready()
        load = threading.Thread(target=lambda: results.append(
            run_load(server.port, read_paths(served_bundle), n=10**9, concurrency=8, stop=stop)))
        load.start()
        time.sleep(1.0)
        redis_server.kill()
        time.sleep(1.5)
        status, _, body = request(server.port, "GET", "/readyz")
        ready = json.loads(body)
        event = {"user_id": "u", "item_id": str(served_bundle.item_ids.ids[0])}
        posted = request(server.port, "POST", "/v1/interactions", event, WRITE)
        redis_server.start()
        time.sleep(2.0)  # the workers find Redis again by themselves
        recovered = json.loads(request(server.port, "GET", "/readyz")[2])
        after = request(server.port, "POST", "/v1/interactions", event, WRITE)
    finally:  # the load stops whatever happened, or it outlives the test
        stop.set()
        if load is not None:
            load.join()
        server.stop()
        redis_server.kill()
    result = results[0]
    assert result.total > 500 and result.failures == [] and result.server_errors == 0, result.statuses
    assert status == 200 and ready["status"] == "degraded"
    assert any("Redis unreachable" in r for r in ready["reasons"])
    assert posted[0] == 503 and int(posted[1]["Retry-After"]) >= 1
    assert json.loads(posted[2])["error"]["code"] == "unavailable"
    assert recovered["status"] == "ready", recovered
    assert after[0] == 202


def test_publishing_during_load_switches_every_worker_without_a_failure(tmp_path, live, served_bundle,
                                                                          served_events):
    newer = train(served_bundle, served_events[0], tmp_path / "v2", alpha=1.0)
    assert newer.version != served_bundle.version
    stop = threading.Event()
    results = []
    load = threading.Thread(target=lambda: results.append(run_load(
        live.port, read_paths(served_bundle), n=10**9, concurrency=16, stop=stop, check_versions=True)))
    load.start()
    try:
        time.sleep(1.0)
        # the CLI's timeout: a publish under load waits for a busy Redis longer than a read does
        publish(live.redis_url, newer.path, live.prefix)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:  # every worker serves the new version
            seen = {json.loads(request(live.port, "GET", "/healthz")[2])["version"] for _ in range(10)}
            if seen == {newer.version}:
                break
            time.sleep(0.2)
        time.sleep(0.5)
    finally:  # the load stops whatever happened, or it outlives the test
        stop.set()
        load.join()
    result = results[0]
    assert result.failures == [] and set(result.statuses) == {200}, result.statuses
    assert result.mismatched == 0  # header and body name the same, single version
    assert set(result.versions) == {served_bundle.version, newer.version}
    assert result.versions[-1] == newer.version
    tail = result.versions[-50:]
    assert tail == [newer.version] * len(tail)


def test_10000_interactions_survive_a_worker_restart(live, served_bundle):
    items = [str(i) for i in served_bundle.item_ids.ids[:200]]
    acked: list[str] = []
    lock = threading.Lock()
    counter = iter(range(10_000))
    failures: list[str] = []

    def post():
        while (i := next(counter, None)) is not None:
            event = {"user_id": f"u{i % 500}", "item_id": items[i % len(items)], "event": "view"}
            try:
                status, _, body = request(live.port, "POST", "/v1/interactions", event, WRITE)
            except OSError as exc:
                failures.append(repr(exc))
                continue
            if status != 202:
                failures.append(f"{status} {body[:200]!r}")
                continue
            with lock:
                acked.extend(json.loads(body)["ids"])

    threads = [threading.Thread(target=post) for _ in range(16)]
    for t in threads:
        t.start()
    time.sleep(2.0)
    live.restart_workers()
    for t in threads:
        t.join()
    live.wait_ready()
    activity = ActivityStore(connect(live.redis_url), prefix=live.prefix)
    logged = [entry_id for entry_id, _ in activity.read_log()]
    assert failures == [] and len(acked) == 10_000
    assert sorted(logged) == sorted(acked)


def _neighbours(port: int, item: str) -> list[list[str]]:
    """An item's similar items (k = 10), asked 40 times: enough that both workers answer, from
    their caches."""
    return [[row["item_id"] for row in json.loads(request(port, "GET", f"/v1/items/{item}/similar?k=10")[2])["items"]]
            for _ in range(40)]


def test_item_writes_reach_every_worker_at_once(live, served_bundle):
    source = str(served_bundle.item_ids.ids[20])

    before = _neighbours(live.port, source)
    victim = before[0][0]
    assert all(ids == before[0] for ids in before)
    assert request(live.port, "DELETE", f"/v1/items/{victim}", headers=WRITE)[0] == 200
    assert all(victim not in ids for ids in _neighbours(live.port, source))
    item = json.loads(request(live.port, "GET", f"/v1/items/{source}")[2])["item"]
    twin = {k: item[k] for k in ("title", "description", "tags", "colour", "price", "category") if item.get(k)}
    assert request(live.port, "PUT", "/v1/items/LIVE-TWIN", twin, WRITE, timeout=120)[0] == 201
    assert all(ids[0] == "LIVE-TWIN" for ids in _neighbours(live.port, source))


def test_activity_reaches_every_workers_feed_within_a_second(live, served_bundle):
    user = str(served_bundle.collab.user_ids.ids[11])
    item = str(served_bundle.item_ids.ids[30])
    path = f"/v1/users/{user}/recommendations?k=10"

    def recent_counts() -> set[int]:  # enough requests that both workers answer, from their caches
        return {json.loads(request(live.port, "GET", path)[2])["recent"] for _ in range(40)}

    assert recent_counts() == {0}
    event = {"user_id": user, "item_id": item, "event": "click"}
    assert request(live.port, "POST", "/v1/interactions", event, WRITE)[0] == 202
    deadline = time.monotonic() + 1.0
    while (counts := recent_counts()) != {1} and time.monotonic() < deadline:
        time.sleep(0.05)
    assert counts == {1}


def test_a_rule_reaches_every_worker_within_a_second(live, served_bundle):
    source = str(served_bundle.item_ids.ids[20])

    before = _neighbours(live.port, source)
    pinned, buried = str(served_bundle.item_ids.ids[-1]), before[0][0]
    assert pinned not in before[0]
    for rule in ({"action": "pin", "match": {"item_ids": [pinned]}, "position": 3},
                 {"action": "bury", "match": {"item_ids": [buried]}}):
        assert request(live.port, "POST", "/v1/rules", rule, WRITE)[0] == 201
    created = time.monotonic()
    seen = _neighbours(live.port, source)
    while not all(ids[2] == pinned and buried not in ids for ids in seen):
        assert time.monotonic() - created < 1.0, seen[:3]
        time.sleep(0.05)
        seen = _neighbours(live.port, source)
    assert all(len(ids) == 10 and ids[:2] == before[0][1:3] for ids in seen)
