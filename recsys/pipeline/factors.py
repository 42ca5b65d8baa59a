"""The user tower's factors: implicit fitted on the interaction matrix, and the items nobody
interacted with placed by their content."""
from __future__ import annotations

import warnings
from typing import NamedTuple

import numpy as np

from recsys.bundle import PROJECTED, TRAINED, Bundle
from recsys.collab.als import CollabModel, UserItems
from recsys.collab.project import ContentProjection
from recsys.errors import RecsysWarning
from recsys.settings import Settings

__all__ = ["Factors", "fit_factors"]


class Factors(NamedTuple):
    """What :func:`fit_factors` learned.

    Attributes:
        model: the fitted model (its user factors, regularisation, iterations and fit time).
        item_factors: ``(items, f)`` float32: trained, projected from content, or zero.
        state: ``(items,)`` int8: ``TRAINED``, ``PROJECTED`` or 0 (no factors).
        projection: the content-to-factors map (``None`` with too few items to fit it).
    """

    model: CollabModel
    item_factors: np.ndarray
    state: np.ndarray
    projection: ContentProjection | None


def fit_factors(bundle: Bundle, user_items: UserItems, settings: Settings, *,
                show_progress: bool = False) -> Factors:
    """Fit the ``collab`` model on ``user_items`` and place the items without interactions that
    have content by a ridge map from content to the trained items' factors
    (:class:`~recsys.collab.project.ContentProjection`)."""
    opts = settings.collab
    model = CollabModel(opts.model, factors=opts.factors, regularization=opts.regularization,
                        iterations=opts.iterations, alpha=opts.alpha, learning_rate=opts.learning_rate,
                        seed=settings.seed, num_threads=opts.num_threads)
    model.fit(user_items.matrix, show_progress=show_progress)

    n_items = len(bundle.item_ids)
    item_factors = model.item_factors_.copy()
    state = np.zeros(n_items, dtype=np.int8)
    trained = np.bincount(user_items.matrix.indices, minlength=n_items) > 0
    state[trained] = TRAINED
    item_factors[~trained] = 0.0
    content, has_content = bundle.vectors.combined, bundle.vectors.mask
    cold = ~trained & has_content
    fit_rows = np.flatnonzero(trained & has_content)
    projection = None
    if len(fit_rows) >= 2:
        # a new item's factors get a quantile of the trained items' lengths: 0.5 treats a new
        # product as typical, lower values as likely to stay in the tail, higher ones promote it
        norm = np.quantile(np.linalg.norm(item_factors[trained], axis=1), opts.cold_norm_quantile)
        projection = ContentProjection(opts.projection_regularization)
        projection.fit(content[fit_rows], item_factors[fit_rows], norm=norm)
        item_factors[cold] = projection.transform(content[np.flatnonzero(cold)])
        state[cold] = PROJECTED
    elif cold.any():
        warnings.warn(f"{int(cold.sum()):,} items have no interactions, and too few items have both "
                      "content and interactions to place them; they stay out of feeds",
                      RecsysWarning, stacklevel=3)
    return Factors(model, item_factors, state, projection)
