"""``recsys experiment create | list | stop | report``: the experiments in Redis, as the API's
``/v1/experiments`` manages them (docs/experiments.md)."""
from __future__ import annotations

import json
from pathlib import Path

import click

from recsys.cli._context import RedisSession, settings_of, which_redis
from recsys.errors import InvalidRequest, NotFound

__all__ = ["experiment"]


@click.group()
def experiment() -> None:
    """A/B experiments: variants of the serving configuration, split by user, and their reports."""


def _store(client, settings):
    from recsys.store import RedisStore

    return RedisStore.from_settings(client, settings.redis)


@experiment.command("create")
@click.argument("spec", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.pass_context
def create(ctx: click.Context, spec: Path) -> None:
    """Create the experiment SPEC describes (JSON: name, variants, holdout, target)."""
    from pydantic import ValidationError

    from recsys.control.experiments import Experiment, check_new

    settings = settings_of(ctx)
    try:
        new = Experiment.model_validate_json(spec.read_text())
    except ValidationError as exc:
        raise InvalidRequest(f"{spec}: {exc.errors()[0]['loc']}: {exc.errors()[0]['msg']}") from None
    click.echo(f"using {which_redis(settings)}", err=True)
    with RedisSession(settings) as client:
        redis_store = _store(client, settings)
        check_new(new, redis_store.experiments.all(), redis_store.versions())
        stored, _ = redis_store.experiments.create(new)
    click.echo(json.dumps(stored.model_dump(mode="json"), indent=1))


@experiment.command("list")
@click.pass_context
def list_(ctx: click.Context) -> None:
    """Every experiment: id, status, target, variants and name."""
    settings = settings_of(ctx)
    with RedisSession(settings) as client:
        for e in _store(client, settings).experiments.all():
            click.echo(f"{e.id}\t{e.status}\t{e.target}\t{','.join(v.name for v in e.variants)}\t{e.name}")


@experiment.command("stop")
@click.argument("experiment_id")
@click.pass_context
def stop(ctx: click.Context, experiment_id: str) -> None:
    """Stop an experiment: its users are served as without it from the next read."""
    settings = settings_of(ctx)
    with RedisSession(settings) as client:
        stopped = _store(client, settings).experiments.stop(experiment_id)
    if stopped is None:
        raise NotFound(f"no experiment {experiment_id!r}")
    click.echo(f"stopped {experiment_id} at {stopped[0].stopped.isoformat()}")


@experiment.command("report")
@click.argument("experiment_id")
@click.option("--bundle", type=click.Path(path_type=Path), default=None,
              help="the bundle whose prices revenue uses (default: the active one in Redis)")
@click.pass_context
def report(ctx: click.Context, experiment_id: str, bundle: Path | None) -> None:
    """The experiment's report as JSON: per variant users, impressions, clicks, CTR, conversion and
    revenue per user with 95% intervals, differences against the control, the sample-ratio check."""
    from recsys.bundle import read_bundle
    from recsys.control.experiments import prices_of
    from recsys.control.experiments import report as make_report
    from recsys.store import ActivityStore

    settings = settings_of(ctx)
    with RedisSession(settings) as client:
        store = _store(client, settings)
        found = store.experiments.get(experiment_id)
        if found is None:
            raise NotFound(f"no experiment {experiment_id!r}")
        if bundle is None and store.active_version() is not None:
            bundle = store.download(store.active_version(), settings.state_dir / "bundles")
        impressions = store.experiments.impressions(experiment_id)
        events = ActivityStore(client, prefix=settings.redis.prefix).log_frame(requests=True)
    prices = prices_of(read_bundle(bundle).items) if bundle is not None else {}
    click.echo(json.dumps({"experiment": found.model_dump(mode="json"),
                           **make_report(found, impressions, events, prices)}, indent=1))
