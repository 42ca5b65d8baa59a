"""The worker's local cache: LRU bound, per-user drops, and no stale value stored after a drop."""
from recsys.api.state import LocalCache


def test_local_cache_is_bounded_and_drops_a_users_entries():
    cache = LocalCache(max_items=3)
    for i in range(4):
        cache.put(("item", f"i{i}", "q"), b"body")
    assert len(cache) == 3 and cache.get(("item", "i0", "q")) is None
    cache.put(("user", "u1", "q"), b"feed")
    cache.put(("user", "u1", "recent"), ("a", "b"))
    cache.drop_owners("user", ["u1"])
    assert cache.get(("user", "u1", "q")) is None and cache.get(("user", "u1", "recent")) is None
    assert cache.get(("item", "i3", "q")) == b"body"


def test_a_value_read_before_a_drop_is_not_stored_after_it():
    cache = LocalCache(max_items=10)
    epoch = cache.epoch  # a request starts reading the user's recent items ...
    cache.drop_owners("user", ["u1"])  # ... the user posts an interaction meanwhile
    cache.put(("user", "u1", "recent"), ("old",), epoch)
    assert cache.get(("user", "u1", "recent")) is None
    cache.put(("user", "u1", "recent"), ("new",), cache.epoch)
    assert cache.get(("user", "u1", "recent")) == ("new",)
    epoch = cache.epoch
    cache.clear()  # re-subscribing clears everything, which counts as a drop too
    cache.put(("user", "u1", "recent"), ("old",), epoch)
    assert len(cache) == 0
