"""API fixtures: an app over the small trained shop (served_bundle), published to a real Redis."""
from __future__ import annotations

import time

import pytest

from recsys.settings import load_settings

API_KEY = "test-key-0123456789"
WRITE = {"X-API-Key": API_KEY}


def api_settings(tmp_path, redis_url, prefix, **api):
    return load_settings(state_dir=tmp_path / "state", redis={"url": redis_url, "prefix": prefix},
                         api={"api_key": API_KEY, "warm_embedder": False, **api})


def bundle_copy(bundle, tmp_path, version: str):
    """The files of ``bundle`` under another version name (a second bundle to publish)."""
    import json
    import shutil

    copy = tmp_path / "models" / "market" / version
    shutil.copytree(bundle.path, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    (copy / "manifest.json").write_text(json.dumps({**manifest, "version": version}))
    return copy


@pytest.fixture
def app(tmp_path, redis_url, redis_prefix, served_bundle):
    from recsys.api import create_app
    from tests.api.live import publish

    publish(redis_url, served_bundle.path, redis_prefix)
    app = create_app(api_settings(tmp_path, redis_url, redis_prefix))
    deadline = time.monotonic() + 10
    while not app.extensions["recsys"].subscribed and time.monotonic() < deadline:
        time.sleep(0.01)  # the worker trusts its own cache once invalidations arrive
    yield app
    app.extensions["recsys"].stop()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def serving(app):
    return app.extensions["recsys"]
