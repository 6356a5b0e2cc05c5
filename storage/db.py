"""The PostgreSQL connection pool (psycopg 3 + psycopg-pool).

One pool per process, created by `open_pool` (the web process attaches it to
its Flask app, web/app.py). Connections are in autocommit mode; a unit of work that must be
atomic uses `with conn.transaction():`. Only parameterised SQL is used.
"""

from __future__ import annotations

import logging
from typing import Any

from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

log = logging.getLogger(__name__)

# How long a request waits for a pooled connection before treating PostgreSQL as down.
FAST_FAIL_TIMEOUT_S = 1.0


def open_pool(database_url: str, *, min_size: int = 1, max_size: int = 10, name: str = "encargo") -> ConnectionPool:
    """Open a pool without waiting for PostgreSQL: a process may start while the database is down."""
    pool: ConnectionPool = ConnectionPool(
        database_url,
        min_size=min_size,
        max_size=max_size,
        name=name,
        open=False,
        timeout=FAST_FAIL_TIMEOUT_S,
        reconnect_timeout=0,  # keep trying to reconnect for ever; callers fail fast meanwhile
        # No per-checkout health check (a round trip on every request): a connection broken by a
        # database restart fails its statement, the caller treats that as "database down" and the pool
        # discards the connection when it comes back.
        kwargs={"autocommit": True, "row_factory": dict_row, "connect_timeout": 2},
    )
    pool.open(wait=False)
    return pool


def ping(pool: ConnectionPool) -> bool:
    """True when a pooled connection answers `SELECT 1`; never raises."""
    try:
        with pool.connection(timeout=FAST_FAIL_TIMEOUT_S) as conn:
            conn.execute("SELECT 1")
        return True
    except Exception as exc:  # noqa: BLE001 - any failure means "not reachable"
        log.warning("postgresql ping failed: %s", type(exc).__name__)
        return False


def fetch_one(pool: ConnectionPool, sql: str, params: Any = None) -> dict[str, Any] | None:
    with pool.connection() as conn:
        row: dict[str, Any] | None = conn.execute(sql, params).fetchone()  # type: ignore[assignment]
        return row
