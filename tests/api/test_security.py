"""Each defect found by probing the running service, replayed against a real ``recsys serve``
(gunicorn, two workers) over a real Redis, with a slow and hostile image host on loopback standing
in for the remote servers (docs/security.md)."""
from __future__ import annotations

import base64
import contextlib
import json
import os
import signal
import socket
import threading
import time
from pathlib import Path

import pytest
from PIL import Image

from recsys.store import ActivityStore, RedisStore, connect
from tests.api.conftest import API_KEY, WRITE
from tests.api.live import LiveServer, RedisProcess, request
from tests.hostile import HostileServer

pytestmark = pytest.mark.slow  # end to end: `make check` leaves it out


@pytest.fixture(scope="module")
def host():
    with HostileServer(delay=30.0) as server:
        yield server


@pytest.fixture(scope="module")
def redis_no_aof(tmp_path_factory):
    server = RedisProcess(tmp_path_factory.mktemp("redis"), appendonly=False).start()
    yield server
    server.kill()


@pytest.fixture(scope="module")
def strict(tmp_path_factory, redis_no_aof, served_bundle):
    """The service with its defaults (image URLs to private hosts refused), on a Redis without AOF."""
    server = LiveServer(tmp_path_factory.mktemp("strict"),
                        {"RECSYS_API__API_KEY": API_KEY, "RECSYS_REDIS__URL": redis_no_aof.url},
                        bundle=served_bundle.path)
    server.wait_ready()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def fetching(tmp_path_factory, served_bundle):
    """The service allowed to fetch from loopback (where the hostile host is), embedded Redis."""
    server = LiveServer(tmp_path_factory.mktemp("fetching"),
                        {"RECSYS_API__API_KEY": API_KEY, "RECSYS_IMAGES__FETCH_PRIVATE": "true",
                         "RECSYS_IMAGES__FETCH_TIMEOUT": "20"},
                        bundle=served_bundle.path)
    server.wait_ready()
    yield server
    server.stop()


def _json_error(status: int, headers: dict, body: bytes, expected: int, text: str = "") -> dict:
    assert status == expected, body[:300]
    assert headers["Content-Type"] == "application/json", headers
    error = json.loads(body)["error"]
    assert text in error["message"], error
    return error


def _wait_for_version(server: LiveServer, version: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if json.loads(request(server.port, "GET", "/healthz")[2])["version"] == version:
            return
        time.sleep(0.2)
    raise TimeoutError(f"{version} not served after {timeout} s")


# -- 1. files named in a catalog ------------------------------------------------------------------

def test_a_catalog_path_outside_its_folder_is_never_read_or_shown(strict, tmp_path, monkeypatch, served_bundle):
    """A catalog naming /etc/passwd, /etc/shadow and ../ paths is built and published: the image
    endpoint has nothing for them, and no response names a server path."""
    import recsys

    monkeypatch.setenv("RECSYS_STATE_DIR", str(tmp_path / "state"))
    shop = tmp_path / "shop"
    (shop / "img").mkdir(parents=True)
    Image.new("RGB", (120, 90), (200, 40, 40)).save(shop / "img" / "red.png")
    rows = [("REAL", "img/red.png"), ("UP", "../../../../../../etc/passwd"), ("ABS", "/etc/shadow"),
            ("HOSTS", "/etc/hosts")]
    lines = ["item_id,title,image"] + [f"{i},a red dress {n},{p}" for n, (i, p) in enumerate(rows)]
    (shop / "catalog.csv").write_text("\n".join(lines) + "\n")
    with pytest.warns(Warning, match="3 image path"):
        path = recsys.build(shop / "catalog.csv", tmp_path / "models" / "crafted", show_progress=False,
                            weights={"image": 1.0, "text": 1.0, "tabular": 0.0}).path
    store = RedisStore(connect(strict.redis_url), prefix=strict.prefix)
    store.publish(path)
    _wait_for_version(strict, path.name)
    status, headers, body = request(strict.port, "GET", "/v1/items/REAL/image")
    assert status == 200 and headers["Content-Type"] == "image/jpeg" and body[:2] == b"\xff\xd8"
    for item in ("UP", "ABS", "HOSTS"):
        _json_error(*request(strict.port, "GET", f"/v1/items/{item}/image"), 404, "has no image")
        status, _, body = request(strict.port, "GET", f"/v1/items/{item}")
        assert status == 200 and b"/etc" not in body and b".." not in body
    assert str(shop).encode() not in request(strict.port, "GET", "/v1/items/REAL")[2]
    store.activate(served_bundle.version)  # the other tests read the served shop
    _wait_for_version(strict, served_bundle.version)


# -- 2. a crafted bundle ------------------------------------------------------------------------

def test_a_crafted_manifest_in_redis_writes_nothing_outside_the_cache(strict, served_bundle):
    store = RedisStore(connect(strict.redis_url), prefix=strict.prefix)
    before = json.loads(request(strict.port, "GET", "/healthz")[2])["version"]
    manifest = json.loads((served_bundle.path / "manifest.json").read_text())
    version = "29990101T000000Z"
    store.client.set(store.keys.manifest(version),
                     json.dumps({**manifest, "version": version, "name": "../../../escape"}))
    store.activate(version)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        ready = json.loads(request(strict.port, "GET", "/readyz")[2])
        if any(version in reason for reason in ready["reasons"]):
            break
        time.sleep(0.2)
    assert any("bundle name '../../../escape' is not allowed" in r for r in ready["reasons"]), ready
    assert json.loads(request(strict.port, "GET", "/healthz")[2])["version"] == before
    state = Path(strict.log).parent
    assert not list(state.rglob("*escape*")) and not list(state.parent.rglob("escape"))
    store.activate(before)


# -- 3. stored XSS ----------------------------------------------------------------------------------

@pytest.mark.parametrize("image", [
    "data:image/svg+xml;base64," + base64.b64encode(b"<svg xmlns='http://www.w3.org/2000/svg'>"
                                                     b"<script>alert(document.domain)</script></svg>").decode(),
    "data:image/png;text/html;base64," + base64.b64encode(b"<script>alert(1)</script>").decode(),
])
def test_a_script_posing_as_an_image_is_refused(strict, image):
    status, headers, body = request(strict.port, "PUT", "/v1/items/XSS", {"title": "t", "image": image},
                                    headers=WRITE)
    _json_error(status, headers, body, 400, "the image cannot be used")
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Content-Security-Policy"] == "default-src 'none'; frame-ancestors 'none'"
    _json_error(*request(strict.port, "GET", "/v1/items/XSS/image"), 404)


# -- 4. SSRF and stalled workers ----------------------------------------------------------------------

def test_an_image_url_on_the_server_s_network_is_refused(strict, redis_no_aof):
    for url in (f"http://127.0.0.1:{redis_no_aof.port}/", "http://169.254.169.254/latest/meta-data/",
                "http://localhost:6379/"):
        started = time.monotonic()
        status, headers, body = request(strict.port, "PUT", "/v1/items/SSRF", {"title": "t", "image": url},
                                        headers=WRITE)
        _json_error(status, headers, body, 400, "loopback, private or link-local")
        assert time.monotonic() - started < 2


def test_a_huge_image_url_is_cut_off_at_the_size_cap(fetching, host):
    status, headers, body = request(fetching.port, "PUT", "/v1/items/HUGE", {"title": "t", "image": host.url("/huge")},
                                    headers=WRITE, timeout=30)
    if status == 202:  # still downloading after fetch_wait: it ends at the cap, not at 64 MiB
        time.sleep(3)
        _json_error(*request(fetching.port, "GET", "/v1/items/HUGE"), 404)
    else:
        _json_error(status, headers, body, 400, "limit")


def test_reads_keep_their_latency_while_puts_hang_on_slow_hosts(fetching, host, served_bundle):
    items = [str(i) for i in served_bundle.item_ids.ids[:20]]
    answers = []

    def put(n: int, path: str) -> None:
        answers.append(request(fetching.port, "PUT", f"/v1/items/SLOW-{n}",
                               {"title": "a dress", "image": host.url(path)}, headers=WRITE, timeout=30))

    puts = [threading.Thread(target=put, args=(n, p)) for n, p in enumerate(["/never", "/trickle", "/never"])]
    for thread in puts:
        thread.start()
    latencies = []
    deadline = time.monotonic() + 4
    while time.monotonic() < deadline:
        started = time.monotonic()
        status, _, _ = request(fetching.port, "GET", f"/v1/items/{items[len(latencies) % 20]}/similar?k=10")
        latencies.append(time.monotonic() - started)
        assert status == 200
    for thread in puts:
        thread.join()
    print(f"\n{len(latencies)} reads while 3 PUTs hung: median {sorted(latencies)[len(latencies) // 2] * 1000:.1f} "
          f"ms, max {max(latencies) * 1000:.0f} ms; PUT answers {sorted(s for s, _, _ in answers)}")
    # a PUT waits images.fetch_wait (0.5 s) at most: a read queued behind it waits no longer
    assert max(latencies) < 1.5, sorted(latencies)[-5:]
    assert sorted(s for s, _, _ in answers) in ([202, 202, 503], [202, 202, 202]), answers
    assert "WORKER TIMEOUT" not in fetching.log.read_text()


# -- 5, 6. interactions ------------------------------------------------------------------------------

def test_interactions_the_trainer_would_refuse_are_refused_and_retries_are_safe(strict, served_bundle):
    item = str(served_bundle.item_ids.ids[0])
    for bad in ({"user_id": "u\u00a0"}, {"user_id": "u\u200b"}, {"user_id": "\u202eu"},
                {"timestamp": 1.7e12}, {"timestamp": 1e300}):
        event = {"user_id": "u", "item_id": item, "event": "view", **bad}
        _json_error(*request(strict.port, "POST", "/v1/interactions", event, headers=WRITE), 400)
    log = ActivityStore(connect(strict.redis_url), prefix=strict.prefix).log_length
    before = log()
    events = [{"user_id": f"retry-{i}", "item_id": item, "event": "view"} for i in range(9)]
    first = request(strict.port, "POST", "/v1/interactions", events, headers={**WRITE, "Idempotency-Key": "k-1"})
    again = request(strict.port, "POST", "/v1/interactions", events, headers={**WRITE, "Idempotency-Key": "k-1"})
    assert first[0] == again[0] == 202 and json.loads(again[2])["duplicate"] is True
    assert log() == before + 9


# -- 7, 8. request shapes ---------------------------------------------------------------------------

def _raw(port: int, data: bytes) -> tuple[int, dict, bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(data)
        with contextlib.suppress(OSError):  # a server that refused the body early may have closed already
            sock.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers, body


def test_malformed_requests_end_as_json_errors(strict, served_bundle):
    item = str(served_bundle.item_ids.ids[0])
    deep = b"[" * 100_000
    _json_error(*_raw(strict.port, b"POST /v1/interactions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      b"X-API-Key: " + API_KEY.encode() + b"\r\nContent-Length: " + str(len(deep)).encode()
                      + b"\r\nConnection: close\r\n\r\n" + deep), 400, "not valid JSON")
    chunk = b"x" * (1 << 20)
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(3)) + b"0\r\n\r\n"
    _json_error(*_raw(strict.port, b"POST /v1/interactions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      b"X-API-Key: " + API_KEY.encode() + b"\r\nTransfer-Encoding: chunked\r\n"
                      b"Connection: close\r\n\r\n" + chunked), 413)
    for k in ("%2B5", "%205", "%D9%A3"):
        _json_error(*request(strict.port, "GET", f"/v1/items/{item}/similar?k={k}"), 400, "k must be")
    _json_error(*request(strict.port, "GET", "/v1/items/" + "x" * 4500 + "/similar"), 400, "1 to 200 characters")


# -- 10. workers outlive a killed master ------------------------------------------------------------

def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def test_workers_exit_promptly_when_their_master_is_killed(tmp_path, served_bundle):
    server = LiveServer(tmp_path, {"RECSYS_API__API_KEY": API_KEY}, bundle=served_bundle.path)
    children = []
    try:
        server.wait_ready()
        children = _children(server.process.pid)
        workers = [pid for pid in children if b"redis-server" not in Path(f"/proc/{pid}/cmdline").read_bytes()]
        assert len(workers) == 2
        os.kill(server.process.pid, signal.SIGKILL)
        server.process.wait()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and any(_running(pid) for pid in workers):
            time.sleep(0.1)
        assert not [pid for pid in workers if _running(pid)], "workers still running after their master died"
    finally:
        server.stop()
        for pid in children:  # the embedded Redis the killed master started, now an orphan
            if _running(pid):
                os.kill(pid, signal.SIGTERM)


def _running(pid: int) -> bool:
    try:
        return "\nState:\tZ" not in Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False


# -- 11. durability of the log ---------------------------------------------------------------------

def test_serve_warns_when_redis_keeps_no_append_only_file(strict, fetching):
    assert "Redis runs with appendonly no" in strict.log.read_text()
    assert "appendonly" not in fetching.log.read_text()  # the embedded server keeps one
