"""Request bodies and ids of the HTTP API, validated at the boundary (query parameters: :mod:`recsys.api.params`).

The pydantic models double as the OpenAPI schemas (``model_json_schema``), so the document and
the validation cannot drift apart.
"""
from __future__ import annotations

import math
import re
from difflib import get_close_matches
from typing import Annotated, Any, get_args
from urllib.parse import parse_qsl

import werkzeug.urls  # noqa: F401 - registers the 'werkzeug.url_quote' error handler
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, ValidationError, field_validator

from recsys.control.rules import Rule
from recsys.control.shaping import Shaping
from recsys.data.schema import EVENTS, ITEM_ID, MAX_ID_LENGTH, id_problem, timestamp_problem
from recsys.errors import InvalidRequest
from recsys.serve import FEED_K, MAX_K
from recsys.serve.filters import ItemFilter

__all__ = ["Id", "EventIn", "InteractionsIn", "SessionIn", "ItemIn", "AttributesIn", "check_id", "parse_body",
           "parse_query", "parse_rules", "MAX_REQUEST_RULES"]

# the most rules one read may carry of its own
MAX_REQUEST_RULES = 50

# no control characters, no space at either end, bounded: what every id at the API boundary must
# be (the same pattern is in the OpenAPI document, so generated clients agree with the server)
ID_PATTERN = r"^[^\x00-\x20\x7f-\x9f](?:[^\x00-\x1f\x7f-\x9f]*[^\x00-\x20\x7f-\x9f])?$"
_ID = re.compile(ID_PATTERN)


def _trained_id(value: str) -> str:
    problem = id_problem(value)
    if problem is not None:  # what the trainer would refuse is refused here, before it is logged
        raise ValueError(f"the id {problem}")
    return value


Id = Annotated[str, StringConstraints(min_length=1, max_length=MAX_ID_LENGTH, pattern=ID_PATTERN),
               AfterValidator(_trained_id)]


def check_id(value: str, kind: str) -> str:
    """Validate an id from a URL path.

    Raises:
        InvalidRequest: empty, longer than 200 characters, or with control characters or
            surrounding whitespace.
    """
    if not 1 <= len(value) <= MAX_ID_LENGTH:
        raise InvalidRequest(f"{kind}_id must be 1 to {MAX_ID_LENGTH} characters (got {len(value)})")
    if not _ID.fullmatch(value):  # not match: its $ lets a final newline through
        raise InvalidRequest(f"{kind}_id must not hold control characters or start or end with a "
                             f"space (got {value!r})")
    problem = id_problem(value)
    if problem is not None:
        raise InvalidRequest(f"{kind}_id {problem} (got {value!r})")
    return value


def _check_finite(value: float | None) -> float | None:
    if value is not None and not math.isfinite(value):
        raise ValueError("must be a finite number")
    return value


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EventIn(_Body):
    """One interaction."""

    user_id: Id
    item_id: Id
    event: str = Field("click", description=f"one of: {', '.join(EVENTS)}")
    value: float | None = Field(None, description="a rating or quantity")
    timestamp: float | None = Field(
        None, description="epoch seconds (1970 to 2100); unset = when the server received it"
    )
    request_id: str | None = Field(None, max_length=120, pattern=r"^[A-Za-z0-9_.-]+$",
                                   description="the request_id of the read that showed the item (experiments "
                                   "count the click for its variant)")

    @field_validator("event")
    @classmethod
    def _event(cls, value: str) -> str:
        value = value.lower()
        if value not in EVENTS:
            raise ValueError(f"unknown event {value!r}; use one of: {', '.join(EVENTS)}")
        return value

    @field_validator("value")
    @classmethod
    def _finite(cls, value: float | None) -> float | None:
        return _check_finite(value)

    @field_validator("timestamp")
    @classmethod
    def _time(cls, value: float | None) -> float | None:
        problem = None if value is None else timestamp_problem(value)
        if problem is not None:  # the trainer's own check, so the log holds only what trains
            raise ValueError(f"timestamp {problem}")
        return value


class InteractionsIn(_Body):
    """A batch of interactions."""

    events: list[EventIn] = Field(min_length=1)


class _FilterFields(_Body):
    category: str | None = Field(None, max_length=500, description="category path prefix")
    min_price: float | None = Field(None, ge=0)
    max_price: float | None = Field(None, ge=0)
    exclude: list[Id] = Field(default_factory=list, max_length=MAX_K, description="never these items")

    def item_filter(self) -> ItemFilter:
        return ItemFilter.create(category=self.category, min_price=self.min_price,
                                 max_price=self.max_price, exclude=self.exclude)


class _ShapingFields(_Body):
    rules: list[Rule] = Field(default_factory=list, max_length=MAX_REQUEST_RULES,
                              description="this read's own rules (docs/rules.md); a pin must be within k")
    diversity: float | None = Field(None, ge=0, le=1, description="MMR's weight on redundancy; default: the "
                                    "setting shaping.diversity")
    max_per_category: int | None = Field(None, ge=0, le=MAX_K, description="the most items of one category, "
                                         "0 for no cap; default: the setting shaping.max_per_category")

    def shaping(self) -> Shaping:
        return Shaping(tuple(self.rules), self.diversity, self.max_per_category)


class SessionIn(_ShapingFields, _FilterFields):
    """An anonymous session's feed request."""

    recent_items: list[Id] = Field(default_factory=list, max_length=MAX_K,
                                   description="items the visitor touched, most recent first")
    session_id: Id | None = Field(None, description="the visitor's session, for experiments (docs/experiments.md)")
    k: int = Field(FEED_K, ge=1, le=MAX_K)
    exclude_seen: bool | None = Field(
        None, description="leave out the recent items; default: the setting rank.exclude_seen (false) for a "
        "ranked feed, collab.exclude_seen (true) for a blended one")
    dedupe: bool = Field(True, description="show one listing of each group of duplicate listings")
    explain: bool = Field(False, description="give each item its why (docs/ranking.md)")


class ItemIn(_Body):
    """A new or changed catalog item."""

    title: str | None = Field(None, max_length=1000)
    description: str | None = Field(None, max_length=20_000)
    tags: str | None = Field(None, max_length=2000)
    image: str | None = Field(
        None, max_length=900_000,
        description="http(s) URL or data:image/...;base64,... URL (local paths are refused)",
    )
    colour: str | None = Field(None, max_length=100)
    price: float | None = Field(None, ge=0)
    category: str | None = Field(None, max_length=500)
    year: float | None = None
    genres: str | None = Field(None, max_length=1000, description="|-separated")

    @field_validator("image")
    @classmethod
    def _image(cls, value: str | None) -> str | None:
        if value and not value.startswith(("http://", "https://", "data:image/")):
            raise ValueError("image must be an http(s) URL or a data:image/...;base64 URL")
        return value

    @field_validator("price", "year")
    @classmethod
    def _finite(cls, value: float | None) -> float | None:
        return _check_finite(value)


_AttributeName = Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]


class AttributesIn(_Body):
    """Catalog attribute values of one item, set without a rebuild (``in_stock``); null unsets one."""

    attributes: dict[_AttributeName, bool | float | str | None] = Field(min_length=1, max_length=50)

    @field_validator("attributes")
    @classmethod
    def _not_the_id(cls, value: dict) -> dict:
        if ITEM_ID in value:
            raise ValueError("item_id is the item's name, not an attribute")
        for name, v in value.items():
            if isinstance(v, float) and not math.isfinite(v):
                raise ValueError(f"{name} must be a finite number")
            if isinstance(v, str) and len(v) > 1000:
                raise ValueError(f"{name} must be at most 1000 characters")
        return value


def parse_rules(data: Any, name: str = "rules") -> tuple[Rule, ...]:
    """A read's own rules from JSON (a list of rule objects).

    Raises:
        InvalidRequest: not a list, too many, or a bad rule (named by its place in the list).
    """
    if not isinstance(data, list):
        raise InvalidRequest(f"{name} must be a JSON array of rules (docs/rules.md)")
    if len(data) > MAX_REQUEST_RULES:
        raise InvalidRequest(f"{name} holds {len(data)} rules; at most {MAX_REQUEST_RULES} per read")
    rules = []
    for i, rule in enumerate(data):
        try:
            rules.append(Rule.model_validate(rule))
        except ValidationError as exc:
            raise InvalidRequest(f"{name}[{i}]: {_message(exc, Rule)}") from None
    return tuple(rules)


def _message(exc: ValidationError, model: type[BaseModel]) -> str:
    parts = []
    for err in exc.errors()[:5]:
        where = ".".join(str(p) for p in err["loc"]) or "body"
        if err["type"] == "extra_forbidden":  # a misspelt field: say which ones there are
            parts.append(f"{where}: {_unknown_field(err['loc'], model)}")
        else:
            parts.append(f"{where}: {err['msg']}")
    more = len(exc.errors()) - 5
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")


def _unknown_field(loc: tuple, model: type[BaseModel]) -> str:
    """What to say of the field at ``loc`` that ``model`` (or the model nested there) lacks."""
    for part in loc[:-1]:
        if model is not None and isinstance(part, str):  # an int is an element of a list field
            model = _model_in(model.model_fields[part].annotation)
    fields = list(model.model_fields) if model is not None else []
    close = get_close_matches(str(loc[-1]), fields, n=1)
    return (f"unknown field{f' (did you mean {close[0]!r}?)' if close else ''}"
            + (f"; the fields are {', '.join(fields)}" if fields else ""))


def _model_in(annotation) -> type[BaseModel] | None:
    """The body model an annotation holds: itself, or the one in ``list[...]``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return next(filter(None, map(_model_in, get_args(annotation))), None)


def parse_body(model: type[BaseModel], data: Any) -> BaseModel:
    """Validate a JSON body against ``model``.

    Raises:
        InvalidRequest: naming each bad field (at most five) and the rule it breaks; a field the
            body does not take is named with the fields it does.
    """
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InvalidRequest(f"invalid request body: {_message(exc, model)}") from None


def parse_query(query_string: str) -> list[tuple[str, str]]:
    """A WSGI ``QUERY_STRING`` as ``(name, value)`` pairs, decoded as Flask's ``request.args``
    decodes it (UTF-8; invalid bytes stay percent-encoded), without building a request object.

    Raises:
        UnicodeDecodeError: raw (not percent-encoded) bytes that are not UTF-8.
    """
    return parse_qsl(query_string.encode("latin-1").decode(), keep_blank_values=True,
                     errors="werkzeug.url_quote")  # the error handler werkzeug.urls registers
