"""Validation of catalog and interaction frames, with errors that name file, row and column."""
from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from recsys.data import schema as S
from recsys.errors import DataError, InvalidRequest, RecsysWarning

__all__ = ["validate_catalog", "validate_interactions", "non_negative"]


def _where(source: str, row: int) -> str:
    # row numbers are 1-based data rows (the header is not counted)
    return f"{source} row {row + 1}"


def _require_columns(frame: pd.DataFrame, required: tuple[str, ...], source: str) -> None:
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise DataError(
            f"{source}: missing required column(s) {', '.join(repr(c) for c in missing)}; "
            f"found {', '.join(repr(c) for c in frame.columns) or 'no columns'}",
            missing=missing,
        )


def _check_ids(frame: pd.DataFrame, column: str, source: str) -> pd.Series:
    values = frame[column]
    bad = values.isna() | (values.astype(str).str.strip() == "")
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataError(f"{_where(source, row)}: column {column!r} is empty; every row needs one")
    ids = values.map(_id_text)
    too_long = ids.str.len() > S.MAX_ID_LENGTH
    unprintable = ~ids.map(str.isprintable)
    for mask, why in ((too_long, f"is longer than {S.MAX_ID_LENGTH} characters"),
                      (unprintable, "has non-printable characters")):
        if mask.any():
            row = int(np.flatnonzero(mask.to_numpy())[0])
            raise DataError(f"{_where(source, row)}: column {column!r} {why} ({ids.iloc[row]!r})")
    return ids


def _id_text(value: object) -> str:
    # 12.0 read from a float column is the id "12", not "12.0"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def _numeric(frame: pd.DataFrame, column: str, source: str, minimum: float | None) -> pd.Series:
    raw = frame[column]
    numbers = pd.to_numeric(raw, errors="coerce")
    bad = numbers.isna() & raw.notna() & (raw.astype(str).str.strip() != "")
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataError(
            f"{_where(source, row)}: column {column!r} must be a number (got {raw.iloc[row]!r})"
        )
    if minimum is not None:
        low = numbers < minimum
        if low.any():
            row = int(np.flatnonzero(low.to_numpy())[0])
            raise DataError(
                f"{_where(source, row)}: column {column!r} must be >= {minimum:g} "
                f"(got {numbers.iloc[row]:g})"
            )
    return numbers.astype("float64")


def _text(series: pd.Series) -> pd.Series:
    # an all-missing column arrives as float NaN: make it object first so "" can fill it
    return series.astype(object).where(series.notna(), "").astype(str).str.strip()


def validate_catalog(
    frame: pd.DataFrame, source: str = "catalog", base_dir: str | Path | None = None,
    image_roots: list[Path] | tuple[Path, ...] = (),
) -> pd.DataFrame:
    """Check a catalog frame and return a clean copy.

    Args:
        frame: one row per item; only ``item_id`` is required.
        source: the file name used in error messages.
        base_dir: relative image paths are resolved against it (the catalog file's folder), and
            a local image path must lie inside it or one of ``image_roots``: a path outside is
            left out, with a :class:`RecsysWarning`, like an unreadable image.
        image_roots: other folders a catalog file's image paths may point into.

    Returns:
        pd.DataFrame: ``item_id`` as str; text columns as str ("" when absent); ``price`` and
        ``year`` float (NaN when absent); ``category`` normalised to ``a/b/c`` lower case; other
        columns kept as they are.

    Raises:
        DataError: missing ``item_id`` column, empty or duplicated ids, non-numeric or negative
        prices. The message names the source, the 1-based data row and the column.

    Example:
        >>> validate_catalog(pd.DataFrame({"item_id": [1, 2], "price": [3, 4]}))["item_id"].tolist()
        ['1', '2']
    """
    _require_columns(frame, S.CATALOG_REQUIRED, source)
    out = frame.reset_index(drop=True).copy()
    out[S.ITEM_ID] = _check_ids(out, S.ITEM_ID, source)
    dup = out[S.ITEM_ID].duplicated(keep="first")
    if dup.any():
        row = int(np.flatnonzero(dup.to_numpy())[0])
        value = out[S.ITEM_ID].iloc[row]
        first = int(np.flatnonzero((out[S.ITEM_ID] == value).to_numpy())[0])
        raise DataError(
            f"{_where(source, row)}: column 'item_id' is duplicated ({value!r} also on row "
            f"{first + 1}); item ids must be unique",
            item_id=value,
        )
    for column in S.CATALOG_TEXT_COLUMNS:
        if column in out.columns:
            out[column] = _text(out[column])
            _check_length(out[column], column, source)
    if S.PRICE in out.columns:
        out[S.PRICE] = _numeric(out, S.PRICE, source, minimum=0.0)
    if S.YEAR in out.columns:
        out[S.YEAR] = _numeric(out, S.YEAR, source, minimum=None)
    if S.CATEGORY in out.columns:
        out[S.CATEGORY] = out[S.CATEGORY].map(normalise_category)
    if S.IMAGE in out.columns and base_dir is not None:
        out[S.IMAGE] = _confined_images(out[S.IMAGE], Path(base_dir), image_roots, source)
    return out


def _check_length(values: pd.Series, column: str, source: str) -> None:
    limit = S.MAX_IMAGE_CHARS if column == S.IMAGE else S.MAX_FIELD_CHARS
    lengths = values.str.len().to_numpy()
    if len(lengths) and lengths.max() > limit:
        row = int(np.argmax(lengths > limit))
        raise DataError(f"{_where(source, row)}: column {column!r} is {int(lengths[row]):,} characters "
                        f"long; the limit is {limit:,}")


def normalise_category(value: str) -> str:
    """``" Women / Shoes/Sneakers "`` -> ``"women/shoes/sneakers"``; ``""`` stays empty."""
    parts = [p.strip().lower() for p in str(value).replace(">", "/").split("/")]
    return "/".join(p for p in parts if p)


def _confined_images(images: pd.Series, base_dir: Path, roots, source: str) -> pd.Series:
    """Local image paths resolved against ``base_dir`` (links followed); one that ends outside
    ``base_dir`` and ``roots`` becomes "" so that no build ever opens it.

    Raises:
        DataError: every image the catalog names is a local path outside them: the build would
            have no images at all, which is a folder to allow, not a catalog to build.
    """
    allowed = [base_dir.resolve(), *(Path(r).resolve() for r in roots)]
    resolved, outside, named = [], [], 0
    for row, path in enumerate(images):
        if not path or "://" in path or path.startswith("data:"):
            resolved.append(path)
            named += bool(path)
            continue
        named += 1
        full = (base_dir / path).resolve()
        if any(full.is_relative_to(root) for root in allowed):
            resolved.append(str(full))
        else:
            resolved.append("")
            outside.append(row)
    if outside and len(outside) == named:
        raise DataError(f"{source}: every image path ({named:,}) lies outside the catalog's folder {allowed[0]}"
                        f"{' and the allowed folders' if roots else ''} (first: {images.iloc[outside[0]]!r}), "
                        "so the build would have no images; allow the photos' folder with --image-root DIR "
                        "(or the setting images.roots), or drop the image column to build without images")
    if outside:
        warnings.warn(f"{_where(source, outside[0])}: {len(outside):,} image path(s) lie outside the "
                      f"catalog's folder {allowed[0]} (first: {images.iloc[outside[0]]!r}); they are "
                      "left out like unreadable images (allow another folder with --image-root or "
                      "the setting images.roots)", RecsysWarning, stacklevel=3)
    return pd.Series(resolved, index=images.index, dtype=images.dtype)


def validate_interactions(
    frame: pd.DataFrame,
    source: str = "interactions",
    item_ids: pd.Series | None = None,
    unknown_items: Literal["error", "drop"] = "error",
    bad_rows: Literal["error", "skip"] = "error",
) -> pd.DataFrame:
    """Check an interactions frame and return a clean copy.

    Args:
        frame: one row per event with ``user_id``, ``item_id``, ``event``; optional ``value``
            (float) and ``timestamp`` (epoch seconds or anything pandas parses as a date).
        source: the file name used in error messages.
        item_ids: the catalog's ids; when given, an event naming another item is an error.
        unknown_items: ``"drop"`` drops such events instead, with a :class:`RecsysWarning` that
            names the first row and the count (never silently).
        bad_rows: ``"skip"`` drops rows with a bad id, event, value or timestamp instead of
            refusing the whole frame, with a :class:`RecsysWarning`; the dropped rows and their
            reasons are in the result's ``attrs["skipped"]`` (a frame with a ``reason`` column).

    Returns:
        pd.DataFrame: ids as str, ``event`` lower case, ``value`` float (NaN when absent),
        ``timestamp`` as UTC datetimes (NaT when absent).

    Raises:
        DataError: missing columns, bad ids, unknown events or items, unparsable values or
            timestamps outside 1970-2100 (the first bad row, unless ``bad_rows="skip"``).
    """
    _require_columns(frame, S.INTERACTIONS_REQUIRED, source)
    out = frame.reset_index(drop=True).copy()
    reasons = pd.Series("", index=out.index, dtype=object)

    def reject(mask: pd.Series, reason: str, value=lambda row: None) -> None:
        mask = mask.to_numpy() & (reasons == "").to_numpy()
        if not mask.any():
            return
        if bad_rows == "error":
            row = int(np.flatnonzero(mask)[0])
            shown = value(row)
            raise DataError(f"{_where(source, row)}: {reason}" + (f" ({shown!r})" if shown is not None else ""))
        reasons[mask] = reason

    for column in (S.USER_ID, S.ITEM_ID):
        ids = out[column].map(lambda v: "" if v is None or (isinstance(v, float) and math.isnan(v))
                              else _id_text(v))
        problems = ids.map(S.id_problem)
        for problem in problems.dropna().unique():
            reject(problems == problem, f"column {column!r} {problem}", lambda row, ids=ids: ids.iloc[row])
        out[column] = ids
    events = _text(out[S.EVENT]).str.lower()
    reject(~events.isin(S.EVENTS), f"column 'event' is not one of: {', '.join(S.EVENTS)}",
           lambda row: events.iloc[row])
    out[S.EVENT] = events
    if S.VALUE in out.columns:
        raw = out[S.VALUE]
        values = pd.to_numeric(raw, errors="coerce")
        bad = (values.isna() & raw.notna() & (raw.astype(str).str.strip() != "")) | np.isinf(values)
        reject(bad, "column 'value' is not a finite number", lambda row: raw.iloc[row])
        out[S.VALUE] = values.astype(float)
    else:
        out[S.VALUE] = np.nan
    out[S.TIMESTAMP] = _timestamps(out, reject)
    if bad_rows == "skip" and (reasons != "").any():
        bad = (reasons != "").to_numpy()
        skipped = frame.reset_index(drop=True)[bad].assign(reason=reasons[bad].to_numpy())
        warnings.warn(f"{source}: skipped {int(bad.sum()):,} bad row(s) of {len(out):,} (first: "
                      f"{_where(source, int(np.flatnonzero(bad)[0]))}, {skipped['reason'].iloc[0]})",
                      RecsysWarning, stacklevel=2)
        out = out[~bad].reset_index(drop=True)
        out.attrs["skipped"] = skipped
    if item_ids is not None:
        known = out[S.ITEM_ID].isin(set(item_ids))
        if not known.all():
            rows = np.flatnonzero(~known.to_numpy())
            sample = ", ".join(repr(out[S.ITEM_ID].iloc[r]) for r in rows[:5])
            where = f"{_where(source, int(rows[0]))}: column 'item_id' names items not in the catalog"
            if unknown_items == "drop":
                warnings.warn(f"{where} ({len(rows):,} rows, e.g. {sample}); dropped them",
                              RecsysWarning, stacklevel=2)
                kept = out[known.to_numpy()].reset_index(drop=True)
                kept.attrs = out.attrs
                return kept
            raise DataError(
                f"{where} ({len(rows):,} rows, e.g. {sample}); add them to the catalog or drop "
                "those rows",
                unknown_count=int(len(rows)),
            )
    return out


def _timestamps(frame: pd.DataFrame, reject) -> pd.Series:
    """Event times as UTC datetimes; numbers are epoch seconds, checked as the API checks them."""
    if S.TIMESTAMP not in frame.columns:
        return pd.Series(pd.NaT, index=frame.index, dtype="datetime64[ns, UTC]")
    raw = frame[S.TIMESTAMP]
    if pd.api.types.is_datetime64_any_dtype(raw):
        return pd.to_datetime(raw, utc=True)
    if not pd.api.types.is_numeric_dtype(raw):
        raw = raw.mask(raw.astype(str).str.strip() == "")  # an empty CSV cell: no timestamp
    as_number = pd.to_numeric(raw, errors="coerce")
    if as_number.notna().sum() == raw.notna().sum():  # epoch seconds, as numbers or as text
        problems = as_number.dropna().map(S.timestamp_problem).reindex(raw.index)
        for problem in problems.dropna().unique():
            reject(problems == problem, f"column 'timestamp' {problem}")
        usable = as_number.where(problems.isna())
        return pd.to_datetime(usable, unit="s", utc=True, errors="coerce")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "could not infer format" noise
        parsed = pd.to_datetime(raw, utc=True, errors="coerce", format="mixed")
    low, high = pd.Timestamp(0, unit="s", tz="UTC"), pd.Timestamp(S.MAX_TIMESTAMP, unit="s", tz="UTC")
    reject(parsed.isna() & raw.notna(), "column 'timestamp' is not a date or epoch seconds",
           lambda row: raw.iloc[row])
    reject((parsed < low) | (parsed > high), "column 'timestamp' is not between 1970 and 2100",
           lambda row: raw.iloc[row])
    return parsed.where((parsed >= low) & (parsed <= high))


def non_negative(value, name: str) -> float:
    """``value`` as a finite float >= 0 (a price bound, a modality weight).

    Raises:
        InvalidRequest: naming ``name`` and the value given.
    """
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InvalidRequest(f"{name} must be a number (got {value!r})") from None
    if not math.isfinite(number) or number < 0:
        raise InvalidRequest(f"{name} must be a finite number >= 0 (got {value!r})")
    return number
