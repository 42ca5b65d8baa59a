"""``recsys finetune``: self-supervised fine-tuning of the image backbone (docs/finetune.md)."""
from __future__ import annotations

from pathlib import Path

import click

from recsys.cli._context import settings_of

__all__ = ["finetune"]


@click.command()
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
@click.option("--schedule", type=click.Choice(["constant", "cosine"]), default="constant", show_default=True,
              help="the rates over the run: constant, or falling along half a cosine to zero")
@click.option("--max-items", default=None, type=click.IntRange(1), help="train on a seeded sample of this many photos")
@click.option("--eval-items", default=5000, show_default=True, type=click.IntRange(10),
              help="photos in the kNN evaluation (a fifth held out of training)")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--workers", default=None, type=click.IntRange(0),
              help="processes decoding and augmenting photos [default: one per core beyond two, at most 4]")
@click.option("--seed", type=int, default=None, help="seed (default: settings.seed)")
@click.option("--image-root", "image_roots", multiple=True, type=click.Path(file_okay=False, path_type=Path),
              help="a folder besides the catalog's own that its image paths may point into (repeatable)")
@click.option("--progress/--no-progress", default=True, help="progress bars")
@click.pass_context
def finetune(ctx: click.Context, catalog: str, method: str, out: Path, epochs: int, resolution: int | None,
             batch_size: int, lr: float, schedule: str, max_items: int | None, eval_items: int, device: str,
             workers: int | None, seed: int | None, image_roots: tuple[Path, ...], progress: bool) -> None:
    """Fine-tune the image backbone on the catalog's photos without labels (self-supervised), and
    keep it only if its kNN accuracy on the leaf category beats the starting weights. Running it
    again with the same --out resumes."""
    from recsys.data import load_catalog
    from recsys.finetune import finetune as run

    settings = settings_of(ctx)
    frame = load_catalog(catalog, state_dir=settings.state_dir, show_progress=progress,
                         image_roots=[*settings.images.roots, *image_roots])
    image = settings.towers.image
    report = run(frame, out, method=method, model=image.model, weights=image.weights, epochs=epochs,
                 resolution=resolution, batch_size=batch_size, lr=lr, schedule=schedule, max_items=max_items,
                 eval_items=eval_items, seed=settings.seed if seed is None else seed, device=device,
                 num_workers=workers, show_progress=progress)
    click.echo(report.summary())
