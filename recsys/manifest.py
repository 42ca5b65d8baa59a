"""What a bundle manifest may hold before any path is built from it.

A manifest comes from disk or from Redis, and a worker turns its name, version and file names
into paths under its bundle cache. Anyone who can write to Redis or hand over a bundle folder
could otherwise make every worker write outside that cache, so each of them is checked where a
bundle is written, published, downloaded and read, and a bad manifest refuses the whole bundle.
"""
from __future__ import annotations

import math
import re

from recsys.errors import BundleError

__all__ = ["check_manifest", "check_name", "NAME_PATTERN"]

# a bundle name or version: one plain path component of letters, digits, '.', '_' and '-'
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
# a file inside a bundle: such components joined by '/', never '.', '..' or an absolute path
_FILE_PART = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,99}")
_SHA256 = re.compile(r"[0-9a-f]{64}")


def check_name(value, what: str, where: str) -> str:
    """``value`` when it is a valid bundle name or version.

    Raises:
        BundleError: anything else, named in the message.
    """
    if not isinstance(value, str) or not NAME_PATTERN.fullmatch(value):
        raise BundleError(f"{where}: bundle {what} {str(value)[:120]!r} is not allowed; use 1 to "
                          "100 letters, digits, '.', '_' or '-', starting with a letter or digit")
    return value


def check_manifest(manifest, where: str) -> dict:
    """``manifest`` when its name, version, file table and default weights are well formed.

    Args:
        manifest: the parsed ``manifest.json``.
        where: the bundle's path or Redis version, for the message.

    Raises:
        BundleError: the first problem found.
    """
    if not isinstance(manifest, dict):
        raise BundleError(f"{where}: manifest.json is not a JSON object")
    check_name(manifest.get("name"), "name", where)
    check_name(manifest.get("version"), "version", where)
    files = manifest.get("files")
    if not isinstance(files, dict):
        raise BundleError(f"{where}: manifest.json has no file table")
    for rel, meta in files.items():
        _check_file(rel, meta, where)
    _check_weights(manifest.get("default_weights"), where)
    return manifest


def _check_file(rel, meta, where: str) -> None:
    parts = rel.split("/") if isinstance(rel, str) else [None]
    if not all(isinstance(p, str) and _FILE_PART.fullmatch(p) for p in parts) or rel == "manifest.json":
        raise BundleError(f"{where}: file name {str(rel)[:120]!r} is not a plain relative name "
                          "inside the bundle")
    if not (isinstance(meta, dict) and isinstance(meta.get("sha256"), str)
            and _SHA256.fullmatch(meta["sha256"]) and isinstance(meta.get("bytes"), int)
            and not isinstance(meta["bytes"], bool) and meta["bytes"] >= 0):
        raise BundleError(f"{where}: the entry of {rel!r} needs a sha256 (64 hex digits) and a "
                          "byte count")


def _check_weights(weights, where: str) -> None:
    if weights is None:
        return
    if not isinstance(weights, dict) or not weights:
        raise BundleError(f"{where}: default_weights must map modalities to weights")
    for modality, weight in weights.items():
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) \
                or not math.isfinite(weight) or weight < 0:
            raise BundleError(f"{where}: default weight of {modality!r} is {weight!r}; weights "
                              "must be finite numbers >= 0")
    if not sum(weights.values()) > 0:
        raise BundleError(f"{where}: default_weights are all zero")
