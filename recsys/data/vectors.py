"""Item vectors a team already has, given to ``recsys build --vectors`` in place of an encoder.

Two layouts:

* a Parquet file: an ``item_id`` column and one column per modality (``image``, ``text``,
  ``tabular``), each cell a list of floats of the same length, or null where the item lacks that
  modality;
* a folder: ``item_ids.txt`` (one id per line) and ``<modality>.npy`` files, ``(n, d)`` float
  arrays in the order of the ids (a row of zeros: the item lacks the modality).

Every catalog item needs a row; every row's id must be in the catalog. The vectors need not be
unit length (the build normalises them).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from recsys.data import schema as S
from recsys.errors import DataError

__all__ = ["MODALITIES", "GivenVectors", "load_vectors"]

MODALITIES = ("image", "text", "tabular")
IDS_FILE = "item_ids.txt"

# per modality: (n, d) float32 rows in catalog order, and which rows have a vector
GivenVectors = dict[str, tuple[np.ndarray, np.ndarray]]


def load_vectors(path: str | Path, catalog_ids: pd.Series) -> GivenVectors:
    """Read given vectors and lay them out in the catalog's row order.

    Args:
        path: a ``.parquet`` file or a folder of ``.npy`` files (see the module docstring).
        catalog_ids: the validated catalog's ``item_id`` column.

    Raises:
        DataError: the file or a column is missing or unreadable, a modality is unknown, the
            dimensions differ between rows, a value is NaN or infinite, an id repeats, is not in
            the catalog, or a catalog item has no row. The message names the file and column.
    """
    path = Path(path)
    if path.is_dir():
        ids, columns = _read_folder(path)
    elif path.suffix == ".parquet" and path.is_file():
        ids, columns = _read_parquet(path)
    else:
        raise DataError(f"{path}: give a .parquet file or a folder with {IDS_FILE} and <modality>.npy files")
    order = _catalog_order(path, ids, catalog_ids)
    given = {}
    for name, (rows, present) in columns.items():
        if not np.isfinite(rows).all():
            bad = int(np.flatnonzero(~np.isfinite(rows).all(axis=1))[0])
            raise DataError(f"{path}, column {name!r}: item {ids[bad]!r} has a NaN or infinite value")
        present = present & (np.abs(rows).sum(axis=1) > 0)
        given[name] = (rows[order], present[order])
    return given


def _read_parquet(path: Path) -> tuple[np.ndarray, dict]:
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException) as exc:
        raise DataError(f"{path}: cannot read it as Parquet ({exc})") from exc
    if S.ITEM_ID not in table.column_names:
        raise DataError(f"{path}: no {S.ITEM_ID!r} column (columns: {', '.join(table.column_names)})")
    ids = np.asarray(table.column(S.ITEM_ID).cast(pa.string()).to_pylist(), dtype=object)
    columns = {}
    for name in table.column_names:
        if name == S.ITEM_ID:
            continue
        _check_modality(path, name)
        column = table.column(name).combine_chunks()
        if not (pa.types.is_list(column.type) or pa.types.is_large_list(column.type)
                or pa.types.is_fixed_size_list(column.type)):
            raise DataError(f"{path}, column {name!r}: each cell must be a list of numbers (got {column.type})")
        present = column.is_valid().to_numpy(zero_copy_only=False)
        lengths = pc.list_value_length(column).to_numpy(zero_copy_only=False)
        dims = np.unique(lengths[present]).astype(int)
        if len(dims) != 1 or dims[0] == 0:
            raise DataError(f"{path}, column {name!r}: every vector needs the same length "
                            f"(found {', '.join(map(str, dims[:5])) or 'none'})")
        rows = np.zeros((len(ids), dims[0]), np.float32)
        try:
            rows[present] = column.filter(column.is_valid()).flatten().to_numpy(
                zero_copy_only=False).astype(np.float32).reshape(-1, dims[0])
        except (ValueError, pa.ArrowException) as exc:
            raise DataError(f"{path}, column {name!r}: the values are not numbers ({exc})") from exc
        columns[name] = (rows, present)
    if not columns:
        raise DataError(f"{path}: no vector column beside {S.ITEM_ID!r}; name them {', '.join(MODALITIES)}")
    return ids, columns


def _read_folder(path: Path) -> tuple[np.ndarray, dict]:
    ids_file = path / IDS_FILE
    if not ids_file.is_file():
        raise DataError(f"{path}: no {IDS_FILE} (one item id per line, in the order of the .npy rows)")
    ids = np.asarray(ids_file.read_text(encoding="utf-8").splitlines(), dtype=object)
    columns = {}
    for file in sorted(path.glob("*.npy")):
        _check_modality(file, file.stem)
        try:
            rows = np.load(file, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise DataError(f"{file}: cannot read it as a .npy array ({exc})") from exc
        if rows.ndim != 2 or len(rows) != len(ids) or not np.issubdtype(rows.dtype, np.number):
            raise DataError(f"{file}: need a ({len(ids)}, d) array of numbers, one row per line of {IDS_FILE} "
                            f"(got shape {rows.shape}, {rows.dtype})")
        columns[file.stem] = (np.asarray(rows, np.float32), np.ones(len(ids), bool))
    if not columns:
        raise DataError(f"{path}: no <modality>.npy file; name them {', '.join(m + '.npy' for m in MODALITIES)}")
    return ids, columns


def _check_modality(path: Path, name: str) -> None:
    if name not in MODALITIES:
        raise DataError(f"{path}: unknown modality {name!r}; vector columns are named {', '.join(MODALITIES)}")


def _catalog_order(path: Path, ids: np.ndarray, catalog_ids: pd.Series) -> np.ndarray:
    """For each catalog row, the row of ``ids`` that holds its vectors."""
    index = pd.Index(ids)
    if index.has_duplicates:
        raise DataError(f"{path}, column {S.ITEM_ID!r}: item {index[index.duplicated()][0]!r} has more than one row")
    unknown = index.difference(pd.Index(catalog_ids.astype(str)))
    if len(unknown):
        raise DataError(f"{path}, column {S.ITEM_ID!r}: {len(unknown):,} id(s) are not in the catalog, e.g. "
                        f"{', '.join(map(repr, unknown[:3]))}")
    order = index.get_indexer(catalog_ids.astype(str))
    if (order < 0).any():
        missing = catalog_ids.astype(str)[order < 0]
        raise DataError(f"{path}, column {S.ITEM_ID!r}: {len(missing):,} catalog item(s) have no row, e.g. "
                        f"{', '.join(map(repr, missing[:3]))}; give every item a row (null or zeros where it "
                        "lacks a modality)")
    return order
