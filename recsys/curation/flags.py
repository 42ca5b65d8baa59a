"""The batch reads as flags for the review queue: the duplicate listings and outliers a build finds
in the whole catalog, per flagged item, in the shape a put item's checks take
(:mod:`recsys.curation.arrival`), so that one queue shows both and a reviewer acts on both alike.

* **duplicate**: every item of a duplicate group but its first, ``of`` the first, with the pair's
  image, pixel and text cosines;
* **quality**: a blank, dark, bright, flat or noise photo, with its severity;
* **off_category**: a photo closer to another category's images than to its own, by a robust z of
  at least ``REASON_Z``, with ``suggested_category``;
* **image_text**: a text unlike the texts of the items its photo looks like, as robust a z.

Uniqueness ("unlike any other item") stays a score on the outliers view: a new kind of product is
unusual without being wrong, and nothing in the queue could fix it.
"""
from __future__ import annotations

import numpy as np

from recsys.curation.duplicates import Duplicates
from recsys.curation.outliers import REASON_Z, SIGNAL_LABELS, Outliers

__all__ = ["catalog_flags", "flag_counts"]


def _rounded(value) -> float | None:
    return None if value is None or not np.isfinite(value) else round(float(value), 4)


def catalog_flags(duplicates: Duplicates | None, outliers: Outliers | None) -> dict[str, dict]:
    """Each flagged item's checks, ``{item_id: {check: {"flagged": True, ...evidence}}}``: the
    duplicates in group order first, then the outliers from the highest score."""
    flags: dict[str, dict] = {}
    if duplicates is not None:
        pairs = {frozenset(p): row for p, row in zip(zip(duplicates.pairs["item_a"], duplicates.pairs["item_b"]),
                                                     duplicates.pairs.itertuples())}
        for first, *others in duplicates.groups:
            for item in others:
                pair = pairs[frozenset((first, item))]
                flags.setdefault(item, {})["duplicate"] = {"flagged": True, "of": [{
                    "item_id": first, "image": _rounded(pair.image), "pixels": _rounded(pair.pixels),
                    "text": _rounded(pair.text), "exact": bool(pair.exact)}]}
    if outliers is not None:
        for row in outliers.items.itertuples():
            checks = {}
            if row.quality_problems:
                checks["quality"] = {"flagged": True, "reasons": row.quality_problems,
                                     "severity": round(float(row.quality_severity), 3)}
            if row.off_category_z >= REASON_Z and row.suggested_category:
                checks["off_category"] = {"flagged": True, "z": round(float(row.off_category_z), 2),
                                          "suggested_category": row.suggested_category,
                                          "reason": f"{SIGNAL_LABELS['off_category']}: {row.suggested_category}"}
            if row.image_text_z >= REASON_Z:
                checks["image_text"] = {"flagged": True, "z": round(float(row.image_text_z), 2),
                                        "reason": SIGNAL_LABELS["image_text"]}
            if checks:
                flags.setdefault(str(row.item_id), {}).update(checks)
    return flags


def flag_counts(flags: dict[str, dict]) -> dict[str, int]:
    """How many items each check flagged (a manifest's summary)."""
    counts: dict[str, int] = {}
    for checks in flags.values():
        for name in checks:
            counts[name] = counts.get(name, 0) + 1
    return dict(sorted(counts.items()))
