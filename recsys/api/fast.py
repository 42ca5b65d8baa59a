"""The two hot reads without Flask: a thin WSGI layer in front of the app.

Similar items and feeds are most of the traffic, and most of their answers are lookups that take
less time than Flask's request machinery around them (app and request contexts, URL routing, the
response object, the hooks). :class:`FastReads` answers ``GET`` requests to those two routes by
calling the same body functions the Flask views call (:data:`recsys.api.routes.HOT_READS`), with
the same headers and metrics. Everything else goes to Flask untouched: other routes and methods,
every request that fails (so errors keep one shape, one status and one log line), and all of them
when reads need the API key (the check lives in Flask) or CORS is configured (flask-cors adds its
headers to every response, with or without an ``Origin``). Turn it off with
``RECSYS_API__FAST_READS=false``.
"""
from __future__ import annotations

import re
import time

from recsys.api.metrics import Metrics
from recsys.api.schemas import parse_query
from recsys.api.state import Serving

__all__ = ["FastReads"]


class FastReads:
    """WSGI middleware: ``app.wsgi_app = FastReads(app.wsgi_app, serving, metrics)``.

    Args:
        app: the WSGI callable everything else is passed to (Flask's ``wsgi_app``).
        serving: the worker's serving state.
        metrics: the worker's metrics; a fast answer is recorded under its URL rule, like Flask's.
    """

    def __init__(self, app, serving: Serving, metrics: Metrics):
        from recsys.api.routes import HOT_READS

        self.app = app
        self.serving = serving
        self.metrics = metrics
        # "/v1/items/<item_id>/similar" -> /v1/items/([^/]+)/similar, as Flask's default converter
        self.routes = [(re.compile(re.sub(r"<\w+>", "([^/]+)", rule)), rule, body_of)
                       for rule, body_of in HOT_READS.items()]
        api = serving.settings.api
        self.enabled = not api.protect_reads and not api.cors_origins

    def __call__(self, environ, start_response):
        if self.enabled and environ.get("REQUEST_METHOD") == "GET":
            path = environ.get("PATH_INFO", "")
            for pattern, rule, body_of in self.routes:
                match = pattern.fullmatch(path)  # not re's $, which allows a final newline
                if match is not None:
                    return self._answer(environ, start_response, rule, body_of, match.group(1))
        return self.app(environ, start_response)

    def _answer(self, environ, start_response, rule: str, body_of, raw_id: str):
        started = time.perf_counter()
        try:
            owner = raw_id.encode("latin-1").decode()  # WSGI paths are bytes as latin-1
            body, recommender = body_of(self.serving, self.metrics, owner,
                                        parse_query(environ.get("QUERY_STRING", "")))
        except Exception:  # noqa: BLE001 - Flask answers it again and owns every error response
            return self.app(environ, start_response)
        start_response("200 OK", [("Content-Type", "application/json"),
                                  ("Content-Length", str(len(body))),
                                  ("X-Recsys-Version", recommender.version)])
        self.metrics.request(rule, 200, time.perf_counter() - started,
                             self.serving.breaker.error is None)
        return [body]
