"""Request bodies and query parameters of the HTTP API, validated at the boundary.

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

from recsys.data.schema import EVENTS, MAX_ID_LENGTH, id_problem, timestamp_problem
from recsys.errors import InvalidRequest
from recsys.serve import MAX_K
from recsys.serve.filters import ItemFilter
from recsys.towers.item import parse_weights

__all__ = ["Id", "EventIn", "InteractionsIn", "SessionIn", "ItemIn", "check_id", "parse_body",
           "QueryArgs", "parse_query"]

# no control characters, no space at either end, bounded: what every id at the API boundary must
# be (the same pattern is in the OpenAPI document, so generated clients agree with the server)
ID_PATTERN = r"^[^\x00-\x20\x7f-\x9f](?:[^\x00-\x1f\x7f-\x9f]*[^\x00-\x20\x7f-\x9f])?$"
_ID = re.compile(ID_PATTERN)
_DIGITS = re.compile(r"[0-9]{1,9}")


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


class SessionIn(_FilterFields):
    """An anonymous session's feed request."""

    recent_items: list[Id] = Field(default_factory=list, max_length=MAX_K,
                                   description="items the visitor touched, most recent first")
    k: int = Field(20, ge=1, le=MAX_K)
    exclude_seen: bool | None = Field(
        None, description="leave out the recent items; default: the setting collab.exclude_seen (true)")
    dedupe: bool = Field(True, description="show one listing of each group of duplicate listings")


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


_FILTER_NAMES = {"category", "min_price", "max_price", "exclude"}
_NO_FILTER = ItemFilter()


class QueryArgs:
    """Query-string parameters of one endpoint, each validated with a message that names it.

    Args:
        args: ``request.args``, or the ``(name, value)`` pairs of a query string in order (what
            the WSGI fast path parses, see :func:`parse_query`).
        allowed: the parameter names this endpoint takes; any other is an error (a typo such as
            ``?kk=5`` must not be silently ignored).
    """

    def __init__(self, args, allowed: tuple[str, ...]):
        # a plain dict: werkzeug's MultiDict.get builds an exception for every absent name
        self.args: dict[str, str] = {}
        repeated = []
        for name, value in (args.items(multi=True) if hasattr(args, "getlist") else args):
            if name in self.args:
                repeated.append(name)
            self.args[name] = value
        unknown = sorted(self.args.keys() - set(allowed))
        if unknown:
            raise InvalidRequest(f"unknown query parameter(s) {', '.join(unknown)}; this endpoint "
                                 f"takes: {', '.join(allowed)}", allowed=list(allowed))
        if repeated:
            raise InvalidRequest(f"query parameter {repeated[0]!r} is given more than once")

    def k(self, default: int) -> int:
        return self.integer("k", default, 1, MAX_K)

    def integer(self, name: str, default: int, low: int, high: int) -> int:
        """A parameter of plain ASCII digits (``int`` would also take ``+5``, `` 5`` and other
        scripts' digits) from ``low`` to ``high``."""
        raw = self.args.get(name)
        if raw is None:
            return default
        value = int(raw) if _DIGITS.fullmatch(raw) else None
        if value is None or not low <= value <= high:
            raise InvalidRequest(f"{name} must be an integer from {low} to {high} (got {raw!r})")
        return value

    def fraction(self, name: str, default: float) -> float:
        """A number from 0 to 1."""
        raw = self.args.get(name)
        if raw is None:
            return default
        try:
            value = float(raw)
        except ValueError:
            value = float("nan")
        if not 0.0 <= value <= 1.0:
            raise InvalidRequest(f"{name} must be a number from 0 to 1 (got {raw!r})")
        return value

    def text(self, name: str, max_length: int = 500) -> str:
        raw = (self.args.get(name) or "").strip()
        if not raw:
            raise InvalidRequest(f"give {name}, e.g. ?{name}=red+dress")
        if len(raw) > max_length or any(not c.isprintable() for c in raw):
            raise InvalidRequest(f"{name} must be at most {max_length} printable characters")
        return raw

    def flag(self, name: str, default: bool) -> bool:
        raw = self.args.get(name)
        if raw is None:
            return default
        if raw.lower() in ("1", "true", "yes"):
            return True
        if raw.lower() in ("0", "false", "no"):
            return False
        raise InvalidRequest(f"{name} must be true or false (got {raw!r})")

    def weights(self) -> dict[str, float] | None:
        raw = self.args.get("weights")
        return parse_weights(raw) if raw is not None else None

    def item_filter(self) -> ItemFilter:
        if not self.args.keys() & _FILTER_NAMES:
            return _NO_FILTER  # the common case: nothing to validate
        exclude = [p.strip() for p in self.args.get("exclude", "").split(",") if p.strip()]
        if len(exclude) > MAX_K:
            raise InvalidRequest(f"exclude names more than {MAX_K} items")
        for item_id in exclude:
            check_id(item_id, "exclude item")
        category = self.args.get("category")
        if category is not None and len(category) > 500:
            raise InvalidRequest("category must be at most 500 characters")
        return ItemFilter.create(category=category, min_price=self.args.get("min_price"),
                                 max_price=self.args.get("max_price"), exclude=exclude)
