"""User tower: training time against implicit alone, and feed latency.

1. Training on ml-latest-small and on a 1M-interaction synthetic set. "recsys" is what
   ``recsys train`` spends on the model: interactions frame -> confidence matrix -> fit -> checks.
   "implicit" is ``AlternatingLeastSquares.fit`` on the already built confidence matrix, with the
   same factors, iterations, threads and seed. The full ``train_user_tower`` (projection, index,
   bundle write) on MovieLens is reported beside them.
2. Feed latency per user (p50, p99) on a trained synthetic shop of 3,000 items, with and without
   filters, through ``Recommender.recommend``.

Run from benchmarks/: ../.venv/bin/python bench_collab.py
"""
from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from _common import best_of, write_results
from threadpoolctl import threadpool_limits

from recsys.bundle import read_bundle
from recsys.collab.als import CollabModel, interaction_matrix
from recsys.data import load_catalog, load_interactions, validate_catalog, validate_interactions
from recsys.data.ids import IdMap
from recsys.data.synthetic import make_catalog, make_interactions
from recsys.pipeline.build import build_item_bundle, create_towers
from recsys.pipeline.train import train_user_tower
from recsys.serve import Recommender
from recsys.serve.filters import ItemFilter
from recsys.settings import load_settings

ROOT = Path(__file__).resolve().parents[1]
ML = ROOT.parent / "shared" / "data" / "ml-latest-small"


def training(events: pd.DataFrame, item_ids: IdMap, settings, repeat: int) -> dict:
    opts = settings.collab

    def ours():
        matrix = interaction_matrix(events, item_ids, event_weights=opts.event_weights).matrix
        CollabModel(factors=opts.factors, regularization=opts.regularization, iterations=opts.iterations,
                    alpha=opts.alpha, seed=0).fit(matrix, show_progress=False)

    from implicit.als import AlternatingLeastSquares

    model = CollabModel(factors=opts.factors, regularization=opts.regularization,
                        iterations=opts.iterations, alpha=opts.alpha, seed=0)
    reg, iterations = model.regularization, model.iterations
    strengths = interaction_matrix(events, item_ids, event_weights=opts.event_weights).matrix
    confidence = strengths.copy()
    confidence.data = model.confidence(confidence.data)

    def bare():
        with threadpool_limits(1, "blas"):
            AlternatingLeastSquares(factors=opts.factors, regularization=reg,
                                    iterations=iterations, random_state=0, use_gpu=False
                                    ).fit(confidence, show_progress=False)

    t_ours, t_bare = best_of(ours, repeat), best_of(bare, repeat)
    result = {"events": len(events), "users": strengths.shape[0], "items": strengths.shape[1],
              "pairs": int(strengths.nnz), "recsys_s": round(t_ours, 3), "implicit_s": round(t_bare, 3),
              "overhead": round(t_ours / t_bare - 1, 3)}
    print(f"  {result}", flush=True)
    return result


def latency(feed, users: list[str], repeat: int = 2) -> dict:
    """p50/p99 of ``feed(user)`` in milliseconds over ``users``, ``repeat`` times each."""
    times = []
    for _ in range(repeat):
        for user in users:
            start = time.perf_counter()
            feed(user)
            times.append(time.perf_counter() - start)
    ms = np.array(times) * 1000
    return {"p50_ms": round(float(np.percentile(ms, 50)), 3), "p99_ms": round(float(np.percentile(ms, 99)), 3),
            "queries": len(ms)}


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-collab-"))
    settings = load_settings(state_dir=ROOT / "state", models_dir=work)
    results: dict = {"settings": settings.collab.model_dump(mode="json")}
    try:
        print("training on ml-latest-small", flush=True)
        catalog = load_catalog(f"movielens:{ML}")
        events = load_interactions(f"movielens:{ML}", catalog=catalog)
        results["train_movielens"] = training(events, IdMap(catalog["item_id"]), settings, repeat=5)

        print("training on 1M synthetic interactions", flush=True)
        shop = validate_catalog(make_catalog(20_000, seed=1), source="synthetic:20000")
        big, _ = make_interactions(shop, 50_000, seed=1, items_per_user=12)
        big = validate_interactions(big, source="synthetic", item_ids=shop["item_id"])
        results["train_synthetic_1m"] = training(big, IdMap(shop["item_id"]), settings, repeat=2)

        print("full train_user_tower on ml-latest-small", flush=True)
        towers = create_towers(settings)
        towers.pop("image")
        report = build_item_bundle(catalog, settings, work / "ml", show_progress=False, towers=towers)
        ml_bundle = read_bundle(report.path)
        started = time.perf_counter()
        trained = train_user_tower(ml_bundle, events, settings, show_progress=False)
        results["train_user_tower_movielens_s"] = round(time.perf_counter() - started, 2)
        print(f"  {results['train_user_tower_movielens_s']} s (fit {trained.fit_seconds:.2f} s)", flush=True)

        print("feed latency", flush=True)
        market = validate_catalog(make_catalog(3000, seed=11), source="synthetic:3000")
        report = build_item_bundle(market, settings, work / "market", show_progress=False, towers=towers)
        market_events, users = make_interactions(market, 2000, seed=5, taste_strength=3.0)
        market_events = validate_interactions(market_events, source="synthetic", item_ids=market["item_id"])
        bundle = read_bundle(train_user_tower(read_bundle(report.path), market_events, settings,
                                              show_progress=False).path)
        ml_trained = read_bundle(trained.path)
        sample = users["user_id"].iloc[:500].tolist()
        cases = {"none": None, "category": ItemFilter.create(category="women"),
                 "category+price": ItemFilter.create(category="home", min_price=10, max_price=60)}
        feeds = {}
        for name, budget in (("default", settings.index.exact_budget), ("annoy", 0)):
            recommender = Recommender(bundle, content_weight=settings.collab.content_weight,
                                      exact_budget=budget)
            for case, item_filter in cases.items():
                feeds[f"shop3000/{name}/{case}"] = latency(
                    lambda u, r=recommender, f=item_filter: r.recommend(u, 20, filters=f), sample)
                print(f"  shop3000 {name:<8} filter={case:<15} {feeds[f'shop3000/{name}/{case}']}", flush=True)
        ml_users = ml_trained.collab.user_ids.ids[:500].tolist()
        recommender = Recommender(ml_trained, content_weight=settings.collab.content_weight)
        feeds["movielens/default/none"] = latency(lambda u: recommender.recommend(u, 20), ml_users)
        print(f"  movielens default  {feeds['movielens/default/none']}", flush=True)
        anonymous = Recommender(bundle, content_weight=settings.collab.content_weight)
        items = bundle.items["item_id"].iloc[:3].tolist()
        feeds["shop3000/anonymous-3-recent"] = latency(
            lambda _: anonymous.recommend(None, 20, recent_items=items), sample[:200])
        print(f"  anonymous (3 recent items, fold-in) {feeds['shop3000/anonymous-3-recent']}", flush=True)
        results["feed_latency"] = feeds
    finally:
        shutil.rmtree(work, ignore_errors=True)
    write_results("bench_collab", results)


if __name__ == "__main__":
    main()
