"""User vectors for users the model has not seen: the ALS user solve over their recent items."""
from __future__ import annotations

import numpy as np

__all__ = ["fold_in", "gramian"]


def gramian(item_factors: np.ndarray) -> np.ndarray:
    """``Y^T Y`` of the item factors, ``(f, f)`` float64; compute once per bundle."""
    y = np.asarray(item_factors, dtype=np.float64)
    return y.T @ y


def fold_in(
    item_factors: np.ndarray,
    rows: np.ndarray,
    confidence: np.ndarray,
    *,
    regularization: float,
    yty: np.ndarray | None = None,
) -> np.ndarray:
    """Solve one user's ALS factors given fixed item factors (implicit's ``recalculate_user``).

    ``x = (Y^T Y + Y^T (C_u - I) Y + regularization * I)^-1 Y^T C_u p_u``, where ``C_u`` holds the
    confidence of the user's items and ``p_u`` is 1 on them. A brand-new session thus gets the
    vector ALS would have given a user with that history.

    Args:
        item_factors: ``(items, f)`` item factors.
        rows: ``(m,)`` distinct item rows the user touched.
        confidence: ``(m,)`` their confidences (``1 + alpha * strength``).
        regularization: the model's L2 penalty.
        yty: :func:`gramian` of ``item_factors`` (computed when not given).

    Returns:
        ``(f,)`` float32 user factors; zeros when ``rows`` is empty.

    Example:
        >>> y = np.eye(3, dtype=np.float32)
        >>> fold_in(y, np.array([0]), np.array([3.0]), regularization=0.0).round(2)
        array([1., 0., 0.], dtype=float32)
    """
    n_factors = item_factors.shape[1]
    rows = np.asarray(rows, dtype=np.int64)
    if len(rows) == 0:
        return np.zeros(n_factors, dtype=np.float32)
    yty = gramian(item_factors) if yty is None else yty
    y_u = np.asarray(item_factors[rows], dtype=np.float64)
    c = np.asarray(confidence, dtype=np.float64)
    a = yty + (y_u.T * (c - 1.0)) @ y_u + regularization * np.eye(n_factors)
    b = y_u.T @ c
    return np.linalg.solve(a, b).astype(np.float32)
