"""The catalog as it is served, for the shop's own systems (``recsys curate export``): the
bundle's items with what happened since (items put through the API, deleted ones left out,
attribute values set, duplicate listings merged), and what the checks and the reviewers said of
each put item."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd

from recsys.bundle import Bundle
from recsys.data import schema as S

__all__ = ["served_catalog"]


def served_catalog(bundle: Bundle, fresh: dict[str, dict], deleted: set[str], attributes: dict[str, dict],
                   dismissed: dict[str, set[str]], merged: dict[str, str] | None = None) -> pd.DataFrame:
    """One row per item not deleted: the bundle's catalog columns, ``source`` (``bundle`` or
    ``put``), ``merged_into`` (the listing a reviewer merged it into, ``""`` where none), one
    column per attribute set since the bundle (its value where set, overriding a catalog column of
    that name; the labels reviewers set are the ``labels`` column, JSON by tagger), and for put
    items ``held`` (the checks that hold it out of reads), ``flags`` (flagged checks no reviewer
    dismissed) and ``duplicate_of`` (the first listing its duplicate check named), each
    ``;``-joined, ``""`` where none.

    Args:
        fresh: the put items' stored entries by id (``RedisStore.changes.read().fresh``).
        deleted: deleted item ids. attributes: values set per item id, by attribute.
        dismissed: the checks reviewers dismissed, by item id.
        merged: merged listings by id, and the listing each redirects to.
    """
    kept = bundle.items[~bundle.items[S.ITEM_ID].isin(deleted | fresh.keys())]
    rows = [kept.assign(source="bundle")]
    if fresh:
        put = pd.DataFrame([{**entry["item"], S.ITEM_ID: item_id} for item_id, entry in fresh.items()])
        checks = [entry.get("checks") or {} for entry in fresh.values()]
        put = put.assign(
            source="put", held=[";".join(entry.get("held", [])) for entry in fresh.values()],
            flags=[";".join(n for n, c in found.items() if c.get("flagged") and n not in gone)
                   for found, gone in zip(checks, (dismissed.get(item_id, set()) for item_id in fresh))],
            duplicate_of=[_first_duplicate(found) for found in checks])
        rows.append(put[~put[S.ITEM_ID].isin(deleted)])
    table = pd.concat(rows, ignore_index=True)
    for column in ("held", "flags", "duplicate_of"):
        table[column] = table[column].fillna("") if column in table else ""
    table["merged_into"] = [(merged or {}).get(item, "") for item in table[S.ITEM_ID]]
    for name in sorted({name for values in attributes.values() for name in values}):
        before = table[name] if name in table else pd.Series(np.nan, index=table.index, dtype=object)
        table[name] = [_cell(attributes[item][name]) if name in attributes.get(item, {}) else old
                       for item, old in zip(table[S.ITEM_ID], before)]
    return table.sort_values(S.ITEM_ID, kind="stable").reset_index(drop=True)


def _cell(value):
    """An attribute's value as a CSV cell: JSON for a structured one (the ``labels`` a reviewer set:
    ``{"kind": "footwear"}``)."""
    return json.dumps(value) if isinstance(value, (dict, list)) else value


def _first_duplicate(checks: dict) -> str:
    """The listing a put item's duplicate check named first, ``""`` for none."""
    named = (checks.get("duplicate") or {}).get("of") or []
    return named[0][S.ITEM_ID] if named else ""
