"""`recsys curate`: duplicate listings, outliers, clusters, labels and diverse subsets of a built bundle
(docs/curation.md)."""
from __future__ import annotations

import dataclasses
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
              help="image-block cosine at which two photos are the same (default: the bundle's own, calibrated at "
              "build for its image backbone)")
@click.option("--sellers", is_flag=True,
              help="also the same product listed by another seller, with other words and another photo (for "
              "review: about two in three such pairs are right, docs/curation.md)")
@click.option("--progress/--no-progress", default=True, help="progress bars")
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
def duplicates(bundle: Path, threshold: float | None, sellers: bool, progress: bool, as_json: bool) -> None:
    """Duplicate listings: groups of items whose photos are the same picture (with --sellers, also the
    same product from another seller)."""
    from recsys.bundle import read_bundle
    from recsys.curation import duplicates as dup

    found = dup.find_duplicates(read_bundle(bundle), threshold=threshold, sellers=sellers, show_progress=progress)
    if as_json:
        click.echo(json.dumps({"version": found.version, "threshold": found.threshold, "sellers": sellers,
                               "groups": found.groups}))
        return
    click.echo(f"{len(found.groups):,} groups of duplicates ({sum(map(len, found.groups)):,} items) in "
               f"{found.version}, threshold {found.threshold:g}{', other sellers too' if sellers else ''}")
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
    from recsys.curation import diverse_subset
    from recsys.curation.duplicates import duplicate_rows

    loaded = read_bundle(bundle)
    chosen = diverse_subset(loaded, size, balance=balance, quota=quota, modality=modality,
                            duplicate_of=None if keep_duplicates else duplicate_rows(loaded, progress),
                            seed=settings_of(ctx).seed if seed is None else seed, show_progress=progress)
    if as_json:
        click.echo(json.dumps({"version": chosen.version, "items": chosen.items, "radius": chosen.radius}))
        return
    click.echo(f"{len(chosen.items):,} items of {chosen.version}, coverage radius {chosen.radius:.3f}")
    click.echo("\n".join(chosen.items))


@curate.command()
@click.option("--bundle", required=True, type=click.Path(path_type=Path), help=_BUNDLE_HELP)
@click.option("--top", type=click.IntRange(0, None), default=50, show_default=True,
              help="how many items, highest score first; 0 scores every item")
@click.option("--progress/--no-progress", default=True, help="progress bars")
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
def outliers(bundle: Path, top: int, progress: bool, as_json: bool) -> None:
    """Likely wrong photos, mislabels and broken listings, each with a score and its reasons."""
    from recsys.bundle import read_bundle
    from recsys.curation import find_outliers

    found = find_outliers(read_bundle(bundle), show_progress=progress)
    rows = found.top(top)
    if as_json:
        items = [{"item_id": r.item_id, "score": float(r.score), "reasons": list(r.reasons),
                  "suggested_category": r.suggested_category} for r in rows.itertuples()]
        click.echo(json.dumps({"version": found.version, "items": items}))
        return
    click.echo(f"{len(rows):,} items of {found.version}, highest score first")
    for r in rows.itertuples():
        suggestion = f"  [looks like {r.suggested_category}]" if r.suggested_category else ""
        click.echo(f"  {r.item_id}  {r.score:6.2f}  {'; '.join(r.reasons) or '-'}{suggestion}")


@curate.command()
@click.option("--bundle", required=True, type=click.Path(path_type=Path), help=_BUNDLE_HELP)
@click.option("--k", type=click.IntRange(2, None), default=None,
              help="how many clusters (default: about the square root of half the items, at most 200)")
@click.option("--modality", default="combined", show_default=True, help="combined, image, text or tabular")
@click.option("--seed", type=int, default=None, help="the k-means initialisation (default: settings.seed)")
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
@click.pass_context
def clusters(ctx: click.Context, bundle: Path, k: int | None, modality: str, seed: int | None, as_json: bool) -> None:
    """The groups the catalog really has, named by the words that set them apart."""
    from recsys.bundle import read_bundle
    from recsys.curation import find_clusters

    found = find_clusters(read_bundle(bundle), k=k, modality=modality,
                          seed=settings_of(ctx).seed if seed is None else seed)
    if as_json:
        click.echo(json.dumps({"version": found.version, "modality": found.modality,
                               "clusters": [dataclasses.asdict(c) for c in found.clusters]}))
        return
    click.echo(f"{len(found.clusters)} clusters of {found.version} ({found.modality} vectors), largest first")
    for c in found.clusters:
        click.echo(f"  {c.id:3d}  {c.size:6,d} items  cohesion {c.cohesion:.2f}  {c.name or '-'}  "
                   f"e.g. {' '.join(c.representatives[:3])}")


@curate.command()
@click.option("--bundle", required=True, type=click.Path(path_type=Path), help=_BUNDLE_HELP)
@click.option("--examples", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="a CSV with the columns label,item_id: a few items of each label")
@click.option("--prompts", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="a CSV with the columns label,text: one description per label (zero-shot)")
@click.option("--save", "save_as", default=None, metavar="NAME",
              help="keep a tagger from the examples in a new version of the bundle under NAME: reads show "
                   "its tag, and items put later are tagged (docs/curation.md#a-tagger-that-stays)")
@click.option("--modality", default="combined", show_default=True, help="with --save: combined, image, text or tabular")
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
def label(bundle: Path, examples: Path | None, prompts: Path | None, save_as: str | None, modality: str,
          as_json: bool) -> None:
    """Label every item from a few examples per label, or from a description per label."""
    import pandas as pd

    from recsys.bundle import read_bundle
    from recsys.curation import label_from_examples, label_from_prompts

    if (examples is None) == (prompts is None):
        raise click.UsageError("give one of --examples or --prompts")
    loaded = read_bundle(bundle)
    if save_as is not None:
        if examples is None:
            raise click.UsageError("--save keeps a tagger learned from --examples")
        _save_tagger(loaded, pd.read_csv(examples, dtype=str, keep_default_na=False), save_as, modality, as_json)
        return
    if examples is not None:
        found = label_from_examples(loaded, pd.read_csv(examples, dtype=str, keep_default_na=False))
    else:
        from recsys.serve.embedder import ItemEmbedder

        found = label_from_prompts(loaded, pd.read_csv(prompts, dtype=str, keep_default_na=False),
                                   ItemEmbedder(loaded).embed_queries)
    if as_json:
        items = [{"item_id": r.item_id, "label": r.label, "confidence": float(r.confidence)}
                 for r in found.items.itertuples()]
        click.echo(json.dumps({"version": found.version, "items": items}))
        return
    counts = found.items["label"].value_counts()
    click.echo(f"{len(found.items):,} items of {found.version} labelled from {found.method}:")
    for name in found.labels:
        click.echo(f"  {name}: {int(counts.get(name, 0)):,}")
    click.echo("item_id,label,confidence")
    for r in found.items.itertuples():
        click.echo(f"{r.item_id},{r.label if r.label is not None else ''},{r.confidence:.3f}")


def _save_tagger(loaded, examples, name: str, modality: str, as_json: bool) -> None:
    from recsys.bundle import write_tagger
    from recsys.curation.tagger import fit_tagger, tagger_summary

    tagger = fit_tagger(loaded, examples, name, modality=modality)
    path = write_tagger(loaded, name, tagger.to_json())
    summary = {"bundle": str(path), **tagger_summary(tagger)}
    if as_json:
        click.echo(json.dumps(summary))
        return
    report = tagger.report
    click.echo(f"tagger {name!r} ({len(tagger.labels)} labels, {len(tagger.example_ids)} examples, {modality}) "
               f"saved in {path}")
    if report["calibrated"]:
        click.echo(f"  held-out examples: accuracy {report['held_out_accuracy']:.3f}, calibration error "
                   f"{report['held_out_ece_before']:.3f} -> {report['held_out_ece_after']:.3f} "
                   f"(temperature {tagger.temperature}); 'none' under cosine {tagger.min_similarity:.3f} to the "
                   f"nearest example or confidence {tagger.min_confidence:.2f}")
    else:
        click.echo("  one example of some label: nothing to hold out, so the confidences are not calibrated and "
                   "every item gets a label; give two or more per label")
    click.echo(f"publish it to serve it: recsys publish --bundle {path}")


@curate.command()
@click.option("--bundle", required=True, type=click.Path(path_type=Path), help=_BUNDLE_HELP)
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="the CSV to write")
@click.pass_context
def export(ctx: click.Context, bundle: Path, out: Path) -> None:
    """Write the catalog as served: the bundle's items with the puts, deletions, attribute values
    and merges stored in Redis since, and each put item's flags, hold and duplicate
    (docs/curation.md)."""
    from recsys.bundle import read_bundle
    from recsys.cli._context import RedisSession, which_redis
    from recsys.curation.export import served_catalog
    from recsys.store import RedisStore

    settings = settings_of(ctx)
    built = read_bundle(bundle)
    click.echo(f"using {which_redis(settings)}", err=True)
    with RedisSession(settings) as client:
        store = RedisStore.from_settings(client, settings.redis)
        changes, dismissed = store.changes.read(), store.review.dismissed()
    table = served_catalog(built, changes.fresh, changes.deleted, changes.attributes, dismissed, changes.merged)
    out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(out, index=False)
    click.echo(f"wrote {len(table):,} items to {out} ({(table['source'] == 'put').sum():,} put since bundle "
               f"{built.version}, {len(changes.deleted):,} deleted left out, "
               f"{(table['flags'] != '').sum():,} with flags, {(table['merged_into'] != '').sum():,} merged)")
