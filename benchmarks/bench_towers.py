"""Image and text towers: each runtime against the bare fp32 PyTorch forward, side by side.

Image, on real catalog photos (fashion-products):
- the bare forward pass on tensors prepared beforehand, per runtime and precision: PyTorch fp32
  (the baseline), PyTorch bf16, OpenVINO fp32 and OpenVINO bf16 (bf16 only where the CPU has it
  natively: emulated, it is slower than fp32);
- the whole tower as a build runs it (decoding, the model's transform, the colour histogram, the
  forward pass), with the default settings, with 0 and 1 decoding threads;
- faithfulness: each runtime's features against PyTorch fp32 (per-image cosine), and the default
  tower's neighbours against the fp32 PyTorch tower's (recall@10 over ``--recall-items`` photos).
Text, on H&M article texts (title, description, tags): sentence-transformers' own ``encode`` in
fp32 (the baseline) against the text tower per runtime and precision, with cosines.

Every configuration runs once per round, in turn, for ``--rounds`` rounds, and the fastest round
counts: the machine's speed drifts by 10 to 30% within minutes, so only ratios measured side by
side compare. Results: benchmarks/results/towers.json.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from _common import write_results
from PIL import Image

from recsys.towers.image import ImageTower
from recsys.towers.inference import cpu_has_bf16
from recsys.towers.text import TextTower, item_texts

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def side_by_side(runs: dict, rounds: int) -> dict[str, float]:
    """The fastest of ``rounds`` wall-clock times of each callable, run in turn each round."""
    for fn in runs.values():  # warm-up
        fn()
    best = {name: float("inf") for name in runs}
    for _ in range(rounds):
        for name, fn in runs.items():
            start = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def cosines(a: np.ndarray, b: np.ndarray) -> dict:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    c = np.sum(a * b, axis=1)
    return {"cosine_mean": round(float(c.mean()), 6), "cosine_min": round(float(c.min()), 6)}


def recall_at_10(reference: np.ndarray, other: np.ndarray) -> float:
    """Mean share of each item's 10 nearest neighbours under ``reference`` that ``other`` finds."""
    def top10(v):
        scores = v @ v.T
        np.fill_diagonal(scores, -np.inf)
        return np.argpartition(-scores, 10, axis=1)[:, :10]

    ref, got = top10(reference), top10(other)
    return float(np.mean([len(set(r) & set(g)) / 10 for r, g in zip(ref, got)]))


def photos(n: int, seed: int = 0) -> pd.DataFrame:
    root = DATA / "fashion-products"
    frame = pd.read_csv(root / "catalog.csv", dtype=str).sample(n, random_state=seed)
    frame["image"] = [str(root / p) for p in frame["image"]]
    return frame.reset_index(drop=True)


def bench_image(n: int, recall_items: int, rounds: int) -> dict:
    catalog = photos(n)
    precisions = ["fp32", "bf16"] if cpu_has_bf16() else ["fp32"]
    towers = {f"{rt} {p}": ImageTower(runtime=rt, precision=p, num_workers=0)
              for rt in ("torch", "openvino") for p in precisions}
    for tower in towers.values():
        tower.load()
    base = towers["torch fp32"]
    tensors = torch.stack([base.transform(Image.open(p).convert("RGB")) for p in catalog["image"]])

    def forward(tower):
        return lambda: np.concatenate([tower.embed_batch(tensors[s:s + tower.batch_size])
                                       for s in range(0, len(tensors), tower.batch_size)])

    default = {w: ImageTower(num_workers=w) for w in (0, 1)}
    for tower in default.values():
        tower.load()
    runs = {f"bare {name}": forward(t) for name, t in towers.items()}
    runs |= {f"tower, {w} decoding threads": (lambda t=t: t.encode(catalog, show_progress=False))
             for w, t in default.items()}
    seconds = side_by_side(runs, rounds)
    reference = forward(base)()
    rows = []
    for name, s in seconds.items():
        row = {"case": name, "img_per_s": round(n / s, 1), "x_torch_fp32": round(seconds["bare torch fp32"] / s, 2)}
        if name.startswith("bare"):
            row |= cosines(forward(towers[name[5:]])(), reference)
        rows.append(row)
    # neighbours: the default tower's whole image block against the fp32 PyTorch tower's
    sample = photos(recall_items, seed=1)
    fp32 = ImageTower(runtime="torch", precision="fp32").encode(sample, show_progress=True).vectors
    auto = ImageTower().encode(sample, show_progress=True)
    faithful = {"items": recall_items, "default": f"{default[1].runtime} {default[1].precision}",
                "recall_at_10": round(recall_at_10(fp32, auto.vectors), 4), **cosines(auto.vectors, fp32)}
    return {"images": n, "rows": rows, "neighbours": faithful}


def bench_text(n: int, rounds: int) -> dict:
    catalog = pd.read_csv(DATA / "hm-sample" / "catalog.csv", dtype=str).sample(n, random_state=0)
    reference_tower = TextTower(runtime="torch", precision="fp32")
    texts = [t for t in item_texts(catalog, reference_tower.fields) if t]
    model = reference_tower.model
    precisions = ["fp32", "bf16"] if cpu_has_bf16() else ["fp32"]
    towers = {f"{rt} {p}": TextTower(runtime=rt, precision=p) for rt in ("torch", "openvino") for p in precisions}
    for tower in towers.values():
        tower.load()
    runs = {"bare sentence-transformers fp32": lambda: model.encode(texts, batch_size=64, normalize_embeddings=True)}
    runs |= {f"tower {name}": (lambda t=t: t.encode_texts(texts)) for name, t in towers.items()}
    seconds = side_by_side(runs, rounds)
    reference = runs["bare sentence-transformers fp32"]()
    rows = []
    for name, s in seconds.items():
        row = {"case": name, "texts_per_s": round(len(texts) / s, 1),
               "x_bare_fp32": round(seconds["bare sentence-transformers fp32"] / s, 2)}
        if name.startswith("tower"):
            row |= cosines(towers[name[6:]].encode_texts(texts), reference)
        rows.append(row)
    return {"texts": len(texts), "mean_chars": round(float(np.mean([len(t) for t in texts])), 1), "rows": rows,
            "default": f"{TextTower().runtime} {TextTower().precision}"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--recall-items", type=int, default=2000)
    parser.add_argument("--texts", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    image = bench_image(args.images, args.recall_items, args.rounds)
    for row in image["rows"]:
        print("image", row)
    print("image neighbours", image["neighbours"])
    text = bench_text(args.texts, args.rounds)
    for row in text["rows"]:
        print("text ", row)
    write_results("towers", {"image": image, "text": text})


if __name__ == "__main__":
    main()
