"""`recsys curate`: duplicate listings and diverse subsets of a built bundle (docs/curation.md)."""
from __future__ import annotations

import json
from pathlib import Path

import click

from recsys.cli._context import settings_of


@click.group()
def curate() -> None:
    """Clean a catalog and find its structure from the item vectors (docs/curation.md)."""


_BUNDLE_HELP = "a bundle version directory, or models/NAME for the newest"


@curate.command()
@click.option("--bundle", required=True, type=click.Path(path_type=Path), help=_BUNDLE_HELP)
@click.option("--threshold", type=click.FloatRange(0, 1), default=None,
              help="image-block cosine at which two photos are the same (default: the calibrated 0.90)")
@click.option("--progress/--no-progress", default=True, help="progress bars")
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
def duplicates(bundle: Path, threshold: float | None, progress: bool, as_json: bool) -> None:
    """Duplicate listings: groups of items whose photos are the same picture."""
    from recsys.bundle import read_bundle
    from recsys.curation import duplicates as dup

    found = dup.find_duplicates(read_bundle(bundle), threshold=dup.IMAGE_THRESHOLD if threshold is None else threshold,
                                show_progress=progress)
    if as_json:
        click.echo(json.dumps({"version": found.version, "threshold": found.threshold, "groups": found.groups}))
        return
    click.echo(f"{len(found.groups):,} groups of duplicates ({sum(map(len, found.groups)):,} items) in "
               f"{found.version}, threshold {found.threshold:g}")
    for group in found.groups:
        click.echo("  " + " ".join(group))


@curate.command()
@click.option("--bundle", required=True, type=click.Path(path_type=Path), help=_BUNDLE_HELP)
@click.option("--n", "size", required=True, type=click.IntRange(1, None), help="how many items")
@click.option("--balance", default=None, metavar="COLUMN",
              help="a catalog column whose every value is represented, e.g. category")
@click.option("--quota", type=click.Choice(["one", "equal"]), default="one", show_default=True,
              help="with --balance: at least one item per value, or shares as equal as the values' sizes allow")
@click.option("--modality", default="combined", show_default=True, help="combined, image, text or tabular")
@click.option("--seed", type=int, default=None, help="draws the first item (default: settings.seed)")
@click.option("--keep-duplicates", is_flag=True, help="do not leave out duplicate listings")
@click.option("--progress/--no-progress", default=True, help="progress bars")
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
@click.pass_context
def subset(ctx: click.Context, bundle: Path, size: int, balance: str | None, quota: str, modality: str,
           seed: int | None, keep_duplicates: bool, progress: bool, as_json: bool) -> None:
    """N items that cover the catalog (farthest-point selection), for labelling or exploration."""
    from recsys.bundle import read_bundle
    from recsys.curation import diverse_subset, find_duplicates

    loaded = read_bundle(bundle)
    found = None
    if not keep_duplicates and "image" in loaded.vectors.blocks:
        found = find_duplicates(loaded, show_progress=progress)
    chosen = diverse_subset(loaded, size, balance=balance, quota=quota, modality=modality, duplicates=found,
                            seed=settings_of(ctx).seed if seed is None else seed, show_progress=progress)
    if as_json:
        click.echo(json.dumps({"version": chosen.version, "items": chosen.items, "radius": chosen.radius}))
        return
    click.echo(f"{len(chosen.items):,} items of {chosen.version}, coverage radius {chosen.radius:.3f}")
    click.echo("\n".join(chosen.items))
