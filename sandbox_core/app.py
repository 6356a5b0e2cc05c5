"""Flask app factory of the sandbox core: the company's logistics core played over demo data.

The bot talks to it exactly as it would to the real core (same paths, same
bearer-token auth), so development, demos and tests run without the company's
system. Each app owns its in-memory state; nothing is global at import time.
"""

from __future__ import annotations

import hmac
import logging
from pathlib import Path
from typing import Any

from flask import Flask, request
from werkzeug.exceptions import HTTPException

from sandbox_core.events import EventSink
from sandbox_core.routes import EVENTS_KEY, STATE_KEY, core_api, error_response, sandbox_control
from sandbox_core.state import CoreState, load_data

logger = logging.getLogger(__name__)

# Endpoints open without the API key: a liveness probe for process supervisors and tests.
_PUBLIC_ENDPOINTS = frozenset({"health"})


def create_sandbox_app(
    data_path: Path | str | None = None,
    api_key: str = "",
    events_url: str = "",
    events_secret: str = "",
    events_key_id: str = "",
) -> Flask:
    """Build a sandbox core app.

    `data_path` is a JSON file in the core_demo.json format (default: the
    bundled demo data). With `api_key` set, every endpoint but /health needs
    `Authorization: Bearer <api_key>`. With both `events_url` and
    `events_secret` set, status changes made through /sandbox are pushed there
    as signed events (naming `events_key_id` as the signing tenant when set).
    """
    app = Flask(__name__)
    app.extensions[STATE_KEY] = CoreState(load_data(data_path))
    app.extensions[EVENTS_KEY] = (
        EventSink(events_url, events_secret, key_id=events_key_id) if events_url and events_secret else None
    )
    app.register_blueprint(core_api)
    app.register_blueprint(sandbox_control)

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"ok": True}

    @app.before_request
    def require_api_key() -> Any:
        if not api_key or request.endpoint in _PUBLIC_ENDPOINTS:
            return None
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), api_key.encode()):
            logger.warning("rejected %s %s: missing or wrong API key", request.method, request.path)
            return error_response(
                401, "unauthorized", "a valid 'Authorization: Bearer <key>' header is required"
            )
        return None

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Any:
        code = exc.code or 500
        name = (exc.name or "error").lower().replace(" ", "_")
        return error_response(code, name, exc.description or name)

    return app
