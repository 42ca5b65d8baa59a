"""The user tower on top of a built bundle: collaborative factors from interactions, new items
placed by their content, the inner-product index and the precomputed feeds, written as a new
version."""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from recsys.bundle import PROJECTED, TRAINED, Bundle, Collab, write_user_tower
from recsys.collab.als import interaction_matrix, popularity
from recsys.collab.blend import SCORING
from recsys.data import schema as S
from recsys.errors import DataError
from recsys.index.annoy import AnnIndex, candidates_for
from recsys.index.mips import augment_query, build_mips_index
from recsys.pipeline.build import Laps, data_fingerprint
from recsys.pipeline.content_weight import WeightChoice, choose_content_weight
from recsys.pipeline.factors import fit_factors
from recsys.pipeline.precompute import feed_lists
from recsys.rank.log import EventLog
from recsys.rank.ranker import Ranker
from recsys.rank.state import ItemFacts, ShopState
from recsys.settings import Settings

__all__ = ["TrainReport", "train_user_tower"]


@dataclass
class TrainReport:
    """What training the user tower did."""

    path: Path
    parent: str
    users: int
    events: int
    pairs: int
    items_trained: int
    items_projected: int
    items_without: int
    recall: float
    content_weight: float
    choice: WeightChoice | None
    fit_seconds: float
    seconds: float
    ranker: dict = field(default_factory=dict)
    phases: dict[str, float] = field(default_factory=dict)

    def summary(self) -> str:
        return "\n".join([
            f"bundle    {self.path} (item side from {self.parent})",
            f"users     {self.users:,}",
            f"events    {self.events:,} ({self.pairs:,} user-item pairs)",
            f"items     {self.items_trained:,} trained, {self.items_projected:,} cold (placed by "
            f"content), {self.items_without:,} without factors",
            "content   weight " + (self.choice.summary() if self.choice is not None
                                     else f"{self.content_weight:g} (collab.content_weight)"),
            f"recall@10 cf: {self.recall:.3f}  (Annoy inner-product search, {candidates_for(10)} candidates "
            "re-scored, vs exact)",
            "ranker    " + (self.ranker["skipped"] if "skipped" in self.ranker else
                            f"{self.ranker['objective']}, validation NDCG@12 "
                            f"{self.ranker['validation_ndcg@12'][self.ranker['objective']]:.4f} on "
                            f"{self.ranker['valid_groups']:,} users, trained on {self.ranker['train_groups']:,}"),
            f"time      {self.seconds:.1f} s ("
            + ", ".join(f"{name} {s:.1f} s" for name, s in self.phases.items()) + ")",
        ])


def train_user_tower(
    bundle: Bundle,
    interactions: pd.DataFrame,
    settings: Settings,
    *,
    source: str = "interactions",
    show_progress: bool = True,
) -> TrainReport:
    """Fit the user tower on ``interactions`` and write it with ``bundle``'s item side as a new version.

    Items nobody interacted with get factors projected from their content vectors
    (:class:`recsys.collab.project.ContentProjection`), so new products can appear in feeds; the
    bundle keeps that map, so items put through the API later are placed the same way. With
    ``collab.content_weight`` unset, the feeds' content weight is chosen first, on the users' latest
    events (:func:`~recsys.pipeline.content_weight.choose_content_weight`), and recorded.

    Args:
        bundle: a loaded bundle (its item side is reused as is).
        interactions: validated interactions on the bundle's items.
        settings: the ``collab`` and ``index`` sections are used.
        source: how the interactions were named (recorded in the manifest).
        show_progress: implicit's progress bar.

    Returns:
        TrainReport: see :meth:`TrainReport.summary`.

    Raises:
        DataError: no usable interactions, or events on items the bundle lacks.
    """
    started, laps = time.perf_counter(), Laps()
    opts = settings.collab
    user_items = interaction_matrix(interactions, bundle.item_ids, event_weights=opts.event_weights,
                                    half_life_days=opts.half_life_days)
    choice = None
    if opts.content_weight is None:
        choice = choose_content_weight(bundle, interactions, settings, show_progress=show_progress)
        laps.lap("content weight")
    content_weight = choice.weight if choice is not None else opts.content_weight
    model, item_factors, state, projection = fit_factors(bundle, user_items, settings,
                                                         show_progress=show_progress)
    trained = state == TRAINED
    laps.lap("fit")
    rows = np.flatnonzero(state > 0)
    index = build_mips_index(item_factors, rows, n_trees=settings.index.n_trees,
                             seed=settings.index.seed, search_k=settings.index.search_k)
    recall = _mips_recall(index, item_factors, model.user_factors_, sample=settings.index.recall_sample,
                          seed=settings.seed)
    laps.lap("index")
    collab = Collab(user_items=user_items, user_factors=model.user_factors_, item_factors=item_factors,
                    item_state=state, popularity=popularity(user_items, opts.popularity_window_days),
                    index=index, params={}, projection=projection)
    manifest = {
        **opts.model_dump(mode="json"), "content_weight": content_weight,
        "content_weight_choice": choice.to_json() if choice is not None else None,
        "regularization": model.regularization,
        "iterations": model.iterations, "seed": settings.seed, "source": source,
        "data_fingerprint": data_fingerprint(interactions[[S.USER_ID, S.ITEM_ID, S.EVENT]]),
        "counts": {"users": len(user_items.user_ids), "events": len(interactions),
                   "pairs": int(user_items.matrix.nnz), "items_trained": int(trained.sum()),
                   "items_projected": int((state == PROJECTED).sum())},
        "index": {"recall@10": round(recall, 4), "search_k": settings.index.search_k},
        "fit_seconds": round(model.fit_seconds_, 3),
    }
    collab.ranker, manifest["ranker"] = _fit_ranker(bundle, interactions, user_items, settings, show_progress)
    laps.lap("ranker")
    k = settings.index.precompute_k
    if k:
        collab.feed = feed_lists(dataclasses.replace(bundle, collab=collab), k,
                                 content_weight=content_weight, history_items=opts.history_items,
                                 history_decay=opts.history_decay, show_progress=show_progress)
        manifest["feed"] = {"k": k, "scoring": SCORING, "content_weight": content_weight,
                            "history_items": opts.history_items, "history_decay": opts.history_decay}
        laps.lap("feeds")
    path = write_user_tower(bundle, collab, manifest)
    laps.lap("write")
    return TrainReport(
        path=path, parent=bundle.version, users=len(user_items.user_ids), events=len(interactions),
        pairs=int(user_items.matrix.nnz), items_trained=int(trained.sum()),
        items_projected=int((state == PROJECTED).sum()), items_without=int((state == 0).sum()),
        recall=recall, content_weight=content_weight, choice=choice, fit_seconds=model.fit_seconds_,
        seconds=time.perf_counter() - started, ranker=manifest["ranker"],
        phases=laps.seconds,
    )


def _fit_ranker(bundle: Bundle, interactions: pd.DataFrame, user_items, settings: Settings,
                show_progress: bool) -> tuple:
    """The learned ranker (with each trained user's ranked feed of ``index.precompute_k``) and
    what the manifest says of it; without event times, or with too few events
    (``rank.min_groups``), no ranker and the reason."""
    if not settings.rank.enabled:
        return None, {"skipped": "rank.enabled is false"}
    if S.TIMESTAMP not in interactions or interactions[S.TIMESTAMP].isna().any():
        return None, {"skipped": "the ranker learns from later events: every event needs a timestamp"}
    log = EventLog.from_frame(interactions, bundle.item_ids, settings.collab.event_weights)
    facts = ItemFacts.from_items(bundle.items)
    try:
        ranker = Ranker.fit(log, facts, bundle, settings=settings.rank, seed=settings.seed)
    except DataError as exc:
        return None, {"skipped": f"{exc.message}; no ranker in this bundle"}
    files = ranker.to_files(log, user_items.user_ids)
    k = settings.index.precompute_k
    if k:  # each trained user's ranked feed, ranked over the state the server will build
        served, served_log = Ranker.from_files(files, user_items.user_ids, len(bundle.item_ids))
        feed = served.lists(ShopState(served_log, facts), bundle, k, show_progress=show_progress)
        files = dataclasses.replace(files, feed=feed, config={**files.config, "feed": {"k": k}})
    return files, ranker.report


def _mips_recall(index: AnnIndex, item_factors: np.ndarray, user_factors: np.ndarray, *,
                 k: int = 10, sample: int = 200, seed: int = 0) -> float:
    """Recall@k of the inner-product index against exact search, for sampled users, the way the
    service asks it: :func:`~recsys.index.annoy.candidates_for` ``k`` candidates re-scored exactly."""

    if len(index) <= k or sample <= 0 or len(user_factors) == 0:
        return 1.0
    rng = np.random.default_rng(seed)
    users = rng.choice(len(user_factors), size=min(sample, len(user_factors)), replace=False)
    indexed = item_factors[index.rows]
    hits = 0
    for u in users:
        exact = set(index.rows[np.argpartition(-(indexed @ user_factors[u]), k)[:k]].tolist())
        candidates, _ = index.query(augment_query(user_factors[u]), n=candidates_for(k))
        approx = candidates[np.argsort(-(item_factors[candidates] @ user_factors[u]))[:k]]
        hits += len(exact & set(approx.tolist()))
    return hits / (k * len(users))
