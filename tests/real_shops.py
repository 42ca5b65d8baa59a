"""Real-photo shops with injected faults, built once per session for the curation and search
tests: re-uploads (``faulty``; its bundle, ``faulty_shop``; an API client over it,
``faulty_client``), broken or swapped photos (``broken``) and second sellers' listings
(``resold``). A conftest imports them."""
from __future__ import annotations

import time
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import pytest

FASHION = Path(__file__).resolve().parents[2] / "shared" / "data" / "fashion-products"


@pytest.fixture(scope="session")
def faulty(tmp_path_factory, _image_tower, _text_tower):
    """(bundle, truth): 120 real products (a seeded sample); 20 transformed copies of their photos,
    two of each kind, and one more exact copy of one source ("exact-twin"); and one colour
    variant: the photo of an item without copies, resized, listed in another colour under another
    title (its truth row's transform: "colour variant")."""
    from recsys.curation.faults import TRANSFORMS, inject_copies

    tmp = tmp_path_factory.mktemp("faulty")
    frame, truth = inject_copies(_sample(120, 7), 2 * len(TRANSFORMS), tmp / "copies", seed=7)
    # a second exact copy of the first exact copy's source: three items with the same photo
    first = truth[truth["transform"] == "exact copy"].iloc[0]
    twin = frame[frame["item_id"] == first["copy"]].assign(item_id="exact-twin")
    truth = pd.concat([truth, pd.DataFrame({"source": [first["source"]], "copy": ["exact-twin"],
                                            "transform": ["exact copy"]})], ignore_index=True)
    alone = frame[~frame["item_id"].isin(truth["source"]) & ~frame["item_id"].isin(truth["copy"])].iloc[:1]
    variant, _ = inject_copies(alone, 1, tmp / "variant", seed=1, transforms=["resize 2x"])
    variant = variant.iloc[[-1]].assign(item_id="variant", colour="green", title="Plain Green Cotton Scarf")
    truth = pd.concat([truth, pd.DataFrame({"source": alone["item_id"], "copy": ["variant"],
                                            "transform": ["colour variant"]})], ignore_index=True)
    return _build(pd.concat([frame, twin, variant], ignore_index=True), tmp, "faulty", _image_tower, _text_tower), truth


@pytest.fixture
def faulty_shop(faulty):
    """The ``faulty`` shop's bundle."""
    return faulty[0]


@contextmanager
def served(bundle: Path, tmp_path: Path, redis_url: str, redis_prefix: str, **settings):
    """A Flask test client over ``bundle``, published to a real Redis, once its worker loaded it;
    ``settings`` override the test API's (``checks={"duplicate": "refuse"}``)."""
    from recsys.api import create_app
    from recsys.settings import load_settings
    from tests.api.conftest import api_settings
    from tests.api.live import publish

    publish(redis_url, bundle, redis_prefix)
    base = api_settings(tmp_path, redis_url, redis_prefix)
    app = create_app(load_settings(**{**base.model_dump(exclude={"config_file"}), **settings}) if settings else base)
    deadline = time.monotonic() + 10
    while app.extensions["recsys"].current is None and time.monotonic() < deadline:
        time.sleep(0.01)
    try:
        yield app.test_client()
    finally:
        app.extensions["recsys"].stop()


@pytest.fixture
def faulty_client(tmp_path, redis_url, redis_prefix, faulty):
    """A Flask test client over the ``faulty`` shop, published to a real Redis."""
    with served(faulty[0].path, tmp_path, redis_url, redis_prefix) as client:
        yield client


@pytest.fixture(scope="session")
def broken(tmp_path_factory, _image_tower, _text_tower):
    """(bundle, truth): 150 real products (another seeded sample), three of them with a blank
    photo, three with noise, and four that traded photos across top-level categories (truth:
    ``item_id``, ``fault``)."""
    from recsys.curation.faults import inject_photo_faults

    tmp = tmp_path_factory.mktemp("broken")
    frame, truth = inject_photo_faults(_sample(150, 11), 3, tmp / "photos", seed=11)
    return _build(frame, tmp, "broken", _image_tower, _text_tower), truth


@pytest.fixture(scope="session")
def resold(tmp_path_factory, _image_tower, _text_tower):
    """(bundle, truth): 150 real products (a third seeded sample) and 30 listings of them by a second
    seller (``inject_resellers``: the title reworded, the photo restaged), plus one more second
    seller's listing of the first source that names another colour, under the item id
    "other-colour" (its truth row's transform: "colour variant")."""
    from recsys.curation.faults import inject_resellers

    tmp = tmp_path_factory.mktemp("resold")
    frame, truth = inject_resellers(_sample(150, 13), 30, tmp / "resellers", seed=13)
    source = frame[frame["item_id"] == truth["source"].iloc[0]]
    again, _ = inject_resellers(source, 1, tmp / "variant", seed=14)
    colour = "red" if str(source["colour"].iloc[0]).lower() == "green" else "green"
    other = again.iloc[[-1]].assign(item_id="other-colour", colour=colour)
    truth = pd.concat([truth, pd.DataFrame({"source": [truth["source"].iloc[0]], "copy": ["other-colour"],
                                            "transform": ["colour variant"]})], ignore_index=True)
    return _build(pd.concat([frame, other], ignore_index=True), tmp, "resold", _image_tower, _text_tower), truth


def _sample(n: int, seed: int) -> pd.DataFrame:
    if not (FASHION / "catalog.csv").is_file():
        pytest.skip(f"no fashion-products at {FASHION}")
    frame = pd.read_csv(FASHION / "catalog.csv", dtype=str).sample(n, random_state=seed).reset_index(drop=True)
    frame["image"] = [str(FASHION / p) for p in frame["image"]]
    return frame


def _build(frame: pd.DataFrame, tmp: Path, name: str, image_tower, text_tower):
    from recsys.bundle import read_bundle
    from recsys.data import validate_catalog
    from recsys.pipeline.build import build_item_bundle
    from recsys.towers import create_tower
    from tests.conftest import make_settings

    catalog = validate_catalog(frame, source=f"{name} fashion sample")
    towers = {"image": image_tower, "text": text_tower, "tabular": create_tower("tabular")}
    settings = make_settings(tmp, joint=True, duplicates={"calibration_copies": 256})
    report = build_item_bundle(catalog, settings, tmp / "models" / name, show_progress=False, towers=towers)
    return read_bundle(report.path)
