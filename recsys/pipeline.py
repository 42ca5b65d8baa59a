"""The item-side build: catalog -> towers -> item vectors -> indexes -> bundle."""
from __future__ import annotations

import logging
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from recsys._hashing import sha256_bytes
from recsys.bundle import write_bundle
from recsys.errors import DataError, RecsysWarning
from recsys.index.annoy import AnnIndex, measure_recall
from recsys.settings import Settings
from recsys.towers.base import TowerOutput
from recsys.towers.cache import EmbeddingCache, encode_cached
from recsys.towers.item import combine
from recsys.towers.registry import create_tower

__all__ = ["BuildReport", "build_item_bundle", "create_towers"]

logger = logging.getLogger(__name__)


@dataclass
class BuildReport:
    """What a build did: where, how many, how good, how long."""

    path: Path
    items: int
    modalities: dict[str, int]
    dims: dict[str, int]
    recall: dict[str, float]
    cache: dict[str, dict]
    seconds: float
    unreadable_images: int = 0
    warnings: list[str] = field(default_factory=list)

    def summary(self) -> str:
        lines = [f"bundle    {self.path}", f"items     {self.items:,}"]
        lines.append("modality  " + ", ".join(
            f"{m}: {c:,} items ({c / max(self.items, 1):.0%}), dim {self.dims[m]}"
            for m, c in self.modalities.items()))
        lines.append(f"combined  dim {self.dims['combined']}")
        lines.append("recall@10 " + ", ".join(f"{k}: {v:.3f}" for k, v in self.recall.items())
                     + "  (Annoy vs exact search)")
        lines.append("embedded  " + ", ".join(
            f"{m}: {s['encoded']:,} new, {s['cached']:,} cached" for m, s in self.cache.items()))
        if self.unreadable_images:
            lines.append(f"images    {self.unreadable_images:,} unreadable (those items have no image modality)")
        lines.append(f"time      {self.seconds:.1f} s")
        return "\n".join(lines)


def create_towers(settings: Settings) -> dict:
    """The image, text and tabular towers configured by ``settings`` (models load lazily)."""
    return {
        "image": create_tower("image", **settings.towers.image.model_dump()),
        "text": create_tower("text", **settings.towers.text.model_dump()),
        "tabular": create_tower("tabular", **settings.towers.tabular.model_dump()),
    }


def _fingerprint(catalog: pd.DataFrame) -> str:
    hashes = pd.util.hash_pandas_object(catalog.astype(str), index=False).to_numpy()
    return sha256_bytes(hashes.tobytes() + "\x1f".join(catalog.columns).encode())


def build_item_bundle(
    catalog: pd.DataFrame,
    settings: Settings,
    out_dir: str | Path,
    *,
    source: str = "catalog",
    show_progress: bool = True,
    towers: dict | None = None,
) -> BuildReport:
    """Embed a validated catalog, build the indexes and write a new bundle version.

    Args:
        catalog: from :func:`recsys.data.load_catalog`.
        settings: towers, weights and index options.
        out_dir: ``models/<name>``; the version directory is created inside.
        source: how the catalog was named (recorded in the manifest).
        show_progress: tqdm bars for the towers.
        towers: already created towers (tests share loaded models); default from ``settings``.

    Returns:
        BuildReport: see :meth:`BuildReport.summary`.

    Raises:
        DataError: an empty catalog, or one where no item has any usable modality.
    """
    started = time.perf_counter()
    if len(catalog) == 0:
        raise DataError(f"{source}: the catalog has no items")
    towers = towers or create_towers(settings)
    cache_dir = settings.towers.cache_dir or settings.state_dir / "embeddings"
    cache = EmbeddingCache(Path(cache_dir) / "cache.sqlite3")
    blocks: dict[str, TowerOutput] = {}
    stats: dict[str, dict] = {}
    caught: list[str] = []
    try:
        for name, tower in towers.items():
            if name == "tabular":
                tower.fit(catalog)
            with warnings.catch_warnings(record=True) as seen:
                warnings.simplefilter("always", RecsysWarning)
                block, stats[name] = encode_cached(tower, catalog, cache, show_progress=show_progress)
            caught += [str(w.message) for w in seen if issubclass(w.category, RecsysWarning)]
            if block.mask.any():
                blocks[name] = block
            else:
                logger.info("no item has the %s modality; it is left out", name)
    finally:
        cache.close()
    if not blocks:
        raise DataError(f"{source}: no item has an image, text or tabular attributes to embed")
    weights = {m: w for m, w in settings.weights.items() if m in blocks}
    if not any(weights.values()):
        weights = {m: 1.0 for m in blocks}
        caught.append("no configured weight applies to the modalities present; using equal weights")
    vectors = combine(blocks, weights)

    index_settings = settings.index
    indexes, recall = {}, {}
    spaces = {"combined": TowerOutput(vectors.combined, vectors.mask), **blocks}
    for name, space in spaces.items():
        rows = np.flatnonzero(space.mask)
        indexes[name] = AnnIndex.build(space.vectors, rows, n_trees=index_settings.n_trees,
                                       seed=index_settings.seed, search_k=index_settings.search_k)
        recall[name] = measure_recall(indexes[name], space.vectors, k=10,
                                      sample=index_settings.recall_sample, seed=settings.seed)
    encoders = {name: towers[name].describe() for name in blocks}
    unreadable = 0
    if "image" in towers and "image" in catalog.columns:
        has_path = (catalog["image"].astype(str) != "").to_numpy()
        unreadable = int(has_path.sum() - (blocks["image"].mask.sum() if "image" in blocks else 0))
    manifest = {
        "source": source,
        "encoders": encoders,
        "counts": {"items": len(catalog), "users": 0,
                   **{f"items_with_{m}": int(b.mask.sum()) for m, b in blocks.items()}},
        "data_fingerprint": _fingerprint(catalog),
        "indexes": {name: {"recall@10": round(r, 4), "search_k": index_settings.search_k}
                    for name, r in recall.items()},
        "metrics": {},
    }
    path = write_bundle(out_dir, items=catalog, vectors=vectors, indexes=indexes,
                        tabular_state=towers["tabular"].get_state() if "tabular" in blocks else None,
                        manifest=manifest)
    return BuildReport(
        path=path, items=len(catalog), modalities={m: int(b.mask.sum()) for m, b in blocks.items()},
        dims={**{m: b.dim for m, b in blocks.items()}, "combined": int(vectors.combined.shape[1])},
        recall=recall, cache=stats, seconds=time.perf_counter() - started,
        unreadable_images=unreadable, warnings=caught,
    )
