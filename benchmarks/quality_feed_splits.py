"""The hybrid feed on every split of both real data sets, per user, and against an earlier run.

A change to how feeds are scored has to hold for warm users, new users shown a few events and new
items, on a shop whose content says little (MovieLens) and one whose content says much (H&M). This
evaluates the hybrid on eight splits, writes each user's NDCG@10 to ``--out``, and with
``--against DIR`` (the same script run on another revision, e.g. in a ``git worktree``) prints the
paired difference per split with a 95% bootstrap interval over the users:

    git worktree add /tmp/before HEAD~1
    (cd /tmp/before && PYTHONPATH=. python benchmarks/quality_feed_splits.py --out /tmp/feeds-before)
    python benchmarks/quality_feed_splits.py --out /tmp/feeds-after --against /tmp/feeds-before \
        --before "HEAD~1: what it was"

The H&M item side is ``--hm-bundle`` (``recsys build --catalog ../shared/data/hm-sample/catalog.csv
--out models/hm-sample``); MovieLens's is built once under the state folder. Run one revision at
a time: the hybrid writes its trained versions beside the H&M bundle.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from recsys.evaluation.runner import evaluate, prepare
from recsys.finetune.knn import paired_gain
from recsys.settings import load_settings

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_results  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SPLITS = {
    "ml-temporal": ("ml", dict(split="temporal")),
    "ml-cold-users-5": ("ml", dict(split="cold-users", given=5, user_fraction=0.5)),
    "ml-cold-users-1": ("ml", dict(split="cold-users", given=1, user_fraction=0.5)),
    "ml-cold-items": ("ml", dict(split="cold-items")),
    "hm-temporal": ("hm", dict(split="temporal")),
    "hm-temporal-repeats": ("hm", dict(split="temporal", exclude_seen=False)),
    "hm-cold-users-5": ("hm", dict(split="cold-users", given=5, user_fraction=0.5)),
    "hm-cold-users-1": ("hm", dict(split="cold-users", given=1, user_fraction=0.5)),
    "hm-cold-items": ("hm", dict(split="cold-items")),
}


def per_user(name: str, hm_bundle: Path) -> pd.Series:
    """Each test user's NDCG@10 of the hybrid on split ``name``."""
    shop, options = SPLITS[name]
    options = dict(options)
    settings = load_settings(collab={"exclude_seen": options.pop("exclude_seen", True)})
    source = ({"data": f"movielens:{DATA / 'ml-latest-small'}"} if shop == "ml" else
              {"data": str(DATA / "hm-sample" / "interactions.csv"), "bundle": hm_bundle})
    data = prepare(show_progress=False, settings=settings, **source, **options)
    report = evaluate(data, ["hybrid"], ks=(10,), show_progress=False)
    scores = report.per_user["hybrid"].set_index("user_id")["ndcg@10"]
    scores.index = scores.index.astype(str)
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for the per-user figures")
    parser.add_argument("--against", type=Path, help="an earlier run's --out: print the paired differences")
    parser.add_argument("--before", default="", help="what the earlier run was (recorded in the results)")
    parser.add_argument("--hm-bundle", type=Path, default=Path("models/hm-sample").resolve())
    parser.add_argument("--splits", nargs="*", default=list(SPLITS), choices=list(SPLITS))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    print("| split | users | NDCG@10" + (" before | after | after - before (95% interval) |" if args.against else " |"))
    results = {}
    for name in args.splits:
        after = per_user(name, args.hm_bundle)
        after.to_csv(args.out / f"{name}.csv")
        results[name] = {"users": len(after), "ndcg@10": round(float(after.mean()), 4)}
        if args.against is None:
            print(f"| {name} | {len(after)} | {after.mean():.4f} |", flush=True)
            continue
        before = pd.read_csv(args.against / f"{name}.csv", dtype={"user_id": str}).set_index("user_id")["ndcg@10"]
        paired = before.reindex(after.index).to_numpy()  # NaN: a user the earlier run lacks
        gain = paired_gain(paired, after.to_numpy(), resamples=5000)
        results[name].update({"before": round(float(before.mean()), 4), "difference": gain["gain"],
                              "interval95": [gain["low"], gain["high"]]})
        print(f"| {name} | {int((~np.isnan(paired)).sum())} | {before.mean():.4f} | {after.mean():.4f} | "
              f"{gain['gain']:+.4f} ({gain['low']:+.4f} to {gain['high']:+.4f}) |", flush=True)
    write_results("quality_feed_splits", {"before": args.before or None, "splits": results})


if __name__ == "__main__":
    main()
