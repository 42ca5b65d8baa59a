"""Run an evaluation: data and split, models, metrics at several K, segment breakdowns, a report.

    >>> data = prepare("movielens:../shared/data/ml-latest-small", split="temporal")  # doctest: +SKIP
    >>> report = evaluate(data, ["popular", "als", "hybrid"], ks=(10, 20))           # doctest: +SKIP
    >>> print(report.table())                                                         # doctest: +SKIP
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from recsys._hashing import sha256_bytes
from recsys.bundle import Bundle, read_bundle, resolve_bundle_path
from recsys.data import load_catalog, load_interactions
from recsys.data import schema as S
from recsys.errors import BundleError, DataError
from recsys.evaluation import metrics as M
from recsys.evaluation.models import EvalData, Model
from recsys.evaluation.registry import create_model
from recsys.evaluation.splits import make_split
from recsys.evaluation.tuning import Tuned
from recsys.settings import Settings, load_settings

__all__ = ["Report", "prepare", "evaluate", "item_bundle", "sample_users", "segments_of"]

BEYOND = ("coverage", "novelty", "popularity", "gini", "diversity")
# the models whose gain over the best baseline a report measures; every other model but random
# (and a bundle evaluated as it is) is a baseline
OURS = ("hybrid", "ranker")
NEWCOMER_SPLITS = ("cutoff", "random")  # the splits whose test users with no history are scored apart
_DISCOVERY_DEPTH = 20  # with repurchases allowed, lists are ranked this much deeper for the new-items metrics
_CORE = ("recall", "ndcg", "map")  # the metrics measured on items new to the user and on newcomers


@dataclass
class Report:
    """What an evaluation measured.

    Attributes:
        metrics: one row per model: accuracy metrics ``<name>@<k>`` (means over test users),
            ``coverage``, ``novelty``, ``popularity`` (mean popularity percentile), ``gini`` (of
            exposure) and ``diversity`` (intra-list, content space) at each k, and seconds. With
            repurchases allowed, ``<name>_new@<k>`` against what was new to each user; where the
            split has test users with no history, ``<name>_newcomers@<k>`` over them alone.
        segments: long format: model, breakdown, segment, users, and recall/NDCG at each k.
        per_user: per model, a frame of per-user accuracy metrics (for distributions).
        info: data, split and sizes.
        gains: each of our models' gain over the best baseline per metric, with its interval.
        newcomers: per model, the per-user metrics of the test users with no history.
    """

    metrics: pd.DataFrame
    segments: pd.DataFrame
    per_user: dict[str, pd.DataFrame] = field(default_factory=dict)
    info: dict = field(default_factory=dict)
    gains: pd.DataFrame = field(default_factory=pd.DataFrame)
    newcomers: dict[str, pd.DataFrame] = field(default_factory=dict)

    def gains_table(self) -> str:
        """A markdown table of each of our models' gain over the best baseline, with its 95%
        paired bootstrap interval."""
        if self.gains.empty:
            return ""
        lines = ["| model | metric | best baseline | gain | 95% interval |", "|---|---|---|---|---|"]
        for row in self.gains.itertuples():
            lines.append(f"| {row.model} | {row.metric} | {row.baseline} | {row.gain:+.1%} | "
                         f"[{row.low:+.1%}, {row.high:+.1%}] |")
        return "\n".join(lines)

    def table(self, columns: list[str] | None = None) -> str:
        """A markdown table of the main metrics."""
        frame = self.metrics[columns] if columns else self.metrics
        head = "| model | " + " | ".join(frame.columns) + " |"
        rule = "|---|" + "---|" * len(frame.columns)
        body = ["| " + str(name) + " | " + " | ".join(_fmt(v) for v in row) + " |"
                for name, row in frame.iterrows()]
        return "\n".join([head, rule, *body])

    def save(self, out: str | Path) -> dict[str, Path]:
        """Write ``metrics.csv``, ``segments.csv`` and ``report.json`` into ``out``."""
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        paths = {"metrics": out / "metrics.csv", "segments": out / "segments.csv", "gains": out / "gains.csv",
                 "json": out / "report.json"}
        self.metrics.to_csv(paths["metrics"], index_label="model")
        self.segments.to_csv(paths["segments"], index=False)
        self.gains.to_csv(paths["gains"], index=False)
        paths["json"].write_text(json.dumps({
            "info": self.info, "metrics": self.metrics.reset_index(names="model").to_dict("records"),
            "gains": self.gains.to_dict("records"), "segments": self.segments.to_dict("records")},
            indent=1, default=_json_default))
        return paths


def _fmt(value) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(type(value).__name__)


# -- data ---------------------------------------------------------------------------------------


def sample_users(interactions: pd.DataFrame, n: int, seed: int = 0) -> pd.DataFrame:
    """The events of ``n`` users drawn at random (all of them when there are fewer)."""
    users = np.array(sorted(interactions[S.USER_ID].unique()))
    if n >= len(users):
        return interactions
    chosen = np.random.default_rng(seed).choice(users, size=n, replace=False)
    return interactions[interactions[S.USER_ID].isin(chosen)].reset_index(drop=True)


def item_bundle(catalog_source: str, settings: Settings, *, show_progress: bool = True) -> Bundle:
    """The item side of a catalog for evaluation, built once under ``state_dir/eval/`` and reused
    (the towers' embedding cache makes a rebuild after a change cheap too)."""
    from recsys.pipeline.build import build_item_bundle, create_towers

    folder = Path(settings.state_dir) / "eval" / f"items-{sha256_bytes(catalog_source.encode())[:12]}"
    try:
        return read_bundle(resolve_bundle_path(folder))
    except BundleError:
        pass
    catalog = load_catalog(catalog_source, seed=settings.seed, state_dir=settings.state_dir,
                           image_roots=settings.images.roots)
    towers = create_towers(settings)
    if S.IMAGE not in catalog.columns or not catalog[S.IMAGE].astype(str).str.len().gt(0).any():
        towers.pop("image", None)  # no images to embed (MovieLens)
    report = build_item_bundle(catalog, settings, folder, source=catalog_source,
                               show_progress=show_progress, towers=towers)
    return read_bundle(report.path)


def prepare(data: str, *, split: str = "temporal", catalog: str | None = None,
            bundle: str | Path | None = None, settings: Settings | None = None, users: int | None = None,
            show_progress: bool = True, **split_options) -> EvalData:
    """Load interactions and the item side, split, and lay the split over the item space.

    Args:
        data: interactions: ``movielens:DIR``, ``PATH.csv`` / ``PATH.parquet``.
        split: one of :data:`recsys.evaluation.splits.SPLITS`.
        catalog: the catalog source; default: ``data`` itself for ``movielens:DIR``.
        bundle: an item-side bundle to use instead of building one from ``catalog``.
        settings: default :func:`recsys.settings.load_settings`.
        users: evaluate a random sample of this many users (quick runs).
        **split_options: passed to the split (``test_fraction``, ``seed``, ``given``...).

    Raises:
        DataError: no catalog for the data, unknown split or bad options.
    """
    settings = settings or load_settings()
    if bundle is not None:
        items = read_bundle(bundle)
    else:
        if catalog is None:
            if not data.startswith("movielens:"):
                raise DataError(f"{data} holds interactions only: give --catalog SOURCE or --bundle DIR "
                                "for the items")
            catalog = data
        items = item_bundle(catalog, settings, show_progress=show_progress)
    events = load_interactions(data, catalog=items.items)
    if users is not None:
        events = sample_users(events, users, seed=settings.seed)
    if split in ("random", "cold-items", "cold-users"):
        split_options.setdefault("seed", settings.seed)
    return EvalData.build(items, make_split(split, events, **split_options), settings)


# -- evaluation ---------------------------------------------------------------------------------


def segments_of(data: EvalData) -> dict[str, dict[str, np.ndarray]]:
    """The breakdowns: users by activity, items by popularity and by warmth.

    Returns:
        ``{"user activity": {segment: bool over test users}, "item popularity": {segment: bool
        over items}, "item warmth": {...}}``. Light, medium and heavy users split the test users'
        known-event counts at their terciles (a user with none is ``cold``); head items are the
        most popular ones that hold half of the training interactions, torso the next 30%, tail
        the rest; cold items have no training interaction.
    """
    activity = np.diff(data.known.indptr)
    low, high = np.quantile(activity[activity > 0], [1 / 3, 2 / 3]) if (activity > 0).any() else (0, 0)
    users = {"cold": activity == 0, "light": (activity > 0) & (activity <= low),
             "medium": (activity > low) & (activity <= high), "heavy": activity > high}
    pop = data.item_users.astype(np.float64)
    order = np.argsort(-pop, kind="stable")
    share = np.cumsum(pop[order]) / max(pop.sum(), 1)
    band = np.empty(len(pop), dtype=object)
    band[order] = np.where(share <= 0.5, "head", np.where(share <= 0.8, "torso", "tail"))
    band[order[0]] = "head"  # the most popular item is head even when it alone holds > 50%
    items = {name: band == name for name in ("head", "torso", "tail")}
    warmth = {"warm": pop > 0, "cold": pop == 0}
    return {"user activity": {k: v for k, v in users.items() if v.any()},
            "item popularity": items, "item warmth": warmth}


def evaluate(data: EvalData, models: list[str | Model], *, ks: tuple[int, ...] = (10, 20),
             show_progress: bool = True) -> Report:
    """Fit and rank every model, then measure it at every k.

    Args:
        data: from :func:`prepare` (or :meth:`EvalData.build`).
        models: names (:func:`recsys.evaluation.registry.create_model`) or model objects.
        ks: cut-offs; lists of ``max(ks)`` items are ranked once.
    """
    ks = tuple(sorted(set(ks)))
    if not ks or ks[0] < 1:
        raise DataError(f"k values must be positive integers (got {ks})")
    n = ks[-1]
    repeats = not data.settings.collab.exclude_seen
    depth = n + _DISCOVERY_DEPTH if repeats else n
    new_truth = data.truth.without(data.known) if repeats else None
    has_truth = data.truth.sizes > 0
    segments = segments_of(data)
    vectors, mask = data.bundle.vectors.combined, data.bundle.vectors.mask
    n_items, n_users = len(data.bundle.item_ids), len(data.train.user_ids)
    rows, seg_rows, per_user, per_newcomer, tuned = [], [], {}, {}, {}
    # users with no history: every model's feed for nobody, scored apart from the main test where
    # they are shoppers who arrived later (not a cold-items split's buyers of withheld items only)
    newcomers = EvalData.build(data.bundle, data.split.of_newcomers(), data.settings) \
        if len(data.split.newcomers) and data.split.kind in NEWCOMER_SPLITS else None
    objects = [create_model(m, data.settings) if isinstance(m, str) else m for m in models]
    for model in tqdm(objects, desc="models", unit="model", disable=not show_progress):
        started = time.perf_counter()
        model.fit(data)
        fitted = time.perf_counter()
        if isinstance(model, Tuned):
            tuned[model.name] = {"chosen": str(model.chosen), "validation_ndcg@10": model.scores,
                                 "past_the_grid": model.edges}
        deep = model.rank(data, depth)
        ranked_at = time.perf_counter()
        ranked = deep[:, :n]
        row, users_frame = _scored(ranked, data.truth, ks, M.ACCURACY)
        if new_truth is not None:  # the same lists with what the user had taken out, against what was new to them
            row_new, frame_new = _scored(M.drop_known(deep, data.known), new_truth, ks, _CORE, "_new")
            row.update(row_new)
            users_frame.update(frame_new)
        for k in ks:
            row[f"coverage@{k}"] = M.coverage(ranked, n_items, k)
            row[f"novelty@{k}"] = M.novelty(ranked, data.item_users, n_users, k)
            row[f"popularity@{k}"] = M.popularity_percentile(ranked, data.item_users, k)
            row[f"gini@{k}"] = M.exposure_gini(ranked, n_items, k)
            row[f"diversity@{k}"] = M.intra_list_diversity(ranked, vectors, mask, k)
        if newcomers is not None:
            row_new, frame_new = _scored(model.rank(newcomers, n), newcomers.truth, ks, _CORE, "_newcomers")
            row.update(row_new)
            per_newcomer[model.name] = pd.DataFrame({"user_id": newcomers.users,
                                                     "has_truth": newcomers.truth.sizes > 0, **frame_new})
        row["fit_seconds"] = round(fitted - started, 3)
        row["rank_seconds"] = round(ranked_at - fitted, 3)
        rows.append({"model": model.name, **row})
        per_user[model.name] = pd.DataFrame({"user_id": data.users, "has_truth": has_truth, **users_frame})
        seg_rows += _segment_rows(model.name, ranked, data, segments, ks)
    metrics = pd.DataFrame(rows).set_index("model")
    info = {"split": data.split.name, "train_events": len(data.split.train),
            "test_events": len(data.split.test), "given_events": len(data.split.given),
            "test_users": int(has_truth.sum()), "dropped_users": data.split.dropped_users,
            "items": n_items, "bundle": str(data.bundle.path), "ks": list(ks),
            "exclude_seen": not repeats,
            "users_with_new_items": int((new_truth.sizes > 0).sum()) if new_truth is not None else None,
            "newcomers": len(newcomers.users) if newcomers is not None else 0,
            "newcomer_events": len(data.split.newcomers), "tuned": tuned}
    names = [f"{metric}@{k}" for k in ks for metric in ("ndcg", "map", "recall")]
    if repeats:
        names += [f"{metric}_new@{k}" for k in ks for metric in ("ndcg", "map")]
    gains = _gains(metrics, per_user, names)
    if newcomers is not None:
        gains = pd.concat([gains, _gains(metrics, per_newcomer, [f"{metric}_newcomers@{k}" for k in ks
                                                                  for metric in ("ndcg", "map", "recall")])],
                          ignore_index=True)
    return Report(metrics=metrics, segments=pd.DataFrame(seg_rows), per_user=per_user, info=info, gains=gains,
                  newcomers=per_newcomer)


def _scored(ranked: np.ndarray, truth: M.Truth, ks: tuple[int, ...], names,
            suffix: str = "") -> tuple[dict, dict]:
    """Each metric of ``names`` at each k (named ``<metric><suffix>@<k>``): its mean over the users
    with held-out items, and its value per user (NaN for a user without any)."""
    has_truth = truth.sizes > 0
    row, columns = {}, {}
    for k in ks:
        acc = M.accuracy(ranked, truth, k)
        for name in names:
            row[f"{name}{suffix}@{k}"] = float(acc[name][has_truth].mean()) if has_truth.any() else float("nan")
            columns[f"{name}{suffix}@{k}"] = np.where(has_truth, acc[name], np.nan)
    return row, columns


def _gains(metrics: pd.DataFrame, per_user: dict[str, pd.DataFrame], names: list[str]) -> pd.DataFrame:
    """Each of :data:`OURS`' gain over the best baseline (by its mean), per metric in ``names``,
    with the 95% paired bootstrap interval over the users of ``per_user`` who have held-out items."""
    ours = [m for m in metrics.index if m in OURS]
    baselines = [m for m in metrics.index if m not in OURS and m != "random" and not m.startswith("bundle:")]
    rows = []
    for metric in names:
        if not baselines or metric not in metrics:
            continue
        best = str(metrics.loc[baselines, metric].idxmax())
        for model in ours:
            a, b = per_user[model][metric].to_numpy(), per_user[best][metric].to_numpy()
            users = np.isfinite(a) & np.isfinite(b) & per_user[model]["has_truth"].to_numpy()
            gain, low, high = M.paired_gain(a[users], b[users])
            rows.append({"model": model, "metric": metric, "baseline": best, "gain": gain, "low": low,
                         "high": high, "users": int(users.sum())})
    return pd.DataFrame(rows)


def _segment_rows(model: str, ranked: np.ndarray, data: EvalData, segments: dict, ks) -> list[dict]:
    out = []
    has_truth = data.truth.sizes > 0
    for name, members in segments["user activity"].items():
        keep = members & has_truth
        row = {"model": model, "breakdown": "user activity", "segment": name, "users": int(keep.sum())}
        for k in ks:
            acc = M.accuracy(ranked, data.truth, k)
            row[f"recall@{k}"] = float(acc["recall"][keep].mean()) if keep.any() else float("nan")
            row[f"ndcg@{k}"] = float(acc["ndcg"][keep].mean()) if keep.any() else float("nan")
        out.append(row)
    for breakdown in ("item popularity", "item warmth"):
        for name, items in segments[breakdown].items():
            truth = data.truth.subset(items)
            keep = truth.sizes > 0
            row = {"model": model, "breakdown": breakdown, "segment": name, "users": int(keep.sum())}
            for k in ks:
                acc = M.accuracy(ranked, truth, k)
                row[f"recall@{k}"] = float(acc["recall"][keep].mean()) if keep.any() else float("nan")
                row[f"ndcg@{k}"] = float(acc["ndcg"][keep].mean()) if keep.any() else float("nan")
                listed = ranked[:, :k][ranked[:, :k] >= 0]
                row[f"share@{k}"] = float(items[listed].mean()) if len(listed) else 0.0
            out.append(row)
    return out
