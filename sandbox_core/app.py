"""Flask app factory of the sandbox core: the company's logistics core played over demo data.

The bot talks to it exactly as it would to the real core (same paths, same
bearer-token auth), so development, demos and tests run without the company's
system. One app can play several companies (sandbox_core/companies.py): the
request's API key selects one, and each has its own data and state. Each app
owns its in-memory state; nothing is global at import time.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from flask import Flask, g, request
from werkzeug.exceptions import HTTPException

from sandbox_core.companies import CompanyConfig, select, serve
from sandbox_core.routes import COMPANIES_KEY, COMPANY_ATTR, core_api, error_response, sandbox_control

logger = logging.getLogger(__name__)

# Endpoints open without the API key: a liveness probe for process supervisors and tests.
_PUBLIC_ENDPOINTS = frozenset({"health"})


def create_sandbox_app(
    data_path: Path | str | None = None,
    api_key: str = "",
    events_url: str = "",
    events_secret: str = "",
    events_key_id: str = "",
    *,
    companies: Sequence[CompanyConfig] | None = None,
) -> Flask:
    """Build a sandbox core app.

    One company from the arguments: `data_path` is a JSON file in the
    core_demo.json format (default: the bundled demo data). With `api_key`
    set, every endpoint but /health needs `Authorization: Bearer <api_key>`.
    With both `events_url` and `events_secret` set, status changes made
    through /sandbox are pushed there as signed events (naming
    `events_key_id` as the signing tenant when set).

    Several companies: `companies` instead of those arguments (ValueError when
    both are given, or when two companies' keys cannot be told apart). A key
    that is none of theirs is refused 401.
    """
    single = CompanyConfig(data_path, api_key, events_url, events_secret, events_key_id)
    if companies is not None and single != CompanyConfig():
        raise ValueError("give either one company's arguments or `companies`, not both")
    app = Flask(__name__)
    served = serve(list(companies) if companies is not None else [single])
    app.extensions[COMPANIES_KEY] = served
    app.register_blueprint(core_api)
    app.register_blueprint(sandbox_control)

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"ok": True}

    @app.before_request
    def select_company() -> Any:
        if request.endpoint in _PUBLIC_ENDPOINTS:
            return None
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        company = select(served, token.strip() if scheme.lower() == "bearer" else None)
        if company is None:
            logger.warning("rejected %s %s: missing or wrong API key", request.method, request.path)
            return error_response(
                401, "unauthorized", "a valid 'Authorization: Bearer <key>' header is required"
            )
        setattr(g, COMPANY_ATTR, company)
        return None
    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Any:
        code = exc.code or 500
        name = (exc.name or "error").lower().replace(" ", "_")
        return error_response(code, name, exc.description or name)

    return app
