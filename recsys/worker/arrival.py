"""A put item's checks in a worker (:mod:`recsys.curation.arrival`): run against the bundle it
serves and the items put since, then acted on by the settings' policy per check (``checks.*``):
accept and report, hold the item out of reads, or refuse the put."""
from __future__ import annotations

import logging
import threading

from recsys._lru import Lru
from recsys.curation.arrival import ArrivalChecks, Served
from recsys.errors import Conflict
from recsys.serve import Recommender
from recsys.settings import Settings
from recsys.towers.base import TowerOutput

__all__ = ["arrival_checks", "check_put"]

logger = logging.getLogger(__name__)
_references = Lru(2)  # per bundle version: the served one, and the one it is being replaced by
_lock = threading.Lock()


def arrival_checks(recommender: Recommender, seed: int = 0) -> ArrivalChecks:
    """What put items are checked against for ``recommender``'s bundle, made once per version
    (a pass over the bundle: a worker makes it when it loads the bundle, before any put)."""
    with _lock:
        found = _references.get(recommender.version)
        if found is None:
            found = ArrivalChecks(recommender.bundle, seed)
            _references.put(recommender.version, found)
        return found


def check_put(settings: Settings, recommender: Recommender, item_id: str, item: dict,
              outputs: dict[str, TowerOutput], thumbnail: bytes | None,
              dismissed: set[str] = frozenset()) -> tuple[dict, list[str]]:
    """The put item's checks (``{}`` when they are off), and the flagged checks whose policy holds
    the item. A check a reviewer ``dismissed`` for this item is reported (``"dismissed": true``)
    and neither holds nor refuses it.

    Raises:
        Conflict: a flagged check's policy is ``refuse``; the message names what was found.
    """
    policy = settings.checks
    if not policy.enabled:
        return {}, []
    try:
        checks = arrival_checks(recommender, settings.seed).check(
            item, {m: (o.vectors[0] if o.mask[0] else None) for m, o in outputs.items()}, thumbnail,
            _served(recommender, item_id))
    except Exception:  # a check that breaks on an odd item must not lose the item: stored unchecked
        logger.exception("checking put item %r failed; it is stored unchecked", item_id)
        return {}, []
    for name in dismissed & checks.keys():
        checks[name]["dismissed"] = True
    flagged = [name for name, found in checks.items() if found["flagged"] and name not in dismissed]
    refused = [name for name in flagged if getattr(policy, name) == "refuse"]
    if refused:
        raise Conflict(f"item {item_id!r} was not stored: {'; '.join(_said(name, checks[name]) for name in refused)}",
                       item_id=item_id, checks={name: checks[name] for name in refused})
    return checks, [name for name in flagged if getattr(policy, name) == "hold"]


def _said(name: str, found: dict) -> str:
    """A refused check in words."""
    if name == "duplicate":
        return "it duplicates " + ", ".join(repr(d["item_id"]) for d in found["of"][:5])
    if name == "quality":
        return "its photo: " + ", ".join(found["reasons"])
    return found.get("reason") or name


def _served(recommender: Recommender, item_id: str) -> list[Served]:
    """The items a put item is compared with: the bundle's still served (not deleted, not
    replaced by a put), and those put since; never the item itself."""
    bundle, changes = recommender.bundle, recommender.changes
    usable = ~changes.hidden
    if item_id in bundle.item_ids:
        usable = usable.copy()
        usable[bundle.item_ids.row(item_id)] = False
    served = [Served.of_bundle(bundle, usable)]
    if len(changes):
        ids = changes.ids.ids
        served.append(Served.of(ids, changes.vectors.blocks, changes.items,
                                lambda row: changes.thumbnails.get(ids[row]), ids != item_id))
    return served
