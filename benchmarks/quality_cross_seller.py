"""Duplicates across sellers (#50): the same product listed by a second seller, with a reworded
title and another photo of it, measured against today's duplicate rule and a candidate rule.

The labelled set (seeded, `recsys.curation.faults`): a sample of fashion-products (``--items``)
gets ``--resellers`` second-seller listings (`inject_resellers`: the title reworded with the same
words, brand moved or dropped; the photo cropped to 80-92%, set on another plain background and
resized; category, colour and tags kept) and ``--copies`` mild re-uploads (`inject_copies` with
the MILD transforms), so the figures of today's re-uploads are measured on the same bundle.

Four rules are scored on the pairs (source, copy), recall (the pair found) and precision (of the
pairs found with a copy in them, the share that is the copy's source):

* **today**: `find_duplicates` as the build runs it (image neighbours; the image or pixel
  threshold; texts at cosine 0.95 or more; colours that agree);
* **either**: today's pairs, plus pairs among each listing's 20 nearest by image *or* by text whose
  image and text cosines both reach a threshold pair and whose colour attributes agree;
* **either, photo colours too**: the same, the product's colour in the two photos also within
  today's 10 (CIELAB, lightness at half weight);
* **learned pair score**: today's pairs, plus the candidate pairs a logistic regression over the
  pair's evidence (image, text and pixel cosines, the photo colours' distance, the colour
  attributes) scores above a threshold, fitted on the validation half.

Each rule's thresholds are chosen on half of the second-seller listings (validation: the most
recall at precision 0.9 or more) and reported on the other half (test), with 95% Wilson intervals.

Pairs found between two original items are counted apart: nobody labelled the catalog's own
duplicates, so they are not errors, and a rule that finds many more of them deserves a look.

    .venv/bin/python benchmarks/quality_cross_seller.py [--items 1500 --resellers 300 --copies 90] [--work DIR]

Writes benchmarks/results/quality_cross_seller.json.
"""
from __future__ import annotations

import argparse
import itertools
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import wilson, write_results  # noqa: E402

from recsys.bundle import read_bundle  # noqa: E402
from recsys.curation.duplicates import (  # noqa: E402
    COLOUR_THRESHOLD,
    colour_distances,
    colour_names,
    find_duplicates,
    pixel_descriptors,
)
from recsys.curation.faults import MILD, inject_copies, inject_resellers  # noqa: E402
from recsys.data import validate_catalog  # noqa: E402
from recsys.pipeline.build import build_item_bundle  # noqa: E402
from recsys.settings import load_settings  # noqa: E402

FASHION = Path(__file__).resolve().parents[2] / "shared" / "data" / "fashion-products"
NEAREST = 20


def labelled(items: int, resellers: int, copies: int, work: Path):
    """The bundle of the labelled catalog under ``work`` (built once) and its truth."""
    out = work / "models" / "cross-seller"
    truth_file = work / "truth.csv"
    if not truth_file.is_file():
        frame = pd.read_csv(FASHION / "catalog.csv", dtype=str).sample(items, random_state=21).reset_index(drop=True)
        frame["image"] = [str(FASHION / p) for p in frame["image"]]
        frame, sellers = inject_resellers(frame, resellers, work / "resellers", seed=21)
        originals = frame[~frame["item_id"].str.startswith("seller2-")]
        with_copies, uploads = inject_copies(originals, copies, work / "copies", seed=22, transforms=MILD)
        frame = pd.concat([frame, with_copies.iloc[len(originals):]], ignore_index=True)
        settings = load_settings(state_dir=work / "state", models_dir=work / "models")
        build_item_bundle(validate_catalog(frame, source="cross-seller set"), settings, out, show_progress=True)
        pd.concat([sellers, uploads], ignore_index=True).to_csv(truth_file, index=False)
    return read_bundle(out), pd.read_csv(truth_file, dtype=str)


def scored(found: set[frozenset], truth: pd.DataFrame) -> dict:
    """Recall and precision of ``found`` pairs on the copies of ``truth``, each with its 95%
    interval (Wilson's, over the copies and over the pairs found with a copy in them)."""
    copies = set(truth["copy"])
    true_pairs = {frozenset(p) for p in zip(truth["source"], truth["copy"])}
    involving = [p for p in found if p & copies]
    hits, right = len(true_pairs & found), sum(p in true_pairs for p in involving)
    return {"copies": len(truth), "recall": round(hits / max(1, len(true_pairs)), 3),
            "recall_95": wilson(hits, len(true_pairs)),
            "precision": round(right / max(1, len(involving)), 3), "precision_95": wilson(right, len(involving)),
            "pairs_with_a_copy": len(involving)}


def either_pairs(bundle) -> pd.DataFrame:
    """Each listing's 20 nearest by image and by text, as unique pairs with both cosines and
    whether their colour attributes agree."""
    image, text = bundle.vectors.blocks["image"], bundle.vectors.blocks["text"]
    iv, tv = np.asarray(image.vectors, np.float32), np.asarray(text.vectors, np.float32)
    n = len(iv)
    rows = []
    for vectors, mask in ((iv, image.mask), (tv, text.mask)):
        cos = vectors @ vectors.T
        cos[:, ~mask] = -np.inf
        np.fill_diagonal(cos, -np.inf)
        top = np.argpartition(-cos, NEAREST, axis=1)[:, :NEAREST]
        rows.append(np.stack([np.repeat(np.arange(n), NEAREST), top.ravel()], axis=1))
    pairs = np.concatenate(rows)
    keys = np.unique(np.minimum(pairs[:, 0], pairs[:, 1]) * n + np.maximum(pairs[:, 0], pairs[:, 1]))
    a, b = keys // n, keys % n
    colour = colour_names(bundle.items)
    pixels, has_pixels, lab = pixel_descriptors(bundle.thumbnails, np.arange(n))
    shades = colour_distances(lab, a, b)
    ids = bundle.item_ids.ids
    return pd.DataFrame({"a": [str(ids[i]) for i in a], "b": [str(ids[i]) for i in b],
                         "image": np.einsum("ij,ij->i", iv[a], iv[b]), "text": np.einsum("ij,ij->i", tv[a], tv[b]),
                         "pixels": np.where(has_pixels[a] & has_pixels[b],
                                            np.einsum("ij,ij->i", pixels[a], pixels[b]), 0.0),
                         "shade": np.nan_to_num(shades, nan=50.0),
                         "colours_agree": (colour[a] == "") | (colour[b] == "") | (colour[a] == colour[b]),
                         "shades_agree": np.isnan(shades) | (shades <= COLOUR_THRESHOLD)})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1500)
    parser.add_argument("--resellers", type=int, default=300)
    parser.add_argument("--copies", type=int, default=90)
    parser.add_argument("--work", type=Path, default=None)
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="quality-cross-seller-"))
    bundle, truth = labelled(args.items, args.resellers, args.copies, work)
    sellers, uploads = truth[truth["transform"] == "reseller"], truth[truth["transform"] != "reseller"]
    order = np.random.default_rng(0).permutation(len(sellers))
    validation, test = sellers.iloc[order[: len(order) // 2]], sellers.iloc[order[len(order) // 2:]]

    today = {frozenset(p) for group in find_duplicates(bundle).groups for p in itertools.combinations(group, 2)}
    pairs = either_pairs(bundle)
    copies = set(truth["copy"])

    def rule(image: float, text: float, shades: bool) -> set[frozenset]:
        kept = pairs[(pairs["image"] >= image) & (pairs["text"] >= text) & pairs["colours_agree"]
                     & (pairs["shades_agree"] | (not shades))]
        return today | {frozenset(p) for p in zip(kept["a"], kept["b"])}

    def originals_only(pairs_found: set[frozenset]) -> int:
        return sum(1 for p in pairs_found if not p & copies)

    results = {
        "config": {"items": args.items, "resellers": len(sellers), "mild_copies": len(uploads), "nearest": NEAREST,
                   "catalog": "fashion-products, seeded (21, 22)"},
        "today": {"second seller, test half": scored(today, test), "second seller, all": scored(today, sellers),
                  "mild re-uploads": scored(today, uploads), "pairs between originals": originals_only(today)},
    }
    images, texts = np.round(np.arange(0.50, 0.91, 0.05), 2), np.round(np.arange(0.60, 0.96, 0.05), 2)
    for name, shades in (("either", False), ("either, photo colours too", True)):
        grid = [{"image": float(i), "text": float(t), **scored(rule(i, t, shades), validation)}
                for i, t in itertools.product(images, texts)]
        fine = [g for g in grid if g["precision"] >= 0.9] or grid
        chosen = max(fine, key=lambda g: (g["recall"], g["precision"]))
        found = rule(chosen["image"], chosen["text"], shades)
        results[name] = {"thresholds (chosen on validation)": {"image": chosen["image"], "text": chosen["text"]},
                         "validation": {k: chosen[k] for k in ("recall", "precision")},
                         "second seller, test half": scored(found, test), "mild re-uploads": scored(found, uploads),
                         "pairs between originals": originals_only(found)}
    # a pair score learned on the validation half: a logistic regression over the pair's evidence
    features = ["image", "text", "pixels", "shade", "colours_agree"]
    mine = pairs["a"].isin(validation["copy"]) | pairs["b"].isin(validation["copy"])
    truth_pairs = {frozenset(p) for p in zip(sellers["source"], sellers["copy"])}
    label = np.array([frozenset(p) in truth_pairs for p in zip(pairs["a"], pairs["b"])])
    model = LogisticRegression(class_weight="balanced", max_iter=1000).fit(
        pairs.loc[mine, features].astype(float), label[mine])
    probability = model.predict_proba(pairs[features].astype(float))[:, 1]

    def learned(threshold: float) -> set[frozenset]:
        kept = pairs[probability >= threshold]
        return today | {frozenset(p) for p in zip(kept["a"], kept["b"])}

    sweep = [{"threshold": float(t), **scored(learned(t), validation)} for t in np.round(np.arange(0.5, 1.0, 0.01), 2)]
    chosen = max([g for g in sweep if g["precision"] >= 0.9] or sweep, key=lambda g: (g["recall"], g["precision"]))
    found = learned(chosen["threshold"])
    results["learned pair score"] = {
        "features": features, "coefficients": dict(zip(features, np.round(model.coef_[0], 3).tolist())),
        "threshold (chosen on validation)": chosen["threshold"],
        "validation": {k: chosen[k] for k in ("recall", "precision")},
        "second seller, test half": scored(found, test), "mild re-uploads": scored(found, uploads),
        "pairs between originals": originals_only(found)}
    for name in ("today", "either", "either, photo colours too", "learned pair score"):
        print(name, results[name], flush=True)
    write_results("quality_cross_seller", results)


if __name__ == "__main__":
    main()
