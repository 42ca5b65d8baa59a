"""Opening catalog images with Pillow: raster formats only, a pixel cap before decoding, and the
JPEG thumbnails a bundle holds (the only image bytes the API ever sends)."""
from __future__ import annotations

import base64
import binascii
import io
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from recsys.data.fetch import FetchPolicy, fetch

__all__ = ["open_image", "decode_image", "thumbnail", "image_key", "data_url_bytes", "IMAGE_ERRORS",
           "RASTER_FORMATS", "MAX_PIXELS"]

# what an unreadable, missing, truncated, refused or unreachable image raises (FetchError is a
# ValueError)
IMAGE_ERRORS = (OSError, ValueError, Image.DecompressionBombError, SyntaxError)
# what Pillow may decode: no vector or document formats (an SVG could carry a script)
RASTER_FORMATS = ("JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF")
MAX_PIXELS = 40_000_000
# every decode here checks its own cap (max_pixels) before decoding, so Pillow's process-wide
# one, which warns or raises by a fixed size, stands aside
Image.MAX_IMAGE_PIXELS = None
# a catalog is the operator's own: its URLs may reach private hosts, within the same caps
CATALOG_FETCH = FetchPolicy(allow_private=True)


def open_image(source: str, *, draft_size: int | None = None, max_pixels: int = MAX_PIXELS,
               policy: FetchPolicy = CATALOG_FETCH) -> Image.Image:
    """Open and fully decode an image as RGB.

    Args:
        source: local path, http(s) URL, or ``data:image/...;base64,...`` URL.
        draft_size: let JPEG decoding downscale to about this size (much faster for big photos).
        max_pixels: a larger image is refused before it is decoded.
        policy: how an http(s) URL is fetched.

    Raises:
        One of ``IMAGE_ERRORS`` when the image is missing, unreachable, corrupt, too large or not
        a raster format.
    """
    if source.startswith(("http://", "https://")):
        data: bytes | Path = fetch(source, policy)
    elif source.startswith("data:"):
        data = data_url_bytes(source)[1]
    else:
        data = Path(source)
    return decode_image(data, draft_size=draft_size, max_pixels=max_pixels)


def decode_image(data: bytes | Path, *, draft_size: int | None = None,
                 max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Decode image bytes (or a file) as RGB, refusing non-raster formats and too many pixels.

    Raises:
        One of ``IMAGE_ERRORS``.
    """
    source = io.BytesIO(data) if isinstance(data, bytes) else data
    try:
        opened = Image.open(source, formats=RASTER_FORMATS)
    except UnidentifiedImageError:  # its message names a BytesIO object, not what was wrong
        raise ValueError(f"not a {', '.join(RASTER_FORMATS[:-1])} or {RASTER_FORMATS[-1]} image") from None
    with opened as image:
        width, height = image.size
        if width * height > max_pixels:
            raise ValueError(f"the image is {width}x{height} pixels; the limit is {max_pixels:,}")
        if draft_size:
            image.draft("RGB", (draft_size, draft_size))
        image.load()
        return image.convert("RGB")


def thumbnail(image: Image.Image, max_side: int) -> bytes:
    """``image`` no larger than ``max_side`` on its longer side, as JPEG bytes."""
    small = image.copy()
    small.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    small.save(out, format="JPEG", quality=85, optimize=True)
    return out.getvalue()


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


