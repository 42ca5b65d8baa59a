"""A saved tagger on real photos (fashion-products): accuracy, the share left as "none of these",
and how well its confidences are calibrated, at 1, 5 and 20 examples per label.

The catalog is a seeded sample of fashion-products (6,000 items, seed 4, built once under
``--work``). The taggers read the photos alone (the image vectors): the text and tabular vectors
hold the very category being guessed. Its items are split in two halves by a seed: examples come from the first, every
judged item from the second. A label set is 10 leaf categories drawn at random among those with
at least 40 items in each half; the items of every other category are "outside" it, and the right
answer for them is "none of these". Two label sets are drawn: on the first (validation) the
default quantile that sets ``min_similarity`` (``SIMILARITY_QUANTILE``) is chosen at 5 examples
per label, as the one that leaves the most items outside as "none" while at most 15% of the items
inside lose their tag; the second (test) reports, with that quantile and with no bar at all (today's labels:
always a guess):

- accuracy inside: the share of items of a labelled category given their label;
- none inside / none outside: the share given no label;
- precision: the share of given labels that are right (outside items given any label are wrong);
- right overall: inside items given their label plus outside items given none, over all;
- ECE: the expected calibration error of the confidences on inside items, with the fitted
  temperature and with none (the temperature is fitted on held-out examples: not at 1 example);
- the reliability table (10 confidence bins) at 20 examples.

    .venv/bin/python benchmarks/quality_tagger.py [--work DIR]

Writes benchmarks/results/quality_tagger.json and prints the tables.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import wilson, write_results  # noqa: E402
from quality_curation import built, sample  # noqa: E402

from recsys.curation.tagger import SIMILARITY_QUANTILE, Tagger, fit_tagger, reliability  # noqa: E402

LABELS = 10
MIN_ITEMS = 40
SHOTS = (1, 5, 20)
TEST_SEEDS = (2, 3, 4, 5, 6)  # five test label sets; 1 is the validation one
# the photo alone: the catalog's text and tabular features name the category being guessed
MODALITY = "image"
MAX_NONE_INSIDE = 0.15
QUANTILES = (0.0, 0.05, 0.1, 0.2, 0.3, 0.5)


def draw_labels(leaf: pd.Series, first: np.ndarray, seed: int) -> list[str]:
    counts = pd.DataFrame({"leaf": leaf, "first": first}).groupby("leaf")["first"].agg(["sum", "size"])
    eligible = counts[(counts["sum"] >= MIN_ITEMS) & (counts["size"] - counts["sum"] >= MIN_ITEMS)].index
    return sorted(np.random.default_rng(seed).choice(sorted(eligible), LABELS, replace=False).tolist())


def share(hits: np.ndarray, of: np.ndarray, name: str) -> dict:
    """``{name: hits' share of the judged rows, name_95: its Wilson interval}``."""
    k, n = int((hits & of).sum()), int(of.sum())
    return {name: round(k / n, 4) if n else None, f"{name}_95": wilson(k, n)}


def judged(tagger: Tagger, bundle, rows: np.ndarray, truth: np.ndarray, inside: np.ndarray) -> dict:
    """The figures of one tagger on the judged rows (``truth``: their leaf category), each share
    with its 95% Wilson interval."""
    x = np.asarray(bundle.vectors.blocks[MODALITY].vectors, np.float32)[rows]
    tags, _ = tagger.tag(x)
    given = np.array([t is not None for t in tags])
    correct = tags == truth
    codes = pd.Categorical(truth[inside], categories=tagger.labels).codes
    raw = dataclasses.replace(tagger, temperature=1.0)
    return {**share(correct, inside, "accuracy_inside"), **share(~given, inside, "none_inside"),
            **share(~given, ~inside, "none_outside"), **share(correct, given, "precision"),
            **share(np.where(inside, correct, ~given), np.ones(len(rows), bool), "right_overall"),
            "ece": round(reliability(tagger.probabilities(x[inside]), codes)["ece"], 4),
            "ece_uncalibrated": round(reliability(raw.probabilities(x[inside]), codes)["ece"], 4)}


def run(bundle, seed: int, shots: int, quantiles) -> tuple[dict, dict]:
    """The figures of a tagger of one label set at each quantile (``None``: no bar at all)."""
    items = bundle.items.reset_index(drop=True)
    leaf = items["category"].fillna("").to_numpy()
    first = np.random.default_rng(0).random(len(items)) < 0.5
    labels = draw_labels(pd.Series(leaf), first, seed)
    has = bundle.vectors.blocks[MODALITY].mask
    pool = items[first & np.isin(leaf, labels) & has]
    drawn = pool.sample(frac=1.0, random_state=seed).groupby("category").head(shots)
    examples = pd.DataFrame({"label": drawn["category"].to_numpy(), "item_id": drawn["item_id"].to_numpy()})
    rows = np.flatnonzero(~first & has & (leaf != ""))
    inside = np.isin(leaf[rows], labels)
    taggers = {q: fit_tagger(bundle, examples, "leaf", modality=MODALITY, quantile=q, seed=seed)
               for q in quantiles if q is not None}
    tagger = next(iter(taggers.values()))
    if None in quantiles:  # the same model with no bar: every item gets its best label
        taggers[None] = tagger.with_bars(-1.0, 0.0)
    out = {q: {**judged(t, bundle, rows, leaf[rows], inside), "min_similarity": t.min_similarity}
           for q, t in taggers.items()}
    x = np.asarray(bundle.vectors.blocks[MODALITY].vectors, np.float32)[rows[inside]]
    codes = pd.Categorical(leaf[rows][inside], categories=tagger.labels).codes
    return out, {"labels": labels, "inside": int(inside.sum()), "outside": int((~inside).sum()),
                 "temperature": tagger.temperature, "report": tagger.report,
                 "reliability": reliability(tagger.probabilities(x), codes)["bins"]}


def spread(figures: list[dict]) -> dict:
    """Each figure's mean and [min, max] over label sets."""
    out = {}
    for name in ("accuracy_inside", "none_inside", "none_outside", "precision", "right_overall", "ece",
                 "ece_uncalibrated"):
        values = [f[name] for f in figures if f[name] is not None]
        out[name] = [round(float(np.mean(values)), 3), round(min(values), 3), round(max(values), 3)]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=None, help="keep the built bundle here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        bundle, _ = built(sample(6000, 4), pd.DataFrame({"item_id": []}), "tagger-4", work)
        validation, _ = run(bundle, 1, 5, QUANTILES)
        # the most items outside left as "none" while at most 15% of the items inside lose their tag
        chosen = max((q for q in QUANTILES if validation[q]["none_inside"] <= MAX_NONE_INSIDE),
                     key=lambda q: validation[q]["none_outside"])
        print("validation, 5 examples per label:")
        for q in QUANTILES:
            print(f"  quantile {q}: {validation[q]}")
        print(f"chosen: {chosen} (the library's default: {SIMILARITY_QUANTILE})")
        test = {}
        for shots in SHOTS:
            runs = [run(bundle, seed, shots, (None, SIMILARITY_QUANTILE)) for seed in TEST_SEEDS]
            test[f"{shots}-shot"] = {"label_sets": [{"no_bar": found[None], "default": found[SIMILARITY_QUANTILE],
                                                     **facts} for found, facts in runs],
                                     "no_bar": spread([found[None] for found, _ in runs]),
                                     "default": spread([found[SIMILARITY_QUANTILE] for found, _ in runs])}
            print(f"test, {shots} per label, mean [min, max] over {len(TEST_SEEDS)} label sets:")
            print(f"  no bar (always a guess): {test[f'{shots}-shot']['no_bar']}")
            print(f"  default bars: {test[f'{shots}-shot']['default']}")
    write_results("quality_tagger", {"items": 6000, "labels": LABELS, "modality": MODALITY,
                                     "validation": {str(q): v for q, v in validation.items()},
                                     "chosen_quantile": chosen, "default_quantile": SIMILARITY_QUANTILE,
                                     "test": test})


if __name__ == "__main__":
    main()
