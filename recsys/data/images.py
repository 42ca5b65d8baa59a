"""Opening catalog images from local paths or URLs with Pillow."""
from __future__ import annotations

import base64
import binascii
import io
import urllib.request
from pathlib import Path

from PIL import Image

__all__ = ["open_image", "image_key", "IMAGE_ERRORS"]

# what an unreadable, missing, truncated or unreachable image raises
IMAGE_ERRORS = (OSError, ValueError, Image.DecompressionBombError, SyntaxError)
_URL_TIMEOUT_S = 10


def open_image(source: str, *, draft_size: int | None = None) -> Image.Image:
    """Open and fully decode an image as RGB.

    Args:
        source: local path, http(s) URL, or ``data:image/...;base64,...`` URL.
        draft_size: let JPEG decoding downscale to about this size (much faster for big photos).

    Raises:
        One of ``IMAGE_ERRORS`` when the image is missing, unreachable or corrupt.
    """
    if source.startswith(("http://", "https://")):
        with urllib.request.urlopen(source, timeout=_URL_TIMEOUT_S) as response:
            image = Image.open(io.BytesIO(response.read()))
    elif source.startswith("data:"):
        image = Image.open(io.BytesIO(data_url_bytes(source)[1]))
    else:
        image = Image.open(source)
    if draft_size:
        image.draft("RGB", (draft_size, draft_size))
    image.load()
    return image.convert("RGB")


def data_url_bytes(source: str) -> tuple[str, bytes]:
    """``(mimetype, bytes)`` of a ``data:image/...;base64,...`` URL.

    Raises:
        ValueError: not base64-encoded, or not valid base64.
    """
    header, _, payload = source.partition(",")
    if not header.endswith(";base64"):
        raise ValueError("a data: image URL must be base64-encoded (data:image/png;base64,...)")
    try:
        data = base64.b64decode(payload, validate=True)
    except binascii.Error as exc:
        raise ValueError(f"the data: image URL is not valid base64 ({exc})") from exc
    return header[len("data:"):-len(";base64")] or "application/octet-stream", data


def image_key(source: str) -> str | None:
    """Content key of an image: the file's sha256, or the URL itself; None when absent/unreadable."""
    from recsys._hashing import sha256_file, sha256_text

    if not source:
        return None
    if "://" in source or source.startswith("data:"):
        return "url:" + sha256_text(source)
    path = Path(source)
    try:
        return sha256_file(path)
    except OSError:
        return None
