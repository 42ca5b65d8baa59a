"""The ranker's choices, made on hm-week's validation cut and never on its test days.

The evaluation of docs/evaluation/README.md trains on 09-16..20 and tests on 09-21..22. This
benchmark cuts the training part again: it trains on 09-16..19 and scores 09-20, for the customers
who bought before (the main test) and for those who had not (newcomers). It compares, user by
user with paired bootstrap intervals:

- the ranker with its default sources against the ranker with the user tower (``als``) added;
- for newcomers, the ranker ordering the best sellers against the popular list and recent best
  sellers (what a ranked bundle serves a visitor with no history).

    python benchmarks/quality_ranker_validation.py [--catalog ...] [--interactions ...]

Writes ``benchmarks/results/quality_ranker_validation.json``.
"""
from __future__ import annotations

import numpy as np
from _common import validation_cut, validation_cut_parser, write_results

from recsys.evaluation import EvalData, evaluate
from recsys.evaluation.metrics import paired_gain
from recsys.evaluation.ranking import RankerModel

METRICS = ("ndcg@10", "map@12", "recall@12", "ndcg_new@10", "map_new@12")
NEWCOMER_METRICS = ("ndcg_newcomers@10", "map_newcomers@12", "recall_newcomers@12")


def _gain(report_a, name_a, report_b, name_b, metric, newcomers=False) -> dict:
    """``name_a``'s mean, ``name_b``'s, and the relative gain with its 95% paired interval."""
    frames = (report_a.newcomers if newcomers else report_a.per_user)[name_a], \
        (report_b.newcomers if newcomers else report_b.per_user)[name_b]
    a, b = frames[0][metric].to_numpy(), frames[1][metric].to_numpy()
    ok = np.isfinite(a) & np.isfinite(b) & frames[0]["has_truth"].to_numpy()
    gain, low, high = paired_gain(a[ok], b[ok])
    return {"a": float(a[ok].mean()), "b": float(b[ok].mean()), "gain": gain, "low": low, "high": high,
            "users": int(ok.sum())}


def main() -> None:
    args = validation_cut_parser(__doc__).parse_args()
    settings, outer, cut = validation_cut(args)
    inner = EvalData.build(outer.bundle, cut, settings)
    print(f"validation cut: {len(inner.users):,} customers with history, "
          f"{inner.split.newcomers['user_id'].nunique():,} newcomers")
    plain = evaluate(inner, ["popular", "recent-popular", "ranker"], ks=(10, 12))
    sources = {**settings.rank.sources, "als": 50}  # model_copy does not validate: every source named
    with_als = settings.model_copy(update={"rank": settings.rank.model_copy(update={"sources": sources})})
    als = evaluate(EvalData.build(inner.bundle, inner.split, with_als), [RankerModel()], ks=(10, 12))
    results = {
        "split": {"train_until": args.inner, "scored_until": args.outer, "users": len(inner.users),
                  "newcomers": int(inner.split.newcomers["user_id"].nunique())},
        "als_source": {m: _gain(als, "ranker", plain, "ranker", m) for m in METRICS},
        "newcomers": {base_name: {m: _gain(plain, "ranker", plain, base_name, m, newcomers=True)
                                  for m in NEWCOMER_METRICS} for base_name in ("popular", "recent-popular")},
        "fit_seconds": {"ranker": float(plain.metrics.loc["ranker", "fit_seconds"]),
                        "ranker with als": float(als.metrics.loc["ranker", "fit_seconds"])},
    }
    for metric, row in results["als_source"].items():
        print(f"ranker + als against ranker, {metric}: {row['a']:.4f} vs {row['b']:.4f}, "
              f"{row['gain']:+.1%} [{row['low']:+.1%}, {row['high']:+.1%}]")
    for name, rows in results["newcomers"].items():
        for metric, row in rows.items():
            print(f"newcomers, ranker against {name}, {metric}: {row['a']:.4f} vs {row['b']:.4f}, "
                  f"{row['gain']:+.1%} [{row['low']:+.1%}, {row['high']:+.1%}]")
    write_results("quality_ranker_validation", results)


if __name__ == "__main__":
    main()
