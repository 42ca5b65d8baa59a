"""The duplicate finder's image threshold follows the image backbone: calibrated at build from the
catalog's own photos (real photos, real encoders)."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
from PIL import Image

from recsys.curation import find_duplicates
from recsys.curation.calibration import MIN_PHOTOS, augmented_copy, calibrate_image_threshold
from recsys.curation.duplicates import IMAGE_THRESHOLD
from recsys.curation.faults import MILD


def _scores(bundle, truth, threshold: float) -> tuple[float, int]:
    """(recall of the mild re-uploads, pairs found between two original items)."""
    found = {frozenset(p) for g in find_duplicates(bundle, threshold=threshold).groups
             for p in itertools.combinations(g, 2)}
    mild = truth[truth["transform"].isin(MILD)]
    recall = np.mean([frozenset(p) in found for p in zip(mild["source"], mild["copy"])])
    copies = set(truth["copy"])
    return float(recall), sum(not (p & copies) for p in found)


@pytest.fixture(scope="module")
def random_backbone(faulty, tmp_path_factory, _text_tower):
    """The ``faulty`` shop built again with a randomly initialised ResNet-18: a backbone that puts
    nearly every pair of photos above 0.9."""
    from recsys.bundle import read_bundle
    from recsys.data import validate_catalog
    from recsys.pipeline.build import build_item_bundle
    from recsys.towers import create_tower
    from recsys.towers.image import ImageTower
    from tests.conftest import make_settings

    tmp = tmp_path_factory.mktemp("random-backbone")
    towers = {"image": ImageTower("resnet18", weights="random"), "text": _text_tower,
              "tabular": create_tower("tabular")}
    catalog = validate_catalog(faulty[0].items, source="faulty, random backbone")
    report = build_item_bundle(catalog, make_settings(tmp, duplicates={"calibration_copies": 256}),
                               tmp / "models" / "random", show_progress=False, towers=towers)
    return read_bundle(report.path), report


def test_the_build_calibrates_the_threshold_near_the_one_tuned_for_its_backbone(faulty):
    bundle, _ = faulty
    calibration = bundle.manifest["duplicates"]["calibration"]
    photos = int(bundle.vectors.blocks["image"].mask.sum())
    assert calibration["copies"] == photos  # fewer photos than copies asked for: each is copied once
    assert abs(calibration["threshold"] - IMAGE_THRESHOLD) <= 0.04, calibration
    assert calibration["neighbours_passing"] < 0.5
    assert find_duplicates(bundle).threshold == calibration["threshold"] == bundle.manifest["duplicates"]["threshold"]


@pytest.mark.slow  # a second backbone, built and run: `make check` leaves it out
def test_another_backbone_gets_its_own_threshold_and_keeps_finding_re_uploads(faulty, random_backbone):
    (lite0, truth), (random, report) = faulty, random_backbone
    threshold = random.manifest["duplicates"]["calibration"]["threshold"]
    assert threshold > 0.97
    assert any("nearest neighbours above its duplicate threshold" in w for w in report.warnings), report.warnings
    tuned, _ = _scores(lite0, truth, lite0.manifest["duplicates"]["threshold"])
    recall, strangers = _scores(random, truth, threshold)
    _, fixed_strangers = _scores(random, truth, IMAGE_THRESHOLD)
    assert recall >= tuned - 0.05, (recall, tuned)
    assert strangers <= fixed_strangers
    # the fixed threshold passes nearly every item's nearest other item on this backbone's photos
    nearest = random.similar["image"].scores[:, 0]
    passing = random.manifest["duplicates"]["calibration"]["neighbours_passing"]
    assert (nearest >= IMAGE_THRESHOLD).mean() >= 0.95 > passing


def test_a_copy_is_a_re_encoded_edit_of_the_photo_and_seeded():
    photo = Image.fromarray(np.random.default_rng(0).integers(0, 255, (80, 60, 3), dtype=np.uint8))
    a = augmented_copy(photo, np.random.default_rng(5))
    b = augmented_copy(photo, np.random.default_rng(5))
    assert a.mode == "RGB" and np.array_equal(np.asarray(a), np.asarray(b))
    assert a.size != photo.size or not np.array_equal(np.asarray(a), np.asarray(photo))


def test_too_few_photos_keep_the_fixed_threshold():
    class Unused:
        def encode_images(self, images):
            raise AssertionError("no photo should be encoded")

    vectors = np.eye(MIN_PHOTOS, dtype=np.float32)
    mask = np.arange(MIN_PHOTOS) > 0
    found = calibrate_image_threshold(Unused(), [""] * MIN_PHOTOS, vectors, mask, copies=256)
    assert found["threshold"] is None and "fewer than the 50" in found["reason"]


def test_a_build_with_calibration_off_says_so(built):
    report, recommender = built
    duplicates = recommender.bundle.manifest["duplicates"]
    assert duplicates["threshold"] == IMAGE_THRESHOLD
    assert duplicates["calibration"] == {"threshold": None,
                                         "reason": "calibration turned off (duplicates.calibration_copies = 0)"}
