"""sha256 helpers shared by the embedding cache keys, encoder ids and bundle checksums."""
from __future__ import annotations

import hashlib
import os
from functools import lru_cache
from pathlib import Path

__all__ = ["sha256_bytes", "sha256_text", "sha256_file", "file_fingerprint"]


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_text(text: str) -> str:
    return sha256_bytes(text.encode("utf-8"))


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


@lru_cache(maxsize=64)
def _fingerprint(path: str, size: int, mtime: int) -> str:
    return sha256_file(path)[:16]


def file_fingerprint(path: str | Path) -> str:
    """Short content hash of a (large) file, computed once per process per (path, size, mtime)."""
    stat = os.stat(path)
    return _fingerprint(str(path), stat.st_size, stat.st_mtime_ns)
