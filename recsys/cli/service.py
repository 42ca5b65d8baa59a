"""Running the service: ``recsys publish | serve | demo``."""
from __future__ import annotations

import json
import logging
import secrets
from pathlib import Path

import click
from pydantic import SecretStr

from recsys.cli._context import RedisSession, settings_of, which_redis
from recsys.errors import ConfigError
from recsys.settings import Settings

__all__ = ["publish", "serve", "demo"]


@click.command()
@click.option("--bundle", required=True, type=click.Path(path_type=Path),
              help="a bundle version directory, or models/NAME for the newest")
@click.option("--no-activate", is_flag=True, help="upload only; workers keep serving the active version")
@click.option("--keep", type=click.IntRange(1, None), default=None,
              help="then delete all but the KEEP newest versions from Redis")
@click.pass_context
def publish(ctx: click.Context, bundle: Path, no_activate: bool, keep: int | None) -> None:
    """Upload a bundle to Redis (verified, chunked, sha256) and make it the active version."""
    import redis as redis_py

    from recsys.store import RedisStore

    settings = settings_of(ctx)
    click.echo(f"using {which_redis(settings)}", err=True)
    try:
        with RedisSession(settings) as client:
            store = RedisStore.from_settings(client, settings.redis)
            version = store.publish(bundle, activate=not no_activate)
            removed = store.prune(keep) if keep else []
    except redis_py.RedisError as exc:
        raise ConfigError(f"cannot publish: Redis is unreachable ({exc})") from exc
    click.echo(f"published {version}" + ("" if no_activate else " (active)"))
    if removed:
        click.echo(f"removed {len(removed)} older version(s): {', '.join(removed)}")


@click.command()
@click.option("--host", default=None, help="bind address (default: settings.api.host)")
@click.option("--port", type=click.IntRange(0, 65535), default=None,
              help="port (default: settings.api.port)")
@click.option("--bundle", type=click.Path(path_type=Path), default=None,
              help="publish this bundle first (and serve it from disk if Redis is down)")
@click.option("--workers", type=click.IntRange(1, 64), default=None,
              help="gunicorn workers (default: settings.api.workers)")
@click.option("--dev", is_flag=True, help="Flask's development server (one process, reloads nothing)")
@click.pass_context
def serve(ctx: click.Context, host: str | None, port: int | None, bundle: Path | None,
          workers: int | None, dev: bool) -> None:
    """Serve the HTTP API under gunicorn."""
    from recsys.api.server import serve as run

    settings = settings_of(ctx)
    if workers is not None:
        settings = settings.model_copy(update={"api": settings.api.model_copy(update={"workers": workers})})
    if logging.getLogger().level > logging.INFO:
        logging.getLogger().setLevel(logging.INFO)
    click.echo(f"using {which_redis(settings)}", err=True)
    run(settings, host=host or settings.api.host, port=settings.api.port if port is None else port,
        bundle=bundle, dev=dev)


def _demo_interactions(catalog: str, interactions: str | None) -> str:
    """What the demo trains on: the given interactions, the MovieLens ratings or simulated shoppers."""
    if interactions is not None:
        return interactions
    if not catalog.startswith(("synthetic", "movielens:")):
        raise ConfigError(f"a catalog file needs its interactions: add --interactions PATH.csv (catalog {catalog})")
    return catalog if catalog.startswith("movielens:") else "synthetic"


def _demo_bundle(settings: Settings, catalog: str, interactions: str, users: int | None,
                 progress: bool) -> Path:
    """The demo's trained bundle for ``catalog``: the newest one built from it before, or a new one
    (build, then train on its interactions: simulated shoppers, MovieLens ratings, or a file)."""
    import re

    from recsys.bundle import read_bundle
    from recsys.data import load_catalog, load_interactions
    from recsys.pipeline.build import build_item_bundle
    from recsys.pipeline.train import train_user_tower

    if catalog.startswith(("synthetic", "movielens:")):
        name = "demo" if catalog.startswith("synthetic") else "demo-movielens"
    else:  # a file: named by its folder, e.g. demo-hm-sample
        name = "demo-" + re.sub(r"[^A-Za-z0-9._-]+", "-", Path(catalog).resolve().parent.name)[:80]
    out = Path(settings.models_dir) / name
    if out.is_dir():
        for version in sorted((p for p in out.iterdir() if (p / "manifest.json").is_file()), reverse=True):
            manifest = json.loads((version / "manifest.json").read_text())
            if manifest.get("source") == catalog and manifest.get("collab", {}).get("source") == interactions:
                click.echo(f"reusing {version} (delete {out} to rebuild)")
                return version
    frame = load_catalog(catalog, seed=settings.seed, state_dir=settings.state_dir, show_progress=progress,
                         image_roots=settings.images.roots)
    report = build_item_bundle(frame, settings, out, source=catalog, show_progress=progress)
    click.echo(report.summary())
    bundle = read_bundle(report.path)
    events = load_interactions(interactions, catalog=bundle.items, seed=settings.seed, n_users=users)
    trained = train_user_tower(bundle, events, settings, source=interactions, show_progress=progress)
    click.echo(trained.summary())
    return trained.path


@click.command()
@click.option("--catalog", default="synthetic:1000", show_default=True, metavar="SOURCE",
              help="synthetic:N (a shop with rendered images), movielens:DIR, or a catalog PATH.csv")
@click.option("--interactions", default=None, metavar="SOURCE",
              help="what the shop's users did: PATH.csv (needed with a catalog file; default: simulated "
                   "shoppers, or the MovieLens ratings)")
@click.option("--users", type=click.IntRange(10, None), default=None,
              help="simulated shoppers for a synthetic catalog (default: a quarter of the items)")
@click.option("--host", default="127.0.0.1", show_default=True, help="bind address")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True)
@click.option("--progress/--no-progress", default=True, help="progress bars")
@click.pass_context
def demo(ctx: click.Context, catalog: str, interactions: str | None, users: int | None, host: str, port: int,
         progress: bool) -> None:
    """Build a shop, train it, publish it to the embedded Redis and serve the shop page.

    A second run reuses what the first built. Ctrl-C stops the server and the Redis it started.
    """
    from recsys.api.server import serve as run

    settings = settings_of(ctx)
    interactions = _demo_interactions(catalog, interactions)  # a usage error before the build's process starts
    bundle = _in_own_process(_demo_bundle, settings, catalog, interactions, users, progress)
    # the page posts its visitors' clicks from the browser: interactions need no key here; the
    # curation page does need one, so a demo without RECSYS_API_KEY makes one for this run
    key = settings.api.api_key
    made = None if key is not None else secrets.token_urlsafe(12)
    settings = settings.model_copy(update={"api": settings.api.model_copy(
        update={"public_interactions": True, "web": True, **({"api_key": SecretStr(made)} if made else {})})})
    if logging.getLogger("recsys").getEffectiveLevel() > logging.INFO:
        logging.getLogger("recsys").setLevel(logging.INFO)  # what the demo does, not torch's chatter
    click.echo(f"\nrecsys demo: open http://{host}:{port}/  (the API: http://{host}:{port}/openapi.json; "
               "Ctrl-C stops)")
    click.echo(f"catalog curation: http://{host}:{port}/admin  (API key: "
               f"{made if made else 'the one in RECSYS_API_KEY'})\n")
    run(settings, host=host, port=port, bundle=bundle)


def _in_own_process(fn, *args):
    """``fn(*args)`` run in a fresh (spawned) process, its result or its error returned here.

    The demo builds in a process of its own so that the process serving never held the towers'
    OpenVINO thread pools: with them, gunicorn's master died of SIGSEGV at the SIGCHLD of a
    worker that exited (`recsys serve` never loads the towers in its master).
    """
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(fn, *args).result()
