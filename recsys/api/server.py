"""``recsys serve``: the API under gunicorn (or Flask's development server with ``--dev``).

The serving process owns what its workers share: the embedded Redis (when no URL is set), the
Prometheus multi-process directory, and publishing ``--bundle`` before the workers start. Each
worker builds its own app after the fork, so no Redis connection or thread crosses a fork.
"""
from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

from gunicorn.app.base import BaseApplication

from recsys.settings import Settings
from recsys.worker.shared import share_generation

__all__ = ["serve", "gunicorn_options"]

logger = logging.getLogger(__name__)
def gunicorn_options(settings: Settings, host: str, port: int) -> dict:
    """The gunicorn configuration: sync workers (the recommender is CPU-bound numpy, one request
    per process at a time keeps latency flat), no preload (each worker loads after the fork)."""
    return {
        "bind": f"{host}:{port}",
        "workers": settings.api.workers,
        "worker_class": "sync",
        "timeout": settings.api.timeout,
        "graceful_timeout": 10,
        "keepalive": 5,
        "backlog": 2048,
        "accesslog": None,
        "errorlog": "-",
        "loglevel": "info",
        "preload_app": False,
        "control_socket_disable": True,
        # the longest request line gunicorn allows, so an over-long id in a path meets our own
        # JSON 400 (ids are at most 200 characters) instead of gunicorn's HTML 414
        "limit_request_line": 8190,
        "post_fork": _post_fork,
        "child_exit": _child_exit,
    }


def _post_fork(server, worker) -> None:
    # one BLAS/OpenMP thread per worker: the workers already use every core, and a request's
    # matrix products are small; oversubscribed thread pools cost several times the work
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)
    _exit_with_parent(server.pid)


def _exit_with_parent(master: int) -> None:
    """Have the kernel send this worker SIGTERM when its master dies (Linux), so a master that was
    killed outright leaves no worker serving on the old socket."""
    import ctypes
    import signal

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM)
    except (OSError, AttributeError):  # not Linux: gunicorn's own check of the parent remains
        return
    if os.getppid() != master:  # the master died before the request took effect
        os.kill(os.getpid(), signal.SIGTERM)


def _child_exit(server, worker) -> None:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)


def serve(settings: Settings, *, host: str, port: int, bundle: Path | None = None,
          dev: bool = False) -> None:
    """Run the API until interrupted.

    Args:
        settings: validated settings.
        host, port: where to listen.
        bundle: a local bundle to publish (and serve when Redis holds none).
        dev: Flask's single-process development server instead of gunicorn.
    """
    from recsys.store.connection import connect, durability_warning, redact
    from recsys.store.embedded import EmbeddedRedis
    from recsys.store.redis import RedisStore

    embedded = None
    if settings.redis.url is None:
        embedded = EmbeddedRedis(settings.state_dir / "redis").start()
        settings = settings.model_copy(update={"redis": settings.redis.model_copy(update={"url": embedded.url})})
    else:
        try:
            problem = durability_warning(connect(settings.redis.url, socket_timeout=5))
        except OSError as exc:
            problem = f"could not check the Redis setting appendonly ({exc})"
        if problem is not None:
            logger.warning("%s", problem)
    if bundle is not None:
        settings = settings.model_copy(update={"api": settings.api.model_copy(update={"bundle": bundle})})
        store = RedisStore.from_settings(connect(settings.redis.url, socket_timeout=5), settings.redis)
        try:
            version = store.publish(bundle)
            logger.info("published %s as the active version", version)
        except OSError as exc:  # redis ConnectionError is an OSError subclass too
            logger.warning("could not publish %s to %s (%s); workers serve it from disk", bundle,
                           redact(settings.redis.url), exc)
    metrics_dir = Path(settings.state_dir).resolve() / "metrics" / str(os.getpid())
    shutil.rmtree(metrics_dir, ignore_errors=True)
    metrics_dir.mkdir(parents=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    master = os.getpid()
    share_generation()
    try:
        if dev:
            from recsys.api import create_app

            create_app(settings).run(host=host, port=port, threaded=False)
        else:
            _Gunicorn(settings, gunicorn_options(settings, host, port)).run()
    finally:
        # gunicorn forks the workers inside run(): a worker leaving unwinds through here too
        if os.getpid() == master:
            shutil.rmtree(metrics_dir, ignore_errors=True)
            if embedded is not None:
                embedded.stop()


class _Gunicorn(BaseApplication):
    """gunicorn's embedding API: options from :func:`gunicorn_options`, the app built per worker."""

    def __init__(self, settings: Settings, options: dict):
        self.settings = settings
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self):
        from recsys.api import create_app

        return create_app(self.settings)
