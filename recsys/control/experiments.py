"""A/B experiments: variants of the serving configuration, a deterministic split of users, and a
report of what each variant sold, with intervals.

An experiment is data (JSON in Redis, :class:`Experiment` here). A user (or an anonymous
session) is assigned by a hash of the experiment's salt and their id (:func:`assign`), so they
stay in one variant across requests, workers and servers, and two experiments split users
independently. The report (:func:`report`) reads the impressions and events logged with the
``request_id`` of each answer (:mod:`recsys.store.impressions`).
"""
from __future__ import annotations

import bisect
import hashlib
import itertools
import math
import secrets
from datetime import datetime, timezone
from functools import cached_property, lru_cache
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from scipy import stats

from recsys.control.rules import Rule
from recsys.control.shaping import Shaping
from recsys.errors import InvalidRequest
from recsys.manifest import NAME_PATTERN

__all__ = ["Variant", "Experiment", "Arm", "assign", "report", "check_new", "prices_of", "HOLDOUT"]

HOLDOUT = "holdout"
Target = Literal["feeds", "similar", "all"]


class Variant(BaseModel):
    """One arm of an experiment: a serving configuration. Fields left out keep the service's.

    Attributes:
        name: unique in the experiment; the first variant is the control.
        share: its part of the traffic (relative to the other variants' shares).
        weights: similar items' modality weights.
        rank: feeds ranked by the bundle's ranker (true) or blended (false).
        rules: rules applied to this variant's reads after the stored ones.
        diversity, max_per_category: as a read's own (docs/rules.md).
        bundle: a published bundle version its reads are answered by (every worker loads it
            beside the active one while the experiment runs); ``None``: the active bundle.
    """

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9_.-]+$")
    share: float = Field(1.0, gt=0, le=1000)
    weights: dict[str, float] | None = None
    rank: bool | None = None
    rules: list[Rule] = Field(default_factory=list, max_length=50)
    diversity: float | None = Field(None, ge=0, le=1)
    max_per_category: int | None = Field(None, ge=0, le=1000)
    bundle: str | None = Field(None, pattern=f"^{NAME_PATTERN.pattern}$", max_length=100)

    @cached_property
    def shaping(self) -> Shaping:
        """Its rules and diversity, as a read's own shaping."""
        return Shaping(tuple(self.rules), self.diversity, self.max_per_category)

    @cached_property
    def changes(self) -> bool:
        """Whether it changes anything of the service's configuration."""
        return bool(self.weights or self.rank is not None or self.rules or self.diversity is not None
                    or self.max_per_category is not None or self.bundle)


class Experiment(BaseModel):
    """An experiment.

    Attributes:
        id: given by the store (``e1``, ``e2``, ...).
        name: what it tests.
        variants: two or more; the first is the control the others are compared with.
        holdout: the share of users left out of every variant (served as without the experiment,
            and reported as ``holdout``).
        target: the reads it applies to: ``feeds`` (user feeds and session feeds), ``similar``
            (similar items, per user when the read names one with ``user_id``), or ``all``.
        salt: makes its split independent of every other experiment's; made when absent.
        status: ``running`` or ``stopped`` (a stopped experiment serves nobody and is reported
            up to its ``stopped`` time).
    """

    model_config = ConfigDict(extra="forbid")

    id: str | None = Field(None, max_length=40)
    name: str = Field(min_length=1, max_length=200)
    variants: list[Variant] = Field(min_length=2, max_length=10)
    holdout: float = Field(0.0, ge=0, lt=1)
    target: Target = "feeds"
    salt: str | None = Field(None, min_length=1, max_length=64)
    status: Literal["running", "stopped"] = "running"
    started: datetime | None = None
    stopped: datetime | None = None

    @field_validator("variants")
    @classmethod
    def _unique(cls, variants: list[Variant]) -> list[Variant]:
        names = [v.name for v in variants]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"variant names must be unique ({', '.join(repeated)} repeated)")
        if HOLDOUT in names:
            raise ValueError(f"{HOLDOUT!r} names the users left out; call the variant otherwise")
        return variants

    @model_validator(mode="after")
    def _defaults(self) -> Experiment:
        if self.salt is None:
            self.salt = secrets.token_hex(8)
        if self.started is None:
            self.started = datetime.now(timezone.utc)
        return self

    def applies(self, read: str) -> bool:
        """Whether reads of kind ``read`` (``feeds`` or ``similar``) are in it now."""
        return self.status == "running" and self.target in ("all", read)

    @cached_property
    def edges(self) -> list[float]:
        """The variants' cumulative shares of the users outside the holdout, ending at 1."""
        total = sum(v.share for v in self.variants)
        return list(itertools.accumulate(v.share / total for v in self.variants))

    @property
    def bundles(self) -> set[str]:
        """The bundle versions its variants name."""
        return {v.bundle for v in self.variants if v.bundle}

    @property
    def shares(self) -> np.ndarray:
        """Each variant's expected share of the users, the holdout's last."""
        parts = np.array([v.share for v in self.variants])
        return np.append((1 - self.holdout) * parts / parts.sum(), self.holdout)


class Arm(BaseModel):
    """Where one read went: the experiment and the variant (``holdout`` for a held-out user)."""

    experiment: str
    variant: str


def check_new(new: Experiment, experiments, published) -> None:
    """Check that ``new`` can start beside ``experiments`` (those stored) and that the bundle
    versions its variants name are among ``published``.

    Raises:
        InvalidRequest: a running experiment takes some of the reads ``new`` would (a read goes
            to one experiment; stop that one first), or a variant names an unpublished bundle.
    """
    for running in experiments:
        if running.status == "running" and ("all" in (running.target, new.target) or running.target == new.target):
            raise InvalidRequest(f"experiment {running.id} ({running.name!r}) already takes {running.target} "
                                 "reads; stop it first (a read goes to one experiment)", experiment_id=running.id)
    for variant in new.variants:
        if variant.bundle is not None and variant.bundle not in published:
            raise InvalidRequest(f"variant {variant.name!r}: bundle version {variant.bundle!r} is not published; "
                                 "run `recsys publish --bundle DIR --no-activate` first", version=variant.bundle)


def prices_of(*items: pd.DataFrame) -> dict[str, float]:
    """Item prices from catalog frames (later frames win: put items over the bundle's)."""
    prices: dict[str, float] = {}
    for frame in items:
        if "price" in frame.columns:
            prices.update(zip(frame["item_id"], pd.to_numeric(frame["price"], errors="coerce").fillna(0.0)))
    return prices


@lru_cache(maxsize=1 << 16)
def _unit(salt: str, unit_id: str) -> float:
    """A uniform number in [0, 1) from the salt and the id (the first 8 bytes of a sha256),
    remembered for the last 65,536 ids asked (a user reads many times)."""
    digest = hashlib.sha256(f"{salt}\x1f{unit_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def assign(experiment: Experiment, unit_id: str) -> Variant | None:
    """The variant ``unit_id`` (a user or session id) is in; ``None`` for the holdout."""
    u = _unit(experiment.salt, unit_id)
    if u < experiment.holdout:
        return None
    edges = experiment.edges
    return experiment.variants[min(bisect.bisect_right(edges, (u - experiment.holdout) / (1 - experiment.holdout)),
                                   len(edges) - 1)]


def report(experiment: Experiment, impressions: pd.DataFrame, events: pd.DataFrame,
           prices: dict[str, float] | None = None, confidence: float = 0.95) -> dict:
    """Per variant: users, impressions, clicks, CTR, conversion and revenue per user, each with its
    interval, and each treatment's difference against the control with its interval; a
    sample-ratio-mismatch check of the users; and the metrics as they stood over time
    (``timeline``, for plots).

    The unit is the user: a user's impressions and events are not independent of each other, so
    every metric is a mean over users (conversion and revenue per user) or a ratio of two such
    means (CTR: clicks per impression), and its variance comes from the spread over users, the
    ratio's by the delta method. Variants hold different users, so a difference's variance is
    the sum of the two.

    Args:
        impressions: ``request_id, user_id, variant, n, at``: one row per answer of the
            experiment's reads (:meth:`recsys.store.experiments.ExperimentStore.impressions`).
        events: the interaction log (``user_id, item_id, event, timestamp, value, request_id``).
            A click (or add to cart) counts for the variant that answered its ``request_id``; a
            purchase counts for its user's variant when it comes after the user's first
            impression and before the experiment stopped.
        prices: item prices, for revenue (a purchase's ``value``, where set, is its quantity).
    """
    z = stats.norm.ppf(0.5 + confidence / 2)
    names = [v.name for v in experiment.variants] + ([HOLDOUT] if experiment.holdout > 0 else [])
    shown = impressions.groupby(["variant", "user_id"]).agg(impressions=("n", "sum"), first=("at", "min"))
    variant_of = impressions.drop_duplicates("request_id").set_index("request_id")["variant"]
    clicked = events[events["event"].isin(["click", "add_to_cart"]) & events["request_id"].isin(variant_of.index)]
    clicks = clicked.groupby([clicked["request_id"].map(variant_of), clicked["user_id"]]).size()
    purchases = events[events["event"] == "purchase"]
    if experiment.stopped is not None:
        purchases = purchases[purchases["timestamp"].to_numpy(float) <= experiment.stopped.timestamp()]
    quantity = pd.to_numeric(purchases["value"], errors="coerce").fillna(1.0).to_numpy(float)
    price = pd.to_numeric(purchases["item_id"].map(prices or {}), errors="coerce").fillna(0.0).to_numpy(float)
    purchases = purchases.assign(revenue=price * quantity)

    def per_user(name: str) -> dict[str, np.ndarray]:
        users = (shown.xs(name, level="variant") if name in shown.index.get_level_values(0)
                 else shown.iloc[:0].droplevel("variant"))
        k = clicks.xs(name, level=0) if name in clicks.index.get_level_values(0) else pd.Series(dtype=float)
        bought = purchases[purchases["user_id"].isin(users.index)]
        bought = bought[bought["timestamp"].to_numpy(float) >= bought["user_id"].map(users["first"]).to_numpy(float)]
        spent = bought.groupby("user_id")["revenue"].agg(["size", "sum"]).reindex(users.index, fill_value=0)
        return {"shown": users["impressions"].to_numpy(float),
                "clicks": k.reindex(users.index, fill_value=0).to_numpy(float),
                "converted": (spent["size"] > 0).to_numpy(float), "revenue": spent["sum"].to_numpy(float)}

    def metrics(x: dict[str, np.ndarray]) -> dict[str, tuple[float, float]]:
        return {"ctr": _ratio(x["clicks"], x["shown"]), "conversion": _mean(x["converted"]),
                "revenue_per_user": _mean(x["revenue"])}

    data = {name: per_user(name) for name in names}
    control = experiment.variants[0].name
    base = metrics(data[control])
    out = {"confidence": confidence, "control": control, "variants": {}}
    for name in names:
        x = data[name]
        row = {"users": len(x["shown"]), "impressions": int(x["shown"].sum()), "clicks": int(x["clicks"].sum())}
        for metric, (value, var) in metrics(x).items():
            row[metric] = _interval(value, var, z)
            if name != control:
                diff = _interval(value - base[metric][0], var + base[metric][1], z)
                diff["significant"] = diff["low"] is not None and (diff["low"] > 0 or diff["high"] < 0)
                row[f"{metric}_vs_control"] = diff
        out["variants"][name] = row
    out["srm"] = _srm(experiment, [out["variants"][name]["users"] for name in names])
    out["timeline"] = _timeline(names, impressions, clicked.assign(variant=clicked["request_id"].map(variant_of)),
                                purchases)
    return out


def _timeline(names: list[str], impressions: pd.DataFrame, clicks: pd.DataFrame, purchases: pd.DataFrame,
              points: int = 12) -> list[dict]:
    """Each variant's CTR, conversion and revenue per user as they stood at ``points`` times from
    the first impression to the last event (cumulative: what the report would have said then)."""
    if impressions.empty:
        return []
    code = {name: i for i, name in enumerate(names)}
    m = len(names)
    at = impressions["at"].to_numpy(float)
    shown_variant = impressions["variant"].map(code).fillna(-1).to_numpy(int)
    first = impressions.groupby("user_id")["at"].min()
    user_variant = impressions.drop_duplicates("user_id").set_index("user_id")["variant"].map(code).reindex(first.index)
    click_t = clicks["timestamp"].to_numpy(float)
    click_variant = clicks["variant"].map(code).fillna(-1).to_numpy(int)
    bought = purchases[purchases["user_id"].isin(first.index)]
    bought_t = bought["timestamp"].to_numpy(float)
    after = bought_t >= bought["user_id"].map(first).to_numpy(float)
    bought, bought_t = bought[after], bought_t[after]
    bought_user = first.index.get_indexer(bought["user_id"])
    revenue = bought["revenue"].to_numpy(float)
    end = max(t.max() for t in (at, click_t, bought_t) if len(t))

    def per_variant(keys: np.ndarray, weights=None) -> np.ndarray:
        ok = keys >= 0
        return np.bincount(keys[ok], weights=None if weights is None else weights[ok], minlength=m)[:m]

    out = []
    for t in np.linspace(at.min(), end, points)[1:] if end > at.min() else [end]:
        shown = per_variant(shown_variant[at <= t], impressions["n"].to_numpy(float)[at <= t])
        n_clicks = per_variant(click_variant[click_t <= t])
        members = per_variant(user_variant.to_numpy()[first.to_numpy() <= t].astype(int))
        done = bought_t <= t
        buyers = np.unique(bought_user[done])
        converted = per_variant(user_variant.to_numpy()[buyers].astype(int))
        spent = per_variant(user_variant.to_numpy()[bought_user[done]].astype(int), revenue[done])
        point = {"at": round(float(t), 3)}
        for i, name in enumerate(names):
            point[name] = {"ctr": round(n_clicks[i] / shown[i], 6) if shown[i] else None,
                           "conversion": round(converted[i] / members[i], 6) if members[i] else None,
                           "revenue_per_user": round(spent[i] / members[i], 6) if members[i] else None}
        out.append(point)
    return out


def _mean(x: np.ndarray) -> tuple[float, float]:
    """A mean over users and its variance."""
    if len(x) < 2:
        return (float(x.mean()) if len(x) else math.nan), math.nan
    return float(x.mean()), float(x.var(ddof=1) / len(x))


def _ratio(num: np.ndarray, den: np.ndarray) -> tuple[float, float]:
    """sum(num) / sum(den) over users and its delta-method variance."""
    n = len(num)
    if n < 2 or den.sum() == 0:
        return (float(num.sum() / den.sum()) if den.sum() else math.nan), math.nan
    mx, my = num.mean(), den.mean()
    r = mx / my
    cov = np.cov(num, den, ddof=1)
    var = (cov[0, 0] - 2 * r * cov[0, 1] + r * r * cov[1, 1]) / (n * my * my)
    return float(r), float(max(var, 0.0))


def _interval(value: float, var: float, z: float) -> dict:
    if not math.isfinite(value) or not math.isfinite(var):
        return {"value": None if not math.isfinite(value) else round(value, 6), "low": None, "high": None}
    half = z * math.sqrt(var)
    return {"value": round(value, 6), "low": round(value - half, 6), "high": round(value + half, 6)}


def _srm(experiment: Experiment, users: list[int]) -> dict:
    """A chi-square test of the users per variant against the configured shares: a p-value below
    0.001 means the split is broken (a bug or a bias in who gets logged), and no difference in the
    report can be trusted."""
    shares = experiment.shares if experiment.holdout > 0 else experiment.shares[:-1]
    total = sum(users)
    if total == 0:
        return {"p_value": None, "mismatch": False}
    expected = shares / shares.sum() * total
    p = float(stats.chisquare(users, expected).pvalue)
    return {"p_value": round(p, 6), "mismatch": p < 0.001}
