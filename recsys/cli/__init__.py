"""Command line: the ``recsys`` group, and the commands that make and judge bundles: ``build | train |
align | evaluate``. The others live beside it: ``query.py`` (similar, search, recommend, items),
``service.py`` (publish, serve, demo), ``finetune.py``, ``curate.py`` and ``experiment.py``."""
from __future__ import annotations

import logging
import sys
import warnings
from pathlib import Path

import click
import pandas as pd

from recsys.cli._context import RedisSession
from recsys.cli._context import settings_of as _settings
from recsys.cli.curate import curate
from recsys.cli.experiment import experiment
from recsys.cli.finetune import finetune
from recsys.cli.query import items, recommend, search, similar
from recsys.cli.service import demo, publish, serve
from recsys.errors import BundleError, ConfigError, RecsysError, RecsysWarning
from recsys.evaluation.splits import SPLITS
from recsys.settings import Settings

__all__ = ["main", "cli"]

logger = logging.getLogger(__name__)


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
@click.option("--engine", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="where the image and text towers run: this process, or Ray actors")
@click.option("--address", default=None, metavar="ADDR",
              help="with --engine ray: a running cluster (HEAD:PORT or ray://HEAD:10001) [default: a local "
                   "instance for this build]")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1),
              help="with --engine ray: actors per tower")
@click.option("--progress/--no-progress", default=True, help="progress bars")
@click.pass_context
def build(ctx: click.Context, catalog: str, out: Path, seed: int | None, image_roots: tuple[Path, ...],
          vectors: Path | None, engine: str, address: str | None, workers: int, progress: bool) -> None:
    """Embed a catalog, build its indexes and write a model bundle."""
    from contextlib import nullcontext

    from recsys.data import load_catalog
    from recsys.pipeline.build import build_item_bundle, ray_engine

    if engine == "local" and (address or workers != 1):
        raise click.UsageError("--address and --workers go with --engine ray")
    settings = _settings(ctx)
    seed = settings.seed if seed is None else seed
    frame = load_catalog(catalog, seed=seed, state_dir=settings.state_dir, show_progress=progress,
                         image_roots=[*settings.images.roots, *image_roots])
    with ray_engine(settings, address, workers) if engine == "ray" else nullcontext() as runner:
        report = build_item_bundle(frame, settings, out, source=catalog, show_progress=progress, vectors=vectors,
                                   engine=runner)
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
    from recsys.pipeline.train import train_user_tower

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


def _logged_interactions(settings: Settings, source) -> pd.DataFrame:
    import redis as redis_py

    from recsys.data.validate import validate_interactions
    from recsys.store import ActivityStore

    try:
        with RedisSession(settings) as client:
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
              help="comma-separated: random, popular, itemknn, als, content, hybrid, recent-popular, "
              "repurchase, repurchase-copurchase, ease, ranker, bundle:PATH")
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
    columns += [f"{m}{part}@{k}" for part in ("_new", "_newcomers") for k in cut_offs for m in ("ndcg", "map")
                if f"{m}{part}@{k}" in report.metrics]
    columns += [f"{m}@{top}" for m in ("hitrate", "mrr", "coverage", "novelty", "popularity", "gini",
                                       "diversity")]
    info = report.info
    seen = "known items left out" if info["exclude_seen"] else "known items may come back (_new: new to the user)"
    click.echo(f"{info['split']}: {info['train_events']:,} training events, {info['test_events']:,} "
               f"held out, {info['test_users']:,} test users, {info['items']:,} items; {seen}")
    if info["newcomers"]:
        click.echo(f"{info['newcomers']:,} test users with no history are scored apart (_newcomers): "
                   "each model's feed for nobody")
    click.echo(report.table(columns))
    if not report.gains.empty:
        click.echo(report.gains_table())
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    paths = report.save(out or settings.state_dir / "evaluations" / stamp)
    click.echo(f"written {paths['json']} and {paths['metrics'].name}, {paths['segments'].name} beside it")


for _command in (finetune, similar, search, recommend, items, publish, serve, demo, curate, experiment):
    cli.add_command(_command)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    try:
        cli.main(args=argv, prog_name="recsys")
    except ConfigError as exc:  # raised while reading settings before a command runs
        click.echo(f"error: {exc.message}", err=True)
        sys.exit(2)
