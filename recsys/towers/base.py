"""Item towers: the contract every modality encoder meets."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
import pandas as pd

__all__ = ["Tower", "TowerOutput", "l2_normalise"]


@dataclass(frozen=True)
class TowerOutput:
    """Vectors for one modality.

    Attributes:
        vectors: ``(n, dim)`` float32; rows L2-normalised where ``mask``, zero elsewhere.
        mask: ``(n,)`` bool; False where the item lacks this modality (no image, no text,
            an unreadable file).
    """

    vectors: np.ndarray
    mask: np.ndarray

    def __post_init__(self):
        if self.vectors.ndim != 2 or self.mask.shape != (self.vectors.shape[0],):
            raise ValueError(
                f"TowerOutput needs (n, d) vectors and an (n,) mask; got {self.vectors.shape} "
                f"and {self.mask.shape}"
            )

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    def take(self, rows: np.ndarray) -> TowerOutput:
        return TowerOutput(self.vectors[rows], self.mask[rows])


@runtime_checkable
class Tower(Protocol):
    """An encoder for one modality.

    Attributes:
        modality: "image", "text" or "tabular".
    """

    modality: str

    @property
    def dim(self) -> int: ...

    def encoder_id(self) -> str:
        """A string that changes whenever the same input could give another vector."""
        ...

    def content_keys(self, catalog: pd.DataFrame) -> list[str | None]:
        """One key per row naming the content this tower reads; None where the modality is absent."""
        ...

    def encode(self, catalog: pd.DataFrame, *, show_progress: bool = True) -> TowerOutput: ...

    def load(self) -> None:
        """Load (and compile) the tower's model now rather than on the first encode; a no-op
        for a tower without one."""
        ...

    def describe(self) -> dict:
        """What the manifest records about this encoder (model name, weights source, dim)."""
        ...


def l2_normalise(vectors: np.ndarray, mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Scale rows to unit length; rows of (near) zero length are zeroed and dropped from the mask.

    Returns:
        (vectors, mask): ``(n, d)`` float32 and ``(n,)`` bool.
    """
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1)
    ok = norms > 1e-12
    if mask is not None:
        ok &= mask
    out = np.zeros_like(vectors)
    out[ok] = vectors[ok] / norms[ok, None]
    return out, ok


def weighted_concat(outputs: list[TowerOutput], weights: list[float]) -> TowerOutput:
    """Concatenate unit blocks so that dot products are weighted means of per-block cosines.

    Block ``m`` is scaled by ``sqrt(w_m)`` and each row is divided by ``sqrt(sum of w_m over the
    blocks it has)``, so every row with at least one block is a unit vector and, for two items that
    have the same blocks, ``x_i . x_j = sum_m w_m cos_m(i, j) / sum_m w_m``. Rows without any
    block stay zero and are masked out.

    Returns:
        TowerOutput: ``(n, sum of dims)`` float32.
    """
    if not outputs:
        raise ValueError("weighted_concat needs at least one block")
    n = outputs[0].vectors.shape[0]
    scale = np.sqrt(np.asarray(weights, dtype=np.float32))
    present = np.zeros(n, dtype=np.float32)
    parts = []
    for out, s, w in zip(outputs, scale, weights):
        parts.append(out.vectors * (s * out.mask)[:, None])
        present += w * out.mask
    mask = present > 0
    combined = np.concatenate(parts, axis=1)
    combined[mask] /= np.sqrt(present[mask])[:, None]
    return TowerOutput(combined.astype(np.float32, copy=False), mask)
