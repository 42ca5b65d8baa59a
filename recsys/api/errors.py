"""Every error leaves the API as JSON ``{"error": {"code", "message", "details"}}``, never a traceback."""
from __future__ import annotations

import logging

import orjson
from flask import Flask, Response, g
from werkzeug.exceptions import HTTPException

from recsys.errors import RecsysError

__all__ = ["register_error_handlers", "error_response", "dump_json", "Unauthorized", "Unavailable"]

logger = logging.getLogger(__name__)


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


def dump_json(body) -> bytes:
    """A response body as JSON bytes (orjson: insertion order kept, NaN and infinities as null)."""
    return orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY)


def error_response(status: int, code: str, message: str, details: dict | None = None,
                   headers: dict | None = None) -> Response:
    body = {"error": {"code": code, "message": message, "details": details or {}}}
    version = getattr(g, "version", None)
    if version is not None:
        body["version"] = version
    response = Response(dump_json(body), status=status, mimetype="application/json")
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(RecsysError)
    def _recsys(exc: RecsysError):
        headers = {}
        if isinstance(exc, Unavailable):
            headers["Retry-After"] = str(max(1, round(exc.retry_after)))
        if isinstance(exc, Unauthorized):
            headers["WWW-Authenticate"] = 'Bearer realm="recsys"'
        if exc.http_status >= 500:
            logger.warning("%s: %s", exc.code, exc.message)
        return error_response(exc.http_status, exc.code, exc.message, exc.details, headers)

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException):
        code = (exc.name or "error").lower().replace(" ", "_")
        headers = {}
        if exc.code == 405 and exc.valid_methods:
            headers["Allow"] = ", ".join(exc.valid_methods)
        message = {
            404: "no such endpoint; see /openapi.json for the API",
            405: "method not allowed on this endpoint",
            413: f"request body too large (limit {app.config.get('MAX_CONTENT_LENGTH')} bytes)",
        }.get(exc.code, exc.description or exc.name)
        return error_response(exc.code or 500, code, message, headers=headers)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        logger.exception("unexpected error")  # the traceback goes to the log, never to the client
        return error_response(500, "internal_error", "internal error; the server log has details")
