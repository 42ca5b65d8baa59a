"""Every query-string parameter of the API, declared once: its name, type, bounds, default and
meaning. :func:`parse` validates a request's parameters against its endpoint's declaration (a
misspelt or repeated parameter is an error, never silently ignored), and the OpenAPI document
(:mod:`recsys.api.openapi`) describes each from the same :class:`Param`. The default list lengths
are the query engine's (:data:`recsys.serve.SIMILAR_K` and its siblings), shared with Python and
the CLI.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from recsys.api.schemas import check_id, parse_rules
from recsys.control.shaping import NO_SHAPING, ROTATIONS, Shaping
from recsys.errors import InvalidRequest
from recsys.serve import FEED_K, MAX_K, SEARCH_K, SIMILAR_K
from recsys.serve.filters import ItemFilter
from recsys.serve.search import SEARCH_MODES
from recsys.towers.item import parse_weights

__all__ = ["Param", "Params", "ENDPOINTS", "parse"]

_DIGITS = re.compile(r"[0-9]{1,9}")
_WEIGHT = r"(image|text|tabular):[0-9]+(\.[0-9]+)?"
_FILTER_NAMES = ("category", "min_price", "max_price", "exclude")
_FILTER_SET = frozenset(_FILTER_NAMES)
_SHAPING_NAMES = ("rules", "diversity", "max_per_category", "rotation")
_NO_FILTER = ItemFilter()


@dataclass(frozen=True)
class Param:
    """One query-string parameter.

    Attributes:
        name: as in the URL.
        schema: its JSON schema (the OpenAPI document's, and what :meth:`parse` checks).
        description: what it does.
        default: its value when absent (``None``: decided further in, as described).
        required: whether it must be given.
    """

    name: str
    schema: dict
    description: str
    default: Any = None
    required: bool = False
    parser: Callable[[Param, str], Any] = field(default=None, repr=False, compare=False)

    def parse(self, raw: str) -> Any:
        return self.parser(self, raw)

    def openapi(self) -> dict:
        schema = self.schema if self.default is None else {**self.schema, "default": self.default}
        return {"name": self.name, "in": "query", "required": self.required, "schema": schema,
                "description": self.description}


def _integer(param: Param, raw: str) -> int:
    """Plain ASCII digits (``int`` would also take ``+5``, `` 5`` and other scripts' digits)."""
    low, high = param.schema["minimum"], param.schema["maximum"]
    value = int(raw) if _DIGITS.fullmatch(raw) else None
    if value is None or not low <= value <= high:
        raise InvalidRequest(f"{param.name} must be an integer from {low} to {high} (got {raw!r})")
    return value


def _fraction(param: Param, raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not 0.0 <= value <= 1.0:
        raise InvalidRequest(f"{param.name} must be a number from 0 to 1 (got {raw!r})")
    return value


def _flag(param: Param, raw: str) -> bool:
    if raw.lower() in ("1", "true", "yes"):
        return True
    if raw.lower() in ("0", "false", "no"):
        return False
    raise InvalidRequest(f"{param.name} must be true or false (got {raw!r})")


def _text(param: Param, raw: str) -> str:
    raw = raw.strip()
    if not raw:
        raise InvalidRequest(f"give {param.name}, e.g. ?{param.name}=red+dress")
    limit = param.schema["maxLength"]
    if len(raw) > limit or any(not c.isprintable() for c in raw):
        raise InvalidRequest(f"{param.name} must be at most {limit} printable characters")
    return raw


def _choice(param: Param, raw: str) -> str:
    if raw not in param.schema["enum"]:
        raise InvalidRequest(f"{param.name} must be one of {', '.join(param.schema['enum'])} (got {raw!r})")
    return raw


def _string(param: Param, raw: str) -> str:
    if len(raw) > param.schema["maxLength"]:
        raise InvalidRequest(f"{param.name} must be at most {param.schema['maxLength']} characters")
    return raw


def _ids(param: Param, raw: str) -> list[str]:
    ids = [p.strip() for p in raw.split(",") if p.strip()]
    if len(ids) > MAX_K:
        raise InvalidRequest(f"{param.name} names more than {MAX_K} items")
    for item_id in ids:
        check_id(item_id, f"{param.name} item")
    return ids


def _rules(param: Param, raw: str) -> tuple:
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise InvalidRequest(f"{param.name} must be a JSON array of rules (docs/rules.md)") from None
    return parse_rules(data, param.name)


def _integer_param(name: str, description: str, default: int | None, low: int, high: int) -> Param:
    return Param(name, {"type": "integer", "minimum": low, "maximum": high}, description, default,
                 parser=_integer)


def _k(default: int) -> Param:
    return _integer_param("k", "how many items", default, 1, MAX_K)


_PRICE = {"type": "number", "minimum": 0}
_FILTERS = (
    Param("category", {"type": "string", "minLength": 1, "maxLength": 500},
          "category path prefix, matched on whole segments (women/shoes)", parser=_string),
    # a price is checked where the filter is made (ItemFilter.create), with the same message as Python's
    Param("min_price", _PRICE, "lowest price, inclusive", parser=lambda p, raw: raw),
    Param("max_price", _PRICE, "highest price, inclusive", parser=lambda p, raw: raw),
    Param("exclude", {"type": "string"}, "comma-separated item ids never to return", parser=_ids),
)
_SHAPING = (
    Param("rules", {"type": "string", "maxLength": 20_000},
          "this read's own rules, a JSON array of rule objects as POST /v1/rules takes (docs/rules.md); a pin "
          "must be within k", parser=_rules),
    Param("diversity", {"type": "number", "minimum": 0, "maximum": 1},
          "MMR's weight on redundancy: 0 keeps the ranking, 1 only avoids items like those above; default: the "
          "setting shaping.diversity", parser=_fraction),
    _integer_param("max_per_category", "the most items of one category, 0 for no cap; default: the setting "
                   "shaping.max_per_category", None, 0, MAX_K),
)
_DEDUPE = Param("dedupe", {"type": "boolean"}, "show one listing of each group of duplicate listings "
                "(docs/curation.md)", True, parser=_flag)
# checked against the modalities the bundle has where the vectors are read, which names them
_MODALITY = Param("modality", {"type": "string", "minLength": 1, "maxLength": 40},
                  "the vectors to use: combined, image, text or tabular (those the bundle has)", "combined",
                  parser=_string)


class Params:
    """One endpoint's parameters (:data:`ENDPOINTS`)."""

    def __init__(self, *params: Param):
        self.params = {p.name: p for p in params}
        self.filters = all(name in self.params for name in _FILTER_NAMES[:3])
        self.shaping = "rules" in self.params
        # the filter parameters are one value, "filters" (an ItemFilter); the shaping ones "shaping"
        self.defaults = {p.name: p.default for p in params if not (self.filters and p.name in _FILTER_SET)
                         and not (self.shaping and p.name in _SHAPING_NAMES)}
        if self.filters:
            self.defaults["filters"] = _NO_FILTER
        if self.shaping:
            self.defaults["shaping"] = NO_SHAPING
        self.required = tuple(p.name for p in params if p.required)
        self.names = tuple(self.params)

    def __iter__(self):
        return iter(self.params.values())


ENDPOINTS: dict[str, Params] = {
    "similar": Params(_k(SIMILAR_K), Param(
        "weights", {"type": "string", "pattern": rf"^{_WEIGHT}(,{_WEIGHT})*$"},
        "per-request modality weights, e.g. image:0.6,text:0.3,tabular:0.1; default: the bundle's",
        parser=lambda p, raw: parse_weights(raw)), _DEDUPE,
        Param("user_id", {"type": "string", "minLength": 1, "maxLength": 200},
              "who is reading, for an experiment on similar items (docs/experiments.md)",
              parser=lambda p, raw: check_id(raw, "user")), *_FILTERS, *_SHAPING),
    "user_feed": Params(_k(FEED_K), Param(
        "exclude_seen", {"type": "boolean"},
        "leave out items the user interacted with; default: the setting rank.exclude_seen (false) for a "
        "ranked feed, collab.exclude_seen (true) for a blended one", parser=_flag), _DEDUPE,
        Param("explain", {"type": "boolean"}, "give each item its why: the sources that proposed it and the "
              "reasons that raised it most (docs/ranking.md)", False, parser=_flag), *_FILTERS, *_SHAPING,
        Param("rotation", {"type": "string", "enum": list(ROTATIONS)},
              "items this user's feeds showed and the user did not touch: move them down each time (down), "
              "leave them out (out), or neither (off); default: the setting shaping.rotation", parser=_choice)),
    "items": Params(_integer_param("limit", "items per page", 24, 1, MAX_K),
                    _integer_param("offset", "items to skip", 0, 0, 10**9), *_FILTERS[:3]),
    "search": Params(Param("q", {"type": "string", "minLength": 1, "maxLength": 500, "pattern": r"\S"},
                           "the query text", required=True, parser=_text),
                     Param("mode", {"type": "string", "enum": list(SEARCH_MODES)},
                           "what the query is compared with; default both where the bundle has a joint "
                           "space, else text", parser=_choice),
                     _k(SEARCH_K), *_FILTERS, *_SHAPING),
    "search_by_photo": Params(_k(SIMILAR_K), _DEDUPE, *_FILTERS, *_SHAPING),
    "item": Params(),
    "item_image": Params(),
    "duplicates": Params(Param("threshold", {"type": "number", "minimum": 0, "maximum": 1},
                               "image cosine of a duplicate; default: the bundle's own, calibrated at build for "
                               "its image backbone", None, parser=_fraction),
                         Param("sellers", {"type": "boolean"}, "also the same product listed by another seller, "
                               "with other words and another photo: pairs that are each other's best match "
                               "(for review; about two in three such pairs are right, docs/curation.md)",
                               False, parser=_flag)),
    "outliers": Params(_integer_param("top", "how many items; 0 for all", 50, 0, 10**9)),
    "queue": Params(_integer_param("limit", "how many flagged items", 100, 1, 10_000)),
    "audit": Params(_integer_param("limit", "how many entries, newest first", 100, 1, 10_000)),
    "clusters": Params(_integer_param("k", "how many clusters (0 or absent: chosen from the size)", None, 0, 1000),
                       _MODALITY, Param("map", {"type": "boolean"}, "add a 2-D position per item (a sample of "
                                        "at most 3,000)", False, parser=_flag)),
    "subset": Params(_integer_param("n", "how many items", 100, 1, 5000),
                     Param("balance", {"type": "string", "maxLength": 200}, "a column every value of which "
                           "is represented, e.g. category", parser=_string),
                     Param("quota", {"type": "string", "enum": ["one", "equal"]},
                           "at least one item per value, or equal shares", "one", parser=_choice),
                     _integer_param("seed", "the first draw; default: the setting seed", None, 0, 2**31 - 1),
                     _MODALITY),
}


def parse(endpoint: str, args) -> dict[str, Any]:
    """An endpoint's parameters from a request: each given one validated, the others at their
    defaults; the filter parameters together as ``"filters"`` (an :class:`ItemFilter`), the
    shaping ones as ``"shaping"`` (a :class:`~recsys.control.shaping.Shaping`).

    Args:
        endpoint: a key of :data:`ENDPOINTS`.
        args: ``request.args``, or the ``(name, value)`` pairs of a query string in order (what the
            WSGI fast path parses, :func:`recsys.api.schemas.parse_query`).

    Raises:
        InvalidRequest: a parameter the endpoint does not take, one given twice, or a bad value;
            a required one missing.
    """
    params = ENDPOINTS[endpoint]
    given: dict[str, str] = {}  # a plain dict: werkzeug's MultiDict.get builds an exception per absent name
    repeated = None
    for name, value in (args.items(multi=True) if hasattr(args, "getlist") else args):
        if name in given:
            repeated = repeated or name
        given[name] = value
    unknown = given.keys() - params.params.keys()
    if unknown:
        raise InvalidRequest(f"unknown query parameter(s) {', '.join(sorted(unknown))}; this endpoint takes: "
                             f"{', '.join(params.names) or 'none'}", allowed=list(params.names))
    if repeated is not None:
        raise InvalidRequest(f"query parameter {repeated!r} is given more than once")
    values = params.defaults.copy()
    filters = shaping = None
    for name, raw in given.items():
        value = params.params[name].parse(raw)
        if params.filters and name in _FILTER_SET:
            filters = filters or {}
            filters[name] = value
        elif params.shaping and name in _SHAPING_NAMES:
            shaping = shaping or {}
            shaping[name] = value
        else:
            values[name] = value
    for name in params.required:
        if name not in given:
            params.params[name].parse("")  # says what to give
    if filters is not None:
        values["filters"] = ItemFilter.create(**filters)
    if shaping is not None:
        values["shaping"] = Shaping(**shaping)
    return values
