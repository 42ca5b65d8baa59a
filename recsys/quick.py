"""The two build steps with plain arguments, for notebooks and scripts: :func:`build` (catalog ->
item bundle) and :func:`train` (interactions -> user tower), each returning the new version loaded,
as a :class:`~recsys.serve.Recommender` that carries its folder (``.path``)."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from recsys.bundle import read_bundle
from recsys.data import load_catalog, load_interactions, validate_catalog, validate_interactions
from recsys.pipeline.build import build_item_bundle
from recsys.pipeline.train import train_user_tower
from recsys.serve import Recommender
from recsys.settings import Settings, load_settings

__all__ = ["build", "train"]


def build(catalog: str | Path | pd.DataFrame, out: str | Path, *, weights: dict[str, float] | None = None,
          seed: int | None = None, settings: Settings | None = None, show_progress: bool = True) -> Recommender:
    """Embed a catalog, build its indexes and write a new bundle version under ``out``.

    Args:
        catalog: a CSV or Parquet path, ``movielens:DIR``, ``synthetic:N``, or a catalog frame.
        out: ``models/NAME``; the version folder is created inside.
        weights: default modality weights, e.g. ``{"image": 0.4, "text": 0.4, "tabular": 0.2}``.
        seed: seed of every random choice.
        settings: everything else (towers, index); default :func:`recsys.load_settings`.
        show_progress: progress bars.

    Returns:
        The new bundle version, loaded (similar items and search work at once); ``.path`` is its
        folder.

    Raises:
        DataError: a catalog that breaks the schema, or with nothing to embed.

    Example:
        >>> items = recsys.build("synthetic:200", "models/demo", show_progress=False)  # doctest: +SKIP
        >>> items.similar_items("SKU-000001", k=5).ids, items.path.name  # doctest: +SKIP
    """
    settings = _settings(settings, weights=weights, seed=seed)
    if isinstance(catalog, pd.DataFrame):
        frame, source = validate_catalog(catalog, source="catalog frame"), "catalog frame"
    else:
        source = str(catalog)
        frame = load_catalog(source, seed=settings.seed, state_dir=settings.state_dir,
                             show_progress=show_progress, image_roots=settings.images.roots)
    path = build_item_bundle(frame, settings, out, source=source, show_progress=show_progress).path
    return Recommender.from_bundle(path, settings)


def train(bundle: str | Path | Recommender, interactions: str | Path | pd.DataFrame, *, factors: int | None = None,
          iterations: int | None = None, seed: int | None = None, settings: Settings | None = None,
          show_progress: bool = True) -> Recommender:
    """Fit the user tower on ``interactions`` and write it with the bundle's item side as a new
    version beside it.

    Args:
        bundle: what :func:`build` returned, a bundle version folder, or ``models/NAME`` for its
            newest version.
        interactions: a CSV or Parquet path, ``movielens:DIR``, ``synthetic``, or a frame.
        factors, iterations: ALS options (defaults from the settings).
        seed: seed of every random choice.
        settings: everything else (``collab``, ``index``); default :func:`recsys.load_settings`.
        show_progress: progress bars.

    Returns:
        The new (trained) bundle version, loaded; ``.path`` is its folder.

    Raises:
        DataError: no usable interactions, or events on items the bundle lacks.
    """
    collab = {k: v for k, v in {"factors": factors, "iterations": iterations}.items() if v is not None}
    settings = _settings(settings, seed=seed, collab=collab or None)
    loaded = bundle.bundle if isinstance(bundle, Recommender) else read_bundle(bundle)
    if isinstance(interactions, pd.DataFrame):
        source = "interactions frame"
        events = validate_interactions(interactions, source=source, item_ids=loaded.items["item_id"])
    else:
        source = str(interactions)
        events = load_interactions(source, catalog=loaded.items, seed=settings.seed)
    path = train_user_tower(loaded, events, settings, source=source, show_progress=show_progress).path
    return Recommender.from_bundle(path, settings)


def _settings(settings: Settings | None, **overrides) -> Settings:
    """``settings`` (or the loaded ones) with the given non-``None`` values in place."""
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if settings is None:
        return load_settings(**overrides)
    data = settings.model_dump()
    for key, value in overrides.items():
        data[key] = {**data[key], **value} if isinstance(value, dict) else value
    return Settings(**data)
