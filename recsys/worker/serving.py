"""What one API worker serves: the active bundle (hot-swapped), the bundles running experiments'
variants name, item changes, and Redis health.

A request takes one :class:`Recommender` reference at its start and uses it to the end, so every
response comes from exactly one bundle version. A new version is downloaded, verified and loaded
beside the old one by a background thread, then swapped in with one assignment; a version that
fails to load is remembered and the old one keeps serving. A variant's bundle is loaded the same
way when an experiment names it, and dropped when none does.
"""
from __future__ import annotations

import contextlib
import logging
import secrets
import threading
import time
from pathlib import Path

import redis

from recsys.bundle import read_bundle
from recsys.errors import BundleError, InvalidRequest, NotFound, NotReady, RecsysError
from recsys.serve import Recommender
from recsys.serve.changes import ItemChanges
from recsys.serve.scan import prune_scans
from recsys.settings import Settings
from recsys.store.activity import ActivityStore
from recsys.store.connection import Breaker, connect
from recsys.store.messages import Activated, ActivityPosted, ItemsChanged, decode
from recsys.store.redis import RedisStore
from recsys.store.results import ResultStore
from recsys.worker.arrival import arrival_checks
from recsys.worker.cache import ResultCache
from recsys.worker.images import ImageFetches
from recsys.worker.impressions import ImpressionLog
from recsys.worker.memory import WorkerMemory

__all__ = ["Serving", "redis_client"]

logger = logging.getLogger(__name__)


class Serving:
    """The serving state of one worker process (the :class:`~recsys.worker.cache.WorkerState` its
    result cache reads).

    Args:
        settings: validated settings; ``settings.redis.url`` must be set (``create_app`` starts
            the embedded server when it is not).
        client: a redis-py client, or ``None`` to run without Redis (a local bundle only).
    """

    def __init__(self, settings: Settings, client: redis.Redis | None):
        self.settings = settings
        rs, api = settings.redis, settings.api
        self.client = client
        self.store = RedisStore.from_settings(client, rs) if client is not None else None
        self.activity = (ActivityStore(client, prefix=rs.prefix, recent_items=rs.recent_items,
                                       recent_ttl=rs.recent_ttl_days * 86400)
                         if client is not None else None)
        self.breaker = Breaker(rs.retry_after)
        self.current: Recommender | None = None
        self.variant_bundles: dict[str, Recommender] = {}  # version -> a running variant's bundle
        self.failed: dict[str, str] = {}  # version -> why it was refused
        self.load_error: str | None = None
        self.cache_dir = Path(settings.state_dir) / "bundles"
        self.scan_dir = Path(settings.state_dir) / "scans"
        self._swap_lock = threading.Lock()
        # one refresh at a time: a slow download of a version activated before another must not
        # finish last and leave the older one installed, or its refusal as the reason said
        self._refresh_lock = threading.RLock()
        self._stop = threading.Event()
        self.subscribed = False  # the follower thread is receiving invalidations
        self.shared_gen = None  # the item generation the workers of one server share (RawValue)
        self.memory = WorkerMemory(api.local_cache_items, api.local_recent_users, api.local_active_users)
        self._results = (ResultStore(client, self.store.keys, recent_items=rs.recent_items, ttl=rs.cache_ttl)
                         if client is not None else None)
        self.results = ResultCache(self, self._results, self.breaker, ttl=rs.cache_ttl, memory=self.memory)
        self.images = ImageFetches(settings.images, retry_after=rs.retry_after)
        self.impressions = (ImpressionLog(self.store.experiments, self.activity) if self.store is not None
                            else None)
        self.origin = secrets.token_hex(8)  # names this worker's posts in their messages
        self._thread: threading.Thread | None = None
        self.on_change = lambda recommender: None  # metrics hook

    # -- what a request uses ----------------------------------------------------------------------

    @property
    def following(self) -> bool:
        """Whether invalidations arrive: subscribed to the workers' channel, and Redis answering."""
        return self.subscribed and not self.breaker.open

    def recommender(self, version: str | None = None) -> Recommender:
        """The recommender a request should use, with the item changes a sibling worker of this
        server wrote caught up: the active bundle's, or a variant bundle's by its ``version``
        (the active one's when this worker does not hold that version).

        Raises:
            NotReady: nothing loaded yet; the message says why.
        """
        current = self.current
        if current is None:
            reason = self.load_error or (
                "no bundle is active in Redis; run `recsys publish --bundle DIR`"
                if self.store is not None else "no bundle configured; start with --bundle DIR")
            raise NotReady(f"not ready: {reason}")
        chosen = self._held(current, version)
        shared = self.shared_gen
        if shared is not None and shared.value > chosen.changes.gen:
            return self.at_generation(shared.value, chosen.version)
        return chosen

    def holds(self, version: str) -> bool:
        """Whether this worker can answer with bundle ``version`` now."""
        current = self.current
        return current is not None and (version == current.version or version in self.variant_bundles)

    def _held(self, current: Recommender, version: str | None) -> Recommender:
        if version is None or version == current.version:
            return current
        return self.variant_bundles.get(version, current)

    def synced(self, version: str | None = None) -> Recommender:
        """:meth:`recommender`, with the item changes at Redis's generation (a round trip): for
        reads and writes that must see an item written through another server at once."""
        current = self.recommender(version)
        gen = self.breaker.call(self._results.gen) if self._results is not None else None
        return self.at_generation(gen, current.version) if gen is not None else current

    def at_generation(self, gen: int, version: str | None = None) -> Recommender:
        """:meth:`recommender` of ``version``, the item changes of every held bundle reloaded from
        Redis first if they are not at generation ``gen``: the one place a moved generation is
        acted on."""
        with self._swap_lock:
            current = self.current
            held = [current, *self.variant_bundles.values()] if current is not None else []
            if any(gen != r.changes.gen for r in held) and self.store is not None:
                changes = self.breaker.call(self.store.changes.read)
                if changes is not None:
                    self.current = _changed(current, changes)
                    self.variant_bundles = {v: _changed(r, changes) for v, r in self.variant_bundles.items()}
        if self.current is not current:
            self.on_change(self.current)
        return self._held(self.current, version) if self.current is not None else None

    def announce(self, gen: int) -> None:
        """Tell the sibling workers an item write reached generation ``gen`` (before answering)."""
        if self.shared_gen is not None and gen > self.shared_gen.value:
            self.shared_gen.value = gen

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
        if self.impressions is not None:
            self.impressions.stop()

    def _follow(self) -> None:
        """Listen for published changes (new active version, item writes, user activity); poll
        every ``poll_interval`` as well, since pub/sub drops messages while disconnected."""
        while not self._stop.is_set():
            pubsub = None
            try:
                pubsub = self.client.pubsub()
                pubsub.subscribe(self.store.keys.events)
                _confirmed(pubsub, self.settings.redis.socket_timeout)
                self.memory.clear()  # invalidations may have been missed while not subscribed
                # read after Redis confirmed the subscription: a user active since is in a message
                self.memory.know_active(self.activity.active_users(self.settings.api.local_active_users))
                self.subscribed = True
                self.refresh()
                while not self._stop.is_set():
                    message = pubsub.get_message(timeout=self.settings.api.poll_interval)
                    if message is None:
                        self.refresh()
                    elif message["type"] == "message":
                        self._handle(decode(message["data"]))
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

    def _handle(self, message) -> None:
        if isinstance(message, ActivityPosted):
            if message.lists and message.origin != self.origin:
                self._keep_lists(message)  # first: a feed that knows the new items finds the lists
            self.memory.heard(message, self.origin)
        elif isinstance(message, (Activated, ItemsChanged)):
            self.refresh()

    def _keep_lists(self, message: ActivityPosted) -> None:
        """Keep the feed lists another worker made for its post's users
        (:func:`recsys.worker.writes.post_interactions`), if made with the bundle this one serves."""
        current = self.current
        if current is None or message.version != current.version:
            return
        for entry in message.lists:
            try:
                current.receive_feed_list(entry.user, entry.recent, entry.rows, entry.scores)
            except (InvalidRequest, TypeError, ValueError) as exc:
                logger.warning("ignored a feed list in a post's message: %s", exc)

    def refresh(self) -> None:
        """Switch to the active version if it changed; reload item changes if they moved."""
        with self._refresh_lock:
            active = self.breaker.call(self.store.active_version) if self.store is not None else None
            current = self.current
            if active is not None and (current is None or active != current.version) \
                    and active not in self.failed:
                self._load_version(active)
            elif current is None and self.settings.api.bundle is not None:
                self._load_local(self.settings.api.bundle)
            if self.current is not None and self._results is not None:
                gen = self.breaker.call(self._results.gen)
                if gen is not None:
                    self.at_generation(gen)
                    self.announce(gen)
            self._hold_variant_bundles()

    def _hold_variant_bundles(self) -> None:
        """Load the bundles the running experiments' variants name and this worker does not hold;
        drop those none names any more."""
        current = self.current
        if current is None or self.store is None:
            return
        wanted = {version for e in current.changes.experiments if e.status == "running"
                  for version in e.bundles} - {current.version}
        held = {v: r for v, r in self.variant_bundles.items() if v in wanted}
        for version in sorted(wanted - held.keys() - self.failed.keys()):
            bundle = self._download(version)
            if bundle is not None:
                held[version] = self._prepared(bundle, keep=[current, *held.values()])
                logger.info("holding bundle %s for an experiment's variant", version)
        if held.keys() != self.variant_bundles.keys():
            with self._swap_lock:
                self.variant_bundles = held

    def _prepared(self, bundle, keep) -> Recommender:
        """A recommender of ``bundle``, ready to serve: what requests share built (the transposed
        copies made or mapped; those of bundles other than it and the recommenders ``keep`` go),
        and the item changes applied."""
        recommender = Recommender.configured(bundle, self.settings, scan_dir=self.scan_dir,
                                             feed_lists=self.settings.api.local_cache_items)
        kept = set(recommender.warm().scan_keys()).union(*(r.scan_keys() for r in keep))
        prune_scans(self.scan_dir, kept)
        if self.store is not None:
            changes = self.breaker.call(self.store.changes.read)
            if changes is not None:
                recommender = _changed(recommender, changes)
        return recommender

    def _install(self, bundle) -> None:
        recommender = self._prepared(bundle, keep=self.variant_bundles.values())
        if self.settings.api.warm_embedder:
            threading.Thread(target=self._warm, args=(recommender,), name="recsys-warm", daemon=True).start()
        with self._swap_lock:
            self.current = recommender
            self.load_error = None
        logger.info("serving bundle %s (%d items)", bundle.version, len(bundle.item_ids))
        self.on_change(recommender)

    def _warm(self, recommender: Recommender) -> None:
        """What a put needs, made before the first one: the encoders, and what its checks compare with."""
        try:
            recommender.embedder.warm()
            if self.settings.checks.enabled:
                arrival_checks(recommender, self.settings.seed)
        except Exception:  # a put will report the problem to its caller
            logger.exception("preparing for puts failed")

    def _load_version(self, version: str) -> None:
        bundle = self._download(version)
        if bundle is not None:
            self._install(bundle)

    def _download(self, version: str):
        """The published bundle ``version``, read; ``None`` when it is refused (remembered, and
        said by :meth:`readiness`) or Redis did not answer."""
        try:
            return read_bundle(self.store.download(version, self.cache_dir))
        except (BundleError, NotFound) as exc:
            self.failed[version] = exc.message
            self.load_error = f"bundle {version} refused: {exc.message}"
            logger.error("bundle %s refused, still serving %s: %s", version,
                         self.current.version if self.current else "nothing", exc.message)
        except (redis.RedisError, OSError) as exc:
            self.breaker.fail(exc)
        return None

    def _load_local(self, path: Path) -> None:
        try:
            self._install(read_bundle(path))
        except BundleError as exc:
            self.load_error = exc.message
            logger.error("cannot load local bundle: %s", exc.message)

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


def _changed(recommender: Recommender, changes) -> Recommender:
    """``recommender`` with the item changes read from Redis."""
    return recommender.with_changes(ItemChanges.build(recommender.bundle, *changes))


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
