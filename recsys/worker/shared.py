"""The item generation shared in memory by the workers of one ``recsys serve``."""
from __future__ import annotations

from multiprocessing import RawValue

__all__ = ["share_generation", "shared_generation"]

_SHARED_GEN = None  # set by share_generation() before gunicorn forks; the workers inherit it


def share_generation() -> None:
    """Map the shared generation (the master, before it forks the workers)."""
    global _SHARED_GEN
    _SHARED_GEN = RawValue("q", 0)


def shared_generation():
    """The item generation shared by the workers of this ``recsys serve`` (a ``RawValue`` in
    memory the master mapped before forking), or ``None`` outside ``recsys serve``.

    A worker that writes an item raises it before answering; every worker compares it with its
    own before answering from memory, so a write shows in the next response of any worker.
    """
    return _SHARED_GEN
