"""A computed ranked feed in the process: `Recommender.recommend` for trained users who clicked
since training (so that no precomputed feed answers), with the taste source scanning the reduced
space (as served) and every item in all dimensions (as before), side by side.

Each round asks 300 users' feeds of 20 with the reduced scan, then 300 other users' with the full
scan, one thread (as a server worker); five rounds, medians of the per-round percentiles. It also
reports how much of the full scan's best 50 the reduced one proposes, over 2,000 trained users'
histories, how often a feed was ranked more than once (dedupe asking for more), and the median
time of each stage of a feed (each source, the features, LightGBM) over 400 more users.

    RECSYS_RANK__LABEL_DAYS=1 recsys train --bundle models/hm-week \
        --interactions ../shared/data/hm-week/interactions.csv
    python benchmarks/bench_ranked_feed.py models/hm-week

Writes benchmarks/results/bench_ranked_feed.json.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_results  # noqa: E402

from recsys.bundle import read_bundle  # noqa: E402
from recsys.rank.sources import Audience  # noqa: E402
from recsys.serve import Recommender  # noqa: E402

ROUNDS, USERS, K = 5, 300, 20


def stage_times(recommender: Recommender, ranked, users: list[str], items: list[str]) -> dict:
    """The median milliseconds of each stage of a computed feed, over ``users``' feeds of ``K``."""
    import recsys.rank.ranker as ranker_module

    spent: dict[str, list[float]] = {}

    def timed(name: str, fn):
        def run(*a, **kw):
            start = time.perf_counter()
            out = fn(*a, **kw)
            spent.setdefault(name, []).append(time.perf_counter() - start)
            return out
        return run

    features = ranker_module.features
    for source in ranked.sources:
        source.propose = timed(f"source {source.name}", source.propose)
    ranker_module.features = timed("features", features)
    ranked.ranker._predict = timed("LightGBM", ranked.ranker._predict)
    try:
        for n, user in enumerate(users):
            timed("the whole feed", recommender.recommend)(user, K, recent_items=[items[(3 * n) % len(items)]])
    finally:
        ranker_module.features = features
        del ranked.ranker._predict
        for source in ranked.sources:
            del source.propose
    return {name: round(float(np.median(v)) * 1e3, 2) for name, v in spent.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundle")
    args = parser.parse_args()
    bundle = read_bundle(args.bundle)
    recommender = Recommender(bundle)
    ranked = recommender._feeds.ranked
    if ranked is None:
        sys.exit(f"no ranker in {bundle.path}")
    taste = next(s for s in ranked.sources if s.name == "taste")
    reduced = taste.reduced
    if reduced is None:
        sys.exit("the taste source scans these vectors as they are: nothing to compare")
    users = [str(u) for u in bundle.collab.user_ids.ids]
    items = [str(i) for i in bundle.item_ids.ids]
    rankings = []
    real_rank = ranked._rank

    def counted(*a, **kw):
        rankings.append(1)
        return real_rank(*a, **kw)

    ranked._rank = counted
    times: dict[str, list[list[float]]] = {"reduced": [], "full": []}
    with threadpool_limits(1):
        recommender.recommend(users[0], K, recent_items=[items[0]])  # warm
        for r in range(ROUNDS):
            for k, name in enumerate(("reduced", "full")):
                taste.reduced = reduced if name == "reduced" else None
                start = (2 * r + k) * USERS + 1
                spent = []
                rankings.clear()
                for n, user in enumerate(users[start:start + USERS]):
                    t = time.perf_counter()
                    found = recommender.recommend(user, K, recent_items=[items[(7 * n + r) % len(items)]])
                    spent.append(time.perf_counter() - t)
                    assert found.strategy == "ranked", found.strategy
                times[name].append(spent)
                print(f"round {r + 1} {name:8s} p50 {np.percentile(spent, 50) * 1e3:.1f} ms "
                      f"p99 {np.percentile(spent, 99) * 1e3:.1f} ms, rankings per feed {len(rankings) / USERS:.2f}",
                      flush=True)
        ranked._rank, taste.reduced = real_rank, reduced
        stages = stage_times(recommender, ranked, users[-400:], items)
        audience = Audience.of(ranked.state, np.arange(2000))
        taste.reduced, few, taste.few = reduced, taste.few, 10**9  # as if each user asked alone
        fast = taste.propose(ranked.state, audience)
        taste.reduced, taste.few = None, few
        full = taste.propose(ranked.state, audience)
        taste.reduced = reduced
    found = [len(set(fast[u].indices) & set(full[u].indices)) / full[u].nnz
             for u in range(full.shape[0]) if full[u].nnz]

    def summary(runs: list[list[float]]) -> dict:
        per_round = {q: [float(np.percentile(run, q) * 1e3) for run in runs] for q in (50, 90, 99)}
        return {f"p{q}_ms": round(float(np.median(v)), 2) for q, v in per_round.items()} | {
            f"p{q}_ms_rounds": [round(min(v), 2), round(max(v), 2)] for q, v in per_round.items()}

    results = {"config": {"bundle": str(bundle.path), "items": len(items), "dimensions": int(taste.vectors.shape[1]),
                          "reduced_dimensions": int(reduced.shape[1]), "pool": taste.pool * taste.n,
                          "rounds": ROUNDS, "users_per_round": USERS, "k": K},
               "reduced scan (served)": summary(times["reduced"]), "full scan": summary(times["full"]),
               "stages of a feed, median ms (reduced scan)": stages,
               "share of the full scan's best 50 proposed": round(float(np.mean(found)), 4),
               "users compared": len(found)}
    print(results)
    write_results("bench_ranked_feed", results)


if __name__ == "__main__":
    main()
