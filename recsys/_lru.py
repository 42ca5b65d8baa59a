"""A small thread-safe LRU mapping: the worker's caches and the recommender's kept feed lists."""
from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable


class Lru:
    """At most ``size`` entries; reading or writing one makes it the most recent (``size`` 0 keeps
    nothing)."""

    def __init__(self, size: int):
        self.size = size
        self._data: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable):
        with self._lock:
            value = self._data.get(key)
            if value is not None:
                self._data.move_to_end(key)
            return value

    def put(self, key: Hashable, value) -> list:
        """Store ``value``; returns the keys evicted to make room."""
        if self.size <= 0:
            return []
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            evicted = []
            while len(self._data) > self.size:
                evicted.append(self._data.popitem(last=False)[0])
            return evicted

    def pop(self, key: Hashable) -> None:
        with self._lock:
            self._data.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()

    def __len__(self) -> int:
        return len(self._data)
