"""Step 5 of the flow: model bundles on disk, written atomically and verified on load.

Layout of ``models/<name>/<version>/``::

    manifest.json              version, encoders, weights, dims, counts, recall, sha256 per file
    items.parquet              item ids (row order) and their display/filter metadata
    vectors/<m>.npy            per-modality unit vectors, (n, d_m) float32; <m>.mask.npy (n,) bool
    vectors/combined.npy       weighted concatenation with the default weights; combined.mask.npy
    towers/tabular.json        fitted tabular state (ranges, vocabularies)
    index/<name>.ann           Annoy (angular) for "combined" and each modality; <name>.rows.npy

Nothing is pickled: arrays are ``.npy`` read with ``allow_pickle=False``.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from recsys._hashing import sha256_file
from recsys.data.ids import IdMap
from recsys.data.schema import ITEM_ID
from recsys.errors import BundleError
from recsys.index.annoy import AnnIndex
from recsys.towers.base import TowerOutput
from recsys.towers.item import ItemVectors

__all__ = ["Bundle", "write_bundle", "read_bundle", "resolve_bundle_path", "FORMAT"]

logger = logging.getLogger(__name__)
FORMAT = 1
MANIFEST = "manifest.json"


@dataclass
class Bundle:
    """Everything needed to serve one version."""

    path: Path
    manifest: dict
    items: pd.DataFrame
    item_ids: IdMap
    vectors: ItemVectors
    indexes: dict[str, AnnIndex]
    tabular_state: dict | None

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


def write_bundle(
    out_dir: str | Path,
    *,
    items: pd.DataFrame,
    vectors: ItemVectors,
    indexes: dict[str, AnnIndex],
    tabular_state: dict | None,
    manifest: dict,
) -> Path:
    """Write a new version under ``out_dir`` (``models/<name>``) and return its directory.

    Everything goes to a hidden temporary directory first, then one rename makes it visible, so a
    reader never sees a partial bundle.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    version = _new_version(out_dir)
    tmp = out_dir / f".tmp-{version}-{os.getpid()}"
    try:
        (tmp / "vectors").mkdir(parents=True)
        (tmp / "index").mkdir()
        (tmp / "towers").mkdir()
        items.to_parquet(tmp / "items.parquet", index=False)
        for name, block in [*vectors.blocks.items(),
                            ("combined", TowerOutput(vectors.combined, vectors.mask))]:
            np.save(tmp / "vectors" / f"{name}.npy", block.vectors, allow_pickle=False)
            np.save(tmp / "vectors" / f"{name}.mask.npy", block.mask, allow_pickle=False)
        for name, index in indexes.items():
            index.save(tmp / "index" / f"{name}.ann")
        if tabular_state is not None:
            (tmp / "towers" / "tabular.json").write_text(json.dumps(tabular_state, indent=1))
        files = {
            str(p.relative_to(tmp)): {"sha256": sha256_file(p), "bytes": p.stat().st_size}
            for p in sorted(tmp.rglob("*")) if p.is_file()
        }
        full = {
            "format": FORMAT, "name": out_dir.name, "version": version,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            **manifest,
            "modalities": list(vectors.blocks),
            "dims": {**{m: b.dim for m, b in vectors.blocks.items()}, "combined": int(vectors.combined.shape[1])},
            "default_weights": vectors.weights,
            "indexes": {**manifest.get("indexes", {}),
                        **{name: {**manifest.get("indexes", {}).get(name, {}), "items": len(ix),
                                  "n_trees": ix.n_trees} for name, ix in indexes.items()}},
            "files": files,
        }
        (tmp / MANIFEST).write_text(json.dumps(full, indent=1, default=_json_default))
        os.rename(tmp, out_dir / version)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    logger.info("bundle written: %s (%d items)", out_dir / version, len(items))
    return out_dir / version


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
    for rel, meta in manifest.get("files", {}).items():
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
        indexes = {
            name: AnnIndex.load(path / "index" / f"{name}.ann", manifest["dims"][name], meta["n_trees"])
            for name, meta in manifest["indexes"].items()
        }
        tabular_file = path / "towers" / "tabular.json"
        tabular_state = json.loads(tabular_file.read_text()) if tabular_file.is_file() else None
    except (OSError, KeyError, ValueError) as exc:
        raise BundleError(f"bundle {path} cannot be loaded: {exc}") from exc
    vectors = ItemVectors(blocks=blocks, weights=manifest["default_weights"],
                          combined=combined.vectors, mask=combined.mask)
    return Bundle(path=path, manifest=manifest, items=items, item_ids=IdMap(items[ITEM_ID]),
                  vectors=vectors, indexes=indexes, tabular_state=tabular_state)


def _load_block(path: Path, name: str) -> TowerOutput:
    # mmap: serving workers share the page cache instead of each holding a copy
    vectors = np.load(path / "vectors" / f"{name}.npy", mmap_mode="r", allow_pickle=False)
    mask = np.load(path / "vectors" / f"{name}.mask.npy", allow_pickle=False)
    return TowerOutput(vectors, mask)
