"""Image downloads: host rules, a deadline over the whole download, a size cap, a pixel cap."""
from __future__ import annotations

import time

import pytest

from recsys.data.fetch import FetchError, FetchPolicy, fetch
from recsys.data.images import decode_image
from tests.hostile import HostileServer, bomb, jpeg

LOCAL = FetchPolicy(timeout_s=0.5, max_bytes=1 << 20, allow_private=True)


@pytest.fixture(scope="module")
def host():
    with HostileServer(delay=3.0) as server:
        yield server


def test_a_photo_is_fetched_once(host):
    before = len(host.hits)
    assert fetch(host.url("/photo.jpg"), LOCAL) == jpeg()
    assert len(host.hits) == before + 1


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:6379/", "http://localhost/x.jpg", "http://10.0.0.8/x.jpg", "http://169.254.169.254/latest",
    "http://[::1]/x.jpg", "http://[::ffff:127.0.0.1]/x.jpg", "http://0.0.0.0/x.jpg",
])
def test_loopback_private_and_link_local_hosts_are_refused(url):
    with pytest.raises(FetchError, match="loopback, private or link-local"):
        fetch(url, FetchPolicy(timeout_s=1.0))


def test_a_redirect_is_checked_like_the_first_url(host):
    with pytest.raises(FetchError, match="loopback, private or link-local"):
        fetch(host.url("/to/127.0.0.1:6379/"), FetchPolicy(timeout_s=1.0, allow_private=False))
    with pytest.raises(FetchError, match="more than 3 redirects"):
        fetch(host.url("/loop"), LOCAL)


@pytest.mark.parametrize("path", ["/never", "/trickle", "/late.jpg"])
def test_the_deadline_covers_the_whole_download(host, path):
    started = time.monotonic()
    with pytest.raises(FetchError, match="did not answer within 0.5 s"):
        fetch(host.url(path), LOCAL)
    assert time.monotonic() - started < 1.5


def test_a_body_over_the_cap_is_not_read_further(host):
    with pytest.raises(FetchError, match="over 1,048,576 bytes"):
        fetch(host.url("/huge"), LOCAL)


def test_other_schemes_are_refused():
    for url in ("file:///etc/passwd", "gopher://127.0.0.1:6379/_PING", "ftp://example.com/x.jpg"):
        with pytest.raises(FetchError, match="only http and https"):
            fetch(url, LOCAL)


def test_a_decompression_bomb_is_refused_before_decoding(host):
    bomb()  # made before the clock starts
    data = fetch(host.url("/bomb.png"), FetchPolicy(timeout_s=5.0, allow_private=True))
    assert len(data) < 1 << 20
    with pytest.raises(ValueError, match="13000x13000 pixels; the limit is 40,000,000"):
        decode_image(data)
