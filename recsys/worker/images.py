"""The images that API requests name: downloaded once, off the request path, in a bounded pool.

A ``PUT /v1/items/{id}`` may name an image URL that answers slowly or never. The download runs
in this worker's small pool; the request waits a short while for it (``images.fetch_wait``) and
otherwise answers 202 while the pool finishes the item. A full pool refuses new downloads with
503, so a burst of slow URLs never holds more than ``images.fetch_workers`` threads per worker
and never blocks the reads this worker serves.
"""
from __future__ import annotations

import io
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from recsys.data.fetch import fetch
from recsys.data.images import data_url_bytes, decode_image, thumbnail
from recsys.errors import Unavailable
from recsys.settings import ImageSettings

__all__ = ["ImageFetches", "PreparedImage", "prepare_image"]

# what the towers decode: big enough for any backbone's input, small enough to pass around
_EMBED_SIDE = 512


@dataclass(frozen=True)
class PreparedImage:
    """A request's image, decoded and re-encoded: ``embed_url`` (a JPEG ``data:`` URL the towers
    read without any network) and ``thumbnail`` (the JPEG the API serves)."""

    embed_url: str
    thumbnail: bytes


def prepare_image(source: str, settings: ImageSettings) -> PreparedImage:
    """Fetch (http, https) or unpack (``data:``) an image, decode it as a raster image within the
    pixel cap, and re-encode it.

    Raises:
        ValueError: refused URL or address, too large, not a raster image, unreadable; the
            message says which (:class:`~recsys.data.fetch.FetchError` is a ValueError).
        OSError: Pillow could not decode it.
    """
    import base64

    if source.startswith(("http://", "https://")):
        data = fetch(source, settings.fetch_policy(allow_private=settings.fetch_private))
    else:
        data = data_url_bytes(source)[1]
    image = decode_image(data, draft_size=_EMBED_SIDE, max_pixels=settings.max_pixels)
    image.thumbnail((_EMBED_SIDE, _EMBED_SIDE))
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=95)
    return PreparedImage("data:image/jpeg;base64," + base64.b64encode(out.getvalue()).decode(),
                         thumbnail(image, settings.thumbnail_size))


class ImageFetches:
    """At most ``settings.fetch_workers`` image downloads (and what follows them) at a time."""

    def __init__(self, settings: ImageSettings, retry_after: float = 1.0):
        self.settings = settings
        self.retry_after = retry_after
        self._pool = ThreadPoolExecutor(settings.fetch_workers, thread_name_prefix="recsys-image")
        self._slots = threading.BoundedSemaphore(settings.fetch_workers)

    def submit(self, source: str, then: Callable[[PreparedImage], object]) -> Future:
        """Prepare ``source`` in the pool, then run ``then`` on it there; the future holds what
        ``then`` returns, or the error.

        Raises:
            Unavailable: every slot is busy with a download (503, retry later).
        """
        if not self._slots.acquire(blocking=False):
            raise Unavailable(f"{self.settings.fetch_workers} image downloads are already in flight "
                              "on this worker; nothing was stored, retry shortly",
                              retry_after=self.retry_after)
        try:
            return self._pool.submit(self._run, source, then)
        except BaseException:
            self._slots.release()
            raise

    def _run(self, source: str, then: Callable[[PreparedImage], object]):
        try:
            return then(prepare_image(source, self.settings))
        finally:
            self._slots.release()

    def stop(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
