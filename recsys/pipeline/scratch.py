"""Arrays and indexes a build keeps in files it maps, not in its own memory.

A million items' vectors, lists and listed cosines come to more than the machine's memory. Mapped
from a file, an array's pages belong to the page cache, which the kernel writes back and frees
when memory runs short, so the build's own memory stays bounded. Each file is unlinked as soon as
it is mapped: the mapping outlives the name, so nothing is left behind however the build ends.
"""
from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from recsys.bundle import ItemIndex, load_index

__all__ = ["mapped_copy", "mapped_zeros", "mapped_index"]


@contextmanager
def _scratch_file(folder: Path, name: str) -> Iterator[Path]:
    """A path in a new folder inside ``folder``, both removed on exit (a mapping made of the
    file inside outlives them)."""
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".scratch-", dir=folder) as scratch:
        yield Path(scratch) / name


def mapped_zeros(shape: tuple[int, ...], dtype, folder: Path, fill=0) -> np.ndarray:
    """A writable array of ``shape`` filled with ``fill``, mapped from a file in ``folder``."""
    with _scratch_file(folder, "array.npy") as path:
        array = np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=shape)
    if fill:
        array.fill(fill)
    # a plain ndarray view of the mapping (which its base keeps open): np.memmap's per-operation
    # wrapping is slow, and its results would be memmaps too
    return np.asarray(array)


def mapped_copy(array: np.ndarray, folder: Path) -> np.ndarray:
    """A read-only copy of ``array`` mapped from a file in ``folder``."""
    with _scratch_file(folder, "array.npy") as path:
        np.save(path, array, allow_pickle=False)
        return np.asarray(np.load(path, mmap_mode="r", allow_pickle=False))


def mapped_index(index: ItemIndex, name: str, folder: Path) -> ItemIndex:
    """``index`` written to a file in ``folder`` and mapped back from it."""
    with _scratch_file(folder, f"{name}{index.suffix}") as path:
        index.save(path)
        return load_index(path.parent, name, index.dim, index.describe())
