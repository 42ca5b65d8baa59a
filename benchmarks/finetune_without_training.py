"""Label-free changes to the image backbone's vectors that need no training, judged like
``recsys finetune`` judges a fine-tuned backbone: kNN@20 accuracy on the leaf category and the
colour of the same held-out photos, with the paired 95% interval of each gain over the ImageNet
weights' vectors as the image tower makes them.

* whitening: PCA learned on the unlabelled training photos' vectors (the photos fine-tuning
  would train on), keeping D dimensions, each scaled by its singular value to the power -P
  (P = 0: a rotation and a cut, P = 1: full whitening);
* pooling: generalised-mean pooling (p = 3) and max pooling of the last feature map (timm's
  ``forward_features``) instead of its mean, and the mean of a photo and its mirror image.

    python benchmarks/finetune_without_training.py --catalog ../shared/data/fashion-products/catalog.csv

Writes benchmarks/results/finetune_without_training.json and prints the table.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_results  # noqa: E402

from recsys.data import load_catalog  # noqa: E402
from recsys.data import schema as S  # noqa: E402
from recsys.data.images import open_image  # noqa: E402
from recsys.finetune.knn import accuracy, knn_hits, paired_gain  # noqa: E402
from recsys.finetune.train import _split  # noqa: E402  - the split `recsys finetune` judges on
from recsys.towers.image import ImageTower  # noqa: E402


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def pooled_variants(catalog, rows: np.ndarray, batch_size: int = 32) -> dict[str, np.ndarray]:
    """The backbone's vectors of ``rows`` pooled in several ways, in PyTorch fp32 at 224 pixels."""
    tower = ImageTower(colour_weight=0.0, runtime="torch", precision="fp32")
    net, transform = tower.net, tower.transform
    net.eval()
    out: dict[str, list] = {"mean (the tower's)": [], "generalised mean, p = 3": [], "max": [],
                            "mean of the photo and its mirror": []}
    sources = catalog[S.IMAGE].iloc[rows].tolist()
    with torch.inference_mode():
        for start in tqdm(range(0, len(sources), batch_size), desc="pooling", unit="batch"):
            x = torch.stack([transform(open_image(s).convert("RGB")) for s in sources[start:start + batch_size]])
            n = len(x)
            maps = net.forward_features(torch.cat([x, x.flip(3)]))
            own = maps[:n]
            out["mean (the tower's)"].append(own.mean((2, 3)))
            out["generalised mean, p = 3"].append(own.clamp(min=1e-6).pow(3).mean((2, 3)).pow(1 / 3))
            out["max"].append(own.amax((2, 3)))
            out["mean of the photo and its mirror"].append(maps.mean((2, 3)).view(2, n, -1).mean(0))
    return {name: torch.cat(parts).numpy() for name, parts in out.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--catalog", required=True)
    parser.add_argument("--eval-items", type=int, default=5000, help="as `recsys finetune --eval-items`")
    parser.add_argument("--max-items", type=int, default=8000, help="unlabelled training photos for the whitening")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    catalog = load_catalog(args.catalog)
    train, held, references = _split(catalog, args.eval_items, args.max_items, args.seed)
    judged = np.concatenate([held, references])
    labels = {column: catalog[column].iloc[judged].reset_index(drop=True) for column in (S.CATEGORY, S.COLOUR)}
    queries, refs = np.arange(len(held)), np.arange(len(held), len(judged))

    def judge(vectors: np.ndarray) -> dict[str, np.ndarray]:
        return {column: knn_hits(vectors, labels[column], queries, refs) for column in labels}

    tower = ImageTower(colour_weight=0.0)  # the backbone alone, as finetune judges it
    vectors = tower.encode(catalog.iloc[np.concatenate([judged, train])].reset_index(drop=True)).vectors
    own, unlabelled = vectors[:len(judged)], vectors[len(judged):]
    baseline = judge(own)
    runs = {"ImageNet weights, the image tower's vectors": own}
    mean = unlabelled.mean(0)
    _, singular, components = np.linalg.svd(unlabelled - mean, full_matrices=False)
    for dims in (256, 512, 1024):
        for power in (0.0, 0.5, 1.0):
            projection = components[:dims].T / singular[:dims] ** power
            runs[f"whitening, {dims} dimensions, P = {power:g}"] = unit((own - mean) @ projection)
    pooled = pooled_variants(catalog, judged)
    pooled_baseline = judge(pooled["mean (the tower's)"])

    results = {}
    print("| vectors | leaf category (gain, 95% interval) | colour (gain) |\n|---|---|---|")
    for name, hits, base in [*((n, judge(v), baseline) for n, v in runs.items()),
                             *((f"pooling: {n}", judge(v), pooled_baseline) for n, v in pooled.items())]:
        gains = {column: paired_gain(base[column], hits[column]) for column in labels}
        results[name] = {"knn": {column: accuracy(hits[column]) for column in labels}, "gain": gains}
        leaf, colour = gains[S.CATEGORY], gains[S.COLOUR]
        print(f"| {name} | {accuracy(hits[S.CATEGORY]):.3f} ({leaf['gain']:+.3f}, {leaf['low']:+.3f} to "
              f"{leaf['high']:+.3f}) | {accuracy(hits[S.COLOUR]):.3f} ({colour['gain']:+.3f}) |")
    write_results("finetune_without_training", {
        "catalog": args.catalog, "held_out": len(held), "references": len(references),
        "whitening_fitted_on": len(train), "image_tower": tower.describe(), "runs": results,
        "note": "pooling rows are judged against the mean pooling of the same PyTorch fp32 pass"})


if __name__ == "__main__":
    main()
