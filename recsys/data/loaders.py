"""Loaders: ``PATH.csv``, ``PATH.parquet``, ``movielens:DIR`` and ``synthetic:N`` into validated frames."""
from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
import pandas as pd

from recsys.data import schema as S
from recsys.data.validate import validate_catalog, validate_interactions
from recsys.errors import DataError

__all__ = ["load_catalog", "load_interactions", "describe_sources"]

logger = logging.getLogger(__name__)

_SYNTHETIC = re.compile(r"^synthetic:(\d+)$")
_MOVIELENS_YEAR = re.compile(r"\s*\((\d{4})\)\s*$")


def describe_sources() -> str:
    return "PATH.csv, PATH.parquet, movielens:DIR or synthetic:N"


def _read_table(path: Path, what: str) -> pd.DataFrame:
    if not path.exists():
        raise DataError(f"{what} file not found: {path}")
    suffix = path.suffix.lower()
    try:
        if suffix in (".csv", ".tsv", ".txt"):
            return pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",", dtype=str,
                               keep_default_na=False)
        if suffix in (".parquet", ".pq"):
            return pd.read_parquet(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError,
            ValueError) as exc:
        raise DataError(f"{path}: cannot read as {suffix[1:]} ({exc})") from exc
    raise DataError(f"{path}: unknown file type {suffix!r}; use {describe_sources()}")


def load_catalog(
    source: str | Path, *, seed: int = 0, state_dir: str | Path = "state", show_progress: bool = False,
    image_roots: list[Path] | tuple[Path, ...] = (),
) -> pd.DataFrame:
    """Load and validate a catalog.

    Args:
        source: ``PATH.csv`` / ``PATH.parquet`` (relative image paths resolve against the file's
            folder), ``movielens:DIR`` (ml-latest-small layout) or ``synthetic:N``.
        seed: seed of a synthetic catalog.
        state_dir: synthetic images are rendered under ``state_dir/synthetic/``.
        show_progress: progress bar while rendering synthetic images.
        image_roots: folders besides the file's own that its image paths may point into.

    Returns:
        pd.DataFrame: see :func:`recsys.data.validate_catalog`.

    Raises:
        DataError: unknown source form, unreadable file, or a catalog that breaks the schema.
    """
    text = str(source)
    if match := _SYNTHETIC.match(text):
        from recsys.data.synthetic import make_catalog

        n = int(match.group(1))
        if not 100 <= n <= 100_000:
            raise DataError(f"synthetic catalog size must be between 100 and 100,000 (got {n})")
        image_dir = Path(state_dir) / "synthetic" / f"seed{seed}" / "images"
        frame = make_catalog(n, seed=seed, image_dir=image_dir, show_progress=show_progress)
        return validate_catalog(frame, source=text)
    if text.startswith("movielens:"):
        return _movielens_catalog(Path(text.split(":", 1)[1]))
    path = Path(text)
    return validate_catalog(_read_table(path, "catalog"), source=path.name, base_dir=path.parent,
                            image_roots=image_roots)


def load_interactions(
    source: str | Path, *, catalog: pd.DataFrame | None = None, seed: int = 0, n_users: int | None = None
) -> pd.DataFrame:
    """Load and validate interactions.

    Args:
        source: ``PATH.csv`` / ``PATH.parquet``, ``movielens:DIR`` (ratings become ``rating``
            events with the rating as ``value``) or ``synthetic`` (needs a synthetic ``catalog``).
        catalog: when given, events on unknown items are an error.
        seed: seed of synthetic interactions.
        n_users: synthetic users (default: a quarter of the catalog, at least 50).

    Returns:
        pd.DataFrame: see :func:`recsys.data.validate_interactions`.
    """
    text = str(source)
    item_ids = catalog[S.ITEM_ID] if catalog is not None else None
    if text == "synthetic" or text.startswith("synthetic:"):
        if catalog is None or "true_colour" not in catalog.columns:
            raise DataError("synthetic interactions need a synthetic catalog (build with synthetic:N)")
        from recsys.data.synthetic import make_interactions

        users = n_users or max(50, len(catalog) // 4)
        frame, _ = make_interactions(catalog, users, seed=seed)
        return validate_interactions(frame, source=text, item_ids=item_ids)
    if text.startswith("movielens:"):
        directory = Path(text.split(":", 1)[1])
        ratings = _read_table(directory / "ratings.csv", "MovieLens ratings")
        frame = pd.DataFrame({
            S.USER_ID: ratings["userId"], S.ITEM_ID: ratings["movieId"], S.EVENT: "rating",
            S.VALUE: ratings["rating"], S.TIMESTAMP: pd.to_numeric(ratings["timestamp"]),
        })
        # the public file is known to carry a stray row (user 999, movie 999999, not in
        # movies.csv): drop such rows with a warning rather than refuse the whole data set
        return validate_interactions(frame, source=str(directory / "ratings.csv"),
                                     item_ids=item_ids, unknown_items="drop")
    path = Path(text)
    return validate_interactions(_read_table(path, "interactions"), source=path.name, item_ids=item_ids)


def _movielens_catalog(directory: Path) -> pd.DataFrame:
    movies = _read_table(directory / "movies.csv", "MovieLens movies")
    missing = {"movieId", "title", "genres"} - set(movies.columns)
    if missing:
        raise DataError(f"{directory / 'movies.csv'}: missing column(s) {sorted(missing)}")
    tags_path = directory / "tags.csv"
    tags = pd.Series(dtype=str)
    if tags_path.exists():
        raw = _read_table(tags_path, "MovieLens tags")
        raw["tag"] = raw["tag"].str.strip().str.lower()
        tags = raw[raw["tag"] != ""].groupby("movieId")["tag"].agg(lambda t: ", ".join(dict.fromkeys(t)))
    years = movies["title"].str.extract(_MOVIELENS_YEAR)[0]
    titles = movies["title"].str.replace(_MOVIELENS_YEAR, "", regex=True).str.strip()
    genres = movies["genres"].replace("(no genres listed)", "")
    genre_text = genres.str.replace("|", ", ", regex=False)
    description = np.where(genre_text != "", "Genres: " + genre_text + ".", "")
    frame = pd.DataFrame({
        S.ITEM_ID: movies["movieId"], S.TITLE: titles, S.DESCRIPTION: description,
        S.TAGS: movies["movieId"].map(tags).fillna(""), S.GENRES: genres,
        S.YEAR: pd.to_numeric(years, errors="coerce"),
    })
    logger.debug("movielens catalog: %d movies, %d with tags", len(frame), int((frame[S.TAGS] != "").sum()))
    return validate_catalog(frame, source=str(directory / "movies.csv"))
