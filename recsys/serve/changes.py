"""Changes since the bundle: items put through the API (embedded on the spot with the bundle's
own encoders, :mod:`recsys.serve.embedder`) are searched exactly beside the bundle's items;
deleted items are hidden; attribute values set per item (``in_stock``) and the merchandising rules
(:mod:`recsys.control.rules`) are matched against the whole catalog.

An item change lives in Redis (:class:`~recsys.store.changes.ChangeStore`) until a bundle built
after it is published; attributes, rules and a reviewer's merges stay until changed. Every worker
rebuilds its :class:`ItemChanges` when the item generation moves (every such write moves it).
"""
from __future__ import annotations

import base64
import logging
from dataclasses import dataclass, field
from datetime import datetime, timezone

import numpy as np
import pandas as pd

from recsys.bundle import Bundle
from recsys.control.experiments import Experiment
from recsys.control.rules import Rule, RuleBook
from recsys.curation.tagger import bundle_taggers, tag_items
from recsys.data import schema as S
from recsys.data.ids import IdMap
from recsys.data.validate import validate_catalog
from recsys.serve.candidates import best
from recsys.serve.filters import FilterColumns, ItemFilter, without_include
from recsys.serve.rows import Scored, scored_list
from recsys.towers.base import TowerOutput
from recsys.towers.item import ItemVectors, combine, weighted_scores

__all__ = ["ITEM_FIELDS", "ItemChanges", "make_entry"]

logger = logging.getLogger(__name__)

# catalog attributes an item may carry through the API
ITEM_FIELDS = (S.TITLE, S.DESCRIPTION, S.TAGS, S.IMAGE, S.COLOUR, S.PRICE, S.CATEGORY, S.YEAR,
               S.GENRES)


def make_entry(item: dict, outputs: dict[str, TowerOutput], thumbnail: bytes | None = None) -> dict:
    """The JSON stored in Redis for one put item: its attributes, vectors, JPEG thumbnail and time."""
    vectors = {m: (base64.b64encode(np.ascontiguousarray(o.vectors[0], np.float32).tobytes()).decode()
                   if o.mask[0] else None) for m, o in outputs.items()}
    return {"item": item, "vectors": vectors,
            "thumbnail": base64.b64encode(thumbnail).decode() if thumbnail else None,
            "updated": datetime.now(timezone.utc).isoformat(timespec="seconds")}


def _decode(text: str | None, dim: int) -> np.ndarray | None:
    if text is None:
        return None
    vector = np.frombuffer(base64.b64decode(text), dtype=np.float32)
    return vector if vector.shape == (dim,) else None


@dataclass(frozen=True)
class ItemChanges:
    """The put and deleted items a worker serves on top of its bundle.

    Attributes:
        gen: the item generation these changes were read at.
        ids: the put items' ids (rows of ``items`` and ``vectors``).
        items: their attributes, validated like a catalog.
        vectors: their vectors per modality and combined with the bundle's default weights.
        columns: filter columns over ``items``.
        hidden: ``(bundle items,)`` bool: rows replaced by a put item or deleted; similar-items
            results skip them.
        deleted: ``(bundle items,)`` bool: rows deleted; every result skips them.
        deleted_ids: every deleted id, in the bundle or not.
        thumbnails: the JPEG thumbnail of each put item that has one, by id.
        factors: ``(put items, f)`` float32: each put item's place in the bundle's factor space,
            by the content map the training kept (:class:`~recsys.collab.project.ContentProjection`),
            zero where not placed; ``f`` is 0 without a user tower.
        placed: ``(put items,)`` bool: the put items a feed may show and fold in: those the bundle
            does not hold (one it holds keeps its trained factors) that have a combined vector,
            where the bundle kept the map.
        attributes: per item id, attribute values set since the bundle (``PATCH /v1/items/{id}``).
        rules: the merchandising rules, matched against the bundle's items, the put items and
            ``attributes``.
        experiments: the experiments (the worker assigns reads to their variants).
        held: ``(put items,)`` bool: put items a check held out of reads until released
            (:mod:`recsys.worker.arrival`).
        duplicate_groups: a group key per item id, for the put items found to duplicate a served
            item and the items they duplicate: reads that dedupe show one listing of a group, as
            for the bundle's own groups (:mod:`recsys.serve.dedupe`).
        merged: listings a reviewer merged into another, by id: the listing each redirects to.
            They are hidden like deleted items (their ids are in ``deleted_ids``), and a read
            naming one answers for the listing it redirects to.
        labels: per put item id, each of the bundle's saved taggers' tag of it
            (:mod:`recsys.curation.tagger`); empty when the bundle has no tagger.
    """

    gen: int
    ids: IdMap
    items: pd.DataFrame
    vectors: ItemVectors
    columns: FilterColumns
    hidden: np.ndarray
    deleted: np.ndarray
    deleted_ids: frozenset[str]
    thumbnails: dict[str, bytes]
    factors: np.ndarray
    placed: np.ndarray
    attributes: dict[str, dict]
    rules: RuleBook
    experiments: tuple[Experiment, ...] = ()
    held: np.ndarray | None = None
    duplicate_groups: dict[str, int] = field(default_factory=dict)
    merged: dict[str, str] = field(default_factory=dict)
    labels: dict[str, dict] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.ids)

    @classmethod
    def build(cls, bundle: Bundle, gen: int = 0, entries: dict[str, dict] | None = None,
              deleted: set[str] | frozenset[str] = frozenset(), attributes: dict[str, dict] | None = None,
              rules: tuple[Rule, ...] = (), rules_version: int = 0,
              experiments: tuple[Experiment, ...] = (), merged: dict[str, str] | None = None) -> ItemChanges:
        """Assemble the changes from Redis entries (entries whose vectors do not fit the bundle's
        spaces, e.g. embedded for an older bundle with other encoders, are skipped with a log line)."""
        blocks_meta = bundle.vectors.blocks
        rows, kept, thumbnails = {m: [] for m in blocks_meta}, [], {}
        for item_id, entry in sorted((entries or {}).items()):
            decoded = {m: _decode(entry.get("vectors", {}).get(m), b.dim) for m, b in blocks_meta.items()}
            if all(v is None for v in decoded.values()):
                logger.warning("put item %r does not fit bundle %s (other encoders); re-put it",
                               item_id, bundle.version)
                continue
            item = {k: ("" if v is None and k in S.CATALOG_TEXT_COLUMNS else v)
                    for k, v in entry["item"].items()}
            kept.append({**item, S.ITEM_ID: item_id})
            if entry.get("thumbnail"):
                thumbnails[item_id] = base64.b64decode(entry["thumbnail"])
            for m, v in decoded.items():
                rows[m].append(v)
        blocks = {}
        for m, b in blocks_meta.items():
            mask = np.array([v is not None for v in rows[m]], dtype=bool)
            vectors = np.zeros((len(kept), b.dim), np.float32)
            if mask.any():
                vectors[mask] = np.stack([v for v in rows[m] if v is not None])
            blocks[m] = TowerOutput(vectors, mask)
        items = validate_catalog(pd.DataFrame(kept, columns=[S.ITEM_ID, *ITEM_FIELDS]), source="put items")
        vectors = combine(blocks, bundle.vectors.weights)
        ids = IdMap(items[S.ITEM_ID])
        n = len(bundle.item_ids)
        merged = merged or {}
        deleted = set(deleted) | merged.keys()
        gone = np.zeros(n, bool)
        known_deleted = [i for i in deleted if i in bundle.item_ids]
        gone[bundle.item_ids.rows(known_deleted)] = True
        hidden = gone.copy()
        hidden[bundle.item_ids.rows([i for i in ids.ids if i in bundle.item_ids])] = True
        factors, placed = _places(bundle, ids, vectors)
        attributes = attributes or {}
        book = RuleBook(tuple(rules), rules_version, bundle.item_ids, bundle.items, ids, items, attributes)
        held = np.array([bool((entries or {})[i].get("held")) or i in merged for i in ids.ids], bool)
        placed &= ~held
        return cls(gen=gen, ids=ids, items=items, vectors=vectors, columns=FilterColumns(items, ids),
                   hidden=hidden, deleted=gone, deleted_ids=frozenset(deleted), thumbnails=thumbnails,
                   factors=factors, placed=placed, attributes=attributes, rules=book, experiments=tuple(experiments),
                   held=held, duplicate_groups=_duplicate_groups(bundle, ids, entries or {}, gone), merged=merged,
                   labels=_labels(bundle, ids, vectors))

    def redirect(self, item_id: str) -> str:
        """The listing a read naming ``item_id`` answers for: the one it was merged into, or itself."""
        return self.merged.get(item_id, item_id)

    def query(self, item_id: str) -> dict[str, np.ndarray | None]:
        """A put item's unit vector per modality (``None`` where it lacks one)."""
        row = self.ids.row(item_id)
        return {m: (b.vectors[row] if b.mask[row] else None) for m, b in self.vectors.blocks.items()}

    def matching(self, filters: ItemFilter | None, bundle_ids: IdMap) -> np.ndarray:
        """The rows of the put items that ``filters`` keeps (``include`` may name bundle items)."""
        keep = self.columns.mask(without_include(filters), known_elsewhere=bundle_ids)
        keep = np.ones(len(self), bool) if keep is None else keep
        rows = np.flatnonzero(keep & ~self.held if self.held is not None else keep)
        if filters is not None and filters.include:
            rows = rows[np.isin(self.ids.ids[rows], filters.include)]
        return rows

    def merge(self, found: list[Scored], query: dict, weights: dict[str, float], k: int,
              filters: ItemFilter | None, bundle_ids: IdMap, exclude: str | None = None) -> list[Scored]:
        """``found`` (bundle items, best first) merged with the put items that ``filters`` keeps,
        scored exactly against ``query`` under ``weights`` (they are few): the best ``k``."""
        if not len(self):
            return found
        rows = self.matching(filters, bundle_ids)
        rows = rows[self.ids.ids[rows] != exclude]
        return self.merge_scored(found, rows, weighted_scores(self.vectors.blocks, query, rows, weights), k)

    def merge_scored(self, found: list[Scored], rows: np.ndarray, scores: np.ndarray, k: int, *,
                     cold: bool = False) -> list[Scored]:
        """``found`` (bundle items, best first) merged with the put items at ``rows`` and their
        ``scores``: the best ``k``. Only the best ``k`` put items become rows."""
        rows, scores = best(k, rows, scores)
        found = found + scored_list(self.ids.ids[rows].tolist(), scores, [cold] * len(rows))
        return sorted(found, key=lambda x: -x.score)[:k]


def _duplicate_groups(bundle: Bundle, ids: IdMap, entries: dict[str, dict], deleted: np.ndarray) -> dict[str, int]:
    """:attr:`ItemChanges.duplicate_groups` from the put items' duplicate checks: a put item joins
    the bundle group of the first served item it duplicates (that item's row names the group when
    it has none), or the group of a put item it duplicates."""
    groups: dict[str, int] = {}
    n = len(bundle.item_ids)
    for item_id in ids.ids:
        found = (entries[item_id].get("checks") or {}).get("duplicate") or {}
        for other in found.get("of", []):
            other_id = other["item_id"]
            if other_id in bundle.item_ids and not deleted[bundle.item_ids.row(other_id)]:
                other_row = bundle.item_ids.row(other_id)
                group = (int(bundle.duplicate_of[other_row]) if bundle.duplicate_of is not None
                         and bundle.duplicate_of[other_row] >= 0 else other_row)
            elif other_id in ids:
                group = groups.get(other_id, n + ids.row(other_id))
            else:
                continue
            groups[item_id] = groups.setdefault(other_id, group)
            break
    return groups


def _labels(bundle: Bundle, ids: IdMap, vectors: ItemVectors) -> dict[str, dict]:
    """:attr:`ItemChanges.labels`: the bundle's taggers' tags of the put items."""
    if not bundle.taggers or not len(ids):
        return {}
    tags = tag_items(bundle_taggers(bundle), vectors)
    return {item_id: {name: found[row] for name, found in tags.items()} for row, item_id in enumerate(ids.ids)}


def _places(bundle: Bundle, ids: IdMap, vectors: ItemVectors) -> tuple[np.ndarray, np.ndarray]:
    """The put items' factors and which are placed (see :class:`ItemChanges`)."""
    collab = bundle.collab
    factors = np.zeros((len(ids), collab.item_factors.shape[1] if collab is not None else 0), np.float32)
    placed = np.zeros(len(ids), bool)
    if len(ids) and collab is not None and collab.projection is not None:
        placed = vectors.mask & (bundle.item_ids.find(ids.ids.tolist()) < 0)
        if placed.any():
            factors[placed] = collab.projection.transform(vectors.combined[placed])
    return factors, placed
