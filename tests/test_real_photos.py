"""Similar items on real catalog photos (fashion-products): each modality finds what it should,
well above chance. Thresholds are set below what benchmarks/quality_real_photos.py measures on a
5,000-item sample (docs/quality.md), for this smaller sample's noise."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

FASHION = Path(__file__).resolve().parents[2] / "shared" / "data" / "fashion-products"

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not (FASHION / "catalog.csv").is_file(), reason=f"no fashion-products at {FASHION}")]


@pytest.fixture(scope="module")
def sample() -> pd.DataFrame:
    """800 real products (a seeded sample), image paths absolute."""
    frame = pd.read_csv(FASHION / "catalog.csv", dtype=str).sample(800, random_state=1)
    frame["image"] = [str(FASHION / p) for p in frame["image"]]
    return frame


@pytest.fixture(scope="module")
def photos(tmp_path_factory, sample, _image_tower, _text_tower):
    """The sample built with every modality."""
    from recsys.data import validate_catalog
    from recsys.pipeline.build import build_item_bundle
    from recsys.serve import Recommender
    from recsys.towers import create_tower
    from tests.conftest import make_settings

    tmp = tmp_path_factory.mktemp("fashion")
    catalog = validate_catalog(sample, source="fashion-products sample")
    towers = {"image": _image_tower, "text": _text_tower, "tabular": create_tower("tabular")}
    report = build_item_bundle(catalog, make_settings(tmp), tmp / "models" / "fashion", show_progress=False,
                               towers=towers)
    assert report.unreadable_images == 0
    return Recommender.from_bundle(report.path)


def _shares(rec, weights, attribute) -> tuple[float, float]:
    """(share of the 10 neighbours that share ``attribute`` with the query, chance of it)."""
    items = rec.bundle.items.set_index("item_id")
    values = {"top": items["category"].str.split("/").str[0], "leaf": items["category"],
              "colour": items["colour"]}[attribute]
    queries = items.index[::4]
    got = np.mean([np.mean([values[s.item_id] == values[q] for s in rec.similar_items(q, k=10, weights=weights)])
                   for q in queries])
    return float(got), float((values.value_counts(normalize=True) ** 2).sum())


@pytest.mark.parametrize("weights, attribute, times", [
    ({"image": 1.0}, "leaf", 4),      # a photo finds the same kind of product
    ({"image": 1.0}, "colour", 2),    # ... in the same colour (the colour histogram)
    ({"text": 1.0}, "leaf", 4),       # titles name the product type
    ({"tabular": 1.0}, "colour", 3),  # the colour column itself
    (None, "leaf", 5),                # the defaults keep both
    (None, "colour", 3),
])
def test_neighbours_on_real_photos_share_what_their_modality_sees(photos, weights, attribute, times):
    got, base = _shares(photos, weights, attribute)
    print(f"\n{weights or 'defaults'} {attribute}: {got:.3f} (chance {base:.3f})")
    assert got > times * base and got > 0.25, (got, base)


def test_the_default_runtime_keeps_the_fp32_neighbours_on_real_photos(sample):
    """The image tower as built by default (OpenVINO, bf16 where the CPU has it) against PyTorch in
    fp32 on 400 photos: benchmarks/bench_towers.py measures recall@10 0.96 and a least cosine of
    0.99 on 2,000 (docs/performance.md)."""
    from recsys.towers.image import ImageTower

    catalog = sample.iloc[:400]
    fp32 = ImageTower(runtime="torch", precision="fp32").encode(catalog, show_progress=False).vectors
    default = ImageTower().encode(catalog, show_progress=False).vectors
    assert np.sum(fp32 * default, axis=1).min() >= 0.99

    def top10(v):
        scores = v @ v.T
        np.fill_diagonal(scores, -np.inf)
        return np.argsort(-scores, axis=1)[:, :10]

    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(top10(fp32), top10(default))])
    print(f"\nrecall@10 of the default image tower against PyTorch fp32: {recall:.3f}")
    assert recall >= 0.93
