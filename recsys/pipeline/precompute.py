"""Results computed when a bundle is written, so the commonest queries are lookups when serving.

Each list is the exact top ``k`` by the same score the online path uses:

* per item, its most similar items under the bundle's default weights (the product page widget's
  query) and by each modality alone (for per-request weights, see
  :meth:`recsys.serve.Recommender.similar_items`), and every modality's cosine between the item
  and each item of those lists (:class:`ListCosines`, so that per-request weights re-score them
  without reading any vector), computed at ``recsys build``;
* per trained user, the feed with the training history excluded and no recent items (a user who
  has not been active since training), computed at ``recsys train``.

A request with a filter takes the first ``n`` listed items that pass it, which is the exact
answer whenever at least ``n`` of the ``k`` pass; otherwise (and for a user with recent activity,
per-request weights whose bound fails, or ``n > k``) the service computes the answer.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from recsys.bundle import TRAINED, Bundle, ListCosines, TopLists
from recsys.collab.als import UserItems
from recsys.collab.blend import blend, cf_scale, unit_users
from recsys.index.cells import cell_nearest
from recsys.index.exact import nearest, row_blocks, top_k_rows
from recsys.index.hnsw import hnsw_nearest
from recsys.index.lists import list_recall
from recsys.pipeline.scratch import mapped_zeros
from recsys.towers.item import ItemVectors, content_query

__all__ = ["similar_lists", "list_methods", "approximate_lists", "exact_lists_seconds", "lists_recall",
           "list_cosines", "feed_lists", "blended_lists"]

logger = logging.getLogger(__name__)

# below this many items the exact lists take seconds on any machine: not worth timing
EXACT_UNTIMED_ITEMS = 20_000

# a block of users' feed scores against every item: float32 values held at once (256 MB), which
# is 64 users at a million items
_FEED_BLOCK_VALUES = 1 << 26


def similar_lists(vectors: ItemVectors, k: int, *, methods: dict[str, str] | None = None,
                  show_progress: bool = False) -> dict[str, TopLists]:
    """Each item's ``k`` most similar items under the default weights (``"combined"``) and by
    each modality's cosine alone (one entry per modality): exactly, or each by the method
    ``methods`` names for it (:func:`list_methods`: large catalogs, where the exact lists cost
    ``n ** 2``).

    ``"combined"`` is the score of :meth:`recsys.serve.Recommender.similar_items` with no
    per-request weights. The per-modality lists answer per-request weights: every item outside
    them is bounded by their last scores, so the candidates they hold, re-scored exactly, give
    the exact answer whenever the ``n``-th best beats that bound
    (:meth:`recsys.serve.Recommender.similar_items`). An item lacks a list entry for a modality
    it has no vector for; an item without any vector gets empty lists. Approximate lists never
    name an item without any vector (the exact ones may, with score 0, where fewer than ``k``
    items score above 0), and the bound holds only as far as they hold the exact neighbours
    (:func:`lists_recall`).
    """
    lists = {}
    for name, (matrix, mask) in _spaces(vectors).items():
        method = (methods or {}).get(name, "exact")
        desc = "similar items" if name == "combined" else f"similar items ({name})"
        if method == "exact":
            found = nearest(matrix, mask, k, desc=desc, show_progress=show_progress, only_with=name != "combined")
        else:
            find = cell_nearest if method == "cells" else hnsw_nearest
            found = find(matrix, mask, k, desc=f"{desc} ({method})", show_progress=show_progress)
        lists[name] = TopLists(*found)
    return lists


def list_methods(vectors: ItemVectors, *, approximate: bool, hnsw_max_dim: int) -> dict[str, str]:
    """How :func:`similar_lists` finds each list: ``"exact"``, or with ``approximate`` from the
    rows of nearby k-means cells scored exactly (``"cells"``,
    :func:`~recsys.index.cells.cell_nearest`), or from an HNSW graph (``"hnsw"``,
    :func:`~recsys.index.hnsw.hnsw_nearest`) for a space of at most ``hnsw_max_dim`` dimensions:
    in few dimensions an item's neighbours spread over more cells than a cell probes."""
    return {name: "exact" if not approximate else "hnsw" if matrix.shape[1] <= hnsw_max_dim else "cells"
            for name, (matrix, _) in _spaces(vectors).items()}


def approximate_lists(vectors: ItemVectors, k: int, *, max_items: int, max_seconds: float,
                      seed: int = 0) -> tuple[bool, float | None]:
    """Whether a build takes approximate lists (:func:`list_methods`) instead of the exact ones: a
    catalog of more than ``max_items``, or one whose exact lists would take more than
    ``max_seconds`` on this machine (:func:`exact_lists_seconds`, timed above
    :data:`EXACT_UNTIMED_ITEMS` items).

    Returns:
        ``(approximate, the exact lists' estimated seconds, None where not timed)``.
    """
    n = len(vectors.mask)
    if n > max_items:
        return True, None
    if n <= EXACT_UNTIMED_ITEMS:
        return False, None
    estimate = exact_lists_seconds(vectors, k, seed=seed)
    approximate = estimate > max_seconds
    logger.info("exact similar lists would take about %.0f s here (512 rows timed, %s items); the limit is "
                "%.0f s: %s lists", estimate, f"{n:,}", max_seconds, "approximate" if approximate else "exact")
    return approximate, estimate


def exact_lists_seconds(vectors: ItemVectors, k: int, *, sample: int = 512, seed: int = 0) -> float:
    """How long the exact lists of every space (:func:`similar_lists`) would take on this machine:
    ``sample`` rows of each timed, scaled to every row. The cost per row grows with the catalog
    and differs several times between CPUs (their vector units, AMX or AVX2 only), so it is
    measured where the build runs, never assumed."""
    n = len(vectors.mask)
    rows = np.sort(np.random.default_rng(seed).choice(n, min(sample, n), replace=False))
    total = 0.0
    for name, (matrix, mask) in _spaces(vectors).items():
        started = time.perf_counter()
        nearest(matrix, mask, k, queries=rows, only_with=name != "combined")
        total += (time.perf_counter() - started) * n / len(rows)
    return total


def _spaces(vectors: ItemVectors) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Each list's vectors and which items have them: the combined space, then each modality."""
    return {name: vectors.space(name) for name in ("combined", *vectors.blocks)}


def lists_recall(vectors: ItemVectors, lists: dict[str, TopLists], *, sample: int,
                 seed: int = 0) -> dict[str, dict[str, float]]:
    """Per list, recall@10 and recall@k of approximate ``lists`` against exact search on
    ``sample`` items (:func:`~recsys.index.lists.list_recall`)."""
    spaces = _spaces(vectors)
    k = next(iter(lists.values())).k
    ks = (10, k) if k > 10 else (k,)
    return {name: list_recall(*spaces[name], lists[name].rows, ks=ks, sample=sample, seed=seed) for name in lists}


def list_cosines(vectors: ItemVectors, lists: dict[str, TopLists], *, folder: Path | None = None,
                 show_progress: bool = False) -> ListCosines:
    """The union of each item's per-modality ``lists`` with every modality's cosine to each
    (:class:`ListCosines`), in memory or, with ``folder``, mapped from files there
    (:mod:`recsys.pipeline.scratch`: a million items' come to gigabytes)."""
    blocks = list(vectors.blocks.values())
    n = len(vectors.combined)
    names = list(vectors.blocks)
    # twice in blocks of rows, so that a large catalog's union is never held in int64: its width,
    # then the rows and their cosines
    width = max(1, max((int((_union(lists, names, part) < n).sum(axis=1).max(initial=0))
                        for part in row_blocks(n, len(names) * lists[names[0]].k, "", False)), default=1))
    if folder is None:
        rows, cosines = np.full((n, width), -1, np.int32), np.zeros((n, width, len(blocks)), np.float32)
    else:
        rows = mapped_zeros((n, width), np.int32, folder, fill=-1)
        cosines = mapped_zeros((n, width, len(blocks)), np.float32, folder)
    dims = sum(b.dim for b in blocks)
    for part in row_blocks(n, width * dims, "similar items (cosines)", show_progress):
        union = _union(lists, names, part)[:, :width]
        valid = union < n
        safe = np.where(valid, union, 0)
        rows[part] = np.where(valid, union, -1)
        for j, block in enumerate(blocks):
            matrix = np.asarray(block.vectors, dtype=np.float32)
            cos = np.einsum("bwd,bd->bw", matrix[safe], matrix[part])
            cosines[part, :, j] = np.where(valid, cos, 0.0)
    return ListCosines(rows, cosines)


def _union(lists: dict[str, TopLists], names: list[str], part: slice) -> np.ndarray:
    """The rows ``part``'s lists ``names`` hold, each once, ascending; ``n`` pads each row's end."""
    n = len(lists[names[0]].rows)
    listed = np.concatenate([lists[m].rows[part] for m in names], axis=1).astype(np.int64)
    listed[listed < 0] = n  # padding sorts last
    listed.sort(axis=1)
    listed[:, 1:][listed[:, 1:] == listed[:, :-1]] = n  # repeats become padding
    listed.sort(axis=1)
    return listed


def feed_lists(bundle: Bundle, k: int, *, content_weight: float, history_items: int,
               history_decay: float = 1.0, show_progress: bool = False) -> TopLists:
    """Each trained user's feed with their training items excluded and no recent items: the same
    score as :meth:`recsys.serve.Recommender.recommend` for that case (:func:`blended_lists`)."""
    collab = bundle.collab
    return blended_lists(collab.user_factors, collab.user_items, collab.item_factors, collab.item_state,
                         bundle.vectors, k, [content_weight], history_items=history_items,
                         history_decay=history_decay, show_progress=show_progress)[0]


def blended_lists(user_factors: np.ndarray, user_items: UserItems, item_factors: np.ndarray,
                  item_state: np.ndarray, vectors: ItemVectors, k: int, content_weights: Sequence[float],
                  *, history_items: int, history_decay: float = 1.0, users: np.ndarray | None = None,
                  exclude_seen: bool = True, show_progress: bool = False, desc: str = "feeds") -> list[TopLists]:
    """The best ``k`` items of each of ``users`` (rows of ``user_items``; default all) under each
    of ``content_weights``, the items without factors excluded and, with ``exclude_seen``, the
    user's own, in one pass.

    Computed exactly in blocks: :func:`~recsys.collab.blend.blend` of ``user . item`` (the user's
    factors as :func:`~recsys.collab.blend.unit_users` scales them) and ``cosine(item, mean of the
    user's history)``, the content weight 0 for a user whose history has no content vectors, the
    history's mean weighted by ``history_decay`` as :func:`~recsys.towers.item.content_query`
    weights it.
    """
    factors = np.asarray(item_factors, dtype=np.float32)
    combined = np.asarray(vectors.combined, dtype=np.float32)
    users = np.arange(user_items.matrix.shape[0]) if users is None else np.asarray(users, np.int64)
    placed = item_state > 0
    scale = cf_scale(factors[item_state == TRAINED])
    lists = [TopLists(np.full((len(users), k), -1, np.int32), np.zeros((len(users), k), np.float32))
             for _ in content_weights]
    for block in row_blocks(len(users), len(factors), desc, show_progress, values=_FEED_BLOCK_VALUES):
        own = users[block]
        seen = user_items.matrix[own]
        excluded = [(slice(None), ~placed)]
        if exclude_seen:
            excluded.append((np.repeat(np.arange(len(own)), np.diff(seen.indptr)), seen.indices))
        cf = unit_users(user_factors[own], scale) @ factors.T
        content, has = None, np.zeros(len(own), bool)
        if any(content_weights):
            queries = [content_query(vectors, user_items.history(u)[0], history_items, history_decay)
                       for u in own]
            has = np.array([q is not None for q in queries])
            if has.any():
                taste = np.zeros((len(own), combined.shape[1]), np.float32)
                taste[has] = np.stack([q for q in queries if q is not None])
                content = taste @ combined.T
        # excluded items are -inf in both terms, so that every blend of them stays -inf: masked
        # once per block, not once per weight
        for where in excluded:
            cf[where] = -np.inf
            if content is not None:
                content[where] = -np.inf
        for weight, out in zip(content_weights, lists):
            s = cf
            if content is not None and weight > 0:
                # the blend at weight 1 is the content itself, and 0 * -inf would be NaN
                s = content if weight == 1 else blend(cf, content, weight)
                if not has.all():  # a user whose history has no content vectors: the factors alone
                    s = np.where(has[:, None], s, cf)
            out.rows[block], out.scores[block] = top_k_rows(s, k)
    return lists
