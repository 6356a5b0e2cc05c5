"""The Flask application factory. `app` (for gunicorn: `gunicorn web.app:app`) is built on first access.

`create_app(settings)` takes defaults, then the environment, then the
settings a test passes. Each resource is attached with its own `init_app`;
nothing connects at import time.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask
from rq import Queue
from werkzeug.middleware.proxy_fix import ProxyFix

from config import Settings, settings_or_exit
from console import views as console_views
from observability import configure_logging, init_sentry
from runtime.resources import redis_from_settings
from storage import db
from storage.crypto import Vault
from web import body_limit, health, internal_events, webhooks
from web.ingest import Ingestor
from web.twilio_signers import TwilioSigners

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None) -> Flask:
    settings = settings or Settings.from_env()
    app = Flask(__name__)
    if settings.trusted_proxy_hops:  # client address and scheme from the proxies we trust; never their Host
        hops = settings.trusted_proxy_hops
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=0)  # type: ignore[method-assign]
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    body_limit.init_app(app, settings.max_body_bytes)  # issue 12: chunked bodies too; a 413 the client can read
    app.config["SECRET_KEY"] = settings.phone_hash_key
    app.extensions["settings"] = settings

    pool = db.open_pool(settings.database_url, max_size=8, name="web")
    app.extensions["db_pool"] = pool
    redis_conn = redis_from_settings(settings)
    app.extensions["redis"] = redis_conn
    app.extensions["ingestor"] = Ingestor(
        settings=settings, pool=pool, redis=redis_conn,
        queue=Queue(settings.queue_name, connection=redis_conn),
        vault=Vault(settings.phone_encryption_keys, settings.phone_hash_key),
    )

    # issue 15: Twilio signs with each company's (sub)account token
    app.extensions["twilio_signers"] = TwilioSigners(settings, pool, redis_conn, app.extensions["ingestor"].vault)
    app.register_blueprint(health.bp)
    app.register_blueprint(webhooks.bp)
    internal_events.init_app(app)  # issue 7: POST /internal/events from the logistics core
    console_views.init_app(app)  # issue 6: the support console at /console
    if settings.simulator_enabled:
        from web import simulator

        simulator.init_app(app)
    return app


def _app_from_environment() -> Flask:
    """For gunicorn: a configuration error stops the worker with one line and exit code 3 (boot error)."""
    settings = settings_or_exit("encargo-web", exit_code=3)
    configure_logging("web", settings.log_level)
    init_sentry(settings.sentry_dsn, settings.env)
    return create_app(settings)


_app: Flask | None = None


def __getattr__(name: str) -> Any:
    global _app
    if name == "app":
        if _app is None:
            _app = _app_from_environment()
        return _app
    raise AttributeError(name)
