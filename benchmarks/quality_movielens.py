"""Feed quality on MovieLens ml-latest-small: most-popular vs raw implicit ALS vs our feed.

Per-user temporal hold-out (the last 20% of each user's ratings). Every rating is a relevant
item (implicit feedback: the user chose to watch it). Run from the repository root:

    .venv/bin/python benchmarks/quality_movielens.py [--data ../shared/data/ml-latest-small]

The first run builds the item side (text and tabular towers) into --work; later runs reuse it.
Writes benchmarks/results/quality_movielens.json.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_results  # noqa: E402

from recsys.bundle import read_bundle, resolve_bundle_path  # noqa: E402
from recsys.collab.als import CollabModel, interaction_matrix  # noqa: E402
from recsys.data import load_catalog, load_interactions  # noqa: E402
from recsys.data import schema as S  # noqa: E402
from recsys.evaluation import ndcg_at_k, recall_at_k, temporal_split  # noqa: E402
from recsys.pipeline.build import build_item_bundle, create_towers  # noqa: E402
from recsys.pipeline.train import train_user_tower  # noqa: E402
from recsys.serve import Recommender  # noqa: E402
from recsys.settings import load_settings  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def item_bundle(data: Path, work: Path, settings):
    try:
        path = resolve_bundle_path(work / "items")
        return read_bundle(path)
    except Exception:  # noqa: BLE001 - no usable bundle yet: build one
        catalog = load_catalog(f"movielens:{data}")
        towers = create_towers(settings)
        towers.pop("image")  # MovieLens has no images
        report = build_item_bundle(catalog, settings, work / "items", source=f"movielens:{data}",
                                   towers=towers)
        return read_bundle(report.path)


def popular_lists(train_matrix: sp.csr_matrix, users: np.ndarray, n: int) -> list[np.ndarray]:
    counts = np.bincount(train_matrix.indices, minlength=train_matrix.shape[1]).astype(np.float64)
    order = np.argsort(-counts, kind="stable")
    lists = []
    for u in users:
        seen = set(train_matrix.indices[train_matrix.indptr[u]:train_matrix.indptr[u + 1]].tolist())
        lists.append(np.array([i for i in order[: n + len(seen)] if i not in seen][:n]))
    return lists


def raw_als_lists(train_matrix: sp.csr_matrix, users: np.ndarray, n: int, factors: int, seed: int,
                  binary: bool, **options) -> list[np.ndarray]:
    from implicit.als import AlternatingLeastSquares

    matrix = train_matrix.copy()
    if binary:
        matrix.data = np.ones_like(matrix.data)
    with threadpool_limits(1, "blas"):
        model = AlternatingLeastSquares(factors=factors, random_state=seed, use_gpu=False, **options)
        model.fit(matrix, show_progress=False)
        ids, _ = model.recommend(users, matrix[users], N=n, filter_already_liked_items=True)
    return list(ids)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "ml-latest-small")
    parser.add_argument("--work", type=Path, default=ROOT / "state" / "eval" / "ml-latest-small")
    parser.add_argument("--test-fraction", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    settings = load_settings(state_dir=ROOT / "state", seed=args.seed)
    bundle = item_bundle(args.data, args.work, settings)
    events = load_interactions(f"movielens:{args.data}", catalog=bundle.items)
    split = temporal_split(events, test_fraction=args.test_fraction)
    train, test = split.train, split.test
    # the raw baselines get the plain rating matrix; ours builds its own from the same frame
    ratings = interaction_matrix(train, bundle.item_ids, event_weights={"rating": 1.0})
    test_users = sorted(set(test[S.USER_ID]))
    user_rows = ratings.user_ids.rows(test_users)
    relevant_rows = test.groupby(S.USER_ID)[S.ITEM_ID].agg(lambda s: set(bundle.item_ids.rows(s).tolist()))
    relevant = [relevant_rows[u] for u in test_users]
    factors = settings.collab.factors
    ks = (10, 20)
    n = max(ks)

    results: dict[str, dict] = {}

    def record(name: str, lists, seconds: float) -> None:
        lists = [list(map(int, x)) for x in lists]
        results[name] = {"ndcg@10": float(ndcg_at_k(lists, relevant, 10).mean()),
                         "recall@10": float(recall_at_k(lists, relevant, 10).mean()),
                         "ndcg@20": float(ndcg_at_k(lists, relevant, 20).mean()),
                         "recall@20": float(recall_at_k(lists, relevant, 20).mean()),
                         "seconds": round(seconds, 2)}
        print(f"{name:<44} ndcg@10 {results[name]['ndcg@10']:.4f}  recall@20 "
              f"{results[name]['recall@20']:.4f}  ({seconds:.1f} s)", flush=True)

    started = time.perf_counter()
    record("most popular", popular_lists(ratings.matrix, user_rows, n), time.perf_counter() - started)
    for binary in (False, True):
        started = time.perf_counter()
        lists = raw_als_lists(ratings.matrix, user_rows, n, factors, args.seed, binary)
        label = "binary" if binary else "ratings as confidence"
        record(f"raw implicit ALS, {factors} factors ({label})", lists, time.perf_counter() - started)
    # where the gain comes from: implicit with our confidence and regularisation, nothing else
    started = time.perf_counter()
    tuned = ratings.matrix.copy()
    tuned.data = 1.0 + settings.collab.alpha * tuned.data
    regularization = CollabModel().regularization if settings.collab.regularization is None \
        else settings.collab.regularization
    lists = raw_als_lists(tuned, user_rows, n, factors, args.seed, False, regularization=regularization)
    record(f"implicit ALS with our alpha {settings.collab.alpha:g} / regularization "
           f"{regularization:g}", lists, time.perf_counter() - started)

    started = time.perf_counter()
    report = train_user_tower(bundle, train, settings, source="ml-latest-small train split",
                              show_progress=False)
    trained = read_bundle(report.path)
    train_seconds = time.perf_counter() - started
    chosen = trained.collab.params["content_weight"]  # the setting, or what the training chose
    for weight in sorted({0.0, chosen}):
        started = time.perf_counter()
        recommender = Recommender.configured(trained, settings, content_weight=weight)
        lists = [trained.item_ids.rows([s.item_id for s in recommender.recommend(u, n).items])
                 for u in test_users]
        label = "our feed" + (" (content_weight 0: collaborative only)" if weight == 0 else
                              f" (content_weight {weight:g}, as the training chose it)")
        record(label, lists, train_seconds + time.perf_counter() - started)

    cold_test = int(sum(trained.collab.item_state[list(r)].tolist().count(2) for r in relevant))
    write_results("quality_movielens", {
        "data": str(args.data), "split": f"per-user temporal, last {args.test_fraction:.0%}",
        "train_events": len(train), "test_events": len(test), "test_users": len(test_users),
        "test_events_on_cold_items": cold_test, "collab_settings": settings.collab.model_dump(mode="json"),
        "results": results,
    })
    print("\n| model | NDCG@10 | Recall@20 |\n|---|---|---|")
    for name, row in results.items():
        print(f"| {name} | {row['ndcg@10']:.4f} | {row['recall@20']:.4f} |")


if __name__ == "__main__":
    main()
