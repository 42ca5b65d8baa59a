"""The worker's local state: the LRU cache (bound, per-user drops, no stale value stored after a
drop), recent items known without Redis, and the transposed copies shared between workers."""
import numpy as np

from recsys.store.messages import ActivityPosted
from recsys.worker.memory import WorkerMemory


def test_local_cache_is_bounded_and_drops_a_users_entries():
    cache = WorkerMemory(max_items=3, max_users=2)
    for i in range(4):
        cache.put(("item", f"i{i}", "q"), b"body")
    assert len(cache) == 3 and cache.get(("item", "i0", "q")) is None
    cache.put(("user", "u1", "q"), b"feed")
    cache.put(("user", "u1", "q2"), b"feed")
    cache.put_recent("u1", ("a", "b"), cache.epoch)
    cache.put_recent("u2", (), cache.epoch)
    for i in range(5, 9):  # many distinct queries push out bodies, never the users' recent items
        cache.put(("item", f"i{i}", "q"), b"body")
    assert cache.recent("u1") == ("a", "b") and cache.recent("u2") == ()
    cache.put(("user", "u1", "q"), b"feed")
    cache.expect(["u1"])  # this worker posts for u1: its answers go, its recent items are due
    assert cache.get(("user", "u1", "q")) is None and cache.recent("u1") is None
    assert cache.recent("u2") == () and cache.get(("item", "i8", "q")) == b"body"
    cache.put_recent("u3", ("c",), cache.epoch)  # the least recently used user goes
    cache.put_recent("u4", ("d",), cache.epoch)
    assert cache.recent("u2") is None and cache.recent("u4") == ("d",)


def test_a_value_read_before_a_drop_is_not_stored_after_it():
    cache = WorkerMemory(max_items=10, max_users=10)
    epoch = cache.epoch  # a request starts reading the user's recent items ...
    cache.heard(_message({"u1": ["x"]}), origin="me")  # ... the user posts an interaction meanwhile
    cache.put_recent("u1", ("old",), epoch)
    cache.put(("user", "u1", "q"), b"old feed", epoch)
    assert cache.recent("u1") is None and cache.get(("user", "u1", "q")) is None
    cache.put_recent("u1", ("new",), cache.epoch)
    assert cache.recent("u1") == ("new",)
    epoch = cache.epoch
    cache.clear()  # re-subscribing clears everything, which counts as a drop too
    cache.put_recent("u1", ("old",), epoch)
    assert len(cache) == 0


def test_a_cache_of_size_zero_keeps_nothing_and_forgets_nothing_it_never_had():
    cache = WorkerMemory(max_items=0, max_users=0)
    cache.put(("user", "u1", "q"), b"feed")
    cache.put_recent("u1", ("a",), cache.epoch)
    assert len(cache) == 0 and cache.get(("user", "u1", "q")) is None and cache.recent("u1") is None
    cache.expect(["u1"])  # nothing indexed, nothing to drop
    assert cache.epoch == 1


def _message(recent: dict, origin: str = "other", at: float | None = None, cap: int = 3) -> ActivityPosted:
    import time

    return ActivityPosted(recent, origin, time.time() if at is None else at, 3600, cap)


def test_users_outside_the_active_set_have_no_recent_items_and_messages_update_known_lists():
    cache = WorkerMemory(max_items=10, max_users=10, max_active=3)
    assert cache.recent("u1") is None  # nothing known before the set is loaded
    cache.know_active({"u1"})
    assert cache.recent("u1") is None and cache.recent("u2") == ()
    cache.put(("user", "u2", "q"), b"feed")
    cache.heard(_message({"u2": ["b", "a"]}), origin="me")
    assert cache.recent("u2") == ("b", "a") and cache.get(("user", "u2", "q")) is None
    cache.heard(_message({"u2": ["c", "a"], "u1": ["x"]}), origin="me")
    assert cache.recent("u2") == ("c", "a", "b")  # moved to the front, distinct, at most cap
    assert cache.recent("u1") is None  # active before, list never read: still unknown
    cache.heard(_message({"u3": ["y"], "u4": ["z"]}), origin="me")  # the set outgrows max_active
    assert cache.recent("u5") is None and cache.recent("u2") == ("c", "a", "b")
    cache.clear()
    assert cache.recent("u2") is None and cache.recent("u6") is None


def test_own_posts_are_unknown_until_their_message_and_expired_lists_are_not_trusted():
    import math
    import time

    cache = WorkerMemory(max_items=10, max_users=10, max_active=10)
    cache.know_active(set())
    cache.put(("user", "u1", "q"), b"feed")
    cache.expect(["u1"])  # this worker posts for u1
    assert cache.recent("u1") is None and cache.get(("user", "u1", "q")) is None
    cache.heard(_message({"u1": ["a"]}, origin="another"), origin="me")
    assert cache.recent("u1") is None  # another worker's post: ours is still due
    cache.heard(_message({"u1": ["b"]}, origin="me"), origin="me")
    assert cache.recent("u1") == ("b", "a")
    cache.put_recent("u2", ("a",), cache.epoch, expires=time.time() - 1)  # Redis dropped it since
    assert cache.recent("u2") is None
    cache.put_recent("u3", ("a",), cache.epoch, expires=time.time() + 0.5)
    cache.heard(_message({"u3": ["b"]}), origin="me")  # expires within a second of the post
    assert cache.recent("u3") is None
    cache.put_recent("u3", ("a",), cache.epoch, expires=math.inf)
    cache.heard(_message({"u3": ["b"]}), origin="me")
    assert cache.recent("u3") == ("b", "a")


def test_a_worker_answers_feeds_after_posts_without_reading_redis(app, client, tmp_path, redis_url,
                                                                   redis_prefix, served_bundle):
    """Two workers over one Redis: after a post through one of them, both know the user's recent
    items from the message alone, and the feeds that follow read no recent list from Redis."""
    import time

    from recsys.api import create_app
    from recsys.store import connect
    from tests.api.conftest import WRITE, api_settings

    other = create_app(api_settings(tmp_path / "other", redis_url, redis_prefix))
    workers = [app.extensions["recsys"], other.extensions["recsys"]]
    deadline = time.monotonic() + 10
    while not all(w.subscribed for w in workers) and time.monotonic() < deadline:
        time.sleep(0.01)
    redis = connect(redis_url)
    item = str(served_bundle.item_ids.ids[5])
    for user in ("visitor-a", str(served_bundle.collab.user_ids.ids[0])):
        assert [w.memory.recent(user) for w in workers] == [(), ()]  # no activity: nothing to read
        assert client.post("/v1/interactions", json={"user_id": user, "item_id": item},
                           headers=WRITE).status_code == 202
        deadline = time.monotonic() + 5
        while any(w.memory.recent(user) != (item,) for w in workers) and time.monotonic() < deadline:
            time.sleep(0.01)  # both hear the post, the poster included
        assert [w.memory.recent(user) for w in workers] == [(item,), (item,)]
        lranges = _calls(redis, "lrange")
        feeds = [c.get(f"/v1/users/{user}/recommendations?k=5") for c in (client, other.test_client())]
        assert _calls(redis, "lrange") == lranges
        assert feeds[0].json["items"] == feeds[1].json["items"] and feeds[0].json["recent"] == 1
    other.extensions["recsys"].stop()


def test_a_post_sends_its_users_feed_lists_to_every_worker(app, client, tmp_path, redis_url, redis_prefix,
                                                           served_bundle):
    """After a post of few users, every worker holds each user's feed list before the user's
    first feed (a lookup there, equal on both); a post of more users than api.post_lists sends none."""
    import time

    from recsys.api import create_app
    from recsys.serve import FeedQuery, Recommender
    from tests.api.conftest import WRITE, api_settings

    other = create_app(api_settings(tmp_path / "other", redis_url, redis_prefix, post_lists=2))
    workers = [app.extensions["recsys"], other.extensions["recsys"]]
    deadline = time.monotonic() + 10
    while not all(w.subscribed for w in workers) and time.monotonic() < deadline:
        time.sleep(0.01)
    items = [str(i) for i in served_bundle.item_ids.ids[:12]]
    trained = str(served_bundle.collab.user_ids.ids[3])
    computing = Recommender(served_bundle)  # no kept lists: computes every feed

    def heard(user: str, recent: list[str]) -> bool:
        deadline = time.monotonic() + 5
        while any(w.memory.recent(user) != tuple(recent) for w in workers) and time.monotonic() < deadline:
            time.sleep(0.01)
        return all(w.memory.recent(user) == tuple(recent) for w in workers)

    def sources(user: str, recent: list[str]) -> list[str]:
        return [w.recommender().plan(FeedQuery(user, 10, exclude_seen=True), logged_recent=recent).source
                for w in workers]

    for user, post in [("visitor-lists", items[:2]), (trained, items[2:3]), ("visitor-lists", items[3:4])]:
        before = tuple(workers[1].memory.recent(user) or ())
        events = [{"user_id": user, "item_id": i, "event": "click", "timestamp": 1e9 + n}
                  for n, i in enumerate(post)]
        assert client.post("/v1/interactions", json=events, headers=WRITE).status_code == 202
        recent = list(dict.fromkeys([*post[::-1], *before]))
        assert heard(user, recent)
        assert sources(user, recent) == ["lookup", "lookup"]  # made by the poster, kept by both
        feeds = [c.get(f"/v1/users/{user}/recommendations?k=10").json for c in (client, other.test_client())]
        assert feeds[0]["items"] == feeds[1]["items"] and feeds[0]["recent"] == len(recent)
        computed = computing.recommend(user, k=10, recent_items=recent)
        assert [r["item_id"] for r in feeds[1]["items"]] == [s.item_id for s in computed.items]
    # more users than the posting worker's limit (2): the lists are made at the first feeds
    batch = [{"user_id": f"visitor-batch-{n}", "item_id": items[5 + n], "event": "click"} for n in range(3)]
    assert other.test_client().post("/v1/interactions", json=batch, headers=WRITE).status_code == 202
    assert heard("visitor-batch-2", [items[7]])
    assert sources("visitor-batch-2", [items[7]]) == ["list", "list"]
    other.extensions["recsys"].stop()


def _calls(redis, command: str) -> int:
    return redis.info("commandstats").get(f"cmdstat_{command}", {}).get("calls", 0)


def test_workers_share_the_transposed_copies_for_full_products(app, serving, tmp_path, redis_url,
                                                               redis_prefix):
    """The combined vectors and item factors, transposed for products with every item, are files
    under the state folder named after the bundle's checksums; a second worker maps them."""
    from recsys.api import create_app
    from tests.api.conftest import api_settings

    recommender = serving.recommender()
    files = recommender.bundle.manifest["files"]
    keys = {files["vectors/combined.npy"]["sha256"], files["collab/item_factors.npy"]["sha256"]}
    assert recommender.scan_keys() == keys
    folder = tmp_path / "state" / "scans"
    assert sorted(p.name for p in folder.iterdir()) == sorted(f"{k}.columns.npy" for k in keys)
    stamps = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    combined = recommender.bundle.vectors.combined
    np.testing.assert_array_equal(np.load(folder / f"{files['vectors/combined.npy']['sha256']}.columns.npy"),
                                  combined.T)
    other = create_app(api_settings(tmp_path, redis_url, redis_prefix))  # same state folder
    try:
        assert other.extensions["recsys"].recommender().scan_keys() == keys
        assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == stamps  # mapped, not rewritten
    finally:
        other.extensions["recsys"].stop()


def test_a_bundle_is_warmed_before_it_serves(serving, client):
    """What requests share is built when the bundle is installed, not by the first request that
    needs it: the shared transposed copies are on disk before any request, and requests reuse
    the parts the install built."""
    recommender = serving.recommender()
    keys = recommender.scan_keys()
    assert keys and all((serving.scan_dir / f"{key}.columns.npy").is_file() for key in keys)
    shared = _warmed(recommender)
    user = recommender.bundle.collab.user_ids.ids[0]
    assert client.get(f"/v1/users/{user}/recommendations?k=5").status_code == 200
    assert client.get(f"/v1/items/{recommender.bundle.item_ids.ids[0]}/similar?k=5").status_code == 200
    assert recommender.warm() is recommender
    assert all(a is b for a, b in zip(shared, _warmed(recommender)))  # nothing built again


def _warmed(recommender) -> tuple:
    """What warming builds, looked at inside the recommender (white-box: nothing outside shows
    whether it was built now or at install)."""
    lists = recommender._similar.lists
    return (recommender._catalog.row_templates, recommender._candidates.scans, lists.patterns, lists.list_ends,
            recommender.bundle.collab.user_items.by_recency)
