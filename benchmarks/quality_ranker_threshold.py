"""How many events a shop needs before its learned ranker beats the blend: ``rank.min_groups``,
chosen on hm-week's validation cut (its test days are never read).

The validation cut of ``quality_ranker_validation.py`` (train on 09-16..19, score 09-20, with
``label_days`` 1) is cut again into smaller shops: its customers are dealt at random into
``s`` shards of equal size, and each shard is a shop of its own, with only its own customers'
events (so its sales, co-purchases and training groups shrink together). In each shard the
ranker is trained with no threshold at all and scored against the blend (``hybrid``, what a
bundle without a ranker serves) on that shard's customers, and against "buy it again, then bought
together, then best sellers" (the best simple baseline on hm-week). The shards' customers are then pooled,
so that every customer of the cut is scored once per ``s``, and the gain comes with a 95% paired
bootstrap interval over all of them (at most ``--max-shops`` shards are scored per ``s``, so
the smallest shops pool fewer customers). A shard whose ranker cannot train at all (no validation
group) serves the blend, as the product does.

    python benchmarks/quality_ranker_threshold.py [--shards 1,16,64,256] [--max-shops 64]

Writes ``benchmarks/results/quality_ranker_threshold.json``: per ``s``, the training groups of the
shards' rankers and the pooled gains.
"""
from __future__ import annotations

import dataclasses
import time

import numpy as np
import pandas as pd
from _common import validation_cut, validation_cut_parser, write_results

from recsys.data import schema as S
from recsys.errors import DataError
from recsys.evaluation import EvalData, evaluate
from recsys.evaluation.metrics import paired_gain
from recsys.evaluation.models import HybridModel
from recsys.evaluation.ranking import RankerModel

METRICS = ("ndcg@10", "map@12", "recall@12", "ndcg_new@10")


class RankerOrBlend(RankerModel):
    """The ranker, or ``blend`` (fitted already, as the same evaluation's other model) where not
    even one validation group lets it train (its groups are then 0)."""

    def __init__(self, blend: HybridModel):
        self.blend = blend

    def fit(self, data: EvalData) -> None:
        try:
            super().fit(data)
            self.groups = self.ranker.report["train_groups"]
        except DataError:
            self.ranker, self.groups = None, 0

    def rank(self, data: EvalData, n: int) -> np.ndarray:
        return super().rank(data, n) if self.ranker is not None else self.blend.rank(data, n)


def shards(split, s: int, limit: int, seed: int = 0) -> list:
    """The first ``limit`` of ``split`` as ``s`` shops of their own: its users dealt at random into
    ``s`` parts, each with only its users' events (newcomers left out: this is about customers
    with history)."""
    users = sorted(set(split.train[S.USER_ID]) | set(split.test[S.USER_ID]))
    part = pd.Series(np.arange(len(users)) % s, index=np.random.default_rng(seed).permutation(users))
    train_part, test_part = split.train[S.USER_ID].map(part), split.test[S.USER_ID].map(part)
    return [dataclasses.replace(split, train=split.train[train_part == p], test=split.test[test_part == p],
                                newcomers=split.newcomers.iloc[:0]) for p in range(min(s, limit))]


def main() -> None:
    parser = validation_cut_parser(__doc__)
    parser.add_argument("--shards", default="1,16,64,256", help="shop sizes: the cut dealt into this many shops")
    parser.add_argument("--tag", default="", help="results file quality_ranker_threshold_<tag>.json")
    parser.add_argument("--max-shops", type=int, default=64, help="shops scored at most per size (the first ones)")
    args = parser.parse_args()
    settings, outer, inner = validation_cut(args, min_groups=1)
    results = {"split": {"train_until": args.inner, "scored_until": args.outer}, "shops": {}}
    for s in [int(x) for x in args.shards.split(",")]:
        started = time.perf_counter()
        frames, groups = {"hybrid": [], "repurchase-copurchase": [], "ranker": []}, []
        for shop in shards(inner, s, args.max_shops):
            data = EvalData.build(outer.bundle, shop, settings)
            blend = HybridModel()
            ranker = RankerOrBlend(blend)
            report = evaluate(data, [blend, "repurchase-copurchase", ranker], ks=(10, 12), show_progress=False)
            groups.append(ranker.groups)
            for name in frames:
                frames[name].append(report.per_user[name])
        pooled = {name: pd.concat(f, ignore_index=True) for name, f in frames.items()}
        ok = pooled["ranker"]["has_truth"].to_numpy()
        row = {"shops": s, "scored": len(groups), "customers": int(ok.sum()),
               "seconds": round(time.perf_counter() - started, 1),
               "train_groups": {"min": int(min(groups)), "median": float(np.median(groups)),
                                "max": int(max(groups))},
               "shops_without_ranker": int(sum(g == 0 for g in groups))}
        print(f"{s} shops ({row['customers']:,} customers, training groups per shop {row['train_groups']}):")
        for against in ("hybrid", "repurchase-copurchase"):
            row[f"against {against}"] = {}
            for metric in METRICS:
                a, b = pooled["ranker"][metric].to_numpy(), pooled[against][metric].to_numpy()
                both = ok & np.isfinite(a) & np.isfinite(b)
                gain, low, high = paired_gain(a[both], b[both])
                row[f"against {against}"][metric] = {"ranker": float(a[both].mean()), against: float(b[both].mean()),
                                                    "gain": gain, "low": low, "high": high}
                print(f"  {metric} ranker {a[both].mean():.4f}, {against} {b[both].mean():.4f}: "
                      f"{gain:+.1%} [{low:+.1%}, {high:+.1%}]", flush=True)
        results["shops"][str(s)] = row
        write_results("quality_ranker_threshold", results, args.tag)  # after each size: the small ones take long


if __name__ == "__main__":
    main()
