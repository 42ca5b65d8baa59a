"""Feed shaping: what a read's ranked candidates become before they are shown.

In order: items excluded by a rule never become candidates (:class:`Hidden`, part of the read's
filter); boosts and buries move matching candidates up or down; diversity re-ranks by maximal
marginal relevance (MMR) and caps the items of one category; pins put a matching item at their
position. Each move is recorded in the item's ``why``.

The candidates come from the read itself, asked for :meth:`Shaper.depth` items instead of
``k``, so a boost can only lift an item the read would have shown a little further down, and
buried or capped items are replaced by the next ones: shaping never leaves a list short while
items remain.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np
import orjson

from recsys.control.rules import Match, Rule, RuleBook
from recsys.data.ids import IdMap

__all__ = ["Shaping", "NO_SHAPING", "Hidden", "Shaper", "ItemFacts", "shaper", "Rotation", "ROTATIONS"]

Rotation = Literal["off", "down", "out"]
ROTATIONS = ("off", "down", "out")

# candidates asked for per item shown while a read is shaped: a boost lifts an item from at most
# this far down (with a factor of 2, from rank 2k to k)
DEPTH = 3


@dataclass(frozen=True)
class Shaping:
    """A request's own shaping.

    Attributes:
        rules: rules for this read only (validated like stored ones; a pin beyond ``k`` is an error).
        diversity: MMR's weight on redundancy, 0 (off) to 1; ``None``: the setting ``shaping.diversity``.
        max_per_category: the most items of one category, 0 for no cap; ``None``: the setting.
        rotation: what to do with ``shown`` items: ``down`` (after every candidate not shown,
            the less shown and better ranked first), ``out`` (left out), or ``off``; ``None``:
            the setting ``shaping.rotation``.
        shown: ``(item id, times shown)`` of items the user was shown and did not click since
            (the worker reads them from the user's impressions, :mod:`recsys.worker.rotation`).
    """

    rules: tuple[Rule, ...] = ()
    diversity: float | None = None
    max_per_category: int | None = None
    rotation: Rotation | None = None
    shown: tuple[tuple[str, int], ...] = ()

    def key(self) -> tuple:
        """What makes two shapings the same (the result cache's key)."""
        rules = orjson.dumps([r.model_dump(mode="json") for r in self.rules]).decode() if self.rules else ""
        return rules, self.diversity, self.max_per_category, self.rotation, self.shown

    def rotated(self) -> tuple[Rule, ...]:
        """The rules rotation makes of ``shown`` (built, not validated: the ids come from the
        service's own counts): ``down``, one bury per number of times shown, with factor
        ``1000 × times``, so that shown items come after every candidate not shown, ordered by
        rank × times shown; ``out``, one exclusion."""
        if self.rotation in (None, "off") or not self.shown:
            return ()
        if self.rotation == "out":
            shown = Match.model_construct(item_ids=[i for i, _ in self.shown])
            return (Rule.model_construct(id="rotation", action="exclude", match=shown,
                                         note="shown before and not clicked"),)
        by_times: dict[int, list[str]] = {}
        for item_id, times in self.shown:
            by_times.setdefault(times, []).append(item_id)
        return tuple(Rule.model_construct(id="rotation", action="bury", factor=1000.0 * times,
                                          match=Match.model_construct(item_ids=ids),
                                          note=f"shown {times} time{'s' if times > 1 else ''}, not clicked")
                     for times, ids in sorted(by_times.items()))


NO_SHAPING = Shaping()


@dataclass(frozen=True, eq=False)
class Hidden:
    """Items excluded by rules, as part of a read's filter: a mask over the bundle's rows and the
    ids of put items."""

    bundle_ids: IdMap
    bundle: np.ndarray
    put_ids: frozenset[str]

    def keep(self, ids: IdMap) -> np.ndarray:
        """``(len(ids),)`` bool: the items of ``ids`` (the bundle's or the put items') not hidden."""
        if ids is self.bundle_ids:
            return ~self.bundle
        return ~np.isin(ids.ids, list(self.put_ids)) if self.put_ids else np.ones(len(ids), bool)


class ItemFacts(Protocol):
    """What shaping needs to know of candidate items (the query engine's catalog)."""

    def rows(self, ids: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Per id, its bundle row and its put item row (-1 where none; a put row wins)."""

    def vectors(self, ids: list[str]) -> np.ndarray:
        """``(len(ids), d)`` the items' combined unit vectors (zero where an item has none)."""

    def categories(self, ids: list[str]) -> list[str]:
        """Each item's category path ("" for none)."""

    def showable(self, item_id: str) -> bool:
        """Whether the read may show ``item_id`` (known, not deleted or hidden, passes the filters)."""


@dataclass
class Shaper:
    """The shaping of one read: the active rules with the items each matches, and the diversity.

    Attributes:
        rules: the active boost, bury and pin rules, stored ones first.
        masks: per rule, ``(bundle rows bool, put rows bool)`` of the items it matches.
        hidden: what the exclude rules hide, or ``None``.
        diversity, max_per_category: as in :class:`Shaping`, resolved.
    """

    rules: tuple[Rule, ...]
    masks: tuple[tuple[np.ndarray, np.ndarray], ...]
    hidden: Hidden | None
    diversity: float
    max_per_category: int

    @property
    def reorders(self) -> bool:
        return bool(self.rules) or self.diversity > 0 or self.max_per_category > 0

    def depth(self, k: int) -> int:
        """How many candidates to ask for to show ``k``."""
        moving = any(r.action != "pin" for r in self.rules) or self.diversity > 0 or self.max_per_category > 0
        return min(1000, max(DEPTH * k, k + 10)) if moving else k

    def shape(self, found: list, k: int, facts: ItemFacts, make) -> tuple[list, bool]:
        """The ``k`` items to show from ``found`` (best first, :class:`~recsys.serve.rows.Scored`),
        each moved item's ``why`` saying by which rule; ``make(item_id, score, cold, why)`` builds
        a result row (a pinned item that was not a candidate has a NaN score). Also whether the
        category cap had to let capped items fill the list (more candidates may avoid it)."""
        ids = [s.item_id for s in found]
        bundle_rows, put_rows = facts.rows(ids) if ids else (np.zeros(0, int), np.zeros(0, int))
        hits = [_hits(mask, bundle_rows, put_rows) for mask in self.masks]
        why: dict[int, list[dict]] = {}
        order = self._moved(len(found), hits, why)
        pins = [(r, h, m) for r, h, m in zip(self.rules, hits, self.masks) if r.action == "pin" and r.position <= k]
        pinned = self._pins(pins, ids, facts)
        placed = {pick for _, pick in pinned}
        order, filled = self._diverse([i for i in order if i not in placed], k - len(pinned), ids, facts, why)
        rows = [make(found[i].item_id, found[i].score, found[i].cold, _why(found[i].why, why.get(i)))
                for i in order]
        for rule, pick in sorted(pinned, key=lambda p: p[0].position):
            if isinstance(pick, str):  # a named item that was not a candidate
                row = make(pick, float("nan"), False, _why(None, [_move(rule)]))
            else:
                item = found[pick]
                row = make(item.item_id, item.score, item.cold, _why(item.why, why.get(pick, []) + [_move(rule)]))
            rows.insert(min(rule.position - 1, len(rows)), row)
        return rows[:k], filled

    def _moved(self, n: int, hits: list[np.ndarray], why: dict[int, list[dict]]) -> list[int]:
        """The candidates' order after boosts and buries: a candidate at 1-based rank ``r``
        competes at ``r / factor`` when boosted, ``r * factor`` when buried, and after every
        other one when buried without a factor."""
        place = np.arange(1, n + 1, dtype=np.float64)
        last = np.zeros(n, bool)
        for rule, hit in zip(self.rules, hits):
            if rule.action == "boost":
                place[hit] /= rule.factor or 2.0
            elif rule.action == "bury":
                if rule.factor is None:
                    last |= hit
                else:
                    place[hit] *= rule.factor
            else:
                continue
            for i in np.flatnonzero(hit):
                why.setdefault(int(i), []).append(_move(rule))
        return [int(i) for i in np.lexsort((np.arange(n), place, last))]

    def _pins(self, pins: list[tuple[Rule, np.ndarray, tuple]], ids: list[str],
              facts: ItemFacts) -> list[tuple[Rule, int | str]]:
        """Per pin rule that places something, what: a candidate's index, or the id of an item
        the rule names that is not a candidate (if the read may show it)."""
        chosen: list[tuple[Rule, int | str]] = []
        taken: set = set()
        for rule, hit, mask in pins:
            pick = None
            for item_id in rule.match.item_ids:  # named items, in the rule's order
                if item_id in ids:
                    index = ids.index(item_id)
                    pick = index if hit[index] and index not in taken else None
                elif item_id not in taken and facts.showable(item_id) and _hits(mask, *facts.rows([item_id]))[0]:
                    pick = item_id
                if pick is not None:
                    break
            if pick is None and not rule.match.item_ids:  # the best candidate that matches
                pick = next((int(i) for i in np.flatnonzero(hit) if int(i) not in taken), None)
            if pick is not None:
                taken.add(pick)
                chosen.append((rule, pick))
        return chosen

    def _diverse(self, order: list[int], k: int, ids: list[str], facts: ItemFacts,
                 why: dict[int, list[dict]]) -> tuple[list[int], bool]:
        """The first ``k`` of ``order`` re-ranked by MMR and the category cap, and whether capped
        items had to fill it."""
        k = max(k, 0)
        if (self.diversity <= 0 and self.max_per_category <= 0) or not order:
            return order[:k], False
        n, cap, lam = len(order), self.max_per_category, self.diversity
        pool_ids = [ids[i] for i in order]
        relevance = 1.0 - np.arange(n) / n
        vectors = facts.vectors(pool_ids) if lam > 0 else None
        categories = facts.categories(pool_ids) if cap else None
        counts: dict[str, int] = {}
        chosen: list[int] = []
        held: list[int] = []
        for p in _mmr(vectors, relevance, lam) if vectors is not None else range(n):
            category = categories[p] if categories is not None else ""
            if cap and category and counts.get(category, 0) >= cap:
                held.append(p)
                continue
            counts[category] = counts.get(category, 0) + 1
            chosen.append(p)
            if len(chosen) == k:
                break
        filling = held[:k - len(chosen)]  # too few other items: the held ones fill the list
        for p in filling:
            why.setdefault(order[p], []).append({"rule": None, "action": "cap",
                                                 "text": f"moved down: {cap} items of {categories[p]} come first"})
        return [order[p] for p in chosen + filling], bool(filling)


def _mmr(vectors: np.ndarray, relevance: np.ndarray, lam: float):
    """Candidate positions in maximal-marginal-relevance order: each next one maximises
    ``(1 - lam) * relevance - lam * (its highest cosine to one before it, negatives as 0)``."""
    closest = np.zeros(len(relevance))
    open_ = np.ones(len(relevance), bool)
    for _ in range(len(relevance)):
        gains = (1 - lam) * relevance - lam * closest
        gains[~open_] = -np.inf
        p = int(np.argmax(gains))
        open_[p] = False
        yield p
        np.maximum(closest, vectors @ vectors[p], out=closest)


def shaper(book: RuleBook, scope: str, shaping: Shaping, *, diversity: float, max_per_category: int,
           now: float | None = None) -> Shaper | None:
    """The shaping of one read of ``scope`` (``similar``, ``feeds``, ``search``): the stored
    rules active now, then the request's own; ``diversity`` and ``max_per_category`` are the
    defaults the request's own values override. ``None`` when nothing shapes the read."""
    stored = book.active(scope, now) if len(book) else ()
    diversity = shaping.diversity if shaping.diversity is not None else diversity
    cap = shaping.max_per_category if shaping.max_per_category is not None else max_per_category
    own = shaping.rules + shaping.rotated()
    rules = stored + own
    if not rules and diversity <= 0 and cap <= 0:
        return None
    masks = [book.matched(r) for r in stored] + [book.match(r.match) for r in own]
    hidden = None
    excluded = [m for r, m in zip(rules, masks) if r.action == "exclude"]
    if excluded:
        bundle = np.logical_or.reduce([m[0] for m in excluded])
        put = np.logical_or.reduce([m[1] for m in excluded])
        put_ids = frozenset(book.put_ids.ids[put].tolist()) if book.put_ids is not None and put.any() else frozenset()
        hidden = Hidden(book.bundle_ids, bundle, put_ids)
    kept = [(r, m) for r, m in zip(rules, masks) if r.action != "exclude"]
    return Shaper(tuple(r for r, _ in kept), tuple(m for _, m in kept), hidden, diversity, cap)


def _hits(mask: tuple[np.ndarray, np.ndarray], bundle_rows: np.ndarray, put_rows: np.ndarray) -> np.ndarray:
    """Which candidates a rule's masks hold: a put item by its put row, others by their bundle row."""
    bundle_mask, put_mask = mask
    hit = np.zeros(len(bundle_rows), bool)
    on_put = put_rows >= 0
    hit[on_put] = put_mask[put_rows[on_put]]
    on_bundle = ~on_put & (bundle_rows >= 0)
    hit[on_bundle] = bundle_mask[bundle_rows[on_bundle]]
    return hit


def _move(rule: Rule) -> dict:
    return {"rule": rule.id, "action": rule.action, "text": rule.describe()}


def _why(why: dict | None, moves: list[dict] | None) -> dict | None:
    if not moves:
        return why
    return {**(why or {}), "rules": moves}
