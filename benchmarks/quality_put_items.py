"""Items put through the API in feeds, on real purchases: do they reach the users who buy them?

The cold-items split of ``recsys evaluate`` (20% of the bought articles get no training event;
the test is every purchase of them), served three ways to the test users the model knows:

* the held articles are in the bundle, cold: placed by the training's content map (the
  reference, what ``recsys evaluate --split cold-items`` measures for the hybrid);
* the held articles are not in the bundle, and put afterwards: embedded by the bundle's own
  encoders (:class:`~recsys.serve.embedder.ItemEmbedder`, the path of ``PUT /v1/items``) and
  placed by the content map the training kept;
* the same bundle with nothing put: the held articles cannot be recommended (the floor).

    .venv/bin/python benchmarks/quality_put_items.py --catalog ../shared/data/hm-sample/catalog.csv \\
        --interactions ../shared/data/hm-sample/interactions.csv

Builds two bundles under ``--work`` (the embedding cache makes the second cheap), writes
benchmarks/results/quality_put_items.json and prints the table.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_results  # noqa: E402

from recsys.bundle import read_bundle  # noqa: E402
from recsys.data import load_catalog, load_interactions  # noqa: E402
from recsys.data import schema as S  # noqa: E402
from recsys.evaluation.metrics import ndcg_at_k, recall_at_k  # noqa: E402
from recsys.evaluation.splits import cold_item_split  # noqa: E402
from recsys.pipeline.build import build_item_bundle  # noqa: E402
from recsys.pipeline.train import train_user_tower  # noqa: E402
from recsys.serve import Recommender  # noqa: E402
from recsys.serve.changes import ITEM_FIELDS, ItemChanges, make_entry  # noqa: E402
from recsys.serve.embedder import ItemEmbedder  # noqa: E402
from recsys.serve.rows import plain_value  # noqa: E402
from recsys.settings import load_settings  # noqa: E402
from recsys.towers import TowerOutput  # noqa: E402

K = 20


def trained(catalog, train, settings, out: Path):
    """A bundle of ``catalog`` with its user tower trained on ``train``."""
    built = build_item_bundle(catalog, settings, out, source=str(out))
    return read_bundle(train_user_tower(read_bundle(built.path), train, settings).path)


def put(bundle, items) -> ItemChanges:
    """``items`` put into ``bundle`` as ``PUT /v1/items`` puts them: each item's attributes,
    embedded by the bundle's own encoders."""
    outputs = ItemEmbedder(bundle).embed(items)
    entries = {}
    for i, (_, row) in enumerate(tqdm(items.iterrows(), total=len(items), desc="put items")):
        attributes = {f: plain_value(row[f]) for f in ITEM_FIELDS if f in row.index}
        entries[row[S.ITEM_ID]] = make_entry(attributes, {m: TowerOutput(o.vectors[i:i + 1], o.mask[i:i + 1])
                                                          for m, o in outputs.items()})
    return ItemChanges.build(bundle, gen=1, entries=entries)


def feeds(recommender: Recommender, users: list[str]) -> list[list[str]]:
    return [[s.item_id for s in recommender.recommend(u, K).items] for u in tqdm(users, desc="feeds")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--catalog", required=True)
    parser.add_argument("--interactions", required=True)
    parser.add_argument("--work", type=Path, default=Path("models"), help="where the two bundles are built")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tag", help="writes quality_put_items_TAG.json")
    args = parser.parse_args()

    settings = load_settings()
    catalog = load_catalog(args.catalog, seed=args.seed, state_dir=settings.state_dir)
    events = load_interactions(args.interactions, catalog=catalog, seed=args.seed)
    split = cold_item_split(events, seed=args.seed)
    held = catalog[S.ITEM_ID].isin(split.cold_items)

    with_cold = Recommender(trained(catalog, split.train, settings, args.work / "put-items-all"))
    without = Recommender(trained(catalog[~held], split.train, settings, args.work / "put-items-without"))
    changes = put(without.bundle, catalog[held].drop(columns=[c for c in catalog.columns
                                                              if c not in (S.ITEM_ID, *ITEM_FIELDS)]))
    known = set(with_cold.bundle.collab.user_ids.ids.tolist())
    test = split.test[split.test[S.USER_ID].isin(known)]
    users = sorted(test[S.USER_ID].unique())
    relevant = [set(g) for _, g in test.groupby(S.USER_ID)[S.ITEM_ID]]

    ways = {"held articles in the bundle, cold (reference)": with_cold,
            "held articles put after the training": without.with_changes(changes),
            "held articles not in the bundle, nothing put": without}
    table = {}
    for name, recommender in ways.items():
        ranked = feeds(recommender, users)
        table[name] = {"ndcg@10": float(np.mean(ndcg_at_k(ranked, relevant, 10))),
                       f"recall@{K}": float(np.mean(recall_at_k(ranked, relevant, K))),
                       "held in the feeds": float(np.mean([len(set(r) & split.cold_items) / K for r in ranked]))}
    print(f"\n{len(split.cold_items):,} held articles ({len(changes):,} put), {len(test):,} test purchases "
          f"by {len(users):,} trained users, feeds of {K}, bought items left out\n")
    print(f"| | NDCG@10 | Recall@{K} | share of the feed that is held articles |\n|---|---|---|---|")
    for name, row in table.items():
        print(f"| {name} | " + " | ".join(f"{v:.4f}" for v in row.values()) + " |")
    write_results("quality_put_items", {"catalog": args.catalog, "interactions": args.interactions,
                                        "held": len(split.cold_items), "put": len(changes),
                                        "test_events": len(test), "users": len(users), "k": K,
                                        "table": table}, args.tag)


if __name__ == "__main__":
    main()
