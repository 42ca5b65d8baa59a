"""Similar items: resolved once (:meth:`SimilarItems.resolve`), then read from the item's precomputed
lists (:meth:`SimilarItems.listed`: the combined list under the default weights, the threshold
algorithm of :mod:`recsys.serve.threshold` over the per-modality lists under per-request weights)
or computed (:meth:`SimilarItems.computed`: candidates re-scored exactly). Items put since the
bundle are scored exactly and merged in either way."""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from recsys.bundle import Bundle
from recsys.errors import InvalidRequest, NotFound
from recsys.serve.candidates import Candidates, Search
from recsys.serve.changes import ItemChanges
from recsys.serve.filters import FilterColumns, ItemFilter, is_unfiltered
from recsys.serve.queries import SimilarQuery
from recsys.serve.rows import Scored, scored_list
from recsys.serve.threshold import ModalityLists
from recsys.towers.item import check_weights, rows_dot, weighted_scores

__all__ = ["SimilarItems", "SimilarInputs"]


class SimilarInputs(NamedTuple):
    """A similar-items query resolved once (:meth:`SimilarItems.resolve`).

    Attributes:
        item_id: the query item.
        row: its bundle row; ``None`` for an item put since the bundle.
        weights: the weights in use (the bundle's defaults, or the query's, checked).
        default: whether they are the bundle's defaults (the combined vectors carry them).
        filters: the query's filters.
        usable: the weighted modalities the item has; ``None`` where the combined vector stands
            for them (a bundle item that has one, under the default weights).
    """

    item_id: str
    row: int | None
    weights: dict[str, float]
    default: bool
    filters: ItemFilter | None
    usable: list[str] | None


class SimilarItems:
    """Items similar to an item, or near per-modality query vectors, in one bundle.

    Args:
        bundle: the loaded bundle.
        candidates: the exact-or-ANN choice (and its exact budget) for the bundle.
        columns: the bundle's filter columns.
    """

    def __init__(self, bundle: Bundle, candidates: Candidates, columns: FilterColumns):
        self.bundle = bundle
        self.candidates = candidates
        self.columns = columns
        self.lists = ModalityLists(bundle, candidates.exact_budget)

    def warm(self) -> None:
        """Build what requests would otherwise build on first use."""
        self.lists.warm()

    def resolve(self, query: SimilarQuery, changes: ItemChanges) -> SimilarInputs:
        """The item and the weights of a query (see :meth:`recsys.serve.Recommender.similar_items`).

        Raises:
            NotFound: an unknown or deleted item.
            InvalidRequest: bad weights, or weights that leave the item nothing to compare.
        """
        vectors = self.bundle.vectors
        default = query.weights is None
        # any known modality may be weighted; one the bundle lacks counts as missing for every item
        weights = vectors.weights if default else check_weights(query.weights)
        item_id = query.item_id
        if item_id in changes.ids:
            row, has = None, changes.query(item_id)
        elif item_id in changes.deleted_ids:
            raise NotFound(f"item_id {item_id!r} was deleted", item_id=item_id)
        else:
            row = self.bundle.item_ids.row(item_id)
            if default and vectors.mask[row]:
                return SimilarInputs(item_id, row, weights, True, query.filters, None)
            has = {m: (b if b.mask[row] else None) for m, b in vectors.blocks.items()}
        usable = [m for m, w in weights.items() if w > 0 and has.get(m) is not None]
        if not usable:
            lacking = ", ".join(m for m, w in weights.items() if w > 0)
            raise InvalidRequest(f"item {item_id!r} has no {lacking} data, so these weights leave "
                                 "nothing to compare; give weight to another modality", item_id=item_id)
        return SimilarInputs(item_id, row, weights, default, query.filters, usable)

    def listed(self, inputs: SimilarInputs, n: int, changes: ItemChanges) -> list[Scored] | None:
        """The best ``n`` from the item's precomputed lists, or ``None`` when they cannot tell (no
        list, or a filter leaves too few of it, or the threshold algorithm's bound is not beaten)."""
        row = inputs.row
        if row is None:
            return None
        unchanged = not len(changes) and is_unfiltered(inputs.filters, changes.deleted_ids)
        if inputs.default:
            lists = self.bundle.similar.get("combined")
            if lists is None or inputs.usable is not None:  # no list, or no combined vector
                return None
            found = lists.head(row, n) if unchanged else lists.first(row, n, self._allowed(inputs, changes))
        else:
            found = self.lists.threshold(row, n, inputs.weights, inputs.usable,
                                         None if unchanged else self._allowed(inputs, changes))
        if found is None:
            return None
        found = self._found(*found)
        if not len(changes):
            return found
        return changes.merge(found, self.lists.item_query(row), inputs.weights, n, inputs.filters,
                             self.bundle.item_ids, exclude=inputs.item_id)

    def computed(self, inputs: SimilarInputs, n: int, changes: ItemChanges) -> list[Scored]:
        """The best ``n``: candidates from the indexes (or every allowed item) scored exactly."""
        if inputs.row is None:
            put = changes.ids.row(inputs.item_id)
            query = changes.query(inputs.item_id)
            combined = changes.vectors.combined[put] if changes.vectors.mask[put] else None
        else:
            vectors = self.bundle.vectors
            query = self.lists.item_query(inputs.row)
            combined = vectors.combined[inputs.row] if vectors.mask[inputs.row] else None
        return self.nearest(query, inputs.weights, n, inputs.filters, changes, row=inputs.row,
                            exclude=inputs.item_id, default=inputs.default, combined_query=combined)

    def nearest(self, query: dict, weights: dict[str, float], k: int, filters: ItemFilter | None,
                changes: ItemChanges, *, row: int | None = None, exclude: str | None = None,
                default: bool = False, combined_query: np.ndarray | None = None) -> list[Scored]:
        """The best ``k`` items for per-modality ``query`` vectors under ``weights``: the bundle's
        items (Annoy candidates or exact search, re-scored exactly) merged with the put items
        scored exactly. ``row``/``exclude`` leave the query item out; ``combined_query``: its
        combined vector, searched when the weights are the bundle's ``default``."""
        vectors = self.bundle.vectors
        usable = [m for m, w in weights.items() if w > 0 and query.get(m) is not None]
        allowed = self.columns.allowed(filters, known_elsewhere=changes.ids)
        allowed &= ~changes.hidden
        if row is not None:
            allowed[row] = False
        has_combined = combined_query is not None
        searches: list[Search] = []
        if has_combined:
            searches.append((self.bundle.indexes["combined"], combined_query))
        if not default or not has_combined:
            searches += [(self.bundle.indexes[m], query[m]) for m in usable]
        dim = sum(vectors.blocks[m].dim for m in usable)
        if default and has_combined:
            scan = self.candidates.scans["combined"]

            # the combined vectors already carry the default weights: one product, same scores
            def score(r):
                return rows_dot(vectors.combined, r, combined_query, scan)
        else:
            def score(r):
                return weighted_scores(vectors.blocks, query, r, weights)
        found = self._found(*self.candidates.top(k, searches, allowed, score, dim))
        return changes.merge(found, query, weights, k, filters, self.bundle.item_ids, exclude=exclude)

    def _allowed(self, inputs: SimilarInputs, changes: ItemChanges) -> np.ndarray:
        allowed = self.columns.allowed(inputs.filters, known_elsewhere=changes.ids)
        allowed &= ~changes.hidden
        allowed[inputs.row] = False
        return allowed

    def _found(self, rows: np.ndarray, scores: np.ndarray) -> list[Scored]:
        return scored_list(self.bundle.item_ids.ids[rows].tolist(), scores)
