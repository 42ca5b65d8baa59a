"""The one exception hierarchy of recsys, and its warning class."""
from __future__ import annotations

__all__ = [
    "RecsysError",
    "ConfigError",
    "DataError",
    "InvalidRequest",
    "NotFound",
    "NotReady",
    "BundleError",
    "ModelFitError",
    "Unauthorized",
    "Forbidden",
    "Unavailable",
    "Conflict",
    "RecsysWarning",
]


class RecsysError(Exception):
    """Base of every error recsys raises on purpose.

    Attributes:
        code: stable machine-readable name, used in API error bodies.
        http_status: the status the API answers with.
        details: extra JSON-serialisable facts (the offending value, the valid choices, ...).
    """

    code = "recsys_error"
    http_status = 500

    def __init__(self, message: str, **details):
        super().__init__(message)
        self.message = message
        self.details = details

    def __str__(self) -> str:  # KeyError subclasses would otherwise repr() the message
        return self.message

    def to_dict(self) -> dict:
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}


class ConfigError(RecsysError):
    """Settings that cannot work (bad value, unreadable config file). CLI exit code 2."""

    code = "config_error"


class DataError(RecsysError, ValueError):
    """A catalog or interactions file that breaks the schema; the message names file, row, column."""

    code = "data_error"
    http_status = 400


class InvalidRequest(RecsysError, ValueError):
    """A bad argument from a caller (k out of range, unknown modality, ...)."""

    code = "invalid_request"
    http_status = 400


class NotFound(RecsysError, KeyError):
    """An unknown item id, user id or bundle version."""

    code = "not_found"
    http_status = 404


class Conflict(RecsysError):
    """A write refused because of what is already stored (an item that duplicates a served one,
    when the duplicate check's policy is ``refuse``); nothing was stored."""

    code = "conflict"
    http_status = 409


class NotReady(RecsysError):
    """Nothing to serve yet: no bundle, or a model used before it was fitted."""

    code = "not_ready"
    http_status = 503


class BundleError(RecsysError):
    """A model bundle that is missing, partial, corrupt or of an unknown format."""

    code = "bundle_error"


class ModelFitError(RecsysError):
    """Training produced unusable factors (NaN, all zero)."""

    code = "model_fit_error"


class EngineError(RecsysError):
    """The engine the towers run on (Ray) failed, or made no progress within its deadline."""

    code = "engine_error"


class Unauthorized(RecsysError):
    """A write (or a protected read) without a valid API key."""

    code = "unauthorized"
    http_status = 401


class Forbidden(RecsysError):
    """Writes are disabled because no API key is configured."""

    code = "forbidden"
    http_status = 403


class Unavailable(RecsysError):
    """A dependency (Redis) is down; the caller should retry after ``retry_after`` seconds."""

    code = "unavailable"
    http_status = 503

    def __init__(self, message: str, retry_after: float = 1.0, **details):
        super().__init__(message, **details)
        self.retry_after = retry_after


class RecsysWarning(UserWarning):
    """Soft problems that were handled: coercions, fallbacks, unreadable images."""
