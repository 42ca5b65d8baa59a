"""Feeds and similar items per second with put items, against the same bundle with nothing put.

Uses the bundle ``quality_put_items.py`` builds without the held hm-sample articles, puts those
855 articles (the PUT path's encoders), and times 400 trained users' feeds and 400 items' similar
items in this process, twice each, alternating. Run it from two checkouts one after the other to
compare code side by side (the machine's speed drifts):

    .venv/bin/python benchmarks/quality_put_items.py --catalog ../shared/data/hm-sample/catalog.csv \\
        --interactions ../shared/data/hm-sample/interactions.csv   # builds models/put-items-without
    .venv/bin/python benchmarks/bench_put_items.py --catalog ../shared/data/hm-sample/catalog.csv \\
        --interactions ../shared/data/hm-sample/interactions.csv
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from quality_put_items import put  # noqa: E402

from recsys.bundle import read_bundle  # noqa: E402
from recsys.data import load_catalog, load_interactions  # noqa: E402
from recsys.data import schema as S  # noqa: E402
from recsys.evaluation.splits import cold_item_split  # noqa: E402
from recsys.serve import Recommender  # noqa: E402
from recsys.serve.changes import ITEM_FIELDS  # noqa: E402


def rate(fn, ids: list[str]) -> float:
    fn(ids[0])  # what the first request pays once
    start = time.perf_counter()
    for i in ids:
        fn(i)
    return len(ids) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--catalog", required=True)
    parser.add_argument("--interactions", required=True)
    parser.add_argument("--bundle", type=Path, default=Path("models/put-items-without"))
    parser.add_argument("--n", type=int, default=400)
    args = parser.parse_args()

    catalog = load_catalog(args.catalog)
    split = cold_item_split(load_interactions(args.interactions, catalog=catalog))
    held = catalog[catalog[S.ITEM_ID].isin(split.cold_items)]
    bundle = read_bundle(args.bundle)
    without = Recommender(bundle)
    with_put = without.with_changes(put(bundle, held[[S.ITEM_ID, *[f for f in ITEM_FIELDS if f in held]]]))
    users = [str(u) for u in bundle.collab.user_ids.ids[:args.n]]
    items = [str(i) for i in bundle.item_ids.ids[:args.n]]
    for _ in range(2):
        for name, rec in [("nothing put", without), (f"{len(held)} put", with_put)]:
            print(f"{name}: {rate(lambda i, r=rec: r.similar_items(i, 10), items):,.0f} similar items/s, "
                  f"{rate(lambda u, r=rec: r.recommend(u, 20), users):,.0f} feeds/s", flush=True)


if __name__ == "__main__":
    main()
