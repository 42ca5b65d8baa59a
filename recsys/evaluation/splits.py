"""Train/test splits of interaction frames, deterministic and leak-free."""
from __future__ import annotations

import numpy as np
import pandas as pd

from recsys.data import schema as S
from recsys.errors import DataError

__all__ = ["temporal_split"]


def temporal_split(interactions: pd.DataFrame, *, test_fraction: float = 0.2,
                   min_train: int = 1) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Hold out the latest ``test_fraction`` of each user's events.

    Each user keeps their earliest events for training and gives ``ceil(test_fraction * n)`` of
    their latest to the test set (ties in time keep file order), while at least ``min_train``
    stay in training; users with fewer events than that are wholly in training.

    Args:
        interactions: validated interactions with timestamps.
        test_fraction: share of each user's events held out, in (0, 1).
        min_train: events every test user keeps in training.

    Returns:
        (train, test): two frames with the input's columns; every test event is later than or as
        late as every training event of the same user.

    Raises:
        DataError: a bad fraction, or events without timestamps.

    Example:
        >>> train, test = temporal_split(events, test_fraction=0.2)
    """
    if not 0 < test_fraction < 1:
        raise DataError(f"test_fraction must be between 0 and 1 (got {test_fraction})")
    if interactions[S.TIMESTAMP].isna().any():
        raise DataError("a temporal split needs a timestamp on every event; "
                        f"{int(interactions[S.TIMESTAMP].isna().sum()):,} have none")
    order = interactions.reset_index(drop=True)
    order = order.iloc[np.lexsort((np.arange(len(order)), order[S.TIMESTAMP].to_numpy()))]
    position = order.groupby(S.USER_ID, sort=False).cumcount().to_numpy()
    size = order.groupby(S.USER_ID, sort=False)[S.USER_ID].transform("size").to_numpy()
    n_test = np.minimum(np.ceil(test_fraction * size).astype(int), np.maximum(size - min_train, 0))
    is_test = position >= size - n_test
    return order[~is_test].reset_index(drop=True), order[is_test].reset_index(drop=True)
