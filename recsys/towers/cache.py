"""Embedding cache: vectors keyed by (encoder id, content hash) in one SQLite file, no pickle."""
from __future__ import annotations

import logging
import re
import sqlite3
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from recsys.errors import RecsysWarning
from recsys.towers.base import Tower, TowerOutput
from recsys.towers.engines import Engine, LocalEngine

__all__ = ["EmbeddingCache", "encode_cached"]

logger = logging.getLogger(__name__)
_CHUNK = 500
_NUMBER = re.compile(r"\d[\d,]*")


class EmbeddingCache:
    """Stores float32 vectors as raw bytes; safe to share between processes (SQLite WAL).

    Args:
        path: the SQLite file; its folder is created.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS emb (encoder TEXT, key TEXT, vector BLOB, "
            "PRIMARY KEY (encoder, key))"
        )

    def get(self, encoder: str, keys: list[str], dim: int) -> dict[str, np.ndarray]:
        found: dict[str, np.ndarray] = {}
        unique = list(dict.fromkeys(keys))
        for start in range(0, len(unique), _CHUNK):
            chunk = unique[start:start + _CHUNK]
            marks = ",".join("?" * len(chunk))
            for key, blob in self._db.execute(
                f"SELECT key, vector FROM emb WHERE encoder = ? AND key IN ({marks})",
                [encoder, *chunk],
            ):
                vector = np.frombuffer(blob, dtype=np.float32)
                if vector.shape == (dim,):
                    found[key] = vector
        return found

    def put(self, encoder: str, keys: list[str], vectors: np.ndarray) -> None:
        rows = [(encoder, k, np.ascontiguousarray(v, dtype=np.float32).tobytes())
                for k, v in zip(keys, vectors)]
        with self._db:
            self._db.executemany("INSERT OR REPLACE INTO emb VALUES (?, ?, ?)", rows)

    def close(self) -> None:
        self._db.close()


def encode_cached(
    tower: Tower, catalog: pd.DataFrame, cache: EmbeddingCache | None, *, show_progress: bool = True,
    save_every: int = 2048, engine: Engine | None = None,
) -> tuple[TowerOutput, dict]:
    """Encode a catalog, re-embedding only rows whose content (or encoder) changed.

    The rows to embed go through the tower ``save_every`` at a time, on ``engine`` (default this
    process, :class:`~recsys.towers.engines.LocalEngine`), and each part is written to the cache as
    soon as it is done: a build that is stopped part way keeps what it embedded, and the next run
    embeds only the rest.

    Returns:
        (output, stats): the tower output in catalog order, and counts
        ``{"cached": .., "encoded": .., "missing": ..}``.
    """
    keys = tower.content_keys(catalog)
    n = len(catalog)
    present = np.array([k is not None for k in keys], dtype=bool)
    vectors = np.zeros((n, tower.dim), dtype=np.float32)
    mask = np.zeros(n, dtype=bool)
    encoder = tower.encoder_id()
    hits = cache.get(encoder, [k for k in keys if k is not None], tower.dim) if cache else {}
    todo = [i for i in range(n) if present[i] and keys[i] not in hits]
    for i in range(n):
        if present[i] and keys[i] in hits:
            vectors[i], mask[i] = hits[keys[i]], True
    with tqdm(total=len(todo), desc=f"{tower.modality} tower", unit="item",
              disable=not show_progress or not todo) as bar, warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always", RecsysWarning)
        rows = np.asarray(todo, dtype=np.int64)
        for positions, out in (engine or LocalEngine()).parts(tower, catalog.iloc[rows], save_every):
            part = rows[positions]
            vectors[part], mask[part] = out.vectors, out.mask
            if cache:
                cache.put(encoder, [keys[i] for i in part[out.mask]], out.vectors[out.mask])
            bar.update(len(part))
    for message in _summed(str(w.message) for w in seen if issubclass(w.category, RecsysWarning)):
        warnings.warn(message, RecsysWarning, stacklevel=2)
    for w in seen:  # anything else passes through as it came
        if not issubclass(w.category, RecsysWarning):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    stats = {"cached": int(present.sum()) - len(todo), "encoded": len(todo),
             "missing": int(n - mask.sum())}
    logger.debug("%s: %s", tower.modality, stats)
    return TowerOutput(vectors, mask), stats


def _summed(messages) -> list[str]:
    """The towers' warnings about the parts of one encode, once each: the parts are disjoint and
    the towers' warnings count items ("3 of 2,048 images could not be read"), so the counts of
    messages that differ only in their numbers add up."""
    totals: dict[str, list[int]] = {}
    for message in messages:
        numbers = [int(n.replace(",", "")) for n in _NUMBER.findall(message)]
        shape = _NUMBER.sub("#", message)
        totals[shape] = [a + b for a, b in zip(totals[shape], numbers)] if shape in totals else numbers
    out = []
    for shape, numbers in totals.items():
        parts = shape.split("#")
        out.append(parts[0] + "".join(f"{n:,}{rest}" for n, rest in zip(numbers, parts[1:])))
    return out
