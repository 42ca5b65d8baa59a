"""Cold items: a ridge projection from content vectors into the collaborative factor space."""
from __future__ import annotations

import numpy as np

__all__ = ["ContentProjection"]

_BLOCK_ROWS = 65_536


class ContentProjection:
    """Linear map ``factors ~ (content - mean_x) @ W + mean_y`` fitted by ridge regression.

    Trained on the items that have both a content vector and collaborative factors, then applied to
    new items so they can be scored against user factors before anyone interacts with them.

    Args:
        regularization: ridge penalty (on the scale of the content vectors' squared norms).

    Example:
        >>> x = np.eye(4, dtype=np.float32)
        >>> proj = ContentProjection(0.01).fit(x[:3], x[:3, :2])
        >>> proj.transform(x[:1]).shape
        (1, 2)
    """

    def __init__(self, regularization: float = 1.0):
        self.regularization = regularization
        self.norm_: float | None = None

    def fit(self, content: np.ndarray, factors: np.ndarray, *, norm: float | None = None) -> ContentProjection:
        """Fit on ``content`` ``(m, d)`` and ``factors`` ``(m, f)`` of the same items.

        Args:
            norm: the length :meth:`transform` gives every projected row (``None``: as projected).
                Ridge gets the direction of a new item's factors from its content (what kind of
                user likes it) but shrinks their length, which in ALS carries popularity,
                towards the mean; how popular a new item will be is a business prior.
        """
        self.norm_ = None if norm is None else float(norm)
        x = np.asarray(content, dtype=np.float64)
        y = np.asarray(factors, dtype=np.float64)
        if len(x) != len(y) or len(x) == 0:
            raise ValueError(f"content and factors must describe the same, non-empty item set "
                             f"(got {len(x)} and {len(y)} rows)")
        self.mean_x_ = x.mean(axis=0)
        self.mean_y_ = y.mean(axis=0)
        xc, yc = x - self.mean_x_, y - self.mean_y_
        d = x.shape[1]
        if d <= len(x):  # primal: (X^T X + l I) W = X^T Y
            self.weights_ = np.linalg.solve(xc.T @ xc + self.regularization * np.eye(d), xc.T @ yc)
        else:  # dual: W = X^T (X X^T + l I)^-1 Y, cheaper when there are fewer items than dims
            self.weights_ = xc.T @ np.linalg.solve(xc @ xc.T + self.regularization * np.eye(len(x)), yc)
        return self

    def transform(self, content: np.ndarray) -> np.ndarray:
        """Projected factors of ``content`` ``(n, d)``: ``(n, f)`` float32, computed in float64
        a block of rows at a time (a million new items in float64 at once would take gigabytes),
        each of length ``norm`` where :meth:`fit` was given one."""
        out = np.empty((len(content), len(self.mean_y_)), dtype=np.float32)
        for start in range(0, len(content), _BLOCK_ROWS):
            x = np.asarray(content[start:start + _BLOCK_ROWS], dtype=np.float64)
            out[start:start + _BLOCK_ROWS] = (x - self.mean_x_) @ self.weights_ + self.mean_y_
        if self.norm_ is not None:
            lengths = np.linalg.norm(out, axis=1, keepdims=True)
            out *= np.divide(self.norm_, lengths, out=np.zeros_like(lengths), where=lengths > 0)
        return out

    def to_arrays(self) -> dict[str, np.ndarray]:
        """The fitted map as arrays (what a bundle stores): see :meth:`from_arrays`."""
        return {"mean_x": self.mean_x_, "weights": self.weights_, "mean_y": self.mean_y_,
                "norm": np.asarray(np.nan if self.norm_ is None else self.norm_)}

    @classmethod
    def from_arrays(cls, arrays) -> ContentProjection:
        """The map :meth:`to_arrays` gave (any mapping of those names, an ``np.load`` of an npz)."""
        projection = cls()
        projection.mean_x_ = np.asarray(arrays["mean_x"])
        projection.weights_ = np.asarray(arrays["weights"])
        projection.mean_y_ = np.asarray(arrays["mean_y"])
        norm = float(arrays["norm"])
        projection.norm_ = None if np.isnan(norm) else norm
        return projection
