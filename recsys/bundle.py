"""Step 5 of the flow: model bundles on disk, written atomically and verified on load.

Layout of ``models/<name>/<version>/``::

    manifest.json              version, encoders, weights, dims, counts, recall, sha256 per file
    items.parquet              item ids (row order) and their display/filter metadata
    vectors/<m>.npy            per-modality unit vectors, (n, d_m) float32; <m>.mask.npy (n,) bool
    vectors/combined.npy       weighted concatenation with the default weights; combined.mask.npy
    towers/tabular.json        fitted tabular state (ranges, vocabularies)
    index/<name>.ann           Annoy (angular) for "combined" and each modality; <name>.rows.npy
                               (index/<name>.hnsw, a faiss HNSW graph, with index.backend hnsw)
    precomputed/similar.rows.npy, similar.scores.npy
                               each item's top k similar items under the default weights (optional)
    precomputed/similar.<m>.rows.npy, similar.<m>.scores.npy
                               the same by modality m alone, for per-request weights (optional)
    precomputed/listed.rows.npy, listed.cosines.npy
                               per item, the items of its per-modality lists and every modality's
                               cosine to each, to re-score them under per-request weights (optional)
    images/thumbnails.npy, thumbnails.offsets.npy
                               each item's JPEG thumbnail, re-encoded from its catalog image (optional)
    joint/image.npy, joint/text.npy
                               the joint text-image space's projection heads (image_dim, d) and
                               (text_dim, d) float32 (:mod:`recsys.towers.joint`; optional)
    curation/duplicate_of.npy  (n,) int32: the row of the first item of each item's group of
                               duplicate listings, -1 for none (:mod:`recsys.curation.duplicates`;
                               optional)
    curation/flags.json        the items the build's duplicate and outlier reads flagged, with their
                               evidence, for the review queue (:mod:`recsys.curation.flags`; optional)
    taggers/<name>.json        a saved tagger: labels, weights, temperature, the confidence under
                               which it says none (:mod:`recsys.curation.tagger`; optional; a
                               build refits the newest version's taggers)

A trained version (``recsys train``) adds the user tower beside a byte-identical copy of the item side:

    collab/users.parquet       user ids in row order
    collab/user_items.npz      users x items CSR of event strengths (indptr, indices, data, shape)
                               and last_seen (epoch seconds per stored entry)
    collab/user_factors.npy    (users, f) float32
    collab/item_factors.npy    (items, f) float32; trained, or projected from content (cold items)
    collab/item_state.npy      (items,) int8: 0 no factors, 1 trained, 2 projected from content
    collab/popularity.npy      (items,) float32, the no-history fallback ranking
    collab/projection.npz      the map from combined content vectors to factors that placed the
                               cold items, for items put later (mean_x, weights, mean_y, norm)
    index/cf.ann               Annoy over the augmented item factors (inner product search)
    collab/feed.rows.npy, feed.scores.npy
                               each trained user's top k feed, training items excluded (optional)
    collab/ranker.txt          the learned ranker, LightGBM's text format (optional, recsys.rank)
    collab/ranker.json         its settings and training report
    collab/ranker_log.npz      the events its features read: users, items, seconds, strength
    collab/ranker_feed.rows.npy, ranker_feed.scores.npy
                               each trained user's ranked feed without activity since (optional)

Nothing is pickled: arrays are ``.npy`` read with ``allow_pickle=False``.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsys._hashing import sha256_file
from recsys.collab.als import UserItems
from recsys.collab.project import ContentProjection
from recsys.data.ids import IdMap
from recsys.data.schema import ITEM_ID, USER_ID
from recsys.errors import BundleError
from recsys.index.annoy import AnnIndex
from recsys.index.hnsw import HnswIndex
from recsys.index.mips import SEARCH_EFFORT
from recsys.manifest import check_manifest, check_name
from recsys.towers.base import TowerOutput
from recsys.towers.item import ItemVectors
from recsys.towers.joint import JointSpace

__all__ = ["Bundle", "Collab", "RankerFiles", "ItemIndex", "TopLists", "ListCosines", "Thumbnails", "write_bundle",
           "write_user_tower", "write_joint_space", "write_tagger", "read_bundle", "resolve_bundle_path", "FORMAT",
           "TRAINED", "PROJECTED"]

logger = logging.getLogger(__name__)
# the item spaces' serving index, chosen by index.backend
ItemIndex = AnnIndex | HnswIndex
FORMAT = 1
MANIFEST = "manifest.json"
# item_state values
TRAINED, PROJECTED = 1, 2
_COLLAB_ARRAYS = ("user_factors", "item_factors", "item_state", "popularity")


@dataclass(frozen=True)
class TopLists:
    """Per owner (item or user row), the best item rows and their scores, best first.

    Attributes:
        rows: ``(owners, k)`` int32; ``-1`` pads a list that holds every candidate the owner has.
        scores: ``(owners, k)`` float32.
    """

    rows: np.ndarray
    scores: np.ndarray

    @property
    def k(self) -> int:
        return int(self.rows.shape[1])

    def first(self, owner: int, n: int, allowed: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """The first ``n`` listed rows that ``allowed`` keeps, or ``None`` when the list cannot tell
        (fewer than ``n`` pass and the list is not exhaustive)."""
        rows = self.rows[owner]
        listed = rows >= 0
        exhaustive = not listed.all()
        keep = np.flatnonzero(listed)
        keep = keep[allowed[rows[keep]]]
        if len(keep) < n and not exhaustive:
            return None
        keep = keep[:n]
        return rows[keep].astype(np.int64), np.asarray(self.scores[owner][keep], dtype=np.float32)

    def head(self, owner: int, n: int) -> tuple[np.ndarray, np.ndarray] | None:
        """The first ``n`` listed rows when nothing is filtered out, or ``None`` when ``n > k``."""
        if n > self.k:
            return None
        rows = self.rows[owner, :n]
        if rows[-1] < 0:  # an exhaustive list, shorter than n
            rows = rows[rows >= 0]
        return rows.astype(np.int64), np.asarray(self.scores[owner, :len(rows)], dtype=np.float32)


@dataclass(frozen=True)
class ListCosines:
    """Per item, the items of its per-modality similar lists (each once) and, for each of them, the
    cosine of every modality between the two items: what re-scoring them under per-request
    weights needs, read from one place instead of gathered from every modality's vectors.

    Attributes:
        rows: ``(items, width)`` int32, ascending, ``-1`` after the last (``width``: the longest union).
        cosines: ``(items, width, modalities)`` float32, modalities in the bundle's block order; 0
            where either item lacks the modality (its vector is zero there), as
            :func:`recsys.towers.item.weighted_scores` counts it.
    """

    rows: np.ndarray
    cosines: np.ndarray


@dataclass(frozen=True)
class Thumbnails:
    """Each item's JPEG thumbnail, re-encoded at build from its catalog image: the only image bytes
    the API sends, so no request ever reads a path named in a catalog.

    Attributes:
        data: ``(total bytes,)`` uint8, the JPEGs one after another.
        offsets: ``(items + 1,)`` int64; item ``i``'s bytes are ``data[offsets[i]:offsets[i + 1]]``,
            empty when it has no readable image.
    """

    data: np.ndarray
    offsets: np.ndarray

    @classmethod
    def pack(cls, images: list[bytes]) -> Thumbnails:
        offsets = np.zeros(len(images) + 1, np.int64)
        np.cumsum([len(b) for b in images], out=offsets[1:])
        return cls(np.frombuffer(b"".join(images), np.uint8), offsets)

    def has(self, row: int) -> bool:
        return bool(self.offsets[row + 1] > self.offsets[row])

    def get(self, row: int) -> bytes | None:
        start, end = self.offsets[row], self.offsets[row + 1]
        return self.data[start:end].tobytes() if end > start else None

    def present(self) -> np.ndarray:
        """``(items,)`` bool: which items have a thumbnail."""
        return np.diff(self.offsets) > 0


@dataclass(frozen=True)
class RankerFiles:
    """The learned ranker as a bundle keeps it (``collab/ranker.*``), read without LightGBM.

    Attributes:
        model: the booster in LightGBM's text format (never a pickle).
        config: its settings and what its training measured.
        log: the events its features read: ``users`` (rows of the user tower's users), ``items``
            (item rows), ``seconds`` (epoch seconds) and ``strength``, in time order.
        feed: each trained user's ranked feed, as a request without recent items would rank it
            (``config["feed"]`` says its length and ``exclude_seen``), or ``None``.
    """

    model: str
    config: dict
    log: dict[str, np.ndarray]
    feed: TopLists | None = None


@dataclass
class Collab:
    """The user tower of a bundle.

    Attributes:
        user_items: the training interactions (users, strengths, recency).
        user_factors: ``(users, f)`` float32.
        item_factors: ``(items, f)`` float32, zero where ``item_state`` is 0.
        item_state: ``(items,)`` int8: 0 no factors, :data:`TRAINED`, :data:`PROJECTED` (a cold
            item placed by its content).
        popularity: ``(items,)`` float32, higher is more popular.
        index: inner-product index over the item factors (:mod:`recsys.index.mips`).
        params: the manifest's ``collab`` section (model, factors, regularization, alpha, ...).
        feed: each trained user's precomputed feed (:mod:`recsys.pipeline.precompute`), if the bundle has it.
        projection: the content-to-factors map that placed the cold items, for items put later;
            ``None`` in a bundle written without it.
        ranker: the learned ranker (:mod:`recsys.rank`), ``None`` where the training had too few
            events for one or no event times.
    """

    user_items: UserItems
    user_factors: np.ndarray
    item_factors: np.ndarray
    item_state: np.ndarray
    popularity: np.ndarray
    index: AnnIndex
    params: dict
    feed: TopLists | None = None
    projection: ContentProjection | None = None
    ranker: RankerFiles | None = None

    @property
    def user_ids(self) -> IdMap:
        return self.user_items.user_ids


@dataclass
class Bundle:
    """Everything needed to serve one version (``similar``: each item's precomputed similar items,
    :mod:`recsys.pipeline.precompute`, under ``"combined"`` for the default weights and under each modality's
    name, empty if the bundle has none; ``list_cosines``: the cosines between each item and those
    listed for it, ``None`` if the bundle has none; ``duplicate_of``: per item the row of the first item
    of its group of duplicate listings (the one kept), ``-1`` for none, ``None`` if the bundle was
    written without them; ``flags``: the items the build's batch reads flagged, by id, their checks'
    evidence, empty if it kept none)."""

    path: Path
    manifest: dict
    items: pd.DataFrame
    item_ids: IdMap
    vectors: ItemVectors
    indexes: dict[str, ItemIndex]
    tabular_state: dict | None
    collab: Collab | None = None
    similar: dict[str, TopLists] = field(default_factory=dict)
    list_cosines: ListCosines | None = None
    thumbnails: Thumbnails | None = None
    duplicate_of: np.ndarray | None = None
    joint: JointSpace | None = None
    taggers: dict[str, dict] = field(default_factory=dict)
    flags: dict[str, dict] = field(default_factory=dict)

    @property
    def version(self) -> str:
        return self.manifest["version"]


def _new_version(parent: Path) -> str:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    version, k = stamp, 1
    while (parent / version).exists():
        k += 1
        version = f"{stamp}-{k}"
    return version


def _write_version(out_dir: Path, fill, manifest: dict) -> Path:
    """Create ``out_dir/<new version>``: ``fill(tmp)`` writes the files, then checksums, manifest
    and one rename make it visible, so a reader never sees a partial bundle."""
    check_name(out_dir.name, "name", str(out_dir))
    out_dir.mkdir(parents=True, exist_ok=True)
    version = _new_version(out_dir)
    tmp = out_dir / f".tmp-{version}-{os.getpid()}"
    try:
        tmp.mkdir()
        fill(tmp)
        files = {
            str(p.relative_to(tmp)): {"sha256": sha256_file(p), "bytes": p.stat().st_size}
            for p in sorted(tmp.rglob("*")) if p.is_file()
        }
        full = {"format": FORMAT, "name": out_dir.name, "version": version,
                "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                **manifest, "files": files}
        check_manifest(full, str(out_dir / version))
        (tmp / MANIFEST).write_text(json.dumps(full, indent=1, default=_json_default))
        os.rename(tmp, out_dir / version)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir / version


def write_bundle(
    out_dir: str | Path,
    *,
    items: pd.DataFrame,
    vectors: ItemVectors,
    indexes: dict[str, ItemIndex],
    tabular_state: dict | None,
    manifest: dict,
    similar: dict[str, TopLists] | None = None,
    list_cosines: ListCosines | None = None,
    thumbnails: Thumbnails | None = None,
    duplicate_of: np.ndarray | None = None,
    joint: JointSpace | None = None,
    flags: dict[str, dict] | None = None,
    taggers: dict[str, dict] | None = None,
) -> Path:
    """Write a new item-side version under ``out_dir`` (``models/<name>``); returns its directory."""

    def fill(tmp: Path) -> None:
        for sub in ("vectors", "index", "towers"):
            (tmp / sub).mkdir()
        items.to_parquet(tmp / "items.parquet", index=False)
        for name, block in [*vectors.blocks.items(),
                            ("combined", TowerOutput(vectors.combined, vectors.mask))]:
            np.save(tmp / "vectors" / f"{name}.npy", block.vectors, allow_pickle=False)
            np.save(tmp / "vectors" / f"{name}.mask.npy", block.mask, allow_pickle=False)
        for name, index in indexes.items():
            index.save(tmp / "index" / f"{name}{index.suffix}")
        if tabular_state is not None:
            (tmp / "towers" / "tabular.json").write_text(json.dumps(tabular_state, indent=1))
        if similar:
            (tmp / "precomputed").mkdir()
            for name, lists in similar.items():
                _save_lists(tmp / "precomputed", _similar_file(name), lists)
        if list_cosines is not None:
            np.save(tmp / "precomputed" / "listed.rows.npy", list_cosines.rows, allow_pickle=False)
            np.save(tmp / "precomputed" / "listed.cosines.npy", list_cosines.cosines, allow_pickle=False)
        if thumbnails is not None:
            (tmp / "images").mkdir()
            np.save(tmp / "images" / "thumbnails.npy", thumbnails.data, allow_pickle=False)
            np.save(tmp / "images" / "thumbnails.offsets.npy", thumbnails.offsets, allow_pickle=False)
        if duplicate_of is not None or flags is not None:
            (tmp / "curation").mkdir()
        if duplicate_of is not None:
            np.save(tmp / "curation" / "duplicate_of.npy", duplicate_of.astype(np.int32), allow_pickle=False)
        if flags is not None:
            (tmp / "curation" / "flags.json").write_text(json.dumps(flags, separators=(",", ":")))
        if taggers:
            (tmp / "taggers").mkdir()
            for name, tagger in taggers.items():
                (tmp / "taggers" / f"{name}.json").write_text(json.dumps(tagger))
        if joint is not None:
            _save_joint(tmp, joint)

    full = {
        **manifest,
        "modalities": list(vectors.blocks),
        "dims": {**{m: b.dim for m, b in vectors.blocks.items()}, "combined": int(vectors.combined.shape[1])},
        "default_weights": vectors.weights,
        "indexes": {**manifest.get("indexes", {}),
                    **{name: {**manifest.get("indexes", {}).get(name, {}), "items": len(ix), **ix.describe()}
                       for name, ix in indexes.items()}},
        **(_joint_manifest(joint) if joint is not None else {}),
        **({"precomputed": {"similar": {"k": next(iter(similar.values())).k, "lists": list(similar),
                                        **({"cosines_width": int(list_cosines.rows.shape[1])}
                                           if list_cosines is not None else {})}}}
           if similar else {}),
    }
    path = _write_version(Path(out_dir), fill, full)
    logger.info("bundle written: %s (%d items)", path, len(items))
    return path


def _is_collab_file(rel: str) -> bool:
    return rel.startswith("collab/") or rel.startswith("index/cf.")


def write_user_tower(source: Bundle, collab: Collab, collab_manifest: dict) -> Path:
    """Write a new version beside ``source`` with its item side and a (new) user tower.

    The item-side files are hard-linked (copied across file systems) from ``source``, so they stay
    byte-identical and nothing is recomputed; an older user tower in ``source`` is replaced.

    Args:
        source: the bundle whose items the user tower was trained on.
        collab: the trained user tower.
        collab_manifest: the manifest's ``collab`` section (parameters, counts, timings).

    Returns:
        Path: the new version directory.
    """

    def fill(tmp: Path) -> None:
        _link_files(source, tmp, skip=_is_collab_file)
        (tmp / "collab").mkdir()
        (tmp / "index").mkdir(exist_ok=True)
        ui = collab.user_items
        pd.DataFrame({USER_ID: ui.user_ids.ids.astype(str)}).to_parquet(tmp / "collab" / "users.parquet",
                                                                         index=False)
        np.savez(tmp / "collab" / "user_items.npz", indptr=ui.matrix.indptr, indices=ui.matrix.indices,
                 data=ui.matrix.data, shape=np.asarray(ui.matrix.shape), last_seen=ui.last_seen)
        for name in _COLLAB_ARRAYS:
            np.save(tmp / "collab" / f"{name}.npy", getattr(collab, name), allow_pickle=False)
        collab.index.save(tmp / "index" / "cf.ann")
        if collab.feed is not None:
            _save_lists(tmp / "collab", "feed", collab.feed)
        if collab.projection is not None:
            np.savez(tmp / "collab" / "projection.npz", **collab.projection.to_arrays())
        if collab.ranker is not None:
            (tmp / "collab" / "ranker.txt").write_text(collab.ranker.model)
            (tmp / "collab" / "ranker.json").write_text(json.dumps(collab.ranker.config, indent=1))
            np.savez(tmp / "collab" / "ranker_log.npz", **collab.ranker.log)
            if collab.ranker.feed is not None:
                _save_lists(tmp / "collab", "ranker_feed", collab.ranker.feed)

    keep = _derived_manifest(source, "collab")
    manifest = {**keep, "counts": {**keep.get("counts", {}), "users": len(collab.user_ids)},
                "collab": {**collab_manifest, "factors": int(collab.item_factors.shape[1]),
                           "index": {"items": len(collab.index), "n_trees": collab.index.n_trees,
                                     **collab_manifest.get("index", {})}}}
    path = _write_version(source.path.parent, fill, manifest)
    logger.info("bundle written: %s (%d users, parent %s)", path, len(collab.user_ids), source.version)
    return path


def write_joint_space(source: Bundle, joint: JointSpace) -> Path:
    """Write a new version beside ``source`` with everything it has (hard-linked, as in
    :func:`write_user_tower`) and ``joint`` as its joint text-image space (an older one is
    replaced).

    Returns:
        Path: the new version directory.
    """

    def fill(tmp: Path) -> None:
        _link_files(source, tmp, skip=lambda rel: rel.startswith("joint/"))
        _save_joint(tmp, joint)

    path = _write_version(source.path.parent, fill, {**_derived_manifest(source, "joint"), **_joint_manifest(joint)})
    logger.info("bundle written: %s (a joint space, parent %s)", path, source.version)
    return path


def write_tagger(source: Bundle, name: str, tagger: dict) -> Path:
    """Write a new version beside ``source`` with everything it has (hard-linked, as in
    :func:`write_user_tower`) and ``tagger`` (JSON-ready) saved as ``taggers/<name>.json`` (one of
    that name is replaced).

    Returns:
        Path: the new version directory.
    """
    rel = f"taggers/{name}.json"

    def fill(tmp: Path) -> None:
        _link_files(source, tmp, skip=lambda r: r == rel)
        (tmp / "taggers").mkdir(exist_ok=True)
        (tmp / rel).write_text(json.dumps(tagger))

    path = _write_version(source.path.parent, fill, _derived_manifest(source))
    logger.info("bundle written: %s (tagger %s, parent %s)", path, name, source.version)
    return path


def _derived_manifest(source: Bundle, *replaced: str) -> dict:
    """The manifest of a version made from ``source``: its sections but those every version has
    of its own and the ``replaced`` ones, with ``parent`` naming it."""
    own = {"format", "name", "version", "created", "files", *replaced}
    return {**{k: v for k, v in source.manifest.items() if k not in own}, "parent": source.version}


def _link_files(source: Bundle, tmp: Path, skip) -> None:
    """Hard-link (copy across file systems) ``source``'s files into ``tmp``, but those ``skip(rel)``
    names, so that they stay byte-identical and nothing is recomputed."""
    for rel in source.manifest["files"]:
        if skip(rel):
            continue
        target = tmp / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(source.path / rel, target)
        except OSError:
            shutil.copy2(source.path / rel, target)


def _save_joint(tmp: Path, joint: JointSpace) -> None:
    (tmp / "joint").mkdir()
    np.save(tmp / "joint" / "image.npy", joint.image, allow_pickle=False)
    np.save(tmp / "joint" / "text.npy", joint.text, allow_pickle=False)


def _joint_manifest(joint: JointSpace) -> dict:
    return {"joint": {"dim": joint.dim, "temperature": round(joint.temperature, 5), "validation": joint.validation}}


def _save_lists(folder: Path, name: str, lists: TopLists) -> None:
    np.save(folder / f"{name}.rows.npy", lists.rows, allow_pickle=False)
    np.save(folder / f"{name}.scores.npy", lists.scores, allow_pickle=False)


def _load_lists(folder: Path, name: str) -> TopLists | None:
    if not (folder / f"{name}.rows.npy").is_file():
        return None  # a bundle written without them (or before they existed)
    rows, scores = (np.asarray(np.load(folder / f"{name}.{part}.npy", mmap_mode="r", allow_pickle=False))
                    for part in ("rows", "scores"))
    return TopLists(rows, scores)


def _load_list_cosines(folder: Path) -> ListCosines | None:
    if not (folder / "listed.rows.npy").is_file():
        return None
    return ListCosines(*(np.asarray(np.load(folder / f"listed.{part}.npy", mmap_mode="r", allow_pickle=False))
                         for part in ("rows", "cosines")))


def _similar_file(name: str) -> str:
    return "similar" if name == "combined" else f"similar.{name}"


def _load_similar(folder: Path, names: list[str]) -> dict[str, TopLists]:
    found = {name: _load_lists(folder, _similar_file(name)) for name in names}
    return {name: lists for name, lists in found.items() if lists is not None}


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def resolve_bundle_path(path: str | Path) -> Path:
    """A bundle directory, or its parent (``models/<name>``) meaning the newest version in it.

    Raises:
        BundleError: no such directory, or no complete version in it.
    """
    path = Path(path)
    if (path / MANIFEST).is_file():
        return path
    if not path.is_dir():
        raise BundleError(f"bundle not found: {path} (run `recsys build --out {path}` first)")
    versions = sorted(p for p in path.iterdir()
                      if p.is_dir() and not p.name.startswith(".") and (p / MANIFEST).is_file())
    if not versions:
        raise BundleError(f"{path} holds no complete bundle version (no */{MANIFEST}); "
                          "run `recsys build` to write one")
    return versions[-1]


def read_bundle(path: str | Path, *, verify: bool = True) -> Bundle:
    """Load a bundle, checking every file against the manifest's sha256.

    Args:
        path: a version directory or its parent (newest version).
        verify: check the checksums (skip only for trusted, already verified copies).

    Raises:
        BundleError: missing manifest or file, checksum mismatch, unknown format. The message
        names the file; a bad bundle is refused whole.
    """
    path = resolve_bundle_path(path)
    try:
        manifest = json.loads((path / MANIFEST).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise BundleError(f"{path / MANIFEST} is unreadable: {exc}") from exc
    if manifest.get("format") != FORMAT:
        raise BundleError(f"{path}: bundle format {manifest.get('format')!r} is not supported "
                          f"(this recsys reads format {FORMAT})")
    check_manifest(manifest, str(path))
    for rel, meta in manifest["files"].items():
        file = path / rel
        if not file.is_file():
            raise BundleError(f"bundle {path} is incomplete: {rel} is missing")
        if verify and sha256_file(file) != meta["sha256"]:
            raise BundleError(f"bundle {path} is corrupt: {rel} does not match its sha256 "
                              "in manifest.json; rebuild or re-publish it")
    try:
        items = pd.read_parquet(path / "items.parquet")
        blocks = {m: _load_block(path, m) for m in manifest["modalities"]}
        combined = _load_block(path, "combined")
        indexes = {name: load_index(path / "index", name, manifest["dims"][name], meta)
                   for name, meta in manifest["indexes"].items()}
        tabular_file = path / "towers" / "tabular.json"
        tabular_state = json.loads(tabular_file.read_text()) if tabular_file.is_file() else None
        collab = _load_collab(path, manifest["collab"]) if "collab" in manifest else None
    except (OSError, KeyError, ValueError) as exc:
        raise BundleError(f"bundle {path} cannot be loaded: {exc}") from exc
    vectors = ItemVectors(blocks=blocks, weights=manifest["default_weights"],
                          combined=combined.vectors, mask=combined.mask)
    return Bundle(path=path, manifest=manifest, items=items, item_ids=IdMap(items[ITEM_ID]),
                  vectors=vectors, indexes=indexes, tabular_state=tabular_state, collab=collab,
                  similar=_load_similar(path / "precomputed", ["combined", *vectors.blocks]),
                  list_cosines=_load_list_cosines(path / "precomputed"),
                  thumbnails=_load_thumbnails(path / "images"),
                  duplicate_of=_load_duplicate_of(path / "curation" / "duplicate_of.npy", len(items)),
                  joint=_load_joint(path / "joint", manifest),
                  taggers=_load_taggers(path, manifest, vectors, IdMap(items[ITEM_ID])),
                  flags=_load_flags(path / "curation" / "flags.json"))


def load_index(folder: Path, name: str, dim: int, meta: dict) -> ItemIndex:
    """Map ``folder/<name><suffix>``, written by the index's ``save``; ``meta`` is its ``describe()``."""
    if meta.get("backend", "annoy") == "hnsw":
        return HnswIndex.load(folder / f"{name}{HnswIndex.suffix}", dim, meta["links"], meta["ef_search"])
    return AnnIndex.load(folder / f"{name}{AnnIndex.suffix}", dim, meta["n_trees"], meta.get("search_k", -1),
                         meta.get("search_effort", 1.0))


def _load_joint(folder: Path, manifest: dict) -> JointSpace | None:
    if "joint" not in manifest:
        return None
    image, text = (np.load(folder / f"{name}.npy", allow_pickle=False) for name in ("image", "text"))
    dims = manifest["dims"]
    if image.shape != (dims["image"], manifest["joint"]["dim"]) or text.shape != (dims["text"], image.shape[1]):
        raise BundleError(f"{folder}: the joint space's heads do not fit the image and text dimensions")
    return JointSpace(image, text, float(manifest["joint"]["temperature"]), manifest["joint"].get("validation", {}))


def _load_taggers(path: Path, manifest: dict, vectors: ItemVectors, item_ids: IdMap) -> dict[str, dict]:
    """The saved taggers' JSON by name, their weights and intercepts as float32 arrays that fit
    the vectors each reads."""
    taggers = {}
    for rel in sorted(r for r in manifest["files"] if r.startswith("taggers/")):
        try:
            data = json.loads((path / rel).read_text())
            modality = data["modality"]
            dim = (vectors.combined.shape[1] if modality == "combined" else
                   vectors.blocks[modality].vectors.shape[1] if modality in vectors.blocks else -1)
            weights, intercepts = np.asarray(data["weights"], np.float32), np.asarray(data["intercepts"], np.float32)
        except (OSError, KeyError, TypeError, ValueError) as exc:
            raise BundleError(f"bundle {path}: tagger {rel} cannot be loaded: {exc}") from exc
        if weights.shape != (len(data["labels"]), dim) or intercepts.shape != (len(data["labels"]),):
            raise BundleError(f"bundle {path}: tagger {rel} does not fit the bundle's {modality} vectors")
        examples = [str(i) for i in data.get("examples") or []]
        if not examples or not all(i in item_ids for i in examples):
            raise BundleError(f"bundle {path}: tagger {rel} names examples the bundle does not hold")
        taggers[Path(rel).stem] = {**data, "weights": weights, "intercepts": intercepts}
    return taggers


def _load_flags(file: Path) -> dict[str, dict]:
    if not file.is_file():
        return {}
    flags = json.loads(file.read_text())
    if not isinstance(flags, dict) or not all(isinstance(checks, dict) for checks in flags.values()):
        raise BundleError(f"{file} is not an object of flagged items' checks")
    return flags


def _load_duplicate_of(file: Path, n: int) -> np.ndarray | None:
    if not file.is_file():
        return None
    rows = np.load(file, allow_pickle=False)
    if rows.shape != (n,) or rows.max(initial=-1) >= n:
        raise BundleError(f"{file} is not one row number (or -1) for each of the {n} items")
    return rows


def _load_thumbnails(folder: Path) -> Thumbnails | None:
    if not (folder / "thumbnails.npy").is_file():
        return None
    return Thumbnails(np.load(folder / "thumbnails.npy", mmap_mode="r", allow_pickle=False),
                      np.load(folder / "thumbnails.offsets.npy", allow_pickle=False))


def _load_block(path: Path, name: str) -> TowerOutput:
    # mmap: serving workers share the page cache instead of each holding a copy; asarray drops the
    # np.memmap subclass (no copy), whose per-operation wrapping doubles the cost of a product
    vectors = np.asarray(np.load(path / "vectors" / f"{name}.npy", mmap_mode="r", allow_pickle=False))
    mask = np.load(path / "vectors" / f"{name}.mask.npy", allow_pickle=False)
    return TowerOutput(vectors, mask)


def _load_collab(path: Path, params: dict) -> Collab:
    folder = path / "collab"
    users = pd.read_parquet(folder / "users.parquet")[USER_ID]
    with np.load(folder / "user_items.npz", allow_pickle=False) as z:
        matrix = sp.csr_matrix((z["data"], z["indices"], z["indptr"]), shape=tuple(z["shape"]))
        last_seen = z["last_seen"]
    arrays = {name: np.load(folder / f"{name}.npy", allow_pickle=False) for name in _COLLAB_ARRAYS}
    index = AnnIndex.load(path / "index" / "cf.ann", int(arrays["item_factors"].shape[1]) + 1,
                          params["index"]["n_trees"], params["index"].get("search_k", -1), SEARCH_EFFORT)
    projection = None
    if (folder / "projection.npz").exists():
        with np.load(folder / "projection.npz", allow_pickle=False) as z:
            projection = ContentProjection.from_arrays(z)
    ranker = None
    if (folder / "ranker.txt").exists():
        with np.load(folder / "ranker_log.npz", allow_pickle=False) as z:
            log = {name: z[name] for name in z.files}
        ranker = RankerFiles((folder / "ranker.txt").read_text(), json.loads((folder / "ranker.json").read_text()),
                             log, _load_lists(folder, "ranker_feed"))
    return Collab(user_items=UserItems(IdMap(users, kind="user"), matrix, last_seen), index=index,
                  params=params, feed=_load_lists(folder, "feed"), projection=projection, ranker=ranker,
                  **arrays)
