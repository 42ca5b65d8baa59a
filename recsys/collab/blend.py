"""How a feed mixes the user's factors with content: ``(1 - w) * cf + w * cosine``, where ``cf`` is
the factors' score on one scale for every user.

ALS regularisation shrinks a user known from a few events towards zero, so their raw factor scores
are small beside those of a user with hundreds of events, while a content cosine is on the same
scale for both. With raw scores one weight ``w`` would hand a new user's feed to content almost
entirely and a heavy user's to the factors. Dividing the user's factors by their length (and by
the typical item's, so that ``cf`` is about a cosine too) makes ``w`` the same share for everyone,
and leaves the ranking by factors alone unchanged.
"""
from __future__ import annotations

import numpy as np

__all__ = ["SCORING", "FALLBACK_WEIGHT", "blend", "cf_scale", "unit_users"]

# what the manifest records for feed lists made with this scoring; lists made otherwise are
# recomputed at request time rather than served
SCORING = "unit-user"

# the content weight where a bundle records none and the training could not choose one
FALLBACK_WEIGHT = 0.5


def cf_scale(trained: np.ndarray) -> float:
    """The median length of the ``(n, f)`` trained items' factors, 1 when there are none."""
    if not len(trained):
        return 1.0
    scale = float(np.median(np.linalg.norm(trained, axis=1)))
    return scale if scale > 0 else 1.0


def unit_users(users: np.ndarray, scale: float) -> np.ndarray:
    """``(f,)`` or ``(n, f)`` user factors divided by their length and ``scale``
    (:func:`cf_scale`), float32; a zero user stays zero.

    Example:
        >>> unit_users(np.array([[3.0, 4.0], [0.0, 0.0]]), 2.0)
        array([[0.3, 0.4],
               [0. , 0. ]], dtype=float32)
    """
    users = np.asarray(users, dtype=np.float32)
    length = np.linalg.norm(users, axis=-1, keepdims=True) * np.float32(scale)
    return np.divide(users, length, out=np.zeros_like(users), where=length > 0)


def blend(cf: np.ndarray, content: np.ndarray | None, weight: float) -> np.ndarray:
    """``(1 - weight) * cf + weight * content``; ``cf`` alone when there is no content term."""
    if content is None or weight == 0:
        return cf
    return (1.0 - weight) * cf + weight * content
