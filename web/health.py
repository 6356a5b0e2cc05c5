"""Liveness and readiness: `/healthz` says the process is up, `/readyz` that Redis and PostgreSQL answer.

`/readyz` also shows how many worker processes are alive out of how many the
running `encargo-worker`s expect (runtime.presence), or null when none reports
or Redis does not answer. It is shown, not judged: the webhook keeps accepting
messages while workers are being replaced, so readiness depends on the stores only.
"""

from __future__ import annotations

import logging

import redis
from flask import Blueprint, Response, current_app, jsonify, request

from runtime import presence
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
    workers = _workers() if checks["redis"] else None
    return jsonify(status="ready" if ready else "unavailable", checks=checks, workers=workers), 200 if ready else 503


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


def _workers() -> dict[str, int] | None:
    try:
        counts = presence.counts(current_app.extensions["redis"])
    except redis.RedisError as exc:
        log.warning("worker counts unavailable: %s", type(exc).__name__)
        return None
    return None if counts is None else {"alive": counts.alive, "expected": counts.expected}
