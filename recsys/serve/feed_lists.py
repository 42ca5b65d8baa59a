"""Feed lists: the bundle's precomputed feeds of trained users, and the folded-in lists kept per
(user, recent items), made at a user's first feed since their activity or received from the worker
that took their post."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from recsys._lru import Lru
from recsys.bundle import Bundle, TopLists
from recsys.collab.blend import SCORING
from recsys.errors import InvalidRequest

__all__ = ["FeedLists"]


class FeedLists:
    """The lists a feed may be read from instead of scored.

    Args:
        bundle: the loaded bundle.
        content_weight, history_items, history_decay: the feeds' scoring; the bundle's
            precomputed feeds are used only when they were made with the same.
        keep: keep folded-in lists for the last this many distinct (user, recent items) pairs;
            0 = make none.
        list_k: the length of those lists.
    """

    def __init__(self, bundle: Bundle, *, content_weight: float, history_items: int,
                 history_decay: float, keep: int = 0, list_k: int = 100):
        self.bundle = bundle
        self.list_k = list_k
        self._kept = Lru(keep if list_k > 0 else 0)
        self.precomputed = None
        collab = bundle.collab
        if collab is not None and collab.feed is not None:
            made = collab.params.get("feed", {})
            if made.get("scoring") == SCORING and made.get("content_weight") == content_weight \
                    and made.get("history_items") == history_items \
                    and made.get("history_decay", 1.0) == history_decay:
                self.precomputed = collab.feed  # made with the scoring these feeds use

    @property
    def keeps(self) -> bool:
        """Whether folded-in lists are made and kept (a user tower, and ``keep > 0``)."""
        return self.bundle.collab is not None and self._kept.size > 0

    def key(self, user_id: str | None, recent: np.ndarray) -> tuple:
        """A kept list's key: a trained user's id, or ``None`` for anyone the model does not know
        (visitors with the same recent items share a list), and the recent rows."""
        known = user_id is not None and user_id in self.bundle.collab.user_ids
        return user_id if known else None, recent.tobytes()

    def find(self, user_id: str | None, user_row: int | None,
             recent: np.ndarray) -> tuple[TopLists, int] | None:
        """The list a feed with seen items excluded and no recent put item reads, and the owner's
        row in it: the bundle's precomputed feed for a trained user without recent items, the list
        kept for these recent items otherwise; ``None`` when there is none."""
        if not len(recent):
            if user_row is None or self.precomputed is None:
                return None
            return self.precomputed, user_row
        kept = self._kept.get(self.key(user_id, recent)) if self._kept.size else None
        return (kept, 0) if kept is not None else None

    def can_make(self, recent: np.ndarray, k: int) -> bool:
        """Whether a feed of ``k`` with these recent rows is made as a kept list."""
        return self.keeps and len(recent) > 0 and k <= self.list_k

    def put(self, user_id: str | None, recent: np.ndarray, rows: np.ndarray, scores: np.ndarray) -> TopLists:
        """Keep a list of the best rows found (``-1``-padded to ``list_k``) and return it."""
        lists = TopLists(np.full((1, self.list_k), -1, np.int32), np.zeros((1, self.list_k), np.float32))
        lists.rows[0, :len(rows)], lists.scores[0, :len(rows)] = rows, scores
        self._kept.put(self.key(user_id, recent), lists)
        return lists

    def receive(self, user_id: str | None, recent: np.ndarray, rows: Sequence[int],
                scores: Sequence[float]) -> None:
        """Keep a list that another process made for the same bundle (nothing is kept with
        ``keep`` 0).

        Raises:
            InvalidRequest: the list does not fit this bundle (length, rows, scores).
        """
        rows = np.asarray(rows)
        scores = np.asarray(scores, dtype=np.float32)
        if self.bundle.collab is None or not len(recent) or rows.dtype.kind != "i" \
                or rows.shape != (self.list_k,) or scores.shape != rows.shape \
                or not ((rows >= -1) & (rows < len(self.bundle.item_ids))).all() \
                or not np.isfinite(scores).all():
            raise InvalidRequest(f"not a feed list of bundle {self.bundle.version} (list_k {self.list_k})")
        self._kept.put(self.key(user_id, recent), TopLists(rows.astype(np.int32)[None], scores[None]))
