"""Image URLs in PUT /v1/items: fetched once, off the request, within host rules and limits."""
from __future__ import annotations

import time

import pytest

from recsys.settings import load_settings
from tests.api.conftest import API_KEY, WRITE
from tests.api.test_routes import assert_error
from tests.hostile import HostileServer


@pytest.fixture(scope="module")
def host():
    with HostileServer(delay=1.5) as server:
        yield server


def _app(tmp_path, redis_url, redis_prefix, served_bundle, **images):
    from recsys.api import create_app
    from tests.api.live import publish

    publish(redis_url, served_bundle.path, redis_prefix)
    settings = load_settings(state_dir=tmp_path / "state", redis={"url": redis_url, "prefix": redis_prefix},
                             api={"api_key": API_KEY, "warm_embedder": False}, images=images)
    return create_app(settings)


@pytest.fixture
def local_images(tmp_path, redis_url, redis_prefix, served_bundle):
    """An app that may fetch from loopback (the hostile host), waiting 0.5 s for an image."""
    app = _app(tmp_path, redis_url, redis_prefix, served_bundle, fetch_private=True, fetch_wait=0.5,
               fetch_timeout=4.0, fetch_workers=1)
    yield app.test_client()
    app.extensions["recsys"].stop()


def _wait_for(client, path: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while client.get(path).status_code != 200 and time.monotonic() < deadline:
        time.sleep(0.1)


def test_an_image_url_on_a_private_address_is_refused(client, host):
    for url in (host.url("/photo.jpg"), "http://127.0.0.1:6379/", "http://169.254.169.254/latest/meta-data"):
        r = client.put("/v1/items/SSRF", json={"title": "a dress", "image": url}, headers=WRITE)
        assert_error(r, 400, "invalid_request", "loopback, private or link-local")
    assert_error(client.get("/v1/items/SSRF"), 404, "not_found")


def test_an_image_url_is_fetched_once_and_served_as_the_bundle_s_jpeg(local_images, host):
    before = len(host.hits)
    r = local_images.put("/v1/items/PHOTO", json={"title": "a red dress", "image": host.url("/photo.jpg")},
                         headers=WRITE)
    if r.status_code == 202:  # the encoders were still loading (this app does not warm them)
        _wait_for(local_images, "/v1/items/PHOTO")
    else:
        assert r.status_code == 201, r.json
    assert local_images.get("/v1/items/PHOTO").json["item"]["image"] == "/v1/items/PHOTO/image"
    assert host.hits[before:] == ["/photo.jpg"]  # once, for the towers and the thumbnail together
    image = local_images.get("/v1/items/PHOTO/image")
    assert image.status_code == 200 and image.mimetype == "image/jpeg"


@pytest.mark.slow  # waits on a slow host
def test_a_slow_image_answers_202_and_the_item_arrives_with_it(local_images, host):
    started = time.monotonic()
    r = local_images.put("/v1/items/LATE", json={"title": "a late dress", "image": host.url("/late.jpg")},
                         headers=WRITE)
    assert r.status_code == 202 and r.json["status"] == "pending" and r.headers["Location"] == "/v1/items/LATE"
    assert time.monotonic() - started < 1.4  # the request waited fetch_wait, not the download
    assert_error(local_images.get("/v1/items/LATE"), 404, "not_found")
    _wait_for(local_images, "/v1/items/LATE")
    assert local_images.get("/v1/items/LATE").json["item"]["image"] == "/v1/items/LATE/image"


@pytest.mark.slow  # waits on a slow host
def test_a_full_download_pool_answers_503_and_a_dead_host_stores_nothing(local_images, host):
    first = local_images.put("/v1/items/NEVER", json={"title": "t", "image": host.url("/never")}, headers=WRITE)
    assert first.status_code == 202
    second = local_images.put("/v1/items/NEVER2", json={"title": "t", "image": host.url("/photo.jpg")},
                              headers=WRITE)
    assert_error(second, 503, "unavailable", "image downloads are already in flight")
    assert "Retry-After" in second.headers
    time.sleep(2.0)  # the dead host closes without an answer: the item is left out
    assert_error(local_images.get("/v1/items/NEVER"), 404, "not_found")


def test_an_image_over_the_pixel_cap_is_refused(local_images, host):
    from tests.hostile import bomb

    bomb()
    r = local_images.put("/v1/items/BOMB", json={"title": "t", "image": host.url("/bomb.png")}, headers=WRITE)
    assert_error(r, 400, "invalid_request", "13000x13000 pixels")
