"""Similar-items quality on real catalog photos: how often an item's 10 nearest neighbours share
its category (top, middle and leaf level) and its colour, for image, text and tabular alone and
the default weights, against chance; the default weights chosen on a validation half of the
queries; and what the colour histogram adds to the image block.

Build a bundle from a real catalog first, e.g. a 5,000-item sample of fashion-products:

    .venv/bin/recsys build --catalog SAMPLE.csv --image-root ../shared/data/fashion-products --out models/fp
    .venv/bin/python benchmarks/quality_real_photos.py --bundle models/fp

Writes benchmarks/results/quality_real_photos.json (``--tag T``: ``quality_real_photos_T.json``)
and prints the tables.
"""
from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_results  # noqa: E402

from recsys.serve import Recommender  # noqa: E402
from recsys.towers._colour import PALETTE  # noqa: E402

K = 10
ATTRIBUTES = ("top", "middle", "leaf", "colour")


def attributes(items) -> dict[str, np.ndarray]:
    parts = items["category"].fillna("").str.split("/")
    return {"top": parts.str[:1].str.join("/").to_numpy(), "middle": parts.str[:2].str.join("/").to_numpy(),
            "leaf": items["category"].fillna("").to_numpy(), "colour": items["colour"].fillna("").to_numpy()}


def chance(values: np.ndarray) -> float:
    """The probability that a random other item shares the value (sum of squared shares)."""
    _, counts = np.unique(values, return_counts=True)
    return float(((counts / counts.sum()) ** 2).sum())


def agreement(neighbours: list[np.ndarray], queries: np.ndarray, attrs: dict) -> dict[str, float]:
    return {a: float(np.mean([np.mean(attrs[a][n] == attrs[a][q]) for q, n in zip(queries, neighbours)]))
            for a in ATTRIBUTES}


def served(rec: Recommender, queries: np.ndarray, weights: dict | None) -> list[np.ndarray]:
    """The 10 similar items the service answers, as rows."""
    ids = rec.bundle.item_ids
    return [ids.rows([s.item_id for s in rec.similar_items(str(ids.ids[q]), k=K, weights=weights)])
            for q in queries]


def exact(vectors: np.ndarray, queries: np.ndarray) -> list[np.ndarray]:
    scores = vectors[queries] @ vectors.T
    scores[np.arange(len(queries)), queries] = -np.inf
    return list(np.argsort(-scores, axis=1)[:, :K])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", required=True, type=Path)
    parser.add_argument("--queries", type=int, default=2000, help="query items (half validation, half test)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tag", help="writes quality_real_photos_TAG.json")
    args = parser.parse_args()

    rec = Recommender.from_bundle(args.bundle)
    bundle = rec.bundle
    attrs = attributes(bundle.items)
    has_all = np.all([b.mask for b in bundle.vectors.blocks.values()], axis=0)
    queries = np.random.default_rng(args.seed).permutation(np.flatnonzero(has_all))[:args.queries]
    validation, test = queries[: len(queries) // 2], queries[len(queries) // 2:]
    base = {a: chance(attrs[a]) for a in ATTRIBUTES}

    def objective(result: dict) -> float:  # same kind and same colour, what a shopper expects
        return (result["leaf"] + result["colour"]) / 2

    grid = [dict(zip(("image", "text", "tabular"), w)) for w in itertools.product(np.arange(0, 1.01, 0.2), repeat=3)
            if abs(sum(w) - 1) < 1e-6]
    searched = []
    for weights in grid:
        weights = {m: round(float(w), 1) for m, w in weights.items() if w > 0}
        searched.append((objective(agreement(served(rec, validation, weights), validation, attrs)), weights))
        print(f"validation {weights}: {searched[-1][0]:.3f}", flush=True)
    best = max(searched, key=lambda x: x[0])[1]

    configs = {"image only": {"image": 1.0}, "text only": {"text": 1.0}, "tabular only": {"tabular": 1.0},
               f"bundle defaults {bundle.vectors.weights}": None, f"chosen on validation {best}": best}
    table = {name: agreement(served(rec, test, w), test, attrs) for name, w in configs.items()}

    image = np.asarray(bundle.vectors.blocks["image"].vectors, dtype=np.float32)
    n_palette = len(PALETTE)
    backbone = image[:, :-n_palette] / np.maximum(np.linalg.norm(image[:, :-n_palette], axis=1, keepdims=True), 1e-12)
    colour = {"image block (backbone + colour histogram)": agreement(exact(image, test), test, attrs),
              "backbone only (no colour histogram)": agreement(exact(backbone, test), test, attrs)}

    print(f"\n{len(bundle.item_ids):,} items, {len(test)} test queries, top {K}: share of neighbours that "
          "share the query's ...\n")
    print("| weights | top | middle | leaf | colour |\n|---|---|---|---|---|")
    print("| chance | " + " | ".join(f"{base[a]:.3f}" for a in ATTRIBUTES) + " |")
    for name, result in {**table, **colour}.items():
        print(f"| {name} | " + " | ".join(f"{result[a]:.3f}" for a in ATTRIBUTES) + " |")
    write_results("quality_real_photos", {
        "bundle": str(bundle.path), "items": len(bundle.item_ids), "queries": {"validation": len(validation),
                                                                             "test": len(test)},
        "k": K, "chance": base, "validation": [{"weights": w, "objective": o} for o, w in searched],
        "chosen": best, "test": table, "colour_histogram": colour}, args.tag)


if __name__ == "__main__":
    main()
