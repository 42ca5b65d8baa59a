"""The thumbnails a bundle holds: each catalog image decoded once more and re-encoded as a small
JPEG, so that serving sends only image bytes the bundle itself carries."""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

from tqdm.auto import tqdm

from recsys.bundle import Thumbnails
from recsys.data.images import IMAGE_ERRORS, open_image, thumbnail
from recsys.settings import ImageSettings

__all__ = ["make_thumbnails"]


def make_thumbnails(sources, settings: ImageSettings, *, show_progress: bool = False) -> Thumbnails | None:
    """One JPEG per item of ``sources`` (the catalog's image column), empty where the image is
    missing or unreadable; ``None`` when no item has one.

    Decoding and resizing release the GIL in Pillow, so a few threads use the cores.
    """
    sources = [s if isinstance(s, str) else "" for s in sources]
    if not any(sources):
        return None
    size = settings.thumbnail_size
    # a catalog is the operator's own: its URLs may reach private hosts, within the caps
    policy = settings.fetch_policy(allow_private=True)

    def one(source: str) -> bytes:
        if not source:
            return b""
        try:
            image = open_image(source, draft_size=2 * size, max_pixels=settings.max_pixels, policy=policy)
        except IMAGE_ERRORS:
            return b""
        return thumbnail(image, size)

    with ThreadPoolExecutor(min(4, os.cpu_count() or 1)) as pool:
        images = list(tqdm(pool.map(one, sources), total=len(sources), desc="thumbnails",
                           disable=not show_progress, unit="img"))
    thumbnails = Thumbnails.pack(images)
    return thumbnails if thumbnails.present().any() else None
