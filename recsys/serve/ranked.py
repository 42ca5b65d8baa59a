"""Ranked feeds: candidates from every source, their features, and the bundle's learned ranker
(:mod:`recsys.rank`), for trained users, folded-in users and anonymous sessions alike.

The shop's state (each user's purchases, each item's sales, what is bought together) is built once
per bundle from the events the bundle keeps (``collab/ranker_log.npz``); a user's recent items
from the activity log or the request come before their history, as a session's do. A feed is one
call of :meth:`recsys.rank.ranker.Ranker.rank` for one user, without the items that the feed's
filters leave out, the deleted items and (with ``exclude_seen``) the user's own items; a batch of
feeds is one call per block of users (:meth:`RankedFeeds.batch`).

Two things come from the blended feed (:mod:`recsys.serve.feeds`), which is computed only when
needed:

* when the sources propose fewer allowed items than asked for (a narrow filter), the blend's
  items join the candidates and the ranker scores them too;
* items put through the API since the bundle have no events and no row in the ranker's state: a
  put item takes the place the blended feed gives it, with the score of the item it goes before.

A trained user without activity since the bundle reads their feed from the bundle's precomputed
ranked feeds (``collab/ranker_feed.*``, made by ``recsys train``) while no item is put and no
explanation is asked for: the list holds the user's own items too, so ``exclude_seen`` and the
filters only leave items out of it. A visitor with no history at all reads the one list every such
visitor gets, ranked when the bundle is loaded, the same way.
"""
from __future__ import annotations

from collections.abc import Callable
from functools import cached_property

import numpy as np
import scipy.sparse as sp

from recsys.bundle import Bundle, TopLists
from recsys.rank.explain import Why, explain
from recsys.rank.ranker import Ranker
from recsys.rank.sources import Audience
from recsys.rank.state import ItemFacts, ShopState
from recsys.serve.history import History
from recsys.serve.rows import Scored, scored_list

__all__ = ["RankedFeeds"]

_NOBODY_DEPTH = 100  # the list every visitor with no history reads (filters leave items out of it)

_PUT_WHY = {"sources": ["new"], "reasons": [{"reason": "new", "contribution": None,
                                             "text": "new in the shop, close to what you like"}]}


def why_json(why: Why) -> dict:
    """An explanation as a result row carries it: the sources (``blend`` where no source proposed
    the item) and the reasons, best first."""
    return {"sources": why.sources or ["blend"],
            "reasons": [{"reason": r.name, "contribution": r.contribution, "text": r.text} for r in why.reasons]}


class RankedFeeds:
    """Feeds ranked by one bundle's learned ranker.

    Args:
        bundle: a loaded bundle whose user tower holds a ranker (``bundle.collab.ranker``).
    """

    def __init__(self, bundle: Bundle):
        collab = bundle.collab
        self.bundle = bundle
        self.ranker, log = Ranker.from_files(collab.ranker, collab.user_ids, len(bundle.item_ids))
        self.state = ShopState(log, ItemFacts.from_items(bundle.items))
        self.sources = self.ranker.sources(bundle)
        self.feed = collab.ranker.feed

    @cached_property
    def nobody(self) -> TopLists:
        """The feed of a visitor with no history (one list: the same for all of them)."""
        ranked = self._rank(Audience.of(self.state, np.array([-1])), _NOBODY_DEPTH, None)
        return TopLists(ranked.rows.astype(np.int32), np.nan_to_num(ranked.scores, nan=0.0))

    def listed(self, history: History, n: int, allowed: np.ndarray) -> list[Scored] | None:
        """A trained user's first ``n`` allowed items of their precomputed ranked feed, or a
        visitor's with no history of :attr:`nobody`, when it answers (no recent items, and ``n``
        allowed items in it), else ``None``."""
        if history.recent.ids or (history.user_row is not None and self.feed is None):
            return None
        lists, owner = (self.nobody, 0) if history.user_row is None else (self.feed, history.user_row)
        found = lists.first(owner, n, allowed)
        if found is None or len(found[0]) < n:
            return None
        return scored_list(self.bundle.item_ids.ids[found[0]].tolist(), found[1])

    def warm(self) -> None:
        """Summarise the shop now rather than on the first feed."""
        self.state.warm(user_tower=self.ranker.settings.sources.get("als", 0) > 0)
        self.nobody  # noqa: B018 - ranked now, read by every visitor with no history

    def top(self, history: History, n: int, allowed: np.ndarray, *, explain_items: bool,
            blended: Callable[[], list[Scored]], put: bool) -> list[Scored]:
        """The best ``n`` allowed items for a user, best first.

        Args:
            history: the user's row (``None``: not a trained user) and recent items.
            allowed: ``(items,)`` bool over the bundle's rows.
            explain_items: give each item its ``why``.
            blended: the blended feed of ``n`` (bundle and put items), asked for only when needed.
            put: items put since the bundle may belong in the feed (the blend places them).
        """
        row = -1 if history.user_row is None else history.user_row
        audience = Audience.of(self.state, np.array([row]), [history.recent.rows.tolist()])
        ranked = self._rank(audience, n, allowed)
        blend = None
        if (ranked.rows[0] < 0).any():  # too few candidates pass: the blend's join them
            blend = blended()
            rows = self.bundle.item_ids.find([s.item_id for s in blend if s.item_id in self.bundle.item_ids])
            if len(rows):
                more = sp.csr_matrix((np.ones(len(rows), np.float32), (np.zeros(len(rows), np.int64), rows)),
                                     shape=(1, self.state.n_items))
                ranked = self._rank(audience, n, allowed, more=more)
        listed = ranked.rows[0] >= 0
        whys = [why_json(w) for w in explain(self.ranker, ranked, self.state, 0, history=audience.history[0])] \
            if explain_items else [None] * int(listed.sum())
        rows = ranked.rows[0][listed]
        found = [s._replace(why=w) for s, w in zip(
            scored_list(self.bundle.item_ids.ids[rows].tolist(), ranked.scores[0][listed]), whys)]
        if put:
            found = self._with_put(found, blend if blend is not None else blended(), n, explain_items)
        return found

    def batch(self, inputs: list, depth: int, allowed: np.ndarray, block: int = 1_000) -> list[list[Scored] | None]:
        """The best ``depth`` items of each ranked feed among ``inputs`` (resolved
        :class:`~recsys.serve.feeds.FeedInputs`), ranked in blocks of users; ``None`` for a feed
        that is not ranked or whose list is short of ``depth``.

        Args:
            allowed: ``(items,)`` bool, the same for every user (the filters); each user's own
                items are left out where their ``exclude_seen`` says so.
        """
        from tqdm.auto import tqdm

        out: list[list[Scored] | None] = [None] * len(inputs)
        todo = [i for i, given in enumerate(inputs) if given.ranked]
        for start in tqdm(range(0, len(todo), block), desc="ranked feeds", unit="block", leave=False,
                          disable=len(todo) <= block):
            part = [inputs[i] for i in todo[start:start + block]]
            rows = np.array([-1 if g.history.user_row is None else g.history.user_row for g in part])
            audience = Audience.of(self.state, rows, [g.history.recent.rows.tolist() for g in part])
            seen = sp.diags(np.array([g.exclude_seen for g in part], np.float32)) @ audience.bought
            ranked = self._rank(audience, depth, allowed, exclude=sp.csr_matrix(seen))
            ids = self.bundle.item_ids.ids
            for j, i in enumerate(todo[start:start + block]):
                if (ranked.rows[j] >= 0).all():
                    out[i] = scored_list(ids[ranked.rows[j]].tolist(), ranked.scores[j])
        return out

    def _rank(self, audience: Audience, n: int, allowed: np.ndarray, *, more: sp.csr_matrix | None = None,
              exclude: sp.csr_matrix | None = None):
        return self.ranker.rank(self.state, self.bundle, audience, n, exclude, allowed, more=more,
                                sources=self.sources)

    def _with_put(self, found: list[Scored], blend: list[Scored], n: int, explain_items: bool) -> list[Scored]:
        """Put items at the places the blended feed gives them."""
        out = list(found)
        for place, scored in enumerate(blend):
            if scored.item_id in self.bundle.item_ids:
                continue
            score = out[place].score if place < len(out) else (out[-1].score if out else scored.score)
            out.insert(place, scored._replace(score=score, why=_PUT_WHY if explain_items else None))
        return out[:n]
