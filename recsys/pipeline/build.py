"""The item build: catalog -> towers -> item vectors -> indexes -> precomputed lists -> bundle."""
from __future__ import annotations

import dataclasses
import json
import logging
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from recsys._hashing import sha256_bytes
from recsys.bundle import MANIFEST, Bundle, ItemIndex, TopLists, resolve_bundle_path, write_bundle
from recsys.curation.calibration import CROWDED, calibrate_image_threshold
from recsys.curation.duplicates import IMAGE_THRESHOLD, find_duplicates
from recsys.curation.flags import catalog_flags, flag_counts
from recsys.curation.outliers import find_outliers
from recsys.curation.tagger import labels_by_hand, refit_tagger
from recsys.data import schema as S
from recsys.data.ids import IdMap
from recsys.data.vectors import load_vectors
from recsys.errors import BundleError, DataError, InvalidRequest, RecsysWarning
from recsys.index.annoy import AnnIndex, candidates_for, measure_recall, tune_search_effort
from recsys.index.hnsw import HnswIndex
from recsys.manifest import check_name
from recsys.pipeline.align import fit_joint_space
from recsys.pipeline.precompute import (
    approximate_lists,
    list_cosines,
    list_methods,
    lists_recall,
    similar_lists,
)
from recsys.pipeline.scratch import mapped_copy, mapped_index
from recsys.pipeline.thumbnails import make_thumbnails
from recsys.settings import IndexSettings, Settings
from recsys.towers.base import TowerOutput, l2_normalise
from recsys.towers.cache import EmbeddingCache, encode_cached
from recsys.towers.engines import Engine, RayEngine
from recsys.towers.item import combine
from recsys.towers.registry import create_tower

__all__ = ["BuildReport", "Laps", "build_item_bundle", "create_towers", "data_fingerprint", "ray_engine"]

logger = logging.getLogger(__name__)
# the candidates the service asks an index for 10 results, re-scored: how the build measures its recall
_FETCH_10 = candidates_for(10)


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
    phases: dict[str, float] = field(default_factory=dict)
    lists_recall: dict[str, dict] = field(default_factory=dict)
    index_backend: str = "Annoy"
    search_effort: dict[str, float] = field(default_factory=dict)
    taggers: dict[str, dict] = field(default_factory=dict)

    def summary(self) -> str:
        lines = [f"bundle    {self.path}", f"items     {self.items:,}"]
        lines.append("modality  " + ", ".join(
            f"{m}: {c:,} items ({c / max(self.items, 1):.0%}), dim {self.dims[m]}"
            for m, c in self.modalities.items()))
        lines.append(f"combined  dim {self.dims['combined']}")
        effort = {k: f" (effort {e:g})" for k, e in self.search_effort.items() if e > 1}
        lines.append("recall@10 " + ", ".join(f"{k}: {v:.3f}{effort.get(k, '')}" for k, v in self.recall.items())
                     + f"  ({self.index_backend}, {_FETCH_10} candidates re-scored, vs exact search)")
        if self.lists_recall:
            lines.append("lists     " + ", ".join(f"{name}: " + " ".join(f"{k} {v:.3f}" for k, v in r.items())
                                                  for name, r in self.lists_recall.items())
                         + "  (approximate lists vs exact search)")
        lines.append("embedded  " + ", ".join(
            f"{m}: {s['given']:,} given" if "given" in s else f"{m}: {s['encoded']:,} new, {s['cached']:,} cached"
            for m, s in self.cache.items()))
        for name, fitted in self.taggers.items():
            lines.append(f"tagger    {name}: carried from {fitted['from']}, refitted on {fitted['examples']} examples "
                         f"({fitted['gone']} gone from the catalog, {fitted['by_hand']} labels set by hand)")
        if self.unreadable_images:
            lines.append(f"images    {self.unreadable_images:,} unreadable (those items have no image modality)")
        lines.append(f"time      {self.seconds:.1f} s ("
                     + ", ".join(f"{name} {s:.1f} s" for name, s in self.phases.items()) + ")")
        return "\n".join(lines)


class Laps:
    """Seconds per phase of a build or a training: each :meth:`lap` ends the phase begun by the one before."""

    def __init__(self):
        self.seconds: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.seconds[name] = round(now - self._last, 2)
        self._last = now


def _tower_settings(settings: Settings) -> dict[str, dict]:
    return {name: getattr(settings.towers, name).model_dump() for name in ("image", "text", "tabular")}


def create_towers(settings: Settings) -> dict:
    """The image, text and tabular towers configured by ``settings`` (models load lazily)."""
    return {name: create_tower(name, **config) for name, config in _tower_settings(settings).items()}


def ray_engine(settings: Settings, address: str | None = None, workers: int = 1) -> RayEngine:
    """The Ray engine for :func:`build_item_bundle`, its actors building the towers ``settings``
    configures (a context manager: ``with ray_engine(settings) as engine: ...``)."""
    return RayEngine(_tower_settings(settings), address=address, workers=workers,
                     part_timeout=settings.towers.part_timeout)


def _serving_index(vectors: np.ndarray, rows: np.ndarray, index: IndexSettings) -> ItemIndex:
    """The serving index over ``vectors[rows]`` that ``index.backend`` names."""
    if index.backend == "hnsw":
        return HnswIndex.build(vectors, rows, links=index.hnsw_links, ef_search=index.hnsw_ef_search)
    return AnnIndex.build(vectors, rows, n_trees=index.n_trees, seed=index.seed, search_k=index.search_k)


def _mapped_block(block: TowerOutput, folder: Path) -> TowerOutput:
    return TowerOutput(mapped_copy(block.vectors, folder), block.mask)


def _calibrate_duplicates(tower, catalog: pd.DataFrame, block: TowerOutput, similar: dict | None,
                          settings: Settings, show_progress: bool) -> dict:
    """The duplicate finder's image threshold for this backbone (:mod:`recsys.curation.calibration`),
    or why the fixed one is kept."""
    copies = settings.duplicates.calibration_copies
    if not copies:
        return {"threshold": None, "reason": "calibration turned off (duplicates.calibration_copies = 0)"}
    if tower is None or S.IMAGE not in catalog.columns:
        return {"threshold": None, "reason": "image vectors given, not encoded: no tower to copy photos through"}
    nearest = None
    if similar and "image" in similar:
        lists = similar["image"]
        nearest = np.where(lists.rows[:, 0] >= 0, lists.scores[:, 0], np.nan)
    return calibrate_image_threshold(tower, catalog[S.IMAGE].fillna("").astype(str).tolist(), block.vectors,
                                     block.mask, copies=copies, seed=settings.seed, nearest=nearest,
                                     show_progress=show_progress)


def _carried_taggers(out_dir: Path, building: Bundle, seed: int, caught: list[str]) -> tuple[dict, dict]:
    """The taggers saved in the newest version under ``out_dir``, fitted again on this build's
    vectors (:func:`~recsys.curation.tagger.refit_tagger`: their examples still in the catalog, and
    the labels set by hand that the catalog's ``labels`` column carries): ``(JSON by name, what
    each was fitted from)``; one that cannot be is left out with a warning."""
    try:
        previous = resolve_bundle_path(out_dir)
    except BundleError:
        return {}, {}
    manifest = json.loads((previous / MANIFEST).read_text())
    taggers, carried = {}, {}
    for rel in sorted(r for r in manifest["files"] if r.startswith("taggers/")):
        saved = json.loads((previous / rel).read_text())
        name = saved["name"]
        try:
            tagger, fitted = refit_tagger(building, saved, labels_by_hand(building.items, name), seed=seed)
        except InvalidRequest as exc:
            caught.append(f"tagger {name!r} of {previous.name} is not carried into this build: {exc}")
            continue
        taggers[name] = tagger.to_json()
        carried[name] = {"from": previous.name, **fitted}
    return taggers, carried


def data_fingerprint(frame: pd.DataFrame) -> str:
    """A sha256 of a frame's values and column names: what a manifest records of its input data."""
    hashes = pd.util.hash_pandas_object(frame.astype(str), index=False).to_numpy()
    return sha256_bytes(hashes.tobytes() + "\x1f".join(frame.columns).encode())


def build_item_bundle(
    catalog: pd.DataFrame,
    settings: Settings,
    out_dir: str | Path,
    *,
    source: str = "catalog",
    show_progress: bool = True,
    towers: dict | None = None,
    vectors: str | Path | None = None,
    engine: Engine | None = None,
) -> BuildReport:
    """Embed a validated catalog, build the indexes and write a new bundle version.

    Args:
        catalog: from :func:`recsys.data.load_catalog`.
        settings: towers, weights and index options.
        out_dir: ``models/<name>``; the version directory is created inside.
        source: how the catalog was named (recorded in the manifest).
        show_progress: tqdm bars for the towers.
        towers: already created towers (tests share loaded models); default from ``settings``.
        vectors: a Parquet file or a folder of item vectors a team already has
            (:mod:`recsys.data.vectors`): their modalities skip the encoders and go through
            the same blocks, weights, indexes and bundle.
        engine: where the towers run: this process by default, or Ray (:func:`ray_engine`).

    Returns:
        BuildReport: see :meth:`BuildReport.summary`.

    Raises:
        DataError: an empty catalog, one where no item has any usable modality, or given
            vectors that do not fit it (:func:`recsys.data.vectors.load_vectors`).
        BundleError: ``out_dir``'s name is not a valid bundle name (checked before any work).
    """
    started, laps = time.perf_counter(), Laps()
    check_name(Path(out_dir).name, "name", str(out_dir))
    if len(catalog) == 0:
        raise DataError(f"{source}: the catalog has no items")
    given = load_vectors(vectors, catalog[S.ITEM_ID]) if vectors is not None else {}
    given_from = str(vectors)
    towers = {name: tower for name, tower in (towers or create_towers(settings)).items() if name not in given}
    cache_dir = settings.towers.cache_dir or settings.state_dir / "embeddings"
    cache = EmbeddingCache(Path(cache_dir) / "cache.sqlite3")
    # a large catalog's arrays are kept in mapped files beside the bundle (recsys.pipeline.scratch)
    scratch = Path(out_dir)
    blocks: dict[str, TowerOutput] = {name: _mapped_block(TowerOutput(*l2_normalise(rows, present)), scratch)
                                      for name, (rows, present) in given.items() if present.any()}
    stats: dict[str, dict] = {name: {"given": int(present.sum())} for name, (_, present) in given.items()}
    del given  # the blocks hold them now, normalised
    caught: list[str] = []
    try:
        for name, tower in towers.items():
            if name == "tabular":
                tower.fit(catalog)
            with warnings.catch_warnings(record=True) as seen:
                warnings.simplefilter("always", RecsysWarning)
                block, stats[name] = encode_cached(tower, catalog, cache, show_progress=show_progress,
                                                   save_every=settings.towers.save_every, engine=engine)
            caught += [str(w.message) for w in seen if issubclass(w.category, RecsysWarning)]
            if block.mask.any():
                blocks[name] = _mapped_block(block, scratch)
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
    vectors = dataclasses.replace(vectors, combined=mapped_copy(vectors.combined, scratch))
    laps.lap("embed")

    index_settings = settings.index
    indexes, recall = {}, {}
    spaces = {"combined": TowerOutput(vectors.combined, vectors.mask), **blocks}
    for name, space in spaces.items():
        rows = np.flatnonzero(space.mask)
        indexes[name] = index = mapped_index(_serving_index(space.vectors, rows, index_settings), name, scratch)
        measure = {"k": 10, "fetch": _FETCH_10, "sample": index_settings.recall_sample, "seed": settings.seed}
        if isinstance(index, AnnIndex) and index.search_k == -1 and index_settings.target_recall > 0:
            recall[name] = tune_search_effort(index, space.vectors, target=index_settings.target_recall,
                                              max_effort=index_settings.max_search_effort, **measure)
        else:
            recall[name] = measure_recall(index, space.vectors, **measure)
    laps.lap("indexes")
    encoders = {name: towers[name].describe() if name in towers else {"given": given_from, "dim": blocks[name].dim}
                for name in blocks}
    unreadable = 0
    if "image" in towers and "image" in catalog.columns:
        has_path = (catalog["image"].astype(str) != "").to_numpy()
        unreadable = int(has_path.sum() - (blocks["image"].mask.sum() if "image" in blocks else 0))
    manifest = {
        "source": source,
        "encoders": encoders,
        "counts": {"items": len(catalog), "users": 0,
                   **{f"items_with_{m}": int(b.mask.sum()) for m, b in blocks.items()}},
        "data_fingerprint": data_fingerprint(catalog),
        "indexes": {name: {"recall@10": round(r, 4)} for name, r in recall.items()},  # write_bundle adds the rest
        "metrics": {},
    }
    k = index_settings.precompute_k
    approximate, exact_estimate = (False, None) if not k else approximate_lists(
        vectors, k, max_items=index_settings.exact_lists_max, max_seconds=index_settings.exact_lists_seconds,
        seed=settings.seed)
    methods = list_methods(vectors, approximate=approximate, hnsw_max_dim=index_settings.hnsw_lists_max_dim)
    similar = similar_lists(vectors, k, methods=methods, show_progress=show_progress) if k else None
    similar = {name: TopLists(mapped_copy(lists.rows, scratch), mapped_copy(lists.scores, scratch))
               for name, lists in similar.items()} if similar else None
    if similar:
        manifest["lists"] = {"method": "approximate" if approximate else "exact"}
        if exact_estimate is not None:
            manifest["lists"]["exact_estimate_s"] = round(exact_estimate, 1)
        if approximate:
            manifest["lists"]["methods"] = methods
            manifest["lists"]["recall"] = lists_recall(vectors, similar, sample=index_settings.recall_sample,
                                                       seed=settings.seed)
    laps.lap("similar lists")
    cosines = list_cosines(vectors, similar, folder=scratch, show_progress=show_progress) if similar else None
    laps.lap("listed cosines")
    thumbnails = (make_thumbnails(catalog[S.IMAGE], settings.images, show_progress=show_progress)
                  if S.IMAGE in catalog.columns else None)
    if thumbnails is not None:
        manifest["thumbnails"] = {"items": int(thumbnails.present().sum()),
                                  "size": settings.images.thumbnail_size}
    # built in memory: the duplicate finder, the outliers and the taggers read a bundle's parts
    # before it is written
    building = Bundle(path=Path(out_dir), manifest={"version": "(being built)"}, items=catalog,
                      item_ids=IdMap(catalog[S.ITEM_ID]), vectors=vectors, indexes=indexes, tabular_state=None,
                      similar=similar or {}, thumbnails=thumbnails)
    duplicate_of, flags = None, None
    if "image" in blocks:
        calibration = _calibrate_duplicates(towers.get("image"), catalog, blocks["image"], similar, settings,
                                            show_progress)
        if calibration.get("neighbours_passing", 0) > CROWDED:
            caught.append(f"the image backbone puts {calibration['neighbours_passing']:.0%} of items' nearest "
                          "neighbours above its duplicate threshold: duplicates rest on the pixel and text checks")
        found = find_duplicates(building, threshold=calibration.get("threshold") or IMAGE_THRESHOLD,
                                show_progress=show_progress)
        duplicate_of = found.first_rows(building.item_ids)
        manifest["duplicates"] = {**found.settings, "groups": len(found.groups),
                                  "items": int((duplicate_of >= 0).sum()), "calibration": calibration}
        if settings.checks.at_build:
            flags = catalog_flags(found, find_outliers(building, show_progress=show_progress))
            manifest["flags"] = flag_counts(flags)
    laps.lap("thumbnails, duplicates and outliers")
    joint = fit_joint_space(blocks, settings, show_progress=show_progress) if settings.towers.joint.enabled else None
    laps.lap("joint space")
    taggers, carried = _carried_taggers(Path(out_dir), building, settings.seed, caught)
    if carried:
        manifest["taggers"] = carried
    laps.lap("taggers")
    fitted_tabular = "tabular" in towers and "tabular" in blocks  # not when its vectors were given
    path = write_bundle(out_dir, items=catalog, vectors=vectors, indexes=indexes,
                        tabular_state=towers["tabular"].get_state() if fitted_tabular else None,
                        manifest=manifest, similar=similar, list_cosines=cosines, thumbnails=thumbnails,
                        duplicate_of=duplicate_of, joint=joint, flags=flags, taggers=taggers)
    laps.lap("write")
    return BuildReport(
        path=path, items=len(catalog), modalities={m: int(b.mask.sum()) for m, b in blocks.items()},
        dims={**{m: b.dim for m, b in blocks.items()}, "combined": int(vectors.combined.shape[1])},
        recall=recall, cache=stats, seconds=time.perf_counter() - started,
        unreadable_images=unreadable, warnings=caught, phases=laps.seconds,
        lists_recall=manifest.get("lists", {}).get("recall", {}),
        index_backend="HNSW" if index_settings.backend == "hnsw" else "Annoy",
        search_effort={name: ix.search_effort for name, ix in indexes.items() if isinstance(ix, AnnIndex)},
        taggers=carried,
    )
