"""Step 6 of the flow: bundles, item changes (put, deleted, attributes), merchandising rules and
cached results in Redis.

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
from typing import TYPE_CHECKING, NamedTuple

import redis
from pydantic import ValidationError

from recsys.bundle import MANIFEST, read_bundle
from recsys.control.experiments import Experiment
from recsys.control.rules import Rule
from recsys.errors import BundleError, NotFound
from recsys.manifest import check_manifest, check_name
from recsys.store.experiments import ExperimentStore, parse_experiments
from recsys.store.keys import Keys
from recsys.store.messages import Activated, ItemsChanged, encode
from recsys.store.review import ReviewStore, write_attributes

if TYPE_CHECKING:
    from recsys.settings import RedisSettings

__all__ = ["RedisStore", "Changes"]

logger = logging.getLogger(__name__)


class Changes(NamedTuple):
    """What changed since the bundle, read in one transaction (the arguments of
    :meth:`recsys.serve.changes.ItemChanges.build` after the bundle)."""

    gen: int
    fresh: dict[str, dict]
    deleted: set[str]
    attributes: dict[str, dict]
    rules: tuple[Rule, ...]
    rules_version: int
    experiments: tuple[Experiment, ...]
    merged: dict[str, str]


AUDIT_KEPT = 1_000_000  # audit entries kept (the oldest go first)


class RedisStore:
    """Published bundles and item changes under one key namespace.

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
            self._drop_superseded(bundle)
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

    # -- item changes since the bundle ----------------------------------------------------------

    def put_item(self, item_id: str, entry: dict, audit: dict | None = None) -> int:
        """Store a new or changed item (JSON-serialisable ``entry``); returns the new generation."""
        return self._change_item(item_id, entry, audit)

    def delete_item(self, item_id: str, audit: dict | None = None) -> int:
        """Hide an item from every result; returns the new generation."""
        return self._change_item(item_id, None, audit)

    def _change_item(self, item_id: str, entry: dict | None, audit: dict | None) -> int:
        """Put (``entry``) or delete an item, move the generation, and tell the workers."""
        pipe = self.client.pipeline(transaction=True)
        if entry is not None:
            pipe.hset(self.keys.fresh, item_id, json.dumps(entry, separators=(",", ":")))
            pipe.srem(self.keys.deleted, item_id)
        else:
            pipe.hdel(self.keys.fresh, item_id)
            pipe.sadd(self.keys.deleted, item_id)
        return self._moved(pipe, audit)

    def set_attributes(self, item_id: str, values: dict, audit: dict | None = None) -> int:
        """Set catalog attribute values of one item (``None`` unsets one); returns the new generation."""
        pipe = self.client.pipeline(transaction=True)
        write_attributes(pipe, self.keys.attributes, item_id, values)
        return self._moved(pipe, audit)

    def _moved(self, pipe, audit: dict | None = None) -> int:
        """Run ``pipe`` with the generation moved, and tell the workers. An ``audit`` entry (who,
        action, item, before, after) goes to the audit log in the same transaction: an action is
        logged if and only if it happened."""
        if audit is not None:
            pipe.xadd(self.keys.audit, {"entry": json.dumps({"at": time.time(), **audit}, separators=(",", ":"))},
                      maxlen=AUDIT_KEPT, approximate=True)
        pipe.incr(self.keys.items_gen)
        gen = int(pipe.execute()[-1])
        self.client.publish(self.keys.events, encode(ItemsChanged(gen)))
        return gen

    def put_rule(self, rule: Rule) -> tuple[Rule, int]:
        """Store a rule (a new one is named ``r<version>``): it as stored, and the new generation.
        Every worker applies it from its next read (the item generation moves)."""
        version = int(self.client.incr(self.keys.rules_version))
        stored = rule if rule.id is not None else rule.model_copy(update={"id": f"r{version}"})
        pipe = self.client.pipeline(transaction=True)
        pipe.hset(self.keys.rules, stored.id, stored.model_dump_json())
        return stored, self._moved(pipe)

    def delete_rule(self, rule_id: str) -> int | None:
        """Remove a rule: the new generation, or ``None`` if there was none of that id."""
        if not self.client.hexists(self.keys.rules, rule_id):
            return None
        pipe = self.client.pipeline(transaction=True)
        pipe.hdel(self.keys.rules, rule_id)
        pipe.incr(self.keys.rules_version)
        return self._moved(pipe)

    def item_changes(self) -> Changes:
        """Everything changed since the bundle, read in one transaction; a stored rule that no
        longer validates is left out with a log line (it cannot act, and must not stop reads)."""
        pipe = self.client.pipeline(transaction=True)
        pipe.get(self.keys.items_gen)
        pipe.hgetall(self.keys.fresh)
        pipe.smembers(self.keys.deleted)
        pipe.hgetall(self.keys.attributes)
        pipe.hgetall(self.keys.rules)
        pipe.get(self.keys.rules_version)
        pipe.hgetall(self.keys.experiments)
        pipe.hgetall(self.keys.merged)
        gen, fresh, deleted, attributes, rules, version, experiments, merged = pipe.execute()
        by_item: dict[str, dict] = {}
        for field, value in attributes.items():
            item_id, name = json.loads(field)
            by_item.setdefault(item_id, {})[name] = json.loads(value)
        parsed = []
        for rule_id, text in rules.items():
            try:
                parsed.append(Rule.model_validate_json(text))
            except ValidationError as exc:
                logger.warning("stored rule %s is left out: %s", rule_id.decode(), exc)
        # rules apply in the order they were made (r2 before r10)
        parsed.sort(key=lambda r: (len(r.id or ""), r.id or ""))
        return Changes(int(gen or 0), {k.decode(): json.loads(v) for k, v in fresh.items()},
                       {d.decode() for d in deleted}, by_item, tuple(parsed), int(version or 0),
                       tuple(parse_experiments(experiments)), {k.decode(): v.decode() for k, v in merged.items()})

    @property
    def experiments(self) -> ExperimentStore:
        """The experiments and their impressions (a change reaches the workers as item changes do)."""
        return ExperimentStore(self.client, self.keys, self._moved)

    @property
    def review(self) -> ReviewStore:
        """Releases, dismissed flags, merges and the audit log (a decision reaches the workers as
        item changes do)."""
        return ReviewStore(self.client, self.keys, self._moved)

    def _drop_superseded(self, bundle) -> None:
        """Fresh entries of items the new bundle holds, written before it was built, are stale."""
        created = bundle.manifest.get("created", "")
        fresh = self.item_changes().fresh
        stale = [item_id for item_id, entry in fresh.items()
                 if item_id in bundle.item_ids and entry.get("updated", "") < created]
        if stale:
            pipe = self.client.pipeline(transaction=True)
            pipe.hdel(self.keys.fresh, *stale)
            pipe.incr(self.keys.items_gen)
            pipe.execute()
            logger.info("%d fresh items superseded by bundle %s", len(stale), bundle.version)

    def clear(self) -> int:
        """Delete every key of this namespace (tests and `recsys` resets); returns how many."""
        keys = list(self.client.scan_iter(self.keys.all_pattern, count=1000))
        for start in range(0, len(keys), 1000):
            self.client.delete(*keys[start:start + 1000])
        return len(keys)
