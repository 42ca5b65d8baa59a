"""Self-supervised fine-tuning on CPU, end to end on a few real fashion-products photos: each method
trains, the kNN evaluation judges it, the kept backbone loads into the image tower, and a run
resumes where it stopped."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner

from recsys.finetune import finetune, knn_accuracy, paired_gain
from recsys.finetune.knn import knn_hits
from recsys.finetune.train import BACKBONE_FILE, REPORT_FILE, STATE_FILE
from recsys.towers.image import ImageTower
from tests.real_shops import FASHION

TINY = {"epochs": 1, "resolution": 64, "batch_size": 8, "eval_items": 20, "show_progress": False}


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """24 real products from three leaf categories, as a catalog file."""
    if not (FASHION / "catalog.csv").is_file():
        pytest.skip(f"no fashion-products at {FASHION}")
    catalog = pd.read_csv(FASHION / "catalog.csv", dtype=str)
    kinds = ["apparel/topwear/tshirts", "footwear/shoes/casual shoes", "accessories/watches/watches"]
    frame = pd.concat([catalog[catalog["category"] == kind].head(8) for kind in kinds], ignore_index=True)
    frame["image"] = [str(FASHION / p) for p in frame["image"]]
    path = tmp_path_factory.mktemp("photos") / "catalog.csv"
    frame.to_csv(path, index=False)
    return path


def _catalog(path):
    from recsys.data import load_catalog

    return load_catalog(str(path), image_roots=[FASHION])


def test_knn_accuracy_reads_the_labels_of_the_nearest_items():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(4, 32))
    labels = pd.Series(np.repeat(["a", "b", "c", "d"], 50))
    vectors = np.repeat(centres, 50, axis=0) + 0.3 * rng.normal(size=(200, 32))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    queries, references = np.arange(0, 200, 5), np.setdiff1d(np.arange(200), np.arange(0, 200, 5))
    assert knn_accuracy(vectors, labels, queries, references) == 1.0
    shuffled = pd.Series(rng.permutation(labels.to_numpy()))
    assert knn_accuracy(vectors, shuffled, queries, references) < 0.5
    assert knn_accuracy(vectors, pd.Series([None] * 200), queries, references) is None
    # a query without a label takes no part (NaN), and the accuracy is over the others
    partial = labels.copy()
    partial[queries[:10]] = None
    hits = knn_hits(vectors, partial, queries, references)
    assert np.isnan(hits[:10]).all() and (hits[10:] == 1.0).all()


def test_the_paired_gain_brackets_the_change_and_sees_noise():
    rng = np.random.default_rng(0)
    before = (rng.random(1000) < 0.7).astype(float)
    better = np.where(rng.random(1000) < 0.1, 1.0, before)  # a tenth of the queries now right
    gain = paired_gain(before, better)
    assert gain["gain"] == pytest.approx(better.mean() - before.mean())
    assert 0 < gain["low"] < gain["gain"] < gain["high"]
    # the same accuracy, reached by other queries: the interval straddles zero
    shuffled = rng.permutation(before)
    noise = paired_gain(before, shuffled)
    assert noise["low"] < 0 < noise["high"] and noise["high"] - noise["low"] > 0.03
    assert paired_gain(before, before) == {"gain": 0.0, "low": 0.0, "high": 0.0}
    # queries that took no part in either judgement are left out
    before[:500] = np.nan
    assert paired_gain(before, better)["gain"] == pytest.approx(np.nanmean(better[500:] - before[500:]))
    assert paired_gain(np.full(3, np.nan), better[:3]) is None


@pytest.mark.slow  # three networks converted and run: `make check` keeps the kNN and the argument checks
def test_the_cli_fine_tunes_and_judges_the_backbone(photos, tmp_path):
    from recsys.cli import cli

    out = tmp_path / "checkpoints" / "shop"
    result = CliRunner().invoke(cli, ["finetune", "--catalog", str(photos), "--method", "simclr", "--epochs", "1",
                                      "--resolution", "64", "--batch-size", "8", "--eval-items", "20",
                                      "--out", str(out), "--image-root", str(FASHION), "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "kNN@20    at 64 px\n          before: category" in result.output
    report = json.loads((out / REPORT_FILE).read_text())
    assert report["method"] == "simclr" and len(report["losses"]) == 1 and np.isfinite(report["losses"][0])
    assert report["trained_items"] == 20 and report["held_out"] == 4  # a fifth of the judged photos
    assert set(report["knn_before"]) == set(report["knn_after"]) == set(report["knn_gain"]) == {"category", "colour"}
    gain = report["knn_gain"]["category"]
    assert gain["gain"] == pytest.approx(report["knn_after"]["category"] - report["knn_before"]["category"])
    assert gain["low"] <= gain["gain"] <= gain["high"]
    assert "gain:   category" in result.output
    better = report["knn_after"]["category"] > report["knn_before"]["category"]
    assert report["kept"] == better == (out / BACKBONE_FILE).is_file()

    # the trained backbone, saved as the kept file is, loads into the image tower by its path
    state = torch.load(out / STATE_FILE, weights_only=True)["model"]
    backbone = {k.removeprefix("backbone."): v for k, v in state.items() if k.startswith("backbone.")}
    torch.save(backbone, tmp_path / "backbone.pth")
    tuned = ImageTower(weights=str(tmp_path / "backbone.pth"), colour_weight=0.0, resolution=64)
    start = ImageTower(colour_weight=0.0, resolution=64)
    catalog = _catalog(photos).head(4)
    vectors = [tower.encode(catalog, show_progress=False).vectors for tower in (tuned, start)]
    cosines = (vectors[0] * vectors[1]).sum(1)
    assert np.all(cosines < 0.9999) and np.all(cosines > 0.5)  # moved, not destroyed
    assert tuned.encoder_id() != start.encoder_id()  # the embedding cache sees new weights


@pytest.mark.slow
@pytest.mark.parametrize("method, schedule", [("byol", "constant"), ("dino", "cosine")])  # simclr: the CLI test
def test_every_method_trains_on_cpu(photos, tmp_path, method, schedule):
    report = finetune(_catalog(photos), tmp_path / method, method=method, lr=1e-4, schedule=schedule, **TINY)
    assert len(report.losses) == 1 and np.isfinite(report.losses[0])
    assert report.knn_before["category"] is not None and report.knn_after["category"] is not None
    # 20 photos in batches of 8: two steps, the second taken at half the run
    state = torch.load(tmp_path / method / STATE_FILE, weights_only=True)
    rates = [group["lr"] for group in state["optimiser"]["param_groups"]]
    assert rates == pytest.approx([1e-4, 1e-3] if schedule == "constant" else [0.5e-4, 0.5e-3])


@pytest.mark.slow
def test_a_run_resumes_and_refuses_other_settings(photos, tmp_path):
    catalog = _catalog(photos)
    first = finetune(catalog, tmp_path / "run", **TINY)
    # as if the first run had kept a backbone that no later one can beat: a resumed run that judges
    # worse leaves it in place
    state = torch.load(tmp_path / "run" / STATE_FILE, weights_only=True)
    state["best"] = {"category": 1.0, "epochs": 1}
    torch.save(state, tmp_path / "run" / STATE_FILE)
    kept = tmp_path / "run" / BACKBONE_FILE
    torch.save({k.removeprefix("backbone."): v for k, v in state["model"].items() if k.startswith("backbone.")}, kept)
    earlier = kept.read_bytes()
    longer = finetune(catalog, tmp_path / "run", **{**TINY, "epochs": 2})
    assert not longer.kept and kept.read_bytes() == earlier and not (tmp_path / "run" / "candidate.pth").exists()
    assert longer.checkpoint == str(kept) and longer.checkpoint_epochs == 1
    assert f"not kept: no better than the backbone after 1 epoch(s), which {kept} keeps" in longer.summary()
    assert longer.losses[0] == first.losses[0] and len(longer.losses) == 2  # the first epoch was not run again
    assert longer.knn_before == first.knn_before
    # the starting weights' hits came back from the saved state: the gain is paired with them
    gain = longer.knn_after["category"] - first.knn_before["category"]
    assert longer.knn_gain["category"]["gain"] == pytest.approx(gain)
    from recsys.errors import ConfigError

    with pytest.raises(ConfigError, match="holds a run with other settings \\(method, resolution\\)"):
        finetune(catalog, tmp_path / "run", **{**TINY, "method": "simclr", "resolution": 96})


def test_bad_requests_are_clear_errors(photos, tmp_path):
    from recsys.errors import ConfigError, DataError

    catalog = _catalog(photos)
    with pytest.raises(ConfigError, match="method must be one of"):
        finetune(catalog, tmp_path / "x", method="mae", **TINY)
    with pytest.raises(ConfigError, match="schedule must be one of"):
        finetune(catalog, tmp_path / "x", schedule="linear", **TINY)
    with pytest.raises(DataError, match="at least 8"):
        finetune(catalog.head(5), tmp_path / "y", **TINY)


def test_the_summary_says_when_a_kept_gain_is_within_the_noise():
    from recsys.finetune import FinetuneReport

    report = FinetuneReport(out="o", method="dino", model="m", start_weights="default", epochs=1, resolution=96,
                            batch_size=64, lr=1e-4, schedule="constant", trained_items=8000, held_out=1000,
                            device="cpu", losses=[1.0], knn_before={"category": 0.70}, knn_after={"category": 0.71},
                            knn_gain={"category": {"gain": 0.01, "low": -0.004, "high": 0.024}}, kept=True,
                            checkpoint="o/backbone.pth")
    assert "gain:   category +0.010 (-0.004 to +0.024)" in report.summary()
    assert "within the noise of 1,000 held-out photos" in report.summary()
    report.knn_gain["category"]["low"] = 0.002
    assert "within the noise" not in report.summary()
