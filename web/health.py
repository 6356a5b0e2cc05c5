"""Liveness and readiness: `/healthz` says the process is up, `/readyz` that Redis and PostgreSQL answer."""

from __future__ import annotations

import logging

import redis
from flask import Blueprint, Response, current_app, jsonify, request

from storage.db import ping

log = logging.getLogger(__name__)

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> Response:
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz() -> tuple[Response, int]:
    checks = {"postgresql": ping(current_app.extensions["db_pool"]), "redis": _redis_ok()}
    ready = all(checks.values())
    return jsonify(status="ready" if ready else "unavailable", checks=checks), 200 if ready else 503


@bp.post("/bench/noop")
def bench_noop() -> Response:
    """Reads the body and answers 200: the ceiling the ingest benchmark compares the webhook with."""
    request.get_data()
    return Response(status=200)


def _redis_ok() -> bool:
    try:
        return bool(current_app.extensions["redis"].ping())
    except redis.RedisError as exc:
        log.warning("redis ping failed: %s", type(exc).__name__)
        return False
