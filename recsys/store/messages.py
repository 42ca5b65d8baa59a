"""The messages the workers of every server hear on the bundle channel (``Keys.events``), one type
per kind: each is written by :func:`encode` and read back by :func:`decode`, nowhere else.

* :class:`Activated`: a bundle version became the active one (``recsys publish``).
* :class:`ItemsChanged`: an item was put or deleted through the API; the item generation is now ``gen``.
* :class:`ActivityPosted`: an interaction post's users and the items it moved to the front of each
  one's recent list, in the order Redis applied the posts; with the feed lists the posting worker
  made for them (:class:`FeedList`), so every worker can keep them.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import orjson

logger = logging.getLogger(__name__)

__all__ = ["Activated", "ItemsChanged", "ActivityPosted", "FeedList", "Message", "encode", "decode"]


@dataclass(frozen=True)
class Activated:
    version: str


@dataclass(frozen=True)
class ItemsChanged:
    gen: int


@dataclass(frozen=True)
class FeedList:
    """A user's folded-in feed list for their recent items, made with bundle ``version``."""

    user: str
    recent: list[str]
    rows: list[int]
    scores: list[float]


@dataclass(frozen=True)
class ActivityPosted:
    """One interaction post.

    Attributes:
        recent: per user, the items the post moved to the front of their recent list, newest first.
        origin: the posting worker's token (``None`` outside the API).
        at: when Redis applied it (epoch seconds).
        ttl: seconds an idle user's recent list lives.
        cap: the most items a recent list holds.
        version: the bundle version the ``lists`` were made with.
        lists: the users' feed lists the posting worker made (possibly none).
    """

    recent: dict[str, list[str]]
    origin: str | None
    at: float
    ttl: int
    cap: int
    version: str | None = None
    lists: tuple[FeedList, ...] = ()


Message = Activated | ItemsChanged | ActivityPosted


def encode(message: Message) -> bytes:
    """The JSON a message travels as."""
    if isinstance(message, Activated):
        return orjson.dumps({"active": message.version})
    if isinstance(message, ItemsChanged):
        return orjson.dumps({"items": message.gen})
    return orjson.dumps({"recent": message.recent, "origin": message.origin, "at": message.at,
                         "ttl": message.ttl, "cap": message.cap, "version": message.version,
                         "lists": [vars(entry) for entry in message.lists]})


def decode(data: bytes) -> Message | None:
    """The message ``data`` holds, or ``None`` for anything else (another program's, or a
    malformed one): a worker ignores what it cannot read."""
    try:
        raw = orjson.loads(data)
        if "active" in raw:
            return Activated(str(raw["active"]))
        if "items" in raw:
            return ItemsChanged(int(raw["items"]))
        if "recent" in raw:
            recent = {str(user): [str(i) for i in items] for user, items in raw["recent"].items()}
            return ActivityPosted(recent, raw.get("origin"), float(raw["at"]), int(raw["ttl"]),
                                  int(raw["cap"]), raw.get("version"), _lists(raw.get("lists")))
    except (orjson.JSONDecodeError, TypeError, KeyError, ValueError, AttributeError):
        pass
    return None


def _lists(raw) -> tuple[FeedList, ...]:
    """The feed lists of a post's message; a malformed one is left out (the activity itself
    must still be heard)."""
    lists = []
    for entry in raw if isinstance(raw, list) else ():
        try:
            lists.append(FeedList(str(entry["user"]), [str(i) for i in entry["recent"]], list(entry["rows"]),
                                  list(entry["scores"])))
        except (TypeError, KeyError):
            logger.warning("ignored a malformed feed list in a post's message")
    return tuple(lists)
