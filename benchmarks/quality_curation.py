"""Curation measured against injected faults on real photos (fashion-products).

Duplicates: two seeded samples of the catalog each get transformed copies of some of their photos
(recsys.curation.faults: exact copies, JPEG re-encoding, resizing, an 85% crop, a 5-degree
rotation, brightness, and the mirrored and 90-degree copies reported apart). The thresholds are
swept on the first sample (validation) with the product-colour check at its default, then that
check is swept at the chosen thresholds, and the chosen ones are reported on the second (test):
per transform, the recall of the (source, copy) pairs (both in one group) and the precision of the
pairs a copy is grouped into. Pairs found between two original items are counted too: nobody
labelled the catalog's own duplicates, so they are a lower bound on precision, not errors.

Outliers: a third sample (seed 3) gets broken photos (recsys.curation.faults.inject_photo_faults:
blank, noise, and photos swapped across top-level categories); per fault, the AUROC of the
outlier score (the broken items against the untouched ones) and the precision of the top 1%.

Labels: on the test sample, the items split in two halves by a seed; few-shot labels of the leaf
category from 1, 5 and 20 examples per category drawn from the first half (the library's logistic
regression, and the nearest prototype on the same examples), scored by accuracy on the second half,
against a logistic regression (a linear probe) trained on every item of the first half. Zero-shot: the
top-level category from one prompt per category, accuracy on every item with text.

Clusters: on the test sample, the default k; sizes, cohesion, and how pure the clusters are in
leaf category (the share of items in their cluster's commonest category), against random clusters
of the same sizes.

Subsets: on the test sample, the coverage radius of a 1,000-item subset against the median of ten
random subsets of the same size, and the categories it leaves out, with and without --balance.

    .venv/bin/python benchmarks/quality_curation.py [--items 5000 --copies 500] [--work DIR]

``--work`` keeps the built bundles there and reuses them on the next run.

Writes benchmarks/results/quality_curation.json and prints the tables.
"""
from __future__ import annotations

import itertools
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import sample_parser, work_dir, write_results  # noqa: E402

from recsys.bundle import read_bundle  # noqa: E402
from recsys.curation import diverse_subset, find_duplicates  # noqa: E402
from recsys.curation.clusters import find_clusters  # noqa: E402
from recsys.curation.duplicates import duplicate_rows  # noqa: E402
from recsys.curation.faults import MILD, PHOTO_FAULTS, TRANSFORMS, inject_copies, inject_photo_faults  # noqa: E402
from recsys.curation.labels import label_from_examples, label_from_prompts  # noqa: E402
from recsys.curation.outliers import find_outliers  # noqa: E402
from recsys.curation.subset import coverage_radius  # noqa: E402
from recsys.data import validate_catalog  # noqa: E402
from recsys.pipeline.build import build_item_bundle  # noqa: E402
from recsys.serve.embedder import ItemEmbedder  # noqa: E402
from recsys.settings import load_settings  # noqa: E402

FASHION = Path(__file__).resolve().parents[2] / "shared" / "data" / "fashion-products"


def sample(items: int, seed: int) -> pd.DataFrame:
    frame = pd.read_csv(FASHION / "catalog.csv", dtype=str).sample(items, random_state=seed).reset_index(drop=True)
    frame["image"] = [str(FASHION / p) for p in frame["image"]]
    return frame


def built(catalog: pd.DataFrame, truth: pd.DataFrame, name: str, work: Path):
    """The bundle of ``catalog`` under ``work/models/name``, built once (``truth`` kept beside it)."""
    out = work / "models" / name
    if not (out / "truth.csv").is_file():
        settings = load_settings(state_dir=work / "state", models_dir=work / "models")
        build_item_bundle(validate_catalog(catalog, source=name), settings, out, show_progress=True)
        truth.to_csv(out / "truth.csv", index=False)
    return read_bundle(out), pd.read_csv(out / "truth.csv", dtype=str)


def faulty_bundle(items: int, copies: int, seed: int, work: Path):
    faulty, truth = inject_copies(sample(items, seed), copies, work / f"copies-{seed}", seed=seed)
    return built(faulty, truth, f"faulty-{seed}", work)


def outliers(items: int, per_fault: int, seed: int, work: Path) -> dict:
    faulty, truth = inject_photo_faults(sample(items, seed), per_fault, work / f"photos-{seed}", seed=seed)
    bundle, truth = built(faulty, truth, f"photos-{seed}", work)
    found = find_outliers(bundle, show_progress=True).items
    fault = found["item_id"].map(dict(zip(truth["item_id"], truth["fault"])))
    top = found.head(max(1, len(found) // 100))
    out = {"items": len(found), "per_fault": per_fault, "top_1%": len(top)}
    for name in PHOTO_FAULTS:
        judged = found[fault.isna() | (fault == name)]
        hit = (fault[judged.index] == name).to_numpy()
        out[name] = {"auroc": round(float(roc_auc_score(hit, judged["score"])), 4),
                     "in_top_1%": int((fault[top.index] == name).sum())}
    out["top_1%_precision_any_fault"] = round(float(fault[top.index].notna().mean()), 3)
    reasons = found.head(len(top))["reasons"].explode().dropna()
    out["top_1%_reasons"] = reasons.str.replace(r" \(z .*", "", regex=True).value_counts().to_dict()
    swapped = found[fault == "swapped"]
    out["swapped_suggestion_top_level_right"] = round(float(
        (swapped["suggested_category"].fillna("").str.split("/").str[0]
         != bundle.items.set_index("item_id").loc[swapped["item_id"], "category"].str.split("/").str[0].to_numpy()
         ).mean()), 3)
    return out


def group_pairs(groups: list[list[str]]) -> set[frozenset]:
    return {frozenset(p) for group in groups for p in itertools.combinations(group, 2)}


def score(groups: list[list[str]], truth: pd.DataFrame) -> dict:
    found = group_pairs(groups)
    true_pairs = {frozenset((s, c)) for s, c in zip(truth["source"], truth["copy"])}
    copies = dict(zip(truth["copy"], truth["transform"]))
    rows = {}
    for name in TRANSFORMS:
        mine = truth[truth["transform"] == name]
        pairs = {frozenset((s, c)) for s, c in zip(mine["source"], mine["copy"])}
        involving = [p for p in found if any(copies.get(i) == name for i in p)]
        rows[name] = {"copies": len(mine), "recall": round(len(pairs & found) / max(1, len(pairs)), 3),
                      "precision": round(sum(p in true_pairs for p in involving) / max(1, len(involving)), 3)}
    mild = truth[truth["transform"].isin(MILD)]
    mild_pairs = {frozenset((s, c)) for s, c in zip(mild["source"], mild["copy"])}
    mild_involving = [p for p in found if any(copies.get(i) in MILD for i in p)]
    originals_only = [p for p in found if not any(i in copies for i in p)]
    return {"transforms": rows,
            "mild": {"recall": round(len(mild_pairs & found) / len(mild_pairs), 3),
                     "precision": round(sum(p in true_pairs for p in mild_involving) / max(1, len(mild_involving)), 3)},
            "pairs_between_originals": len(originals_only), "groups": len(groups)}


def sweep(bundle, truth) -> list[dict]:
    out = []
    for image, pixels, text in itertools.product([0.9, 0.92, 0.94], [0.95, 0.97, 0.98], [0.9, 0.95]):
        found = find_duplicates(bundle, threshold=image, pixel_threshold=pixels, text_threshold=text)
        s = score(found.groups, truth)
        out.append({"threshold": image, "pixel_threshold": pixels, "text_threshold": text, **s["mild"],
                    "pairs_between_originals": s["pairs_between_originals"]})
        print(out[-1])
    return out


def subsets(bundle, n: int = 1000) -> dict:
    matrix = np.asarray(bundle.vectors.combined, np.float32)
    mask = bundle.vectors.mask
    rng = np.random.default_rng(0)
    random_radii = [coverage_radius(matrix, mask, rng.choice(np.flatnonzero(mask), n, replace=False))
                    for _ in range(10)]
    categories = set(bundle.items["category"].dropna())
    out = {"n": n, "random_median_radius": round(float(np.median(random_radii)), 4)}
    for balance, quota in ((None, "one"), ("category", "one"), ("category", "equal")):
        chosen = diverse_subset(bundle, n, balance=balance, quota=quota, duplicate_of=duplicate_rows(bundle), seed=0)
        covered = set(bundle.items.set_index("item_id").loc[chosen.items, "category"].dropna())
        out[f"balance={balance}" + (f", quota={quota}" if balance else "")] = {"radius": round(chosen.radius, 4),
                                     "ratio_to_random": round(chosen.radius / float(np.median(random_radii)), 3),
                                     "categories_missing": len(categories - covered),
                                     "categories": len(categories)}
    return out


ZERO_SHOT_PROMPTS = {
    "apparel": "clothing: a shirt, t-shirt, top, dress, jeans, trousers, shorts, skirt, jacket or sweater",
    "footwear": "footwear: shoes, sneakers, sandals, heels, flip flops, slippers or boots",
    "accessories": "an accessory: a watch, bag, handbag, wallet, belt, sunglasses, jewellery, socks or a cap",
    "personal care": "personal care and beauty: perfume, deodorant, lipstick, nail polish, cream or makeup",
}


def labels(bundle, seed: int = 0) -> dict:
    items = bundle.items.reset_index(drop=True)
    has_vector = bundle.vectors.mask
    rng = np.random.default_rng(seed)
    first = rng.random(len(items)) < 0.5
    leaf = items["category"].fillna("")
    train = np.flatnonzero(first & has_vector & (leaf != "").to_numpy())
    test = np.flatnonzero(~first & has_vector & (leaf != "").to_numpy())
    vectors = np.asarray(bundle.vectors.combined, np.float32)
    probe = LogisticRegression(max_iter=2000, C=10.0).fit(vectors[train], leaf[train])
    out = {"categories": int(leaf[train].nunique()), "train": len(train), "test": len(test),
           "linear_probe_all_labels": round(float((probe.predict(vectors[test]) == leaf[test]).mean()), 4)}
    for shots in (1, 5, 20):
        picked = pd.Series(train).groupby(leaf[train].to_numpy()).apply(
            lambda rows, n=shots: rows.sample(min(n, len(rows)), random_state=seed)).to_numpy()
        examples = pd.DataFrame({"label": leaf[picked].to_numpy(), "item_id": items["item_id"][picked].to_numpy()})
        found = label_from_examples(bundle, examples).items.set_index("item_id")
        test_ids = items["item_id"][test]
        regression = float((found.loc[test_ids, "label"].to_numpy() == leaf[test].to_numpy()).mean())
        # the simpler rule it is measured against: each label's normalised mean vector, nearest wins
        names, codes = np.unique(leaf[picked].to_numpy(), return_inverse=True)
        prototypes = np.zeros((len(names), vectors.shape[1]), np.float32)
        np.add.at(prototypes, codes, vectors[picked])
        nearest_prototype = names[(vectors[test] @ prototypes.T
                                   / np.linalg.norm(prototypes, axis=1).clip(1e-12)).argmax(axis=1)]
        out[f"{shots}-shot"] = {"examples": len(picked), "logistic_regression": round(regression, 4),
                                "prototypes": round(float((nearest_prototype == leaf[test].to_numpy()).mean()), 4),
                                "test_items_of_labelled_categories": round(float(
                                    leaf[test].isin(set(examples["label"])).mean()), 4)}
    top = leaf.str.split("/").str[0]
    prompts = pd.DataFrame({"label": list(ZERO_SHOT_PROMPTS), "text": list(ZERO_SHOT_PROMPTS.values())})
    found = label_from_prompts(bundle, prompts, ItemEmbedder(bundle).embed_queries).items
    judged = found["label"].notna().to_numpy() & top.isin(list(ZERO_SHOT_PROMPTS)).to_numpy()
    out["zero_shot_top_level"] = {
        "prompts": ZERO_SHOT_PROMPTS, "items": int(judged.sum()),
        "accuracy": round(float((found["label"][judged] == top[judged]).mean()), 4),
        "majority_class": round(float(top[judged].value_counts(normalize=True).iloc[0]), 4)}
    return out


def clusters(bundle, seed: int = 0) -> dict:
    found = find_clusters(bundle, seed=seed)
    leaf = bundle.items["category"].fillna("").to_numpy()
    assigned = found.assignment >= 0

    def purity(assignment):
        frame = pd.DataFrame({"c": assignment, "leaf": leaf[assigned]})
        return float(frame.groupby("c")["leaf"].agg(lambda v: v.value_counts().iloc[0]).sum() / len(frame))

    shuffled = np.random.default_rng(seed).permutation(found.assignment[assigned])
    sizes = [c.size for c in found.clusters]
    return {"k": len(found.clusters), "largest": max(sizes), "smallest": min(sizes),
            "median_size": float(np.median(sizes)),
            "mean_cohesion": round(float(np.mean([c.cohesion for c in found.clusters])), 4),
            "leaf_purity": round(purity(found.assignment[assigned]), 4),
            "leaf_purity_random_clusters": round(purity(shuffled), 4),
            "examples": [{"name": c.name, "size": c.size, "cohesion": c.cohesion} for c in found.clusters[:8]]
            + [{"name": c.name, "size": c.size, "cohesion": c.cohesion} for c in found.clusters[-4:]]}


def main() -> None:
    args = sample_parser(__doc__, items=5000, copies=500).parse_args()
    with work_dir(args.work) as work:
        found_outliers = outliers(args.items, args.copies // 10, 3, work)
        print("outliers:", found_outliers)
        validation, validation_truth = faulty_bundle(args.items, args.copies, 1, work)
        swept = sweep(validation, validation_truth)
        # the most recall at a precision of 0.95 or more (ties: the most precise)
        chosen = max((s for s in swept if s["precision"] >= 0.95), key=lambda s: (s["recall"], s["precision"]))
        thresholds = {k: chosen[k] for k in ("threshold", "pixel_threshold", "text_threshold")}
        # then the product-colour check: the tightest that keeps the recall within 0.005
        colour_sweep = []
        for colour in (float("inf"), 12.0, 10.0, 8.0):
            found = score(find_duplicates(validation, **thresholds, colour_threshold=colour).groups, validation_truth)
            colour_sweep.append({"colour_threshold": colour, **found["mild"]})
            print(colour_sweep[-1])
        best_recall = max(c["recall"] for c in colour_sweep)
        thresholds["colour_threshold"] = min(c["colour_threshold"] for c in colour_sweep
                                             if c["recall"] >= best_recall - 0.005)
        print("chosen on validation:", thresholds)
        test, test_truth = faulty_bundle(args.items, args.copies, 2, work)
        found = find_duplicates(test, **thresholds)
        result = score(found.groups, test_truth)
        result["thresholds"] = found.settings
        print("test:", result)
        subset = subsets(test)
        print("subsets:", subset)
        found_labels = labels(test)
        print("labels:", found_labels)
        found_clusters = clusters(test)
        print("clusters:", found_clusters)
    write_results("quality_curation", {"items": args.items, "copies": args.copies, "sweep": swept,
                                       "colour_sweep": colour_sweep,
                                       "duplicates": result, "subsets": subset,
                                       "outliers": found_outliers, "labels": found_labels,
                                       "clusters": found_clusters})


if __name__ == "__main__":
    main()
