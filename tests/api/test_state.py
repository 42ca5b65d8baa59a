"""The worker's local cache: LRU bound, per-user drops, and no stale value stored after a drop."""
from recsys.api.state import LocalCache


def test_local_cache_is_bounded_and_drops_a_users_entries():
    cache = LocalCache(max_items=3, max_users=2)
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
    cache.drop_owners("user", ["u1"])
    assert cache.get(("user", "u1", "q")) is None and cache.recent("u1") is None
    assert cache.recent("u2") == () and cache.get(("item", "i8", "q")) == b"body"
    cache.put_recent("u3", ("c",), cache.epoch)  # the least recently used user goes
    cache.put_recent("u4", ("d",), cache.epoch)
    assert cache.recent("u2") is None and cache.recent("u4") == ("d",)


def test_a_value_read_before_a_drop_is_not_stored_after_it():
    cache = LocalCache(max_items=10, max_users=10)
    epoch = cache.epoch  # a request starts reading the user's recent items ...
    cache.drop_owners("user", ["u1"])  # ... the user posts an interaction meanwhile
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
    cache = LocalCache(max_items=0, max_users=0)
    cache.put(("user", "u1", "q"), b"feed")
    cache.put_recent("u1", ("a",), cache.epoch)
    assert len(cache) == 0 and cache.get(("user", "u1", "q")) is None and cache.recent("u1") is None
    cache.drop_owners("user", ["u1"])  # nothing indexed, nothing to drop
    assert cache.epoch == 1
