"""What every view needs from its request: the worker's serving state, the bundle version to
report, the JSON body, JSON responses, and the API key check."""
from __future__ import annotations

import hmac
from typing import Any

import orjson
from flask import Response, current_app, g, request
from werkzeug.exceptions import RequestEntityTooLarge

from recsys.errors import Forbidden, InvalidRequest, Unauthorized
from recsys.serve import Recommender
from recsys.serve.rows import dump_json
from recsys.worker import Serving

# every API answer: no MIME sniffing (an image is never run as HTML), and a policy that lets a
# response load or run nothing should a browser open it as a page; the shop page sets its own
_SECURITY_HEADERS = (("X-Content-Type-Options", "nosniff"),
                     ("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'"))


__all__ = ["current_serving", "use", "json_body", "json_response", "require_key", "check_read_access",
           "api_headers", "actor"]


def api_headers(version: str | None) -> list[tuple[str, str]]:
    """The headers every response carries, whichever path answered it (Flask's after-request
    hook, or the fast path): the security headers, and the bundle version that answered."""
    if version is None:
        return list(_SECURITY_HEADERS)
    return [*_SECURITY_HEADERS, ("X-Recsys-Version", version)]


def current_serving() -> Serving:
    return current_app.extensions["recsys"]


def use(recommender: Recommender) -> Recommender:
    g.version = recommender.version
    return recommender


def json_response(body: dict, status: int = 200, headers: dict | None = None) -> Response:
    return Response(dump_json(body), status=status, mimetype="application/json", headers=headers)


def _presented_key() -> str | None:
    header = request.headers.get("Authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return request.headers.get("X-API-Key")


def require_key() -> None:
    """Check the API key (constant-time).

    Raises:
        Forbidden: no key is configured, so writes are disabled.
        Unauthorized: the key is missing or wrong.
    """
    configured = current_serving().settings.api.api_key
    if configured is None:
        raise Forbidden("writes are disabled: this server has no API key; set RECSYS_API_KEY")
    presented = _presented_key()
    if presented is None:
        raise Unauthorized("this endpoint needs the API key: send 'Authorization: Bearer KEY' or "
                           "'X-API-Key: KEY'")
    if not hmac.compare_digest(presented.encode(), configured.get_secret_value().encode()):
        raise Unauthorized("the API key is not valid")


def actor() -> str:
    """Who acts, for the audit log: the ``X-Recsys-Actor`` header (a reviewer's name, checked like
    an id), or ``api`` without one."""
    from recsys.data.schema import id_problem

    name = request.headers.get("X-Recsys-Actor")
    if name is None:
        return "api"
    problem = id_problem(name)
    if problem is not None:
        raise InvalidRequest(f"the X-Recsys-Actor header {problem}")
    return name


def check_read_access() -> None:
    if current_serving().settings.api.protect_reads:
        require_key()


def json_body() -> Any:
    """The request's JSON body, or :class:`InvalidRequest` saying what is wrong with it."""
    if not request.is_json:
        raise InvalidRequest("send a JSON body with Content-Type: application/json")
    # read through Werkzeug's size limit, so a chunked body over it is a 413 too; orjson refuses
    # nesting deeper than 1024 with an error rather than recursing until the stack runs out
    raw = request.get_data(cache=True)
    limit = current_app.config.get("MAX_CONTENT_LENGTH")
    if request.content_length is None and limit and len(raw) >= limit:
        raise RequestEntityTooLarge()  # a chunked body stops at the limit: more was on its way
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"the request body is not valid JSON ({exc})") from None
