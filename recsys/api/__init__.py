"""Step 7 of the flow: the HTTP API, a Flask app factory served by gunicorn (``recsys serve``)."""
from __future__ import annotations

import logging
import time

from flask import Flask, g, request

from recsys.settings import Settings

__all__ = ["create_app"]

logger = logging.getLogger(__name__)


def create_app(settings: Settings | None = None, *, start: bool = True) -> Flask:
    """Build the API app: connect to Redis, load the active bundle, register the endpoints.

    Args:
        settings: validated settings; ``None`` reads them from the environment. With no
            ``redis.url`` the embedded Redis under ``state_dir/redis`` is started (or joined).
        start: load the bundle and start following Redis now (tests may defer it).

    Returns:
        Flask: the app; ``app.extensions["recsys"]`` is its :class:`~recsys.worker.Serving`.

    Example:
        >>> app = create_app(load_settings(api={"bundle": "models/shop"}))  # doctest: +SKIP
        >>> app.test_client().get("/v1/items/SKU-1/similar?k=5").json["items"]  # doctest: +SKIP
    """
    from recsys.api.context import api_headers
    from recsys.api.curation import bp as curation
    from recsys.api.errors import register_error_handlers
    from recsys.api.experiments import bp as experiments
    from recsys.api.metrics import Metrics
    from recsys.api.review import bp as review
    from recsys.api.routes import bp
    from recsys.api.rules import bp as rules
    from recsys.api.writes import bp as writes
    from recsys.settings import load_settings, warn_unknown_env
    from recsys.worker import Serving, redis_client
    from recsys.worker.shared import shared_generation

    if settings is None:  # started on its own (e.g. by another WSGI server): check the environment
        warn_unknown_env()
        settings = load_settings()
    app = Flask("recsys")
    app.config["MAX_CONTENT_LENGTH"] = settings.api.max_body_bytes
    app.json.sort_keys = False
    embedded = None
    if settings.redis.url is None:
        from recsys.store.embedded import EmbeddedRedis

        embedded = EmbeddedRedis(settings.state_dir / "redis").start()
        settings = settings.model_copy(update={"redis": settings.redis.model_copy(update={"url": embedded.url})})
    serving = Serving(settings, redis_client(settings))
    serving.embedded = embedded  # keeps a server this app started alive as long as the app
    serving.shared_gen = shared_generation()
    metrics = Metrics()
    serving.on_change = lambda rec: metrics.serving(rec.version, len(rec.changes))
    app.extensions["recsys"] = serving
    app.extensions["recsys.metrics"] = metrics
    register_error_handlers(app)
    app.register_blueprint(bp)
    app.register_blueprint(writes)
    app.register_blueprint(rules)
    app.register_blueprint(experiments)
    app.register_blueprint(curation)
    app.register_blueprint(review)
    if settings.api.web:
        from recsys.web import bp as web

        app.register_blueprint(web)
    if settings.api.cors_origins:
        from flask_cors import CORS

        CORS(app, origins=settings.api.cors_origins, expose_headers=["X-Recsys-Version"],
             allow_headers=["Authorization", "X-API-Key", "Content-Type"], max_age=600)

    @app.before_request
    def _started():
        g.started = time.perf_counter()
        current = serving.current
        if current is not None:  # errors before a handler picks its recommender still say it
            g.version = current.version

    @app.after_request
    def _finish(response):
        for name, value in api_headers(g.get("version")):
            response.headers.setdefault(name, value)
        rule = request.url_rule.rule if request.url_rule is not None else "unmatched"
        metrics.request(rule, response.status_code,
                        time.perf_counter() - g.get("started", time.perf_counter()),
                        serving.breaker.error is None)
        return response

    if settings.api.fast_reads:
        from recsys.api.fast import FastReads

        app.wsgi_app = FastReads(app, serving, metrics)
    if start:
        serving.start()
    return app
