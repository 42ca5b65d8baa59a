"""Command line: ``recsys demo | build | train | align | finetune | similar | search | recommend | items |
publish | serve | evaluate | curate``."""
from __future__ import annotations

import json
import logging
import secrets
import sys
import warnings
from pathlib import Path

import click
import pandas as pd
from pydantic import SecretStr

from recsys.cli._context import settings_of as _settings
from recsys.cli.curate import curate
from recsys.errors import BundleError, ConfigError, RecsysError, RecsysWarning
from recsys.evaluation.splits import SPLITS
from recsys.settings import Settings

__all__ = ["main", "cli"]

logger = logging.getLogger(__name__)
_DISPLAY = ["title", "category", "price"]
ANONYMOUS = "anonymous"  # the key of a --recent-only feed in the output


def _exit_code(exc: RecsysError) -> int:
    return 1 if isinstance(exc, BundleError) else 2


class _Group(click.Group):
    """Turns RecsysError into one clear line on stderr and an exit code, never a traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except RecsysError as exc:
            click.echo(f"error: {exc.message}", err=True)
            ctx.exit(_exit_code(exc))


def _setup_logging(verbose: int) -> None:
    root = logging.getLogger()
    if not root.handlers:  # never clobber a host's logging set-up
        logging.basicConfig(format="%(levelname)s %(name)s: %(message)s")
    root.setLevel([logging.WARNING, logging.INFO, logging.DEBUG][min(verbose, 2)])
    logging.captureWarnings(True)


@click.group(cls=_Group)
@click.option("--config", "config_file", type=click.Path(dir_okay=False, path_type=Path),
              envvar="RECSYS_CONFIG", help="YAML settings file (environment variables override it).")
@click.option("-v", "--verbose", count=True, help="-v for progress logs, -vv for debug.")
@click.version_option(package_name="recsys")
@click.pass_context
def cli(ctx: click.Context, config_file: Path | None, verbose: int) -> None:
    """recsys: multimodal recommendations (image, text, tabular) with Annoy and Redis."""
    _setup_logging(verbose)
    ctx.obj = {"config_file": config_file}


def _which_redis(settings: Settings) -> str:
    """The Redis a command uses, for the user to see: the embedded server's folder, or the URL
    without its password."""
    from recsys.store.redis import redact

    if settings.redis.url is None:
        return f"embedded Redis in {Path(settings.state_dir) / 'redis'} (set RECSYS_REDIS_URL to share one)"
    return f"Redis at {redact(settings.redis.url)}"


@cli.command()
@click.option("--catalog", required=True, metavar="SOURCE",
              help="PATH.csv, PATH.parquet, movielens:DIR or synthetic:N")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="models/NAME: the new version is written inside")
@click.option("--seed", type=int, default=None, help="seed (default: settings.seed)")
@click.option("--image-root", "image_roots", multiple=True, type=click.Path(file_okay=False, path_type=Path),
              help="a folder besides the catalog's own that its image paths may point into (repeatable)")
@click.option("--vectors", default=None, type=click.Path(exists=True, path_type=Path),
              help="item vectors you already have: a .parquet file (item_id and a list column per modality) "
                   "or a folder (item_ids.txt and <modality>.npy); those modalities skip the encoders")
@click.option("--progress/--no-progress", default=True, help="progress bars")
@click.pass_context
def build(ctx: click.Context, catalog: str, out: Path, seed: int | None, image_roots: tuple[Path, ...],
          vectors: Path | None, progress: bool) -> None:
    """Embed a catalog, build its indexes and write a model bundle."""
    from recsys.data import load_catalog
    from recsys.pipeline.build import build_item_bundle

    settings = _settings(ctx)
    seed = settings.seed if seed is None else seed
    frame = load_catalog(catalog, seed=seed, state_dir=settings.state_dir, show_progress=progress,
                         image_roots=[*settings.images.roots, *image_roots])
    report = build_item_bundle(frame, settings, out, source=catalog, show_progress=progress, vectors=vectors)
    for message in dict.fromkeys(report.warnings):
        click.echo(f"warning: {message}", err=True)
    click.echo(report.summary())


@cli.command()
@click.option("--bundle", required=True, type=click.Path(path_type=Path),
              help="a bundle version directory, or models/NAME for the newest")
@click.option("--interactions", required=True, metavar="SOURCE",
              help="PATH.csv, PATH.parquet, movielens:DIR, synthetic (for synthetic:N catalogs) "
                   "or redis (the interaction log the API wrote)")
@click.option("--model", type=click.Choice(["als", "bpr"]), default=None,
              help="collaborative model (default: settings.collab.model)")
@click.option("--seed", type=int, default=None, help="seed (default: settings.seed)")
@click.option("--progress/--no-progress", default=True, help="progress bars")
@click.pass_context
def train(ctx: click.Context, bundle: Path, interactions: str, model: str | None, seed: int | None,
          progress: bool) -> None:
    """Fit the user tower on interactions and write it as a new bundle version."""
    from recsys.bundle import read_bundle
    from recsys.data import load_interactions
    from recsys.pipeline.build import train_user_tower

    settings = _settings(ctx)
    if model is not None:
        settings = settings.model_copy(update={"collab": settings.collab.model_copy(update={"model": model})})
    seed = settings.seed if seed is None else seed
    settings = settings.model_copy(update={"seed": seed})
    source = read_bundle(bundle)
    if interactions == "redis":
        events = _logged_interactions(settings, source)
    else:
        events = load_interactions(interactions, catalog=source.items, seed=seed)
    report = train_user_tower(source, events, settings, source=interactions, show_progress=progress)
    click.echo(report.summary())


@cli.command()
@click.option("--bundle", required=True, type=click.Path(path_type=Path),
              help="a bundle version directory, or models/NAME for the newest")
@click.option("--progress/--no-progress", default=True, help="progress bars")
@click.pass_context
def align(ctx: click.Context, bundle: Path, progress: bool) -> None:
    """Learn the joint text-image space from the bundle's photos and texts (search by text that sees
    photos) and write it as a new bundle version; settings.towers.joint sets its size and epochs."""
    from recsys.bundle import read_bundle
    from recsys.pipeline.align import align_bundle

    source = read_bundle(bundle)
    path = align_bundle(source, _settings(ctx), show_progress=progress)
    validation = read_bundle(path).manifest["joint"]["validation"]
    click.echo(f"bundle    {path} (joint space for {source.version})")
    click.echo("held out  " + ", ".join(f"{k} {v:g}" for k, v in validation.items()))


@cli.command()
@click.option("--catalog", required=True, metavar="SOURCE", help="PATH.csv or PATH.parquet: its photos")
@click.option("--method", type=click.Choice(["byol", "simclr", "dino"]), default="byol", show_default=True,
              help="the self-supervised objective (lightly)")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="checkpoints/NAME: the training state, backbone.pth when kept, report.json")
@click.option("--epochs", default=1, show_default=True, type=click.IntRange(1), help="passes over the photos, in all")
@click.option("--resolution", default=None, type=click.IntRange(32, 1024),
              help="side of the training crops [default: the backbone's input size]")
@click.option("--batch-size", default=64, show_default=True, type=click.IntRange(2), help="photos per step")
@click.option("--lr", default=3e-5, show_default=True, type=click.FloatRange(0, min_open=True),
              help="the backbone's learning rate (the heads: ten times it)")
@click.option("--max-items", default=None, type=click.IntRange(1), help="train on a seeded sample of this many photos")
@click.option("--eval-items", default=5000, show_default=True, type=click.IntRange(10),
              help="photos in the kNN evaluation (a fifth held out of training)")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--seed", type=int, default=None, help="seed (default: settings.seed)")
@click.option("--image-root", "image_roots", multiple=True, type=click.Path(file_okay=False, path_type=Path),
              help="a folder besides the catalog's own that its image paths may point into (repeatable)")
@click.option("--progress/--no-progress", default=True, help="progress bars")
@click.pass_context
def finetune(ctx: click.Context, catalog: str, method: str, out: Path, epochs: int, resolution: int | None,
             batch_size: int, lr: float, max_items: int | None, eval_items: int, device: str, seed: int | None,
             image_roots: tuple[Path, ...], progress: bool) -> None:
    """Fine-tune the image backbone on the catalog's photos without labels (self-supervised), and
    keep it only if its kNN accuracy on the leaf category beats the starting weights. Running it
    again with the same --out resumes."""
    from recsys.data import load_catalog
    from recsys.finetune import finetune as run

    settings = _settings(ctx)
    frame = load_catalog(catalog, state_dir=settings.state_dir, show_progress=progress,
                         image_roots=[*settings.images.roots, *image_roots])
    image = settings.towers.image
    report = run(frame, out, method=method, model=image.model, weights=image.weights, epochs=epochs,
                 resolution=resolution, batch_size=batch_size, lr=lr, max_items=max_items, eval_items=eval_items,
                 seed=settings.seed if seed is None else seed, device=device, show_progress=progress)
    click.echo(report.summary())


class _RedisSession:
    """The configured Redis, or the embedded one started for the length of a command."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.embedded = None

    def __enter__(self):
        from recsys.store import EmbeddedRedis, connect

        url = self.settings.redis.url
        if url is None:
            self.embedded = EmbeddedRedis(self.settings.state_dir / "redis").start()
            url = self.embedded.url
        return connect(url, socket_timeout=30)

    def __exit__(self, *exc):
        if self.embedded is not None:
            self.embedded.stop()


def _logged_interactions(settings: Settings, source) -> pd.DataFrame:
    import redis as redis_py

    from recsys.data.validate import validate_interactions
    from recsys.store import ActivityStore

    try:
        with _RedisSession(settings) as client:
            frame = ActivityStore(client, prefix=settings.redis.prefix).log_frame()
    except redis_py.RedisError as exc:
        raise ConfigError(f"cannot read the interaction log from Redis: {exc}") from exc
    click.echo(f"interaction log: {len(frame):,} events", err=True)
    # one bad event in a shared log must never stop training: it is skipped and kept aside
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always", RecsysWarning)
        events = validate_interactions(frame, source="redis interaction log", item_ids=source.items["item_id"],
                                       unknown_items="drop", bad_rows="skip")
    for warning in seen:
        click.echo(f"warning: {warning.message}", err=True)
    skipped = events.attrs.get("skipped")
    if skipped is not None:
        folder = Path(settings.state_dir) / "quarantine"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"interactions-{pd.Timestamp.now(tz='UTC'):%Y%m%dT%H%M%SZ}.csv"
        skipped.to_csv(path, index=False)
        click.echo(f"skipped {len(skipped):,} bad event(s); they are in {path}", err=True)
    return events


def _load(bundle: Path, settings: Settings):
    from recsys.serve import Recommender

    return Recommender.from_bundle(bundle, settings)


def _filter_options(command):
    """The filter options every query command shares."""
    options = [
        click.option("--category", default=None, help="category path prefix, e.g. women/shoes"),
        click.option("--min-price", type=float, default=None, help="lowest price (inclusive)"),
        click.option("--max-price", type=float, default=None, help="highest price (inclusive)"),
        click.option("--include", default=None, metavar="ID,ID", help="only these items"),
        click.option("--exclude", default=None, metavar="ID,ID", help="never these items"),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _split_ids(text: str | None) -> list[str]:
    return [part.strip() for part in (text or "").split(",") if part.strip()]


def _item_filter(category, min_price, max_price, include, exclude):
    from recsys.serve.filters import ItemFilter

    return ItemFilter.create(category=category, min_price=min_price, max_price=max_price,
                             include=_split_ids(include), exclude=_split_ids(exclude))


def _rows(recommender, scored, cold: bool = False) -> list[dict]:
    """The API's result rows without the image (an API path, meaningless outside the server)."""
    rows = recommender.rows(scored, cold=cold)
    for row in rows:
        row.pop("image", None)
    return rows


def _print_table(title: str, rows: list[dict], empty: str) -> None:
    click.echo(f"\n{title}")
    if rows:
        frame = pd.DataFrame(rows)
        frame.index = range(1, len(frame) + 1)
        click.echo(frame.to_string(max_colwidth=48))
    else:
        click.echo(f"  ({empty})")


@cli.command()
@click.option("--bundle", required=True, type=click.Path(path_type=Path),
              help="a bundle version directory, or models/NAME for the newest")
@click.argument("item_ids", nargs=-1)
@click.option("--image", "images", multiple=True, type=click.Path(exists=True, dir_okay=False),
              help="a photo to find similar items for (visual search); may be repeated")
@click.option("--k", default=10, show_default=True, type=int, help="neighbours per item (1..1000)")
@click.option("--weights", default=None, metavar="SPEC",
              help="per-request modality weights, e.g. image:0.6,text:0.3,tabular:0.1")
@_filter_options
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
@click.pass_context
def similar(ctx: click.Context, bundle: Path, item_ids: tuple[str, ...], images: tuple[str, ...], k: int,
            weights: str | None, category, min_price, max_price, include, exclude, as_json: bool) -> None:
    """Items most similar to each ITEM_ID, or to each photo given with --image."""
    from recsys.serve.embedder import ItemEmbedder
    from recsys.towers.item import parse_weights

    if not item_ids and not images:
        raise click.UsageError("give at least one ITEM_ID, or a photo with --image PATH")
    if images and weights:
        raise click.UsageError("--weights applies to ITEM_IDs; a photo is compared by the image modality alone")
    recommender = _load(bundle, _settings(ctx))
    item_filter = _item_filter(category, min_price, max_price, include, exclude)
    parsed = parse_weights(weights, tuple(recommender.bundle.vectors.blocks)) if weights else None
    results = {i: _rows(recommender, recommender.similar_items(i, k=k, weights=parsed, filters=item_filter))
               for i in item_ids}
    if images:
        vectors = ItemEmbedder(recommender.bundle).embed_photos(list(images))
        results.update({path: _rows(recommender, recommender.similar_to_photo(v, k=k, filters=item_filter))
                        for path, v in zip(images, vectors)})
    if as_json:
        click.echo(json.dumps({"version": recommender.version, "weights": parsed or
                               recommender.bundle.vectors.weights, "filters": item_filter.describe(),
                               "results": results}, indent=1))
        return
    for key, rows in results.items():
        if key in item_ids:
            meta = recommender.row_templates.get(key) or recommender.item(key)
            label = " | ".join(str(meta[c]) for c in _DISPLAY if meta.get(c) not in (None, ""))
            _print_table(f"similar to {key}: {label}", rows, "no similar items")
        else:
            _print_table(f"similar to the photo {key}", rows, "no similar items")


@cli.command()
@click.option("--bundle", required=True, type=click.Path(path_type=Path),
              help="a bundle version directory, or models/NAME for the newest")
@click.argument("queries", nargs=-1, required=True)
@click.option("--mode", type=click.Choice(["text", "image", "both"]), default=None,
              help="compare the query with the items' text, their photos (the joint text-image space), or "
                   "both [default: both where the bundle has a joint space, else text]")
@click.option("--k", default=10, show_default=True, type=int, help="items per query (1..1000)")
@_filter_options
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
@click.pass_context
def search(ctx: click.Context, bundle: Path, queries: tuple[str, ...], mode: str | None, k: int,
           category, min_price, max_price, include, exclude, as_json: bool) -> None:
    """Items for each free-text QUERY ("red floral summer dress")."""
    from recsys.serve.embedder import ItemEmbedder

    recommender = _load(bundle, _settings(ctx))
    item_filter = _item_filter(category, min_price, max_price, include, exclude)
    mode = mode or ("both" if recommender.bundle.joint is not None else "text")
    vectors = ItemEmbedder(recommender.bundle).embed_queries(list(queries))
    results = {q: _rows(recommender, recommender.search(v, k=k, filters=item_filter, mode=mode))
               for q, v in zip(queries, vectors)}
    if as_json:
        click.echo(json.dumps({"version": recommender.version, "mode": mode, "filters": item_filter.describe(),
                               "results": results}, indent=1))
        return
    for query, rows in results.items():
        _print_table(f"{query!r} ({mode})", rows, "no items match")


@cli.command()
@click.option("--bundle", required=True, type=click.Path(path_type=Path),
              help="a trained bundle version directory, or models/NAME for the newest")
@click.argument("user_ids", nargs=-1)
@click.option("--k", default=20, show_default=True, type=int, help="items per feed (1..1000)")
@click.option("--recent", default=None, metavar="ID,ID",
              help="items touched since training, most recent first; alone: an anonymous session")
@click.option("--include-seen", is_flag=True, help="keep items the user already interacted with")
@_filter_options
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
@click.pass_context
def recommend(ctx: click.Context, bundle: Path, user_ids: tuple[str, ...], k: int, recent: str | None,
              include_seen: bool, category, min_price, max_price, include, exclude, as_json: bool) -> None:
    """Personalised feeds for each USER_ID (or for an anonymous session with --recent only)."""
    recent_items = _split_ids(recent)
    if not user_ids and not recent_items:
        raise click.UsageError("give at least one USER_ID, or --recent ITEM,ITEM for an anonymous session")
    recommender = _load(bundle, _settings(ctx))
    item_filter = _item_filter(category, min_price, max_price, include, exclude)
    feeds = {user: recommender.recommend(None if user == ANONYMOUS else user, k=k,
                                         recent_items=recent_items, exclude_seen=not include_seen,
                                         filters=item_filter)
             for user in (user_ids or (ANONYMOUS,))}
    results = {user: _rows(recommender, feed, cold=True) for user, feed in feeds.items()}
    if as_json:
        click.echo(json.dumps({
            "version": recommender.version, "k": k, "filters": item_filter.describe(),
            "results": results,
            "strategy": {user: feed.strategy for user, feed in feeds.items()},
            "messages": {user: feed.message for user, feed in feeds.items() if feed.message},
        }, indent=1))
        return
    for user, feed in feeds.items():
        if feed.message:
            click.echo(f"note: {feed.message}", err=True)
        _print_table(f"feed for {user} ({feed.strategy})", results[user], "no items match")


@cli.command()
@click.option("--bundle", required=True, type=click.Path(path_type=Path))
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 100000))
@click.option("--json", "as_json", is_flag=True)
def items(bundle: Path, limit: int, as_json: bool) -> None:
    """List item ids of a bundle (the first LIMIT), one per line."""
    from recsys.bundle import read_bundle

    ids = read_bundle(bundle).item_ids.ids[:limit].tolist()
    click.echo(json.dumps(ids) if as_json else "\n".join(ids))


@cli.command()
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

    settings = _settings(ctx)
    click.echo(f"using {_which_redis(settings)}", err=True)
    try:
        with _RedisSession(settings) as client:
            store = RedisStore(client, prefix=settings.redis.prefix,
                               chunk_bytes=settings.redis.chunk_bytes)
            version = store.publish(bundle, activate=not no_activate)
            removed = store.prune(keep) if keep else []
    except redis_py.RedisError as exc:
        raise ConfigError(f"cannot publish: Redis is unreachable ({exc})") from exc
    click.echo(f"published {version}" + ("" if no_activate else " (active)"))
    if removed:
        click.echo(f"removed {len(removed)} older version(s): {', '.join(removed)}")


@cli.command()
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

    settings = _settings(ctx)
    if workers is not None:
        settings = settings.model_copy(update={"api": settings.api.model_copy(update={"workers": workers})})
    if logging.getLogger().level > logging.INFO:
        logging.getLogger().setLevel(logging.INFO)
    click.echo(f"using {_which_redis(settings)}", err=True)
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
    from recsys.pipeline.build import build_item_bundle, train_user_tower

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


@cli.command()
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

    settings = _settings(ctx)
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


def _ints(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise click.BadParameter(f"give comma-separated integers like 10,20 (got {text!r})") from None
    if not values or min(values) < 1:
        raise click.BadParameter(f"give positive integers like 10,20 (got {text!r})")
    return values


@cli.command()
@click.option("--data", required=True, metavar="SOURCE",
              help="interactions: movielens:DIR, PATH.csv or PATH.parquet")
@click.option("--catalog", default=None, metavar="SOURCE",
              help="the items (default: --data for movielens:DIR); or give --bundle")
@click.option("--bundle", type=click.Path(path_type=Path), default=None,
              help="an item-side bundle to use instead of building one from --catalog")
@click.option("--split", "split_kind", default="temporal", show_default=True,
              type=click.Choice(list(SPLITS)))
@click.option("--test-fraction", type=float, default=None, help="temporal/random: share held out (0.2)")
@click.option("--last-n", type=int, default=None, help="temporal: hold out each user's last N events")
@click.option("--cutoff", default=None, help="cutoff: a date or epoch seconds (default: 80%% of events before)")
@click.option("--item-fraction", type=float, default=None, help="cold-items: share of items withheld (0.2)")
@click.option("--user-fraction", type=float, default=None, help="cold-users: share of users withheld (0.2)")
@click.option("--given", type=int, default=None, help="cold-users: events shown per withheld user (5)")
@click.option("--k", "ks", default="10,20", show_default=True, help="cut-offs, comma-separated")
@click.option("--models", default="random,popular,itemknn,als,content,hybrid", show_default=True,
              help="comma-separated: random, popular, itemknn, als, content, hybrid, bundle:PATH")
@click.option("--users", type=click.IntRange(1, None), default=None,
              help="evaluate a random sample of this many users (quick runs)")
@click.option("--seed", type=int, default=None, help="seed of splits and models (default: settings.seed)")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="where metrics.csv, segments.csv and report.json go (default: state/evaluations/TIME)")
@click.option("--progress/--no-progress", default=True, help="progress bars")
@click.pass_context
def evaluate(ctx: click.Context, data: str, catalog: str | None, bundle: Path | None, split_kind: str,
             test_fraction: float | None, last_n: int | None, cutoff: str | None,
             item_fraction: float | None, user_fraction: float | None, given: int | None, ks: str,
             models: str, users: int | None, seed: int | None, out: Path | None, progress: bool) -> None:
    """Compare models on held-out interactions: accuracy, coverage, novelty, popularity bias,
    diversity, and breakdowns by user activity and item popularity."""
    from datetime import datetime, timezone

    from recsys.evaluation import evaluate as run_evaluation
    from recsys.evaluation import prepare

    settings = _settings(ctx)
    if seed is not None:
        settings = settings.model_copy(update={"seed": seed})
    cut_offs = _ints(ks)
    names = [m.strip() for m in models.split(",") if m.strip()]
    options = {"test_fraction": test_fraction, "last_n": last_n, "item_fraction": item_fraction,
               "user_fraction": user_fraction, "given": given,
               "cutoff": (float(cutoff) if cutoff and cutoff.replace(".", "", 1).isdigit() else cutoff)}
    options = {k: v for k, v in options.items() if v is not None}
    prepared = prepare(data, split=split_kind, catalog=catalog, bundle=bundle, settings=settings,
                       users=users, show_progress=progress, **options)
    report = run_evaluation(prepared, names, ks=cut_offs, show_progress=progress)
    report.info["data"] = data
    top = cut_offs[-1]
    columns = [f"{m}@{k}" for k in cut_offs for m in ("precision", "recall", "ndcg", "map")]
    columns += [f"{m}@{top}" for m in ("hitrate", "mrr", "coverage", "novelty", "popularity", "gini",
                                       "diversity")]
    info = report.info
    click.echo(f"{info['split']}: {info['train_events']:,} training events, {info['test_events']:,} "
               f"held out, {info['test_users']:,} test users, {info['items']:,} items")
    click.echo(report.table(columns))
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    paths = report.save(out or settings.state_dir / "evaluations" / stamp)
    click.echo(f"written {paths['json']} and {paths['metrics'].name}, {paths['segments'].name} beside it")


cli.add_command(curate)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    try:
        cli.main(args=argv, prog_name="recsys")
    except ConfigError as exc:  # raised while reading settings before a command runs
        click.echo(f"error: {exc.message}", err=True)
        sys.exit(2)
