"""Every error leaves the API as JSON ``{"error": {"code", "message", "details"}}``, never a traceback.

The exceptions themselves are :mod:`recsys.errors`; this module only turns them into responses,
for Flask's handlers and for the fast path (:mod:`recsys.api.fast`) alike.
"""
from __future__ import annotations

import logging

from flask import Flask, Response, g, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from recsys.errors import RecsysError, Unauthorized, Unavailable
from recsys.serve.rows import dump_json

__all__ = ["register_error_handlers", "error_response", "error_body", "recsys_error_parts",
           "INTERNAL_ERROR"]

logger = logging.getLogger(__name__)

INTERNAL_ERROR = ("internal_error", "internal error; the server log has details")


def error_body(code: str, message: str, details: dict | None = None, version: str | None = None) -> bytes:
    body = {"error": {"code": code, "message": message, "details": details or {}}}
    if version is not None:
        body["version"] = version
    return dump_json(body)


def recsys_error_parts(exc: RecsysError) -> dict[str, str]:
    """The extra headers of a :class:`RecsysError`'s response (logging a 5xx one)."""
    headers = {}
    if isinstance(exc, Unavailable):
        headers["Retry-After"] = str(max(1, round(exc.retry_after)))
    if isinstance(exc, Unauthorized):
        headers["WWW-Authenticate"] = 'Bearer realm="recsys"'
    if exc.http_status >= 500:
        logger.warning("%s: %s", exc.code, exc.message)
    return headers


def error_response(status: int, code: str, message: str, details: dict | None = None,
                   headers: dict | None = None) -> Response:
    response = Response(error_body(code, message, details, getattr(g, "version", None)), status=status,
                        mimetype="application/json")
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(RecsysError)
    def _recsys(exc: RecsysError):
        return error_response(exc.http_status, exc.code, exc.message, exc.details, recsys_error_parts(exc))

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException):
        code = (exc.name or "error").lower().replace(" ", "_")
        headers = {}
        if exc.code == 405 and exc.valid_methods:
            headers["Allow"] = ", ".join(exc.valid_methods)
        message = {
            404: "no such endpoint; see /openapi.json for the API",
            405: "method not allowed on this endpoint",
            # the limit of this request: an endpoint may raise it (photo uploads)
            413: f"request body too large (limit {request.max_content_length} bytes)",
        }.get(exc.code, exc.description or exc.name)
        if exc.code == 413 and exc.description != RequestEntityTooLarge.description:
            message = exc.description  # raised by a view, with its own reason
        return error_response(exc.code or 500, code, message, headers=headers)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        logger.exception("unexpected error")  # the traceback goes to the log, never to the client
        return error_response(500, *INTERNAL_ERROR)
