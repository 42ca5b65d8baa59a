"""IdMap: string ids at the edges, dense integer rows inside a bundle."""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from itertools import repeat

import numpy as np

from recsys.errors import NotFound

__all__ = ["IdMap"]


class IdMap:
    """A fixed bijection between string ids and rows ``0..n-1``.

    Args:
        ids: the ids in row order; must be unique.
        kind: what the ids name ("item", "user"), used in error messages.

    Example:
        >>> m = IdMap(["a", "b"])
        >>> m.row("b"), m.ids[0]
        (1, 'a')
    """

    def __init__(self, ids: Iterable[str], kind: str = "item"):
        self.ids = np.asarray([str(i) for i in ids], dtype=object)
        self.kind = kind
        self._rows = {item_id: row for row, item_id in enumerate(self.ids)}
        if len(self._rows) != len(self.ids):
            raise ValueError(f"{kind} ids must be unique")

    def __len__(self) -> int:
        return len(self.ids)

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._rows

    def row(self, item_id: str) -> int:
        """Row of one id.

        Raises:
            NotFound: the id is not in the map; the message says how many ids it holds.
        """
        try:
            return self._rows[item_id]
        except KeyError:
            raise NotFound(
                f"unknown {self.kind}_id {item_id!r} ({len(self):,} {self.kind}s known)",
                **{f"{self.kind}_id": item_id},
            ) from None

    def find(self, ids: Sequence[str]) -> np.ndarray:
        """Rows of many ids, ``(n,)`` int64, ``-1`` for each id the map does not hold (one pass
        in C: cheaper than a membership test per id on the request path)."""
        return np.fromiter(map(self._rows.get, ids, repeat(-1)), dtype=np.int64, count=len(ids))

    def rows(self, ids: Iterable[str]) -> np.ndarray:
        """Rows of many ids, ``(n,)`` int64; raises :class:`NotFound` on the first unknown id."""
        return np.fromiter((self.row(i) for i in ids), dtype=np.int64)
