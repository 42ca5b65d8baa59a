"""Fagin's threshold algorithm over an item's precomputed lists: the exact best items under
per-request modality weights from the lists of each modality, without scoring the catalog.

The build lists each item's nearest items per modality (:mod:`recsys.pipeline.precompute`), with
their last cosines; an item in none of the lists of the weighted modalities has, in each modality
it has, a cosine at most that list's last one. So the best of the listed items, scored exactly, is
the answer when it beats that bound on every unlisted item.
"""
from __future__ import annotations

import math
from functools import cached_property
from operator import mul
from typing import NamedTuple

import numpy as np

from recsys._lru import Lru
from recsys.bundle import Bundle
from recsys.serve.candidates import best
from recsys.towers.item import weighted_scores

__all__ = ["ModalityLists", "Weighting"]

Found = tuple[np.ndarray, np.ndarray]  # rows, scores: best first


class Weighting(NamedTuple):
    """A weighting's numbers for scoring an item's lists (:meth:`ModalityLists.weighting`).

    Attributes:
        w: the weights in block order (float32).
        scale: per modality pattern (:attr:`ModalityLists.patterns`), the factor
            ``1 / sqrt(W_q * W_c)`` of :func:`~recsys.towers.item.weighted_scores` (``W_q``: the
            weights of the usable modalities the query has, ``W_c``: those of the pattern's).
        columns: the block positions of the usable modalities.
        bounds: per pattern with a weighted modality, ``(its index, the positions in usable of
            the modalities it has, their weights (0 for the others), sqrt(W_q * W_c))``.
    """

    w: np.ndarray
    scale: np.ndarray
    columns: list[int]
    bounds: list[tuple[int, frozenset[int], tuple[float, ...], float]]


class ModalityLists:
    """The threshold algorithm over one bundle's per-modality similar lists.

    Args:
        bundle: the loaded bundle.
        exact_budget: when the bound is not beaten for a few items (typically some that lack a
            modality), score every one of them exactly if that many items x dimensions is at most
            this (``settings.index.exact_budget``).
    """

    def __init__(self, bundle: Bundle, exact_budget: int):
        self.bundle = bundle
        self.exact_budget = exact_budget
        self._weightings = Lru(256)  # a widget asks a few weightings over and over

    def warm(self) -> None:
        """Build what requests would otherwise build on first use."""
        self.patterns  # noqa: B018
        self.list_ends  # noqa: B018
        self.pattern_rows  # noqa: B018
        if self.bundle.list_cosines is not None:
            self.listed_counts  # noqa: B018

    def item_query(self, row: int) -> dict[str, np.ndarray | None]:
        """A bundle item's vector per modality (``None`` where it lacks the modality)."""
        return {m: (np.asarray(b.vectors[row]) if b.mask[row] else None)
                for m, b in self.bundle.vectors.blocks.items()}


    def threshold(self, row: int, k: int, weights: dict[str, float], usable: list[str],
                  allowed: np.ndarray | None) -> Found | None:
        """The exact best ``k`` under per-request ``weights`` from the per-modality lists of
        ``row``'s neighbours (Fagin's threshold algorithm), or ``None`` when they cannot tell.

        The candidates are the allowed items listed for any weighted modality (with the bundle's
        :class:`~recsys.bundle.ListCosines`, for any modality), scored exactly. An item in no
        list of a weighted modality has, in each modality it has, a cosine at most that list's last
        score, so :meth:`unlisted_bounds` bounds its weighted score, per combination of
        modalities; when the ``k``-th candidate beats every bound no unlisted item can enter the
        answer. When it does not beat the bound of some combinations (typically a few items that
        lack a modality: they are scored by the others alone), every allowed item of those is
        scored exactly too, if that is within the exact budget; beyond it, a large catalog's
        approximate lists (:attr:`approximate_lists`) answer with their best all the same.
        ``usable``: the weighted modalities the item has; ``allowed`` ``None``: every item but
        ``row`` (which no list of its own holds).
        """
        lists = self.bundle.similar
        if not usable or any(m not in lists for m in usable):
            return None
        weighting = self.weighting(weights, usable)
        query = None  # the item's vectors, read only where the stored cosines do not do
        if self.bundle.list_cosines is not None:
            candidates, scores = self.listed_scores(row, weighting, allowed)
        else:
            query = self.item_query(row)
            if allowed is None:
                allowed = np.ones(len(self.bundle.item_ids), bool)
                allowed[row] = False
            listed = np.zeros_like(allowed)
            for m in usable:
                rows = lists[m].rows[row]
                listed[rows[rows >= 0]] = True
            candidates = np.flatnonzero(listed & allowed)
            scores = weighted_scores(self.bundle.vectors.blocks, query, candidates, weights)
        if len(candidates) < k:
            return None
        rows, scores = best(k, candidates, scores)
        bounds = self.unlisted_bounds(weighting, self.list_ends[row].tolist())
        beaten = [p for p, bound in bounds if not scores[-1] > bound + 1e-5]  # float error of the lists
        if not beaten:
            return rows, scores
        # unlisted items of these patterns might enter the answer: score them all, if they are few
        dim = sum(self.bundle.vectors.blocks[m].dim for m in usable)
        if sum(len(self.pattern_rows[p]) for p in beaten) * dim > self.exact_budget:
            # lists from k-means cells bound nothing for certain to begin with, and their best
            # beat what Annoy finds in a catalog that large (a far lower recall), at no search
            return (rows, scores) if self.approximate_lists else None
        members = np.concatenate([self.pattern_rows[p] for p in beaten])
        members = np.setdiff1d(members[allowed[members] if allowed is not None else members != row],
                               candidates, assume_unique=True)
        return best(k, np.concatenate([rows, members]), np.concatenate(
            [scores, weighted_scores(self.bundle.vectors.blocks, query or self.item_query(row), members, weights)]))

    def listed_scores(self, row: int, weighting: Weighting, allowed: np.ndarray | None) -> Found:
        """The allowed items listed for ``row`` (all of them when ``allowed`` is ``None``) and their
        :func:`weighted_scores` under the ``weighting``'s weights, from the bundle's stored cosines
        (no vector is read)."""
        listed = self.bundle.list_cosines
        count = self.listed_counts[row]
        rows, cosines = listed.rows[row, :count], listed.cosines[row, :count]
        if allowed is not None:
            keep = allowed[rows]
            rows, cosines = rows[keep], cosines[keep]
        return rows.astype(np.int64), (cosines @ weighting.w) * weighting.scale[self.patterns[0][rows]]

    def weighting(self, weights: dict[str, float], usable: list[str]) -> Weighting:
        """What scoring the lists under ``weights`` needs (:class:`Weighting`), for a query item
        with the ``usable`` modalities; kept for the last few hundred asked."""
        key = (tuple(weights.items()), tuple(usable))
        found = self._weightings.get(key)
        if found is None:
            names = list(self.bundle.vectors.blocks)
            w = np.array([weights.get(m, 0.0) for m in names], np.float32)
            w_q = sum(weights[m] for m in usable)
            patterns = self.patterns[1]
            scale = 1.0 / np.sqrt(np.maximum(np.float32(w_q) * (patterns @ w), np.float32(1e-12)))
            bounds = []
            for p, combo in enumerate(patterns.tolist()):
                w_c = sum(weights.get(m, 0.0) for m, has in zip(names, combo) if has)
                if w_c > 0:  # an item sharing no weighted modality with the query scores 0
                    has = frozenset(i for i, m in enumerate(usable) if combo[names.index(m)])
                    coefficients = tuple(weights[m] if i in has else 0.0 for i, m in enumerate(usable))
                    bounds.append((p, has, coefficients, math.sqrt(w_q * w_c)))
            found = Weighting(w, scale.astype(np.float32), [names.index(m) for m in usable], bounds)
            self._weightings.put(key, found)
        return found

    @staticmethod
    def unlisted_bounds(weighting: Weighting, ends: list[float]) -> list[tuple[int, float]]:
        """``(pattern, bound)``: per combination of modalities (:attr:`patterns`) the highest
        weighted score an item of it absent from the lists of every usable modality can have.

        ``ends``: per modality (block order), the last cosine of the query item's list, NaN when
        the list holds every item with that modality (an unlisted item then lacks it). In each
        usable modality it has, an unlisted item's cosine is at most that last cosine; the score's
        denominator depends on the modalities the item has. Patterns with no weighted modality
        (their items score 0) and those with a modality whose list holds every item with it (no
        unlisted item has them) are left out. Plain Python: a few numbers, for which numpy calls
        cost more.
        """
        last = [ends[j] for j in weighting.columns]
        exhaustive = {i for i, v in enumerate(last) if v != v}  # NaN
        last = [v if v > 0.0 else 0.0 for v in last]  # (NaN > 0 is False: 0)
        return [(p, sum(map(mul, coefficients, last)) / denominator)
                for p, has, coefficients, denominator in weighting.bounds
                if not (exhaustive and exhaustive & has)]

    @cached_property
    def approximate_lists(self) -> bool:
        """Whether the bundle's lists are approximate (a large catalog's, from k-means cells or an
        HNSW graph), not from exact search; bundles of earlier builds say ``cells``."""
        return self.bundle.manifest.get("lists", {}).get("method") in ("approximate", "cells")

    @cached_property
    def listed_counts(self) -> np.ndarray:
        """Per item, how many items :attr:`Bundle.list_cosines` lists for it."""
        return (np.asarray(self.bundle.list_cosines.rows) >= 0).sum(axis=1)

    @cached_property
    def list_ends(self) -> np.ndarray:
        """``(items, modalities)`` float32 (the lists' own numbers), block order: the last cosine of
        each item's similar list per modality; NaN where the list is not full (it holds every item
        with the modality, or the item lacks it) or the bundle has no list for it."""
        ends = np.full((len(self.bundle.item_ids), len(self.bundle.vectors.blocks)), np.nan, np.float32)
        for j, m in enumerate(self.bundle.vectors.blocks):
            if m in self.bundle.similar:
                lists = self.bundle.similar[m]
                full = np.asarray(lists.rows[:, -1]) >= 0
                ends[full, j] = lists.scores[full, -1]
        return ends

    @cached_property
    def pattern_rows(self) -> list[np.ndarray]:
        """Per modality pattern (:attr:`patterns`), the rows of the items with it."""
        codes = self.patterns[0]
        order = np.argsort(codes, kind="stable")
        counts = np.bincount(codes, minlength=len(self.patterns[1]))
        return np.split(order.astype(np.int64), np.cumsum(counts)[:-1])

    @cached_property
    def patterns(self) -> tuple[np.ndarray, np.ndarray]:
        """``(codes, patterns)``: ``patterns`` ``(p, modalities)`` float32, the distinct combinations
        of modalities the items have (1 where it has it, block order); ``codes`` ``(items,)`` each
        item's row in it."""
        masks = np.stack([np.asarray(b.mask, bool) for b in self.bundle.vectors.blocks.values()], axis=1)
        patterns, codes = np.unique(masks, axis=0, return_inverse=True)
        return codes.reshape(-1).astype(np.int32), patterns.astype(np.float32)
