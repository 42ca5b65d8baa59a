"""Step 6 of the flow: published bundles in Redis, and the namespace's stores of what changed
since (:mod:`recsys.store.changes`), the experiments and the reviewers' decisions.

Nothing read from Redis is unpickled: manifests and item entries are JSON, bundle files are the
bundle's own bytes checked against the manifest's sha256, vectors are raw float32.

A bundle's files go into Redis itself by default. A large catalog's bundle does not belong in
Redis memory (about 20 MB per 1,000 items, docs/performance.md), so with ``redis.bundle_files``
set they go into a folder every worker mounts, and Redis keeps only the manifest (with each
file's sha256), a mark that the version is there and the active pointer.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import redis

from recsys.bundle import MANIFEST, read_bundle
from recsys.errors import BundleError, NotFound
from recsys.manifest import check_manifest, check_name
from recsys.store.changes import ChangeStore
from recsys.store.experiments import ExperimentStore
from recsys.store.keys import Keys
from recsys.store.messages import Activated, encode
from recsys.store.review import ReviewStore

if TYPE_CHECKING:
    from recsys.settings import RedisSettings

__all__ = ["RedisStore"]

logger = logging.getLogger(__name__)


class RedisStore:
    """Published bundles under one key namespace, and (``changes``, ``experiments``, ``review``)
    the stores of what changed since.

    Args:
        client: a redis-py client (see :func:`connect`).
        prefix: key namespace (``settings.redis.prefix``).
        chunk_bytes: size of the chunks bundle files are stored in.
        bundle_files: a folder shared by every worker where published bundles' files go
            (``<folder>/<name>/<version>/``); ``None`` keeps them in Redis.

    Example:
        >>> store = RedisStore(connect("redis://127.0.0.1:6379"))  # doctest: +SKIP
        >>> store.publish("models/shop")  # doctest: +SKIP
        '20261122T100000Z'
    """

    def __init__(self, client: redis.Redis, *, prefix: str = "recsys", chunk_bytes: int = 4 << 20,
                 bundle_files: str | Path | None = None):
        self.client = client
        self.keys = Keys(prefix)
        self.chunk_bytes = chunk_bytes
        self.bundle_files = Path(bundle_files) if bundle_files else None
        self.changes = ChangeStore(client, self.keys)

    @classmethod
    def from_settings(cls, client: redis.Redis, settings: RedisSettings) -> RedisStore:
        """The store the ``redis`` settings describe."""
        return cls(client, prefix=settings.prefix, chunk_bytes=settings.chunk_bytes, bundle_files=settings.bundle_files)

    # -- bundles --------------------------------------------------------------------------------

    def publish(self, path: str | Path, *, activate: bool = True) -> str:
        """Upload a bundle (verified first) and make it the active version.

        Its files go into Redis, or into the ``bundle_files`` folder; the manifest goes into Redis
        last, so a version is published only once all of its files are in place. Uploading a
        version that is already stored only re-activates it. Item changes that the new
        bundle supersedes (fresh entries written before the bundle was created) are dropped.

        Args:
            path: a bundle version directory, or ``models/<name>`` for its newest version.
            activate: mark it active and tell the workers.

        Returns:
            str: the version.

        Raises:
            BundleError: the bundle is incomplete or corrupt; nothing is uploaded.
        """
        bundle = read_bundle(path)  # refuses a bad bundle before anything reaches Redis
        version, keys = bundle.version, self.keys
        manifest_text = (bundle.path / MANIFEST).read_text()
        if self.client.get(keys.manifest(version)) != manifest_text.encode():
            pipe = self.client.pipeline(transaction=True)  # the manifest and where its files are, together
            if self.bundle_files is not None:
                where = str(self._copy_to_folder(bundle))
                pipe.set(keys.folder(version), where)
            else:
                for rel in bundle.manifest["files"]:
                    self._upload(keys.file(version, rel), bundle.path / rel)
                pipe.delete(keys.folder(version))
                where = "Redis"
            pipe.set(keys.manifest(version), manifest_text)
            pipe.execute()
            logger.info("bundle %s uploaded to %s (%d files)", version, where, len(bundle.manifest["files"]))
        self.client.zadd(keys.versions, {version: time.time()})
        if activate:
            self.activate(version)
            self.changes.drop_superseded(bundle)
        return version

    def _copy_to_folder(self, bundle) -> Path:
        """The bundle's files, copied into ``bundle_files/<name>/<version>`` (through a temporary
        folder renamed into place, so no reader sees a half-copied version)."""
        target = self.bundle_files / bundle.manifest["name"] / bundle.version
        tmp = target.parent / f".tmp-{bundle.version}-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            for rel in [*bundle.manifest["files"], MANIFEST]:
                (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(bundle.path / rel, tmp / rel)
            shutil.rmtree(target, ignore_errors=True)  # an earlier publish that stopped before its manifest
            os.rename(tmp, target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return target.resolve()

    def _upload(self, key: str, file: Path) -> None:
        pipe = self.client.pipeline(transaction=True)
        pipe.delete(key)
        with open(file, "rb") as handle:
            while chunk := handle.read(self.chunk_bytes):
                pipe.rpush(key, chunk)
        pipe.execute()

    def activate(self, version: str) -> None:
        """Make a published version the one every worker serves."""
        if not self.client.exists(self.keys.manifest(version)):
            raise NotFound(f"bundle version {version!r} is not published in Redis; "
                           f"published: {', '.join(self.versions()) or 'none'}", version=version)
        pipe = self.client.pipeline(transaction=True)
        pipe.set(self.keys.active, version)
        pipe.publish(self.keys.events, encode(Activated(version)))
        pipe.execute()
        logger.info("bundle %s is active", version)

    def active_version(self) -> str | None:
        value = self.client.get(self.keys.active)
        return value.decode() if value is not None else None

    def versions(self) -> list[str]:
        """Published versions, oldest first."""
        return [v.decode() for v in self.client.zrange(self.keys.versions, 0, -1)]

    def manifest(self, version: str) -> dict:
        raw = self.client.get(self.keys.manifest(version))
        if raw is None:
            raise NotFound(f"bundle version {version!r} is not published in Redis", version=version)
        return json.loads(raw)

    def download(self, version: str, cache_dir: str | Path) -> Path:
        """Copy a published version into ``cache_dir/<name>/<version>``, verified, atomically.

        A complete copy already there is reused (after :func:`read_bundle` checks it).

        Raises:
            NotFound: the version is not published.
            BundleError: a file is missing (in Redis or the file store) or does not match its sha256.
        """
        where = f"bundle version {str(version)[:120]!r} in Redis"
        check_name(version, "version", where)
        manifest = check_manifest(self.manifest(version), where)
        if manifest["version"] != version:
            raise BundleError(f"{where}: its manifest names version {manifest['version']!r}")
        target = Path(cache_dir) / manifest["name"] / version
        if (target / MANIFEST).is_file():
            return target
        tmp = target.parent / f".tmp-{version}-{os.getpid()}-{threading.get_ident()}"
        try:
            folder = self._shared_folder(manifest)
            source = "Redis" if folder is None else str(folder)
            for rel, meta in manifest["files"].items():
                file = tmp / rel
                file.parent.mkdir(parents=True, exist_ok=True)
                digest = hashlib.sha256()
                chunks = (self._redis_chunks(version, rel, meta) if folder is None else
                          self._folder_chunks(version, rel, folder))
                with open(file, "wb") as handle:
                    for chunk in chunks:
                        digest.update(chunk)
                        handle.write(chunk)
                if digest.hexdigest() != meta["sha256"]:
                    raise BundleError(f"bundle {version} in {source} is corrupt: {rel} does not match "
                                      "its sha256; publish it again")
            (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1))
            try:
                os.rename(tmp, target)
            except OSError:  # another worker finished the same download first
                if not (target / MANIFEST).is_file():
                    raise
                shutil.rmtree(tmp, ignore_errors=True)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        logger.info("bundle %s downloaded to %s", version, target)
        return target

    def _shared_folder(self, manifest: dict) -> Path | None:
        """Where this machine reads a version's files: ``None`` when they are in Redis, else its
        folder under this machine's own ``bundle_files`` (never a path read from Redis, which
        only says that the version is in a file store)."""
        version = manifest["version"]
        published_at = self.client.get(self.keys.folder(version))
        if published_at is None:
            return None
        if self.bundle_files is None:
            raise BundleError(f"bundle {version} was published to a file store ({published_at.decode()} on the "
                              "publishing machine); set redis.bundle_files to where that folder is mounted here")
        return self.bundle_files / manifest["name"] / version

    def _redis_chunks(self, version: str, rel: str, meta: dict) -> Iterator[bytes]:
        key = self.keys.file(version, rel)
        n_chunks = self.client.llen(key)
        if n_chunks == 0 and meta["bytes"] > 0:
            raise BundleError(f"bundle {version} in Redis is incomplete: {rel} is missing; publish it again")
        for i in range(n_chunks):
            yield self.client.lindex(key, i)

    def _folder_chunks(self, version: str, rel: str, folder: Path) -> Iterator[bytes]:
        if not folder.is_dir():
            raise BundleError(f"bundle {version} is kept in {folder}, which this machine cannot read; "
                              "mount the bundle file store here (redis.bundle_files)")
        try:
            with open(folder / rel, "rb") as handle:
                while chunk := handle.read(self.chunk_bytes):
                    yield chunk
        except FileNotFoundError:
            raise BundleError(f"bundle {version} in {folder} is incomplete: {rel} is missing; "
                              "publish it again") from None

    def remove(self, version: str) -> None:
        """Delete a published version that is not active (and its files, wherever they are)."""
        if version == self.active_version():
            raise BundleError(f"bundle {version} is active; activate another version first")
        folder = None
        if self.client.exists(self.keys.folder(version)):
            manifest = check_manifest(self.manifest(version), f"bundle version {version!r} in Redis")
            folder = self._shared_folder(manifest)
        keys = [*self.client.scan_iter(self.keys.bundle_pattern(version), count=1000)]
        pipe = self.client.pipeline(transaction=True)
        if keys:
            pipe.delete(*keys)
        pipe.zrem(self.keys.versions, version)
        pipe.execute()
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)

    def prune(self, keep: int) -> list[str]:
        """Keep the ``keep`` newest versions, the active one and those a running experiment's
        variants are served from; returns the removed ones."""
        kept = {self.active_version(), *(version for e in self.experiments.all() if e.status == "running"
                                         for version in e.bundles)}
        removed = [v for v in self.versions()[:-keep] if v not in kept] if keep > 0 else []
        for version in removed:
            self.remove(version)
        return removed

    @property
    def experiments(self) -> ExperimentStore:
        """The experiments and their impressions (a change reaches the workers as item changes do)."""
        return ExperimentStore(self.client, self.keys, self.changes.moved)

    @property
    def review(self) -> ReviewStore:
        """Releases, dismissed flags, merges and the audit log (a decision reaches the workers as
        item changes do)."""
        return ReviewStore(self.client, self.keys, self.changes.moved)

    def clear(self) -> int:
        """Delete every key of this namespace (tests and `recsys` resets); returns how many."""
        keys = list(self.client.scan_iter(self.keys.all_pattern, count=1000))
        for start in range(0, len(keys), 1000):
            self.client.delete(*keys[start:start + 1000])
        return len(keys)
