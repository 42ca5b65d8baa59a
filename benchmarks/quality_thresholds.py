"""Duplicate thresholds that follow the image backbone: the fixed image threshold against the one
each build calibrates from its own photos (recsys.curation.calibration), on real photos with
injected copies.

Backbones: EfficientNet-Lite0 with its ImageNet weights (what the fixed 0.90 was tuned for), and a
randomly initialised ResNet-50 (a backbone with another spread of cosines: nearly every pair of
photos scores above 0.9).

Test: the fashion-products sample of seed 2 (as quality_curation.py's test sample) with transformed
copies of some photos (recsys.curation.faults.inject_copies: exact copies, JPEG re-encoding,
resizing, an 85% crop, a 5-degree rotation, brightness; mirrored and 90-degree copies are scored
apart). Each backbone builds its own bundle, which calibrates the threshold from its own
augmented copies of other photos, drawn by other edits. The duplicates are then found at the fixed
and at the calibrated image threshold and scored as quality_curation.py does, on the mild copies:
the recall of their (source, copy) pairs, and the precision of the pairs a copy is grouped into,
with 95% Wilson intervals, and the pairs found between two original items (nobody labelled the
catalog's own duplicates, so those are not all errors, but a backbone that cannot tell products
apart inflates them).

Two rules are scored: the full rule (image or pixel descriptor, with listings that agree), and the
image descriptor alone (the pixel threshold at 1), since the pixel descriptor does not depend on
the backbone and catches most re-encoded or resized copies by itself.

Validation (where COPY_QUANTILE comes from): on the sample of seed 1, the share of Lite0's
calibration copies below 0.90, over three calibration seeds.

    .venv/bin/python benchmarks/quality_thresholds.py [--items 3000 --copies 300] [--work DIR]

Writes benchmarks/results/quality_thresholds.json and prints the tables.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import sample_parser, wilson, work_dir, write_results  # noqa: E402
from quality_curation import group_pairs, sample  # noqa: E402

from recsys.bundle import read_bundle  # noqa: E402
from recsys.curation.calibration import COPY_QUANTILE, copy_cosines  # noqa: E402
from recsys.curation.duplicates import IMAGE_THRESHOLD, find_duplicates  # noqa: E402
from recsys.curation.faults import MILD, inject_copies  # noqa: E402
from recsys.data import validate_catalog  # noqa: E402
from recsys.pipeline.build import build_item_bundle  # noqa: E402
from recsys.settings import load_settings  # noqa: E402
from recsys.towers.image import ImageTower  # noqa: E402

BACKBONES = {"efficientnet-lite0 (ImageNet)": ("tf_efficientnet_lite0", "offline"),
             "resnet50 (random weights)": ("resnet50", "random")}


def mild_scores(groups: list[list[str]], truth) -> dict:
    """Recall and precision of the mild copies' pairs, with intervals, and pairs between originals."""
    found = group_pairs(groups)
    copies = dict(zip(truth["copy"], truth["transform"]))
    mild = truth[truth["transform"].isin(MILD)]
    true_pairs = {frozenset((s, c)) for s, c in zip(truth["source"], truth["copy"])}
    mild_pairs = {frozenset((s, c)) for s, c in zip(mild["source"], mild["copy"])}
    involving = [p for p in found if any(copies.get(i) in MILD for i in p)]
    hits, right = len(mild_pairs & found), sum(p in true_pairs for p in involving)
    return {"recall": round(hits / len(mild_pairs), 3), "recall_95": wilson(hits, len(mild_pairs)),
            "precision": round(right / max(1, len(involving)), 3), "precision_95": wilson(right, len(involving)),
            "pairs_between_originals": sum(not any(i in copies for i in p) for p in found)}


def validation(items: int) -> dict:
    """Lite0's calibration copies on the validation sample: the share below the fixed threshold."""
    catalog = sample(items, 1)
    tower = ImageTower()
    block = tower.encode(catalog, show_progress=True)
    shares = []
    for seed in range(3):
        _, cosines = copy_cosines(tower, catalog["image"].tolist(), block.vectors, block.mask, copies=256, seed=seed)
        shares.append(round(float((cosines < IMAGE_THRESHOLD).mean()), 3))
    return {"items": items, "copies": 256, "share_below_fixed": shares, "copy_quantile": COPY_QUANTILE}


def backbone(name: str, items: int, copies: int, work: Path) -> dict:
    model, weights = BACKBONES[name]
    out = work / "models" / f"thresholds-{model}"
    faulty, truth = inject_copies(sample(items, 2), copies, work / "copies-2", seed=2)
    if not (out / "truth.csv").is_file():
        settings = load_settings(state_dir=work / "state", models_dir=work / "models",
                                 towers={"image": {"model": model, "weights": weights}})
        report = build_item_bundle(validate_catalog(faulty, source=out.name), settings, out, show_progress=True)
        print("build warnings:", report.warnings)
        truth.to_csv(out / "truth.csv", index=False)
    bundle = read_bundle(out)
    calibration = bundle.manifest["duplicates"]["calibration"]
    result = {"calibration": calibration}
    for rule, pixels in (("full rule", 0.97), ("image alone", 1.0)):
        for threshold_name, threshold in (("fixed", IMAGE_THRESHOLD), ("calibrated", calibration["threshold"])):
            found = find_duplicates(bundle, threshold=threshold, pixel_threshold=pixels)
            result[f"{rule}, {threshold_name}"] = {"threshold": threshold, **mild_scores(found.groups, truth)}
            print(name, rule, threshold_name, result[f"{rule}, {threshold_name}"])
    return result


def main() -> None:
    args = sample_parser(__doc__, items=3000, copies=300).parse_args()
    with work_dir(args.work) as work:
        checked = validation(args.items)
        print("validation:", checked)
        results = {name: backbone(name, args.items, args.copies, work) for name in BACKBONES}
    print("\n| backbone | rule | threshold | recall of mild copies | precision | pairs between originals |")
    print("|---|---|---|---|---|---|")
    for name, result in results.items():
        for key, row in result.items():
            if key != "calibration":
                print(f"| {name} | {key} ({row['threshold']:g}) | {row['recall']:.3f} {row['recall_95']} | "
                      f"{row['precision']:.3f} {row['precision_95']} | {row['pairs_between_originals']} |")
    write_results("quality_thresholds", {"items": args.items, "copies": args.copies, "validation": checked,
                                         "backbones": results})


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
