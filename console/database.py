"""The web process's PostgreSQL pool, as the console's pages reach it (web/app.py attaches it to the app)."""

from __future__ import annotations

from flask import current_app
from psycopg_pool import ConnectionPool


def get_pool() -> ConnectionPool:
    pool: ConnectionPool = current_app.extensions["db_pool"]
    return pool
