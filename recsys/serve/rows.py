"""What a query returns: scored items, and the plain rows (display attributes, image path) that the
API and the CLI print for them."""
from __future__ import annotations

import math
from collections.abc import Iterable
from itertools import repeat
from operator import itemgetter
from typing import TYPE_CHECKING, Literal, NamedTuple
from urllib.parse import quote

import numpy as np
import orjson

from recsys.errors import InvalidRequest

if TYPE_CHECKING:
    from recsys.bundle import Bundle

__all__ = ["Scored", "Recommendations", "MAX_K", "check_k", "DISPLAY_COLUMNS", "image_path",
           "plain_value", "plain_row", "row_templates", "shown_labels", "result_rows", "scored_list", "dump_json",
           "Batch", "batch_arrays", "batch_feeds"]

MAX_K = 1000
# item attributes every result carries, so a widget can render it without another call
DISPLAY_COLUMNS = ("title", "category", "price", "colour")


class Scored(NamedTuple):
    """One recommended item (a named tuple: made for every result row, so cheap to build).

    Attributes:
        item_id: the catalog id.
        score: higher is better (see the method that returned it for its scale).
        cold: nobody interacted with the item when the user tower was trained; its collaborative
            factors were projected from its content.
        why: asked for with ``explain``: ``{"sources": [...], "reasons": [{"reason", "text",
            "contribution"}]}`` (:mod:`recsys.serve.ranked`); ``None`` otherwise.
    """

    item_id: str
    score: float
    cold: bool = False
    why: dict | None = None


class Recommendations(list):
    """What :meth:`~recsys.serve.Recommender.similar_items` and
    :meth:`~recsys.serve.Recommender.recommend` return: a list of :class:`Scored`, best first,
    that also says how it was made (a list, so iterating it costs no Python call per request).

    Attributes:
        strategy: ``"similar"`` (similar items), ``"ranked"`` (candidates ranked by the
            bundle's learned ranker, :mod:`recsys.serve.ranked`), ``"collaborative"`` (a trained
            user, with any recent items folded in), ``"fold-in"`` (a user the model has not seen,
            placed by their recent items) or ``"popular"`` (no history at all: the recent-window
            popularity ranking).
        message: why a fallback was used (an unknown user, an empty history); ``None`` otherwise.
    """

    __slots__ = ("strategy", "message")

    def __init__(self, items: Iterable[Scored] = (),
                 strategy: Literal["similar", "ranked", "collaborative", "fold-in", "popular"] = "similar",
                 message: str | None = None):
        super().__init__(items)
        self.strategy = strategy
        self.message = message

    @property
    def items(self) -> list[Scored]:
        return self

    @property
    def ids(self) -> list[str]:
        return [s.item_id for s in self]

    def __repr__(self) -> str:
        return f"Recommendations({list.__repr__(self)}, strategy={self.strategy!r}, message={self.message!r})"


Batch = tuple[np.ndarray, np.ndarray]  # ids (n, k) object, scores (n, k) float32


def batch_arrays(one, keys, k: int) -> Batch:
    """``one(key)`` (a list of :class:`Scored`) for each key, as ``(ids, scores)`` arrays of shape
    ``(len(keys), k)``: ids an object array of str, scores float32; a row short of ``k`` is padded
    with ``""`` and NaN (implicit's batch calls return the same shapes)."""
    keys = list(keys)
    ids = np.full((len(keys), k), "", dtype=object)
    scores = np.full((len(keys), k), np.nan, dtype=np.float32)
    for i, key in enumerate(keys):
        found = one(key)
        ids[i, :len(found)] = [s.item_id for s in found]
        scores[i, :len(found)] = [s.score for s in found]
    return ids, scores


def batch_feeds(one, users: list, recent_items, k: int, many=None) -> Batch:
    """:func:`batch_arrays` of ``one(user, recent)`` per user, ``recent_items`` one list per user
    (or none at all); ``many(users, recents)``, where given, answers many at once first (a list
    with ``None`` for each user ``one`` must answer).

    Raises:
        InvalidRequest: ``recent_items`` does not hold one list per user.
    """
    if recent_items and len(recent_items) != len(users):
        raise InvalidRequest(f"recent_items must hold one list per user ({len(users)}), got {len(recent_items)}")
    recents = list(recent_items) if recent_items else [()] * len(users)
    ready = many(users, recents) if many is not None else [None] * len(users)
    return batch_arrays(lambda i: ready[i] if ready[i] is not None else one(users[i], recents[i]),
                        range(len(users)), k)


def check_k(k: int) -> int:
    """``k`` as an int, or :class:`InvalidRequest` when it is not an integer from 1 to :data:`MAX_K`."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= MAX_K:
        raise InvalidRequest(f"k must be an integer from 1 to {MAX_K} (got {k!r})")
    return int(k)


def scored_list(ids: list[str], scores: np.ndarray, cold: list[bool] | None = None) -> list[Scored]:
    """:class:`Scored` rows, built in C (``tuple.__new__`` per row): calling the named tuple's
    constructor, a Python function, costs more than the rest of a looked-up answer."""
    fields = zip(ids, np.asarray(scores, np.float64).tolist(), repeat(False) if cold is None else cold,
                 repeat(None))
    return list(map(tuple.__new__, repeat(Scored), fields))


def image_path(item_id: str, has_image: bool) -> str | None:
    """The API path of an item's image (its thumbnail), or ``None`` when it has none: a row never
    shows the path or URL the catalog named."""
    return f"/v1/items/{quote(str(item_id), safe='')}/image" if has_image else None


def plain_value(value):
    """A frame value as JSON: NaN -> None, numpy scalars -> Python."""
    if isinstance(value, float) and math.isnan(value):
        return None
    return value.item() if hasattr(value, "item") else value


def plain_row(row) -> dict:
    """A frame row as JSON-ready values; synthetic ground truth (``true_*``) stays internal."""
    return {key: plain_value(value) for key, value in row.items() if not key.startswith("true_")}


def row_templates(bundle: Bundle, labels: dict[str, np.ndarray] | None = None) -> dict[str, dict]:
    """A result row per bundle item, by id: ``{"item_id", "score": None, the display attributes
    (:data:`DISPLAY_COLUMNS` and the image path)}``, and ``labels`` (each saved tagger's tag of
    the item, ``{name: label or None}``) where ``labels`` has any; to be copied, never changed."""
    items = bundle.items
    columns = [c for c in DISPLAY_COLUMNS if c in items.columns]
    frame = items[["item_id", *columns]].astype(object)
    frame = frame.where(frame.notna(), None)
    images = bundle.thumbnails.present() if bundle.thumbnails is not None else np.zeros(len(items), bool)
    rows = {r["item_id"]: {"item_id": r["item_id"], "score": None, **{c: r[c] for c in columns},
                           "image": image_path(r["item_id"], images[i])}
            for i, r in enumerate(frame.to_dict("records"))}
    if labels:
        for i, row in enumerate(rows.values()):
            row["labels"] = {name: tags[i] for name, tags in labels.items()}
    return rows


def shown_labels(tags: dict | None, attributes: dict) -> dict | None:
    """An item's labels as shown: each saved tagger's tag, with a reviewer's label (the item's
    ``labels`` attribute, ``{tagger: label or None}``) in its place; ``None`` where neither is."""
    by_hand = attributes.get("labels")
    return {**(tags or {}), **by_hand} if by_hand else tags


def result_rows(templates: dict[str, dict], changes, scored, *, cold: bool = False,
                score: bool = True) -> list[dict]:
    """Result rows: ``{"item_id", "score", the display attributes, "image", "cold", "why"}`` per
    item (``cold`` for feeds only, ``why`` where explained; no ``score`` for listings), scores
    rounded to 5 decimals;
    ``changes``: the :class:`~recsys.serve.changes.ItemChanges` served with the bundle.

    A bundle item's row is a copy of its template (:func:`row_templates`), and the scores are
    rounded all at once: a dict built per row and Python's ``round`` per score cost more than most
    lookups. A put item's row comes from its latest attributes. Display attributes set since the
    bundle (a category a reviewer fixed) override the catalog's, and a reviewer's labels the
    taggers' tags.
    """
    fresh = len(changes) > 0
    set_since = changes.attributes
    # what np.round(scores, 5) computes, without its Python-level dispatch
    scores = (np.rint(np.fromiter(map(itemgetter(1), scored), np.float64, len(scored)) * 1e5) / 1e5).tolist()
    out = []
    for s, rounded in zip(scored, scores):
        if fresh and s.item_id in changes.ids:
            item = plain_row(changes.items.iloc[changes.ids.row(s.item_id)])
            row = {"item_id": s.item_id, "score": None,
                   **{k: v for k, v in item.items() if k in DISPLAY_COLUMNS},
                   "image": image_path(s.item_id, s.item_id in changes.thumbnails)}
            if changes.labels:
                row["labels"] = changes.labels[s.item_id]
        else:
            row = templates[s.item_id].copy()
        if set_since and (values := set_since.get(s.item_id)):
            row.update((k, v) for k, v in values.items() if k in DISPLAY_COLUMNS)
            if "labels" in values:
                row["labels"] = shown_labels(row.get("labels"), values)
        if score:
            row["score"] = rounded
        else:
            del row["score"]
        if cold:
            row["cold"] = s.cold
        if s.why is not None:
            row["why"] = s.why
        out.append(row)
    return out


def dump_json(body) -> bytes:
    """A response body as JSON bytes (orjson: insertion order kept, NaN and infinities as null)."""
    return orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY)
