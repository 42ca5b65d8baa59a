"""Item changes since the bundle: items put through the API are embedded on the spot with the
bundle's own encoders and searched exactly beside the Annoy results; deleted items are hidden.

A change lives in Redis (``RedisStore.put_item`` / ``delete_item``) until a bundle built after it
is published; every worker rebuilds its :class:`ItemChanges` when the item generation moves.
"""
from __future__ import annotations

import base64
import logging
import threading
from dataclasses import dataclass
from datetime import datetime, timezone

import numpy as np
import pandas as pd

from recsys.bundle import Bundle
from recsys.data import schema as S
from recsys.data.ids import IdMap
from recsys.data.validate import validate_catalog
from recsys.errors import InvalidRequest
from recsys.filters import FilterColumns
from recsys.towers.base import TowerOutput
from recsys.towers.item import ItemVectors, combine
from recsys.towers.registry import create_tower

__all__ = ["ITEM_FIELDS", "ItemChanges", "ItemEmbedder", "make_entry"]

logger = logging.getLogger(__name__)

# catalog attributes an item may carry through the API
ITEM_FIELDS = (S.TITLE, S.DESCRIPTION, S.TAGS, S.IMAGE, S.COLOUR, S.PRICE, S.CATEGORY, S.YEAR,
               S.GENRES)


class ItemEmbedder:
    """The bundle's towers, recreated from its manifest, loaded on first use.

    Args:
        bundle: the bundle whose encoders new items must match.
    """

    def __init__(self, bundle: Bundle):
        self.bundle = bundle
        self._towers: dict | None = None
        self._lock = threading.Lock()

    def _create(self) -> dict:
        encoders = self.bundle.manifest.get("encoders", {})
        towers = {}
        if "image" in encoders:
            enc = encoders["image"]
            towers["image"] = create_tower("image", model=enc["model"], weights=enc["weights"],
                                           precision=enc.get("precision"),
                                           colour_weight=enc.get("colour_weight"),
                                           batch_size=1, num_workers=0)
        if "text" in encoders:
            enc = encoders["text"]
            model = None if "offline package" in enc["model"] else enc["model"]
            towers["text"] = create_tower("text", model=model, fields=enc.get("fields"))
        if "tabular" in encoders and self.bundle.tabular_state is not None:
            towers["tabular"] = create_tower("tabular", state=self.bundle.tabular_state)
        return towers

    def warm(self) -> dict:
        """Load the towers' models now (a worker does it in the background after start-up, so the
        first put does not wait for torch and the models)."""
        with self._lock:  # one thread loads the models
            if self._towers is None:
                towers = self._create()
                for tower in towers.values():
                    tower.dim  # noqa: B018 - loads the tower's model
                self._towers = towers
            return self._towers

    def embed(self, catalog: pd.DataFrame) -> dict[str, TowerOutput]:
        """Per-modality unit vectors of validated catalog rows, in the bundle's spaces."""
        towers = self.warm()
        return {name: tower.encode(catalog, show_progress=False) for name, tower in towers.items()}


    def embed_query(self, text: str) -> np.ndarray:
        """A free-text query's unit vector in the bundle's text space.

        Raises:
            InvalidRequest: the bundle has no text encoder.
        """
        towers = self.warm()
        if "text" not in towers:
            raise InvalidRequest(f"bundle {self.bundle.version} has no text encoder to search with")
        return towers["text"].encode_texts([text])[0]


def make_entry(item: dict, outputs: dict[str, TowerOutput]) -> dict:
    """The JSON stored in Redis for one put item: its attributes, vectors and time."""
    vectors = {m: (base64.b64encode(np.ascontiguousarray(o.vectors[0], np.float32).tobytes()).decode()
                   if o.mask[0] else None) for m, o in outputs.items()}
    return {"item": item, "vectors": vectors,
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
    """

    gen: int
    ids: IdMap
    items: pd.DataFrame
    vectors: ItemVectors
    columns: FilterColumns
    hidden: np.ndarray
    deleted: np.ndarray
    deleted_ids: frozenset[str]

    def __len__(self) -> int:
        return len(self.ids)

    @classmethod
    def build(cls, bundle: Bundle, gen: int = 0, entries: dict[str, dict] | None = None,
              deleted: set[str] | frozenset[str] = frozenset()) -> ItemChanges:
        """Assemble the changes from Redis entries (entries whose vectors do not fit the bundle's
        spaces, e.g. embedded for an older bundle with other encoders, are skipped with a log line)."""
        blocks_meta = bundle.vectors.blocks
        rows, kept = {m: [] for m in blocks_meta}, []
        for item_id, entry in sorted((entries or {}).items()):
            decoded = {m: _decode(entry.get("vectors", {}).get(m), b.dim) for m, b in blocks_meta.items()}
            if all(v is None for v in decoded.values()):
                logger.warning("put item %r does not fit bundle %s (other encoders); re-put it",
                               item_id, bundle.version)
                continue
            item = {k: ("" if v is None and k in S.CATALOG_TEXT_COLUMNS else v)
                    for k, v in entry["item"].items()}
            kept.append({**item, S.ITEM_ID: item_id})
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
        gone = np.zeros(n, bool)
        known_deleted = [i for i in deleted if i in bundle.item_ids]
        gone[bundle.item_ids.rows(known_deleted)] = True
        hidden = gone.copy()
        hidden[bundle.item_ids.rows([i for i in ids.ids if i in bundle.item_ids])] = True
        return cls(gen=gen, ids=ids, items=items, vectors=vectors, columns=FilterColumns(items, ids),
                   hidden=hidden, deleted=gone, deleted_ids=frozenset(deleted))

    def query(self, item_id: str) -> dict[str, np.ndarray | None]:
        """A put item's unit vector per modality (``None`` where it lacks one)."""
        row = self.ids.row(item_id)
        return {m: (b.vectors[row] if b.mask[row] else None) for m, b in self.vectors.blocks.items()}
