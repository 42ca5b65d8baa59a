"""Text search for "{colour} {product type}" ("dark blue trousers"), as a shopper types it: how
many of the 10 results have that colour and that type, per search mode, against chance.

Every (colour, type) pair that at least ``--min-items`` items of the catalog have becomes one
query; the type is the last part of the category path (``ladieswear/garment lower body/trousers``
gives "trousers"). A result is a hit on colour when its colour attribute is the query's, on type
when its category's last part is, and on both when both are. Chance is the share of the catalog
with the query's colour and type.

    .venv/bin/python benchmarks/quality_colour_queries.py --bundle DIR [--tag T]

Writes benchmarks/results/quality_colour_queries.json (``--tag T``: ``quality_colour_queries_T.json``).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_results  # noqa: E402

from recsys.serve import Recommender  # noqa: E402
from recsys.serve.embedder import ItemEmbedder  # noqa: E402

K = 10


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", required=True, type=Path)
    parser.add_argument("--min-items", type=int, default=20, help="items a (colour, type) pair needs to be asked")
    parser.add_argument("--tag", help="writes quality_colour_queries_TAG.json")
    args = parser.parse_args()

    rec = Recommender.from_bundle(args.bundle)
    items = rec.bundle.items.set_index("item_id")
    colour = items["colour"].fillna("").str.lower()
    kind = items["category"].fillna("").str.split("/").str[-1].str.lower()
    pairs = pd.DataFrame({"colour": colour, "kind": kind})
    counts = pairs[(pairs.colour != "") & (pairs.kind != "")].value_counts()
    asked = counts[counts >= args.min_items]
    queries = [f"{c} {t}" for c, t in asked.index]
    vectors = ItemEmbedder(rec.bundle).embed_queries(queries)
    modes = ["text", "image", "both"] if rec.bundle.joint is not None else ["text"]
    table = {}
    for mode in modes:
        hits = {"colour": [], "type": [], "both": []}
        for (c, t), vector in zip(asked.index, vectors):
            found = [s.item_id for s in rec.search(vector, k=K, mode=mode).items]
            same_colour, same_kind = (colour[found] == c).to_numpy(), (kind[found] == t).to_numpy()
            hits["colour"].append(same_colour.mean())
            hits["type"].append(same_kind.mean())
            hits["both"].append((same_colour & same_kind).mean())
        table[mode] = {name: round(float(np.mean(values)), 3) for name, values in hits.items()}
    chance = round(float((asked / len(items)).mean()), 4)

    print(f"{len(queries)} queries such as {queries[0]!r}, {queries[-1]!r}; share of the top {K} with ...\n")
    print("| mode | the colour | the type | both |\n|---|---|---|---|")
    for mode, row in table.items():
        print(f"| {mode} | {row['colour']:.3f} | {row['type']:.3f} | {row['both']:.3f} |")
    print(f"| chance (both) | | | {chance:.4f} |")
    write_results("quality_colour_queries", {
        "bundle": str(rec.bundle.path), "text_encoder": rec.bundle.manifest["encoders"].get("text"),
        "queries": len(queries), "min_items": args.min_items, "k": K, "chance_both": chance, "modes": table}, args.tag)


if __name__ == "__main__":
    main()
