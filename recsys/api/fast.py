"""The two hot reads without Flask: a thin WSGI layer in front of the app.

Similar items and feeds are most of the traffic, and most of their answers are lookups that take
less time than Flask's request machinery around them (app and request contexts, URL routing, the
response object, the hooks). :class:`FastReads` answers ``GET`` requests to the routes of
:data:`recsys.api.routes.HOT_READS` (the table Flask registers them from) by calling the same read
functions the Flask views call, with the same headers, error responses and metrics. Everything
else goes to Flask untouched: other routes and methods, and every request when reads need the API
key (the check lives in Flask) or CORS is configured (flask-cors adds its headers to every
response). Turn it off with ``RECSYS_API__FAST_READS=false``.
"""
from __future__ import annotations

import logging
import re
import time

from werkzeug.http import HTTP_STATUS_CODES

from recsys.api.context import api_headers
from recsys.api.errors import INTERNAL_ERROR, error_body, recsys_error_parts
from recsys.api.metrics import Metrics
from recsys.api.routes import HOT_READS, HotRead
from recsys.api.schemas import parse_query
from recsys.errors import RecsysError
from recsys.worker import Serving

__all__ = ["FastReads"]

logger = logging.getLogger(__name__)


class FastReads:
    """WSGI middleware: ``app.wsgi_app = FastReads(app, serving, metrics)``.

    Args:
        app: the Flask app; its ``wsgi_app`` answers everything the fast path does not.
        serving: the worker's serving state.
        metrics: the worker's metrics; a fast answer is recorded under its URL rule, like Flask's.

    Raises:
        RuntimeError: a hot read is not registered in the app's URL map as a ``GET`` of the same
            rule (the two routings would disagree).
    """

    def __init__(self, app, serving: Serving, metrics: Metrics):
        self.app = app.wsgi_app
        self.serving = serving
        self.metrics = metrics
        registered = {(r.rule, r.endpoint) for r in app.url_map.iter_rules() if "GET" in (r.methods or ())}
        default = app.url_map.converters["default"].regex  # what <name> matches in Flask
        self.routes = []
        for endpoint, hot in HOT_READS.items():
            if (hot.rule, f"recsys.{endpoint}") not in registered:
                raise RuntimeError(f"the fast path's {hot.rule} is not a GET route of the app")
            self.routes.append((re.compile(re.sub(r"<\w+>", f"({default})", hot.rule)), hot))
        api = serving.settings.api
        self.enabled = not api.protect_reads and not api.cors_origins

    def __call__(self, environ, start_response):
        if self.enabled and environ.get("REQUEST_METHOD") == "GET":
            path = environ.get("PATH_INFO", "")
            for pattern, hot in self.routes:
                match = pattern.fullmatch(path)  # not re's $, which allows a final newline
                if match is not None:
                    return self._answer(environ, start_response, hot, match.group(1))
        return self.app(environ, start_response)

    def _answer(self, environ, start_response, hot: HotRead, raw_id: str):
        started = time.perf_counter()
        try:
            owner = raw_id.encode("latin-1").decode()  # WSGI paths are bytes as latin-1
            body, version, source = hot.read(self.serving, owner, parse_query(environ.get("QUERY_STRING", "")))
        except Exception as exc:  # noqa: BLE001 - every failure is answered here, never replayed
            return self._error(start_response, hot.rule, exc, started)
        self.metrics.cached(hot.cache, source)
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body))),
                                  *api_headers(version)])
        self.metrics.request(hot.rule, 200, time.perf_counter() - started, self.serving.breaker.error is None)
        return [body]

    def _error(self, start_response, rule: str, exc: Exception, started: float):
        """The response Flask's error handlers would give: a :class:`RecsysError` as its status
        and JSON body; anything else (a bug) logged with its traceback, counted, answered 500."""
        current = self.serving.current
        version = current.version if current is not None else None
        headers = {}
        if isinstance(exc, RecsysError):
            status = exc.http_status
            headers = recsys_error_parts(exc)
            body = error_body(exc.code, exc.message, exc.details, version)
        else:
            logger.error("unexpected error in the fast path (%s)", rule, exc_info=exc)
            self.metrics.unexpected.labels(rule).inc()
            status = 500
            body = error_body(*INTERNAL_ERROR, version=version)
        out = [("Content-Type", "application/json"), ("Content-Length", str(len(body))), *headers.items(),
               *api_headers(version)]
        start_response(f"{status} {HTTP_STATUS_CODES.get(status, '').upper()}".rstrip(), out)
        self.metrics.request(rule, status, time.perf_counter() - started,
                             self.serving.breaker.error is None)
        return [body]

