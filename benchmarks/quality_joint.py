"""The joint text-image space measured on fashion-products (recsys.towers.joint).

A seeded 10% of the products is held out of training (split by product: a held-out product's
photo and text are never seen). On the held-out products:

* text to image: a product's title (its text vector) is the query, its own photo the target among
  every held-out photo: Recall@10, and a relaxed Recall@10 where a hit is any photo of the same leaf
  category and colour; each against a random ranking;
* image to text: the same the other way;
* zero-shot categories: each held-out photo gets the category whose prompt ("a photo of a
  {leaf}") is closest in the joint space: leaf accuracy, and top-level accuracy both from the
  top-level prompts ("a photo of {top level}") and from the leaf prompts (the top level of the
  closest leaf).

    .venv/bin/python benchmarks/quality_joint.py --bundle DIR    # a built fashion-products bundle

Writes benchmarks/results/quality_joint.json and prints the tables.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_results  # noqa: E402

from recsys.bundle import read_bundle  # noqa: E402
from recsys.serve.embedder import ItemEmbedder  # noqa: E402
from recsys.towers.joint import train_joint_space  # noqa: E402


def recall_at_10(queries: np.ndarray, targets: np.ndarray, hit) -> float:
    """Share of queries with a hit among their 10 nearest targets; ``hit(q, rows)`` says which."""
    found = 0
    for start in range(0, len(queries), 512):
        scores = queries[start:start + 512] @ targets.T
        top = np.argpartition(-scores, 10, axis=1)[:, :10]
        found += sum(hit(start + i, top[i]).any() for i in range(len(top)))
    return found / len(queries)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", required=True, type=Path)
    parser.add_argument("--held-out", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    bundle = read_bundle(args.bundle)
    image, text = bundle.vectors.blocks["image"], bundle.vectors.blocks["text"]
    rows = np.flatnonzero(image.mask & text.mask)
    held = np.random.default_rng(args.seed).random(len(rows)) < args.held_out
    train, test = rows[~held], rows[held]
    started = time.perf_counter()
    joint = train_joint_space(np.asarray(image.vectors)[train], np.asarray(text.vectors)[train], seed=args.seed,
                              show_progress=True)
    seconds = time.perf_counter() - started
    photos = joint.embed_images(np.asarray(image.vectors)[test])
    texts = joint.embed_texts(np.asarray(text.vectors)[test])
    items = bundle.items.reset_index(drop=True)
    leaf = items["category"].fillna("").to_numpy()[test]
    colour = items["colour"].fillna("").to_numpy()[test]
    same_look = lambda q, found: (leaf[found] == leaf[q]) & (colour[found] == colour[q])  # noqa: E731
    own = lambda q, found: found == q  # noqa: E731
    # a random ranking's chance of a relaxed hit in 10: one minus the chance of 10 misses
    matches = pd.Series(list(zip(leaf, colour))).map(pd.Series(list(zip(leaf, colour))).value_counts())
    random_relaxed = float(np.mean(1 - (1 - (matches.to_numpy() - 1) / (len(test) - 1)) ** 10))
    retrieval = {
        "held_out_products": len(test), "training_pairs": len(train),
        "training_seconds": round(seconds, 1), "epochs": len(joint.history), "dim": joint.dim,
        "text_to_image": {"recall@10": round(recall_at_10(texts, photos, own), 4),
                          "relaxed_recall@10": round(recall_at_10(texts, photos, same_look), 4)},
        "image_to_text": {"recall@10": round(recall_at_10(photos, texts, own), 4),
                          "relaxed_recall@10": round(recall_at_10(photos, texts, same_look), 4)},
        "random": {"recall@10": round(10 / len(test), 4), "relaxed_recall@10": round(random_relaxed, 4)},
    }
    print("retrieval:", retrieval)
    embedder = ItemEmbedder(bundle)
    leaves = sorted(set(leaf) - {""})
    tops = sorted({name.split("/")[0] for name in leaves})
    leaf_prompts = joint.embed_texts(embedder.embed_queries([f"a photo of a {name.split('/')[-1]}" for name in leaves]))
    top_prompts = joint.embed_texts(embedder.embed_queries([f"a photo of {name}" for name in tops]))
    judged = leaf != ""
    top_level = np.array([name.split("/")[0] for name in leaf])
    guessed_leaf = np.array(leaves)[(photos[judged] @ leaf_prompts.T).argmax(axis=1)]
    guessed_top = np.array(tops)[(photos[judged] @ top_prompts.T).argmax(axis=1)]
    zero_shot = {
        "photos": int(judged.sum()), "leaf_categories": len(leaves), "top_levels": len(tops),
        "leaf_accuracy": round(float((guessed_leaf == leaf[judged]).mean()), 4),
        "top_level_accuracy_from_top_level_prompts": round(float((guessed_top == top_level[judged]).mean()), 4),
        "top_level_accuracy_from_leaf_prompts": round(float(
            (np.array([g.split("/")[0] for g in guessed_leaf]) == top_level[judged]).mean()), 4),
        "majority_top_level": round(float(pd.Series(top_level[judged]).value_counts(normalize=True).iloc[0]), 4),
        "majority_leaf": round(float(pd.Series(leaf[judged]).value_counts(normalize=True).iloc[0]), 4),
    }
    print("zero-shot:", zero_shot)
    write_results("quality_joint", {"bundle": str(args.bundle), "items": len(items), "retrieval": retrieval,
                                    "zero_shot": zero_shot, "validation_during_training": joint.validation})


if __name__ == "__main__":
    main()
