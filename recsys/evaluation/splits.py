"""Train/test splits of interaction frames: deterministic for a seed, and leak-free.

Every split returns a :class:`Split`. ``given`` holds events a model may see at query time without
training on them: a cold user's first events (their session so far). Test users without any
training or given event are kept apart as ``newcomers``: they are not in the main test (no model
knows anything about them), and an evaluation scores every model's feed for nobody on them alone;
``dropped_users`` says how many there are.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from recsys.data import schema as S
from recsys.data.holdout import latest_events
from recsys.errors import DataError

__all__ = ["Split", "SPLITS", "make_split", "random_split", "temporal_split", "cutoff_split",
           "cold_item_split", "cold_user_split"]


@dataclass(frozen=True)
class Split:
    """Training events, held-out test events, and what a model is told at query time.

    Attributes:
        name: how the split was made (``"temporal, last 20% per user"``).
        train: events to fit on.
        test: held-out events; their items are the relevant ones.
        given: events shown at query time but not trained on (cold users' first events).
        cold_items: items withheld from training (cold-item split).
        dropped_users: test users left out of ``test`` because nothing about them is known.
        newcomers: those users' held-out events.
        kind: the :data:`SPLITS` name that made it (a validation cut inside its training part is
            made the same way).
    """

    name: str
    train: pd.DataFrame
    test: pd.DataFrame
    given: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=[S.USER_ID, S.ITEM_ID]))
    cold_items: frozenset = frozenset()
    dropped_users: int = 0
    newcomers: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=[S.USER_ID, S.ITEM_ID]))
    kind: str = ""

    @property
    def test_users(self) -> list:
        return sorted(set(self.test[S.USER_ID]))

    def of_newcomers(self) -> Split:
        """The same training part, tested on the newcomers alone (nothing given)."""
        return replace(self, name=f"{self.name}, users with no history", test=self.newcomers,
                       given=self.train.iloc[:0], dropped_users=0, newcomers=self.newcomers.iloc[:0])


def _check_fraction(name: str, value: float) -> None:
    if not 0 < value < 1:
        raise DataError(f"{name} must be between 0 and 1 (got {value})")


def _need_time(interactions: pd.DataFrame, split: str) -> None:
    missing = int(interactions[S.TIMESTAMP].isna().sum()) if S.TIMESTAMP in interactions else len(interactions)
    if missing:
        raise DataError(f"a {split} split needs a timestamp on every event; {missing:,} have none")


def _in_time_order(interactions: pd.DataFrame) -> pd.DataFrame:
    """Events sorted by time, ties in file order."""
    frame = interactions.reset_index(drop=True)
    return frame.iloc[np.lexsort((np.arange(len(frame)), frame[S.TIMESTAMP].to_numpy()))]


def _finish(kind: str, name: str, train: pd.DataFrame, test: pd.DataFrame, given: pd.DataFrame | None = None,
            cold_items: frozenset = frozenset()) -> Split:
    known = set(train[S.USER_ID]) | (set(given[S.USER_ID]) if given is not None else set())
    keep = test[S.USER_ID].isin(known)
    dropped = test.loc[~keep, S.USER_ID].nunique()
    if not keep.any():
        raise DataError(f"the {name} split leaves no test user with anything known about them")
    given = train.iloc[:0] if given is None else given  # nothing given, with the same columns
    return Split(name=name, train=train.reset_index(drop=True), test=test[keep].reset_index(drop=True),
                 given=given.reset_index(drop=True), cold_items=cold_items, dropped_users=int(dropped),
                 newcomers=test[~keep].reset_index(drop=True), kind=kind)


def random_split(interactions: pd.DataFrame, *, test_fraction: float = 0.2, seed: int = 0) -> Split:
    """Hold out a random ``test_fraction`` of all events."""
    _check_fraction("test_fraction", test_fraction)
    is_test = np.random.default_rng(seed).random(len(interactions)) < test_fraction
    return _finish("random", f"random {test_fraction:.0%}", interactions[~is_test], interactions[is_test])


def temporal_split(interactions: pd.DataFrame, *, test_fraction: float = 0.2, last_n: int | None = None,
                   min_train: int = 1) -> Split:
    """Hold out each user's latest events: ``ceil(test_fraction * n)`` of them, or ``last_n``,
    baskets kept whole, at least ``min_train`` events of each user kept in training
    (:func:`~recsys.data.holdout.latest_events`).

    Example:
        >>> split = temporal_split(events, test_fraction=0.2)  # doctest: +SKIP
    """
    _need_time(interactions, "temporal")
    if last_n is None:
        _check_fraction("test_fraction", test_fraction)
    elif last_n < 1:
        raise DataError(f"last_n must be at least 1 (got {last_n})")
    order = _in_time_order(interactions)
    is_test = latest_events(order, fraction=test_fraction, last_n=last_n, min_train=min_train)
    name = f"temporal, last {last_n} per user" if last_n else f"temporal, last {test_fraction:.0%} per user"
    return _finish("temporal", name, order[~is_test], order[is_test])


def cutoff_split(interactions: pd.DataFrame, *, cutoff: float | str | None = None,
                 quantile: float = 0.8) -> Split:
    """Train on everything up to one moment, test on everything after (users seen before; the
    others are the newcomers).

    Args:
        cutoff: epoch seconds or a date (``"2018-01-01"``, UTC); default: the ``quantile`` of all
            event times.
    """
    _need_time(interactions, "time-cutoff")
    times = interactions[S.TIMESTAMP]
    if cutoff is None:
        _check_fraction("quantile", quantile)
        moment = times.quantile(quantile)
    else:
        numeric = isinstance(cutoff, (int, float)) and not isinstance(cutoff, bool)
        try:
            moment = pd.to_datetime(cutoff, unit="s" if numeric else None, utc=True)
        except (ValueError, TypeError):
            raise DataError(f"cutoff must be epoch seconds or a date (got {cutoff!r})") from None
    is_test = (times > moment).to_numpy()
    if not is_test.any() or is_test.all():
        raise DataError(f"cutoff {moment} leaves nothing to train on or to test")
    return _finish("cutoff", f"time cutoff {moment:%Y-%m-%d %H:%M}", interactions[~is_test], interactions[is_test])


def cold_item_split(interactions: pd.DataFrame, *, item_fraction: float = 0.2, seed: int = 0) -> Split:
    """Withhold a random ``item_fraction`` of the items from training; test on their events.

    Only a model that places items by content can recommend them (collaborative models have
    never seen them).
    """
    _check_fraction("item_fraction", item_fraction)
    items = np.array(sorted(interactions[S.ITEM_ID].unique()))
    chosen = np.random.default_rng(seed).random(len(items)) < item_fraction
    cold = frozenset(items[chosen].tolist())
    is_test = interactions[S.ITEM_ID].isin(cold).to_numpy()
    return _finish("cold-items", f"cold items, {item_fraction:.0%} withheld", interactions[~is_test],
                   interactions[is_test], cold_items=cold)


def cold_user_split(interactions: pd.DataFrame, *, user_fraction: float = 0.2, given: int = 5,
                    seed: int = 0) -> Split:
    """Withhold a random ``user_fraction`` of the users from training.

    Each withheld user's first ``given`` events (by time where there are timestamps) are shown
    at query time, as recent activity; the rest are the test. Users with at most ``given`` events
    are not chosen.
    """
    _check_fraction("user_fraction", user_fraction)
    if given < 1:
        raise DataError(f"given must be at least 1 (got {given})")
    frame = _in_time_order(interactions) if interactions[S.TIMESTAMP].notna().all() \
        else interactions.reset_index(drop=True)
    counts = frame[S.USER_ID].value_counts()
    eligible = np.array(sorted(counts.index[counts > given]))
    chosen = frozenset(eligible[np.random.default_rng(seed).random(len(eligible)) < user_fraction].tolist())
    cold = frame[S.USER_ID].isin(chosen).to_numpy()
    position = frame.groupby(S.USER_ID, sort=False).cumcount().to_numpy()
    shown = cold & (position < given)
    return _finish("cold-users", f"cold users, {user_fraction:.0%} withheld, {given} events given", frame[~cold],
                   frame[cold & ~shown], given=frame[shown])


SPLITS = {
    "random": random_split,
    "temporal": temporal_split,
    "cutoff": cutoff_split,
    "cold-items": cold_item_split,
    "cold-users": cold_user_split,
}


def make_split(kind: str, interactions: pd.DataFrame, **options) -> Split:
    """The split named ``kind`` (one of :data:`SPLITS`) with its keyword ``options``.

    Raises:
        DataError: unknown kind or a bad option.
    """
    if kind not in SPLITS:
        raise DataError(f"unknown split {kind!r}; choose one of {', '.join(SPLITS)}")
    try:
        return SPLITS[kind](interactions, **options)
    except TypeError as exc:
        raise DataError(f"split {kind!r}: {exc}") from None
