"""What one API worker serves: the active bundle (hot-swapped), item changes, and Redis health.

A request takes one :class:`Recommender` reference at its start and uses it to the end, so every
response comes from exactly one bundle version. A new version is downloaded, verified and loaded
beside the old one by a background thread, then swapped in with one assignment; a version that
fails to load is remembered and the old one keeps serving.
"""
from __future__ import annotations

import contextlib
import json
import logging
import math
import secrets
import threading
import time
from pathlib import Path

import redis

from recsys.bundle import read_bundle
from recsys.errors import BundleError, InvalidRequest, NotFound, NotReady, RecsysError
from recsys.serve import Recommender
from recsys.serve.changes import ItemChanges
from recsys.serve.embedder import ItemEmbedder
from recsys.serve.scan import prune_scans
from recsys.settings import Settings
from recsys.store.activity import ActivityStore
from recsys.store.connection import Breaker, connect
from recsys.store.redis import RedisStore
from recsys.worker.cache import ResultCache, Snapshot
from recsys.worker.images import ImageFetches

__all__ = ["Serving", "redis_client"]

logger = logging.getLogger(__name__)


class Serving:
    """The serving state of one worker process.

    Args:
        settings: validated settings; ``settings.redis.url`` must be set (``create_app`` starts
            the embedded server when it is not).
        client: a redis-py client, or ``None`` to run without Redis (a local bundle only).
    """

    def __init__(self, settings: Settings, client: redis.Redis | None):
        self.settings = settings
        rs = settings.redis
        self.client = client
        self.store = RedisStore.from_settings(client, rs) if client is not None else None
        self.activity = (ActivityStore(client, prefix=rs.prefix, recent_items=rs.recent_items,
                                       recent_ttl=rs.recent_ttl_days * 86400)
                         if client is not None else None)
        self.breaker = Breaker(rs.retry_after)
        self.current: Recommender | None = None
        self.embedder: ItemEmbedder | None = None
        self.failed: dict[str, str] = {}  # version -> why it was refused
        self.load_error: str | None = None
        self.cache_dir = Path(settings.state_dir) / "bundles"
        self.scan_dir = Path(settings.state_dir) / "scans"
        self._swap_lock = threading.Lock()
        self._stop = threading.Event()
        self.subscribed = False  # the follower thread is receiving invalidations
        self.shared_gen = None  # the item generation the workers of one server share (RawValue)
        self.results = ResultCache(settings.api.local_cache_items, settings.api.local_recent_users,
                                    settings.api.local_active_users)
        self.images = ImageFetches(settings.images, retry_after=rs.retry_after)
        self.origin = secrets.token_hex(8)  # names this worker's posts in their messages
        self._thread: threading.Thread | None = None
        self.on_change = lambda recommender: None  # metrics hook

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> Serving:
        """Load what there is to serve now, then follow Redis from a background thread."""
        self.refresh()
        if self.store is not None:
            self._thread = threading.Thread(target=self._follow, name="recsys-follow", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self.images.stop()

    def _follow(self) -> None:
        """Listen for published changes (new active version, item writes, user activity); poll
        every ``poll_interval`` as well, since pub/sub drops messages while disconnected."""
        while not self._stop.is_set():
            pubsub = None
            try:
                pubsub = self.client.pubsub()
                pubsub.subscribe(self.store.keys.events)
                _confirmed(pubsub, self.settings.redis.socket_timeout)
                self.results.clear()  # invalidations may have been missed while not subscribed
                # read after Redis confirmed the subscription: a user active since is in a message
                self.results.know_active(self.activity.active_users(self.settings.api.local_active_users))
                self.subscribed = True
                self.refresh()
                while not self._stop.is_set():
                    message = pubsub.get_message(timeout=self.settings.api.poll_interval)
                    if message is None:
                        self.refresh()
                    elif message["type"] == "message":
                        self._handle(message["data"])
            except (redis.RedisError, OSError) as exc:
                self.breaker.fail(exc)
            except Exception:  # the loop must survive anything; the old state keeps serving
                logger.exception("following Redis failed")
            finally:
                self.subscribed = False
                if pubsub is not None:
                    with contextlib.suppress(redis.RedisError, OSError):
                        pubsub.close()
            self._stop.wait(self.settings.redis.retry_after)

    def _handle(self, data: bytes) -> None:
        try:
            message = json.loads(data)
        except ValueError:
            return
        if "recent" in message:
            if "lists" in message and message.get("origin") != self.origin:
                self.keep_lists(message)  # first: a feed that knows the new items finds the lists
            self.results.heard(message, self.origin)
        elif "users" in message:
            self.results.drop_owners("user", message["users"])
        if "items" in message or "active" in message:
            self.refresh()

    def keep_lists(self, message: dict) -> None:
        """Keep the feed lists another worker made for its post's users (see
        ``recsys.api.writes.post_interactions``), if they were made with the bundle this one serves."""
        current = self.current
        lists = message.get("lists")
        if current is None or message.get("version") != current.version or not isinstance(lists, list):
            return
        for entry in lists:
            try:
                current.feeds.keep_list(entry["user"], entry["recent"], entry["rows"], entry["scores"],
                                        current.changes)
            except (InvalidRequest, KeyError, TypeError, ValueError) as exc:
                logger.warning("ignored a feed list in a post's message: %s", exc)

    def refresh(self) -> None:
        """Switch to the active version if it changed; reload item changes if they moved."""
        active = self.breaker.call(self.store.active_version) if self.store is not None else None
        current = self.current
        if active is not None and (current is None or active != current.version) \
                and active not in self.failed:
            self._load_version(active)
        elif current is None and self.settings.api.bundle is not None:
            self._load_local(self.settings.api.bundle)
        current = self.current
        if current is not None and self.store is not None:
            gen = self.breaker.call(lambda: int(self.client.get(self.store.keys.items_gen) or 0))
            if gen is not None and gen != current.changes.gen:
                self.sync_items()
                self.announce(gen)

    def _install(self, bundle) -> None:
        recommender = Recommender.configured(bundle, self.settings, scan_dir=self.scan_dir,
                                             feed_lists=self.settings.api.local_cache_items)
        # what requests share is built here, before serving (the transposed copies made or
        # mapped); other bundles' copies go
        prune_scans(self.scan_dir, recommender.warm().candidates.scan_keys())
        if self.store is not None:
            changes = self.breaker.call(self.store.item_changes)
            if changes is not None:
                recommender = recommender.with_changes(ItemChanges.build(bundle, *changes))
        embedder = ItemEmbedder(bundle)
        if self.settings.api.warm_embedder:
            threading.Thread(target=self._warm, args=(embedder,), name="recsys-warm", daemon=True).start()
        with self._swap_lock:
            self.current = recommender
            self.embedder = embedder
            self.load_error = None
        logger.info("serving bundle %s (%d items)", bundle.version, len(bundle.item_ids))
        self.on_change(recommender)

    @staticmethod
    def _warm(embedder: ItemEmbedder) -> None:
        try:
            embedder.warm()
        except Exception:  # a put will report the problem to its caller
            logger.exception("loading the item encoders failed")

    def _load_version(self, version: str) -> None:
        try:
            path = self.store.download(version, self.cache_dir)
            bundle = read_bundle(path)
        except (BundleError, NotFound) as exc:
            self.failed[version] = exc.message
            self.load_error = f"bundle {version} refused: {exc.message}"
            logger.error("bundle %s refused, still serving %s: %s", version,
                         self.current.version if self.current else "nothing", exc.message)
            return
        except (redis.RedisError, OSError) as exc:
            self.breaker.fail(exc)
            return
        self._install(bundle)

    def _load_local(self, path: Path) -> None:
        try:
            self._install(read_bundle(path))
        except BundleError as exc:
            self.load_error = exc.message
            logger.error("cannot load local bundle: %s", exc.message)

    def sync_items(self) -> None:
        """Rebuild the item changes of the current bundle from Redis (no-op when Redis is down)."""
        with self._swap_lock:
            current = self.current
            if current is None or self.store is None:
                return
            changes = self.breaker.call(self.store.item_changes)
            if changes is None:
                return
            self.current = current.with_changes(ItemChanges.build(current.bundle, *changes))
        self.on_change(self.current)

    # -- per request ----------------------------------------------------------------------------

    def announce(self, gen: int) -> None:
        """Tell the sibling workers an item write reached generation ``gen`` (before answering)."""
        if self.shared_gen is not None and gen > self.shared_gen.value:
            self.shared_gen.value = gen

    def catch_up(self) -> None:
        """Reload item changes if a sibling worker wrote since this one last looked."""
        current = self.current
        if self.shared_gen is not None and current is not None \
                and self.shared_gen.value > current.changes.gen:
            self.sync_items()

    def recommender(self) -> Recommender:
        """The recommender a request should use.

        Raises:
            NotReady: nothing loaded yet; the message says why.
        """
        current = self.current
        if current is None:
            reason = self.load_error or (
                "no bundle is active in Redis; run `recsys publish --bundle DIR`"
                if self.store is not None else "no bundle configured; start with --bundle DIR")
            raise NotReady(f"not ready: {reason}")
        return current

    def snapshot(self, cache_key: str | None = None, field: str | None = None,
                 recent_user: str | None = None) -> Snapshot:
        """One pipelined round trip: the active version, the item generation, a cached result and
        a user's recent items. When the generation moved the item changes are reloaded before
        returning, so a put or deleted item shows in this very response."""
        if self.store is None:
            return Snapshot()
        keys = self.store.keys

        def ask():
            pipe = self.client.pipeline(transaction=False)
            pipe.get(keys.active)
            pipe.get(keys.items_gen)
            if cache_key is not None:
                pipe.hget(cache_key, field)
            if recent_user is not None:
                pipe.lrange(keys.recent(recent_user), 0, self.settings.redis.recent_items - 1)
                pipe.pttl(keys.recent(recent_user))
                pipe.get(keys.activity(recent_user))
            return pipe.execute()

        result = self.breaker.call(ask)
        if result is None:
            return Snapshot()
        active = result[0].decode() if result[0] is not None else None  # a new one: the follower loads it
        gen = int(result[1] or 0)
        cached = result[2] if cache_key is not None else None
        recent = activity = None
        expires = math.inf
        if recent_user is not None:
            recent = list(dict.fromkeys(r.decode() for r in result[-3]))
            if result[-2] > 0:  # -2: no list, -1: no expiry
                expires = time.time() + result[-2] / 1000
            activity = int(result[-1] or 0)
            if cached is not None:  # computed at another activity count: stale, whenever written
                count, _, body = cached.partition(b"\n")
                cached = body if count == str(activity).encode() else None
        current = self.current
        if current is not None and gen != current.changes.gen:
            self.sync_items()
            cached = None  # computed against other item changes
        return Snapshot(active=active, gen=gen, cached=cached, recent=recent, recent_expires=expires,
                        activity=activity)

    def readiness(self) -> tuple[bool, list[str]]:
        """``(ready, reasons it is degraded or not ready)``."""
        reasons = []
        ready = self.current is not None
        if not ready:
            try:
                self.recommender()
            except RecsysError as exc:
                reasons.append(exc.message)
        if self.store is None:
            reasons.append("no Redis configured: no cache, interaction log or hot swap")
        else:
            ok = self.breaker.call(self.client.ping, default=False)
            if not ok:
                reasons.append(f"Redis unreachable ({self.breaker.error}): serving the loaded "
                               "bundle without cache; interactions and item writes are refused")
        if self.load_error and ready:
            reasons.append(self.load_error)
        return ready, reasons


def _confirmed(pubsub, timeout: float) -> None:
    """Wait until Redis confirms a subscription (messages published later all arrive)."""
    deadline = time.monotonic() + max(timeout, 1.0)
    while time.monotonic() < deadline:
        message = pubsub.get_message(timeout=0.1)
        if message is not None and message["type"] == "subscribe":
            return
    raise redis.TimeoutError("Redis did not confirm the subscription to the workers' channel")


def redis_client(settings: Settings) -> redis.Redis:
    """The client for ``settings.redis.url`` (which must be set)."""
    return connect(settings.redis.url, socket_timeout=settings.redis.socket_timeout)
