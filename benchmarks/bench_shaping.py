"""What shaping costs a read, in process: similar items and feeds of bench_api's synthetic shop
(10,000 items, 20,000 trained users) without shaping, with three stored rules (an excluded
category, a boosted tag, a pinned item), with diversity (MMR, 0.3), and with a cap of two items
per category. The cases run interleaved, ``ROUNDS`` times over the same 400 items and 400 users,
so each ratio to the plain read is measured side by side; medians of the rounds are reported.

    python benchmarks/bench_shaping.py   # writes benchmarks/results/bench_shaping.json
"""
from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from _common import write_results  # noqa: E402
from bench_api import build_bundle  # noqa: E402

ROUNDS = int(os.environ.get("ROUNDS", "5"))
READS = 400


def cases(bundle):
    from recsys.control import Rule, Shaping

    items = bundle.items
    category = items["category"].value_counts().index[0]
    tag = next(t.strip() for t in items["tags"] if t.strip()).split(";")[0].split("|")[0].strip()
    rules = tuple(Rule.model_validate({"id": f"r{i}", **spec}) for i, spec in enumerate([
        {"action": "exclude", "match": {"category": category}},
        {"action": "boost", "match": {"tag": tag}},
        {"action": "pin", "match": {"item_ids": [str(items["item_id"].iloc[-1])]}, "position": 2}], 1))
    return {"plain": (Shaping(), ()), "3 stored rules": (Shaping(), rules),
            "diversity 0.3": (Shaping(diversity=0.3), ()), "cap 2 per category": (Shaping(max_per_category=2), ())}


def main() -> None:
    from recsys.bundle import read_bundle
    from recsys.serve import Recommender
    from recsys.serve.changes import ItemChanges

    with tempfile.TemporaryDirectory() as tmp:
        bundle = read_bundle(build_bundle(Path(tmp)))
        base = Recommender(bundle)
        shapes = cases(bundle)
        recs = {name: base.with_changes(ItemChanges.build(bundle, gen=1, rules=rules)) if rules else base
                for name, (_, rules) in shapes.items()}
        rng = np.random.default_rng(0)
        item_ids = rng.choice(bundle.item_ids.ids, READS, replace=False).tolist()
        users = rng.choice(bundle.collab.user_ids.ids, READS, replace=False).tolist()
        reads = {"similar items (k=10)": lambda rec, shaping, i: rec.similar_items(item_ids[i], k=10, shaping=shaping),
                 "feed (k=20)": lambda rec, shaping, i: rec.recommend(users[i], k=20, shaping=shaping)}
        times = {(read, name): [] for read in reads for name in shapes}
        for call in reads.values():  # warm: lists, caches, the rules' matches
            for name, (shaping, _) in shapes.items():
                call(recs[name], shaping, 0)
        for _ in range(ROUNDS):
            for read, call in reads.items():
                for name, (shaping, _) in shapes.items():
                    spent = []
                    for i in range(READS):
                        start = time.perf_counter()
                        call(recs[name], shaping, i)
                        spent.append(time.perf_counter() - start)
                    times[(read, name)].append((np.median(spent) * 1e6, np.percentile(spent, 99) * 1e6))
        results = {}
        for read in reads:
            plain = times[(read, "plain")]
            for name in shapes:
                runs = times[(read, name)]
                ratios = [r[0] / p[0] for r, p in zip(runs, plain)]
                results.setdefault(read, {})[name] = {
                    "p50_us": round(statistics.median(r[0] for r in runs), 1),
                    "p99_us": round(statistics.median(r[1] for r in runs), 1),
                    "p50_ratio_to_plain": round(statistics.median(ratios), 2),
                    "p50_ratio_range": [round(min(ratios), 2), round(max(ratios), 2)]}
                print(f"{read:22s} {name:20s} p50 {results[read][name]['p50_us']:8.1f} us  "
                      f"p99 {results[read][name]['p99_us']:8.1f} us  x{results[read][name]['p50_ratio_to_plain']}")
    write_results("bench_shaping", {"rounds": ROUNDS, "reads_per_case": READS, "results": results})


if __name__ == "__main__":
    main()
