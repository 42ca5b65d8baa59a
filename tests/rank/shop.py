"""A small store and synthetic shoppers with a planted habit (they rebuy their staples), for the
ranking tests."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from recsys.data import validate_catalog, validate_interactions
from recsys.rank.log import DAY
from tests.conftest import make_settings

START = 1_600_000_000.0
WEIGHTS = {"purchase": 1.0}


def rebuyers(n_users: int = 1500, days: int = 12, seed: int = 0) -> pd.DataFrame:
    """Shoppers who each rebuy two staples most days, and now and then buy a best seller."""
    rng = np.random.default_rng(seed)
    popular = rng.zipf(1.6, 50_000) % 300
    rows = []
    for u in range(n_users):
        staples = rng.choice(300, 2, replace=False)
        for day in range(days):
            if rng.random() < 0.5:
                rows.append((f"U{u:05d}", f"I{rng.choice(staples):03d}", day))
            if rng.random() < 0.3:
                rows.append((f"U{u:05d}", f"I{popular[rng.integers(len(popular))]:03d}", day))
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "day"])
    frame["event"] = "purchase"
    frame["timestamp"] = pd.to_datetime(START + frame.pop("day") * DAY, unit="s", utc=True)
    return validate_interactions(frame, source="rebuyers")


def small_store(tmp: Path):
    """The store's bundle, built under ``tmp``."""
    from recsys.bundle import read_bundle
    from recsys.pipeline.build import build_item_bundle
    from recsys.towers import create_tower

    n = 300
    catalog = validate_catalog(pd.DataFrame({
        "item_id": [f"I{i:03d}" for i in range(n)], "category": [f"dept{i % 3}/kind{i % 12}" for i in range(n)],
        "price": [5.0 + (i * 7) % 60 for i in range(n)]}), source="store")
    report = build_item_bundle(catalog, make_settings(tmp), tmp / "models" / "store", show_progress=False,
                               towers={"tabular": create_tower("tabular")})
    return read_bundle(report.path)


def ranked_shop(tmp: Path, store=None, n_users: int = 1500, **rank):
    """The store trained on ``n_users`` rebuyers, with a ranker (the pointwise objective alone, to
    be quick, and the ``rank`` settings given): the train report."""
    from recsys.pipeline.train import train_user_tower

    settings = make_settings(tmp, rank={"enabled": True, "label_days": 1.0, "objectives": ["binary"], **rank})
    return train_user_tower(store if store is not None else small_store(tmp), rebuyers(n_users), settings,
                            show_progress=False)
