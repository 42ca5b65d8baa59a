"""Duplicates across sellers (#50): the same product listed by a second seller, with a reworded
title and another photo of it, measured against today's duplicate rule and the rule that ships
for it (`find_duplicates(sellers=True)`).

The labelled set (seeded, `recsys.curation.faults`): a sample of fashion-products (``--items``)
gets ``--resellers`` second-seller listings (`inject_resellers`: the title reworded with the same
words, brand moved or dropped; the photo cropped to 80-92%, set on another plain background and
resized; category, colour and tags kept) and ``--copies`` mild re-uploads (`inject_copies` with
the MILD transforms), so the figures of today's re-uploads are measured on the same bundle.

A rule also pairs original items with each other: look-alikes from the same studio, and the
catalog's own duplicates. Those pairs were judged by eye (``labels/cross_seller_originals.csv``:
the two thumbnails at four times their size and the two titles; ``same`` product, ``different``
products, or ``unsure``) for every pair between originals that the rules below find at the
default sizes. Each rule is scored on:

* recall: the share of the copies whose pair (source, copy) is found;
* precision over the pairs with a copy in them (the share that is the copy's source);
* precision over every pair found: the pairs between originals count too, right when judged
  ``same``, wrong when judged ``different`` or ``unsure`` or not judged (each count is reported).
  It depends on how many copies the set holds (one listing in six here), so it compares rules on
  one set, not shops.

Rules:

* **today**: `find_duplicates` as the build runs it (image neighbours; the image or pixel
  threshold; texts at cosine 0.95 or more; colours that agree);
* **either**: today's pairs, plus pairs among each listing's 20 nearest by image *or* by text whose
  image and text cosines both reach a threshold pair and whose colour attributes agree;
* **learned pair score**: today's pairs, plus the candidate pairs a logistic regression over the
  pair's evidence (image, text and pixel cosines, the photo colours' distance, the colour
  attributes) scores above a threshold, fitted on the validation half;
* **sellers**: `find_duplicates(sellers=True)`: today's pairs, plus the candidates that are each
  other's best match by image plus text cosine and reach both thresholds (`seller_rule`).

Each rule's thresholds are chosen on half of the second-seller listings and half of the pairs
between originals (validation): the most recall at a precision of 0.9 or more over the pairs
with a copy and of 0.75 or more over every pair (a review list with at most one wrong pair in
four). They are reported on the other halves (test), with 95% Wilson intervals. The sellers rule
is then run through `find_duplicates` with the thresholds the code holds; the report says whether
they are the ones validation chose.

    .venv/bin/python benchmarks/quality_cross_seller.py [--items 1500 --resellers 300 --copies 90] [--work DIR]

Writes benchmarks/results/quality_cross_seller.json.
"""
from __future__ import annotations

import hashlib
import itertools
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import sample_parser, wilson, work_dir, write_results  # noqa: E402

from recsys.bundle import read_bundle  # noqa: E402
from recsys.curation import duplicates as dup  # noqa: E402
from recsys.curation.faults import MILD, inject_copies, inject_resellers  # noqa: E402
from recsys.data import validate_catalog  # noqa: E402
from recsys.pipeline.build import build_item_bundle  # noqa: E402
from recsys.settings import load_settings  # noqa: E402

FASHION = Path(__file__).resolve().parents[2] / "shared" / "data" / "fashion-products"
LABELS = Path(__file__).resolve().parent / "labels" / "cross_seller_originals.csv"
NEAREST = 20
COPY_PRECISION, EVERY_PRECISION = 0.9, 0.75  # what a rule must reach on validation


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


class Judge:
    """Scores a set of found pairs against the truth of the copies and the judged pairs between
    originals; ``half`` 0 (validation) or 1 (test) picks which pairs between originals count."""

    def __init__(self, truth: pd.DataFrame):
        self.copies = set(truth["copy"])
        judged = pd.read_csv(LABELS, dtype=str)
        self.judged = {frozenset(p): j for p, j in zip(zip(judged["item_a"], judged["item_b"]), judged["judged"])}

    @staticmethod
    def half(pair: frozenset) -> int:
        return hashlib.sha256(min(pair).encode()).digest()[0] % 2

    def originals(self, found: set[frozenset], half: int | None = None) -> dict:
        pairs = [p for p in found if not p & self.copies and (half is None or self.half(p) == half)]
        verdicts = pd.Series([self.judged.get(p, "not judged") for p in pairs], dtype=object).value_counts()
        return {"pairs": len(pairs), **{k: int(verdicts.get(k, 0)) for k in ("same", "unsure", "different",
                                                                              "not judged")}}

    def scored(self, found: set[frozenset], truth: pd.DataFrame, half: int | None = None) -> dict:
        """Recall on the copies of ``truth``, precision over the pairs with one of them and, with a
        ``half``, over every pair (the pairs between originals of that half added), each with
        its 95% interval."""
        copies = set(truth["copy"])
        true_pairs = {frozenset(p) for p in zip(truth["source"], truth["copy"])}
        involving = [p for p in found if p & copies]
        hits, right = len(true_pairs & found), sum(p in true_pairs for p in involving)
        out = {"copies": len(truth), "recall": round(hits / max(1, len(true_pairs)), 3),
               "recall_95": wilson(hits, len(true_pairs)),
               "precision": round(right / max(1, len(involving)), 3), "precision_95": wilson(right, len(involving)),
               "pairs_with_a_copy": len(involving)}
        if half is not None:
            originals = self.originals(found, half)
            every, correct = len(involving) + originals["pairs"], right + originals["same"]
            out |= {"pairs between originals": originals,
                    "precision, every pair": round(correct / max(1, every), 3),
                    "precision, every pair_95": wilson(correct, every)}
        return out


def either_pairs(bundle) -> pd.DataFrame:
    """Each listing's 20 nearest by image and by text, as unique pairs with their evidence: the
    image, text and pixel cosines, the photo colours' distance and whether the colour attributes
    agree."""
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
    colour = dup.colour_names(bundle.items)
    pixels, has_pixels, lab = dup.pixel_descriptors(bundle.thumbnails, np.arange(n))
    shades = dup.colour_distances(lab, a, b)
    ids = bundle.item_ids.ids
    return pd.DataFrame({"a": [str(ids[i]) for i in a], "b": [str(ids[i]) for i in b],
                         "image": np.einsum("ij,ij->i", iv[a], iv[b]), "text": np.einsum("ij,ij->i", tv[a], tv[b]),
                         "pixels": np.where(has_pixels[a] & has_pixels[b],
                                            np.einsum("ij,ij->i", pixels[a], pixels[b]), 0.0),
                         "shade": np.nan_to_num(shades, nan=50.0),
                         "colours_agree": (colour[a] == "") | (colour[b] == "") | (colour[a] == colour[b])})


def chosen(grid: list[dict]) -> dict:
    """The grid point with the most validation recall at both precision floors (else the most
    precise over every pair)."""
    fine = [g for g in grid if g["precision"] >= COPY_PRECISION and g["precision, every pair"] >= EVERY_PRECISION]
    if fine:
        return max(fine, key=lambda g: (g["recall"], g["precision, every pair"]))
    return max(grid, key=lambda g: (g["precision, every pair"], g["recall"]))


def group_pairs(found: dup.Duplicates) -> set[frozenset]:
    return {frozenset(p) for group in found.groups for p in itertools.combinations(group, 2)}


def main() -> None:
    parser = sample_parser(__doc__, items=1500, copies=90)
    parser.add_argument("--resellers", type=int, default=300)
    args = parser.parse_args()
    with work_dir(args.work) as work:
        bundle, truth = labelled(args.items, args.resellers, args.copies, work)
        measure(bundle, truth, args)


def measure(bundle, truth: pd.DataFrame, args) -> None:
    """Score every rule on the labelled set and write the results."""
    sellers, uploads = truth[truth["transform"] == "reseller"], truth[truth["transform"] != "reseller"]
    order = np.random.default_rng(0).permutation(len(sellers))
    validation, test = sellers.iloc[order[: len(order) // 2]], sellers.iloc[order[len(order) // 2:]]
    judge = Judge(truth)

    def report(found: set[frozenset], **extra) -> dict:
        return {**extra, "second seller, test half": judge.scored(found, test, half=1),
                "mild re-uploads": judge.scored(found, uploads),
                "pairs between originals, all": judge.originals(found)}

    def pick(rule, points) -> tuple[dict, set[frozenset]]:
        grid = [{"at": at, **judge.scored(rule(*at), validation, half=0)} for at in points]
        best = chosen(grid)
        kept = {k: best[k] for k in ("recall", "precision", "precision, every pair", "at")}
        return kept, rule(*best["at"])

    today = group_pairs(dup.find_duplicates(bundle))
    results = {"config": {"items": args.items, "resellers": len(sellers), "mild_copies": len(uploads),
                          "nearest": NEAREST, "catalog": "fashion-products, seeded (21, 22)",
                          "judged pairs between originals": len(judge.judged),
                          "floors on validation": {"precision, pairs with a copy": COPY_PRECISION,
                                                   "precision, every pair": EVERY_PRECISION}},
               "today": report(today, validation=judge.scored(today, validation, half=0))}

    pairs = either_pairs(bundle)

    def either(image: float, text: float) -> set[frozenset]:
        kept = pairs[(pairs["image"] >= image) & (pairs["text"] >= text) & pairs["colours_agree"]]
        return today | {frozenset(p) for p in zip(kept["a"], kept["b"])}

    images, texts = np.round(np.arange(0.50, 0.96, 0.05), 2), np.round(np.arange(0.60, 0.96, 0.05), 2)
    points = [(float(i), float(t)) for i, t in itertools.product(images, texts)]
    valid, found = pick(either, points)
    results["either"] = report(found, **{"thresholds (chosen on validation)": dict(zip(("image", "text"),
                                                                                         valid.pop("at"))),
                                         "validation": valid})

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

    valid, found = pick(learned, [(float(t),) for t in np.round(np.arange(0.5, 1.0, 0.01), 2)])
    results["learned pair score"] = report(found, features=features, **{
        "coefficients": dict(zip(features, np.round(model.coef_[0], 3).tolist())),
        "threshold (chosen on validation)": valid.pop("at")[0], "validation": valid})

    # the shipped rule, over find_duplicates' own candidates
    a, b = dup.candidate_pairs(bundle)
    blocks, n, ids = bundle.vectors.blocks, len(bundle.item_ids), bundle.item_ids.ids
    image = dup.pair_cosines(blocks["image"].vectors, blocks["image"].mask, a, b)
    text = dup.pair_cosines(blocks["text"].vectors, blocks["text"].mask, a, b)
    colour = dup.colour_names(bundle.items)

    def seller(image_threshold: float, text_threshold: float) -> set[frozenset]:
        kept = dup.seller_rule(a, b, image, text, colour[a], colour[b], n, image_threshold=image_threshold,
                               text_threshold=text_threshold)
        return today | {frozenset((str(ids[x]), str(ids[y]))) for x, y in zip(a[kept], b[kept])}

    valid, _ = pick(seller, points)
    at = dict(zip(("image", "text"), valid.pop("at")))
    shipped = {"image": dup.SELLER_IMAGE_THRESHOLD, "text": dup.SELLER_TEXT_THRESHOLD}
    found = group_pairs(dup.find_duplicates(bundle, sellers=True))
    results["sellers"] = report(found, **{"thresholds (chosen on validation)": at, "validation": valid,
                                          "thresholds in the code": shipped,
                                          "the code holds the chosen thresholds": at == shipped})
    for name in ("today", "either", "learned pair score", "sellers"):
        print(name, results[name], flush=True)
    write_results("quality_cross_seller", results)


if __name__ == "__main__":
    main()
