"""Apply the numbered SQL files in migrations/ in order, each in its own transaction.

Applied versions are recorded in `schema_migrations`; running again applies
only what is new. A PostgreSQL advisory lock makes concurrent runs (two
processes starting together) safe. `encargo-migrate` also makes sure the
configured tenant exists, and gives every company without an FAQ yet the one
of its faq_data/<slug>.yaml (`storage.faq_versions.seed_all`).
"""

from __future__ import annotations

import logging
import re
import sys
from pathlib import Path

import psycopg

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")
_LOCK_ID = 7_351_001


def migration_files(directory: Path = MIGRATIONS_DIR) -> list[tuple[str, Path]]:
    files = []
    for path in sorted(directory.iterdir()):
        match = _NAME.match(path.name)
        if match:
            files.append((match.group(1), path))
    return files


def apply_migrations(database_url: str, directory: Path = MIGRATIONS_DIR) -> list[str]:
    """Apply pending migrations; returns the versions applied now. Raises on a failing file."""
    applied_now: list[str] = []
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_ID,))
        try:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version text PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
            for version, path in migration_files(directory):
                if version in done:
                    continue
                with conn.transaction():
                    conn.execute(path.read_text(encoding="utf-8"))
                    conn.execute(
                        "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)", (version, path.name)
                    )
                log.info("applied migration %s", path.name)
                applied_now.append(version)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_ID,))
    return applied_now


def main() -> None:
    import redis

    from config import settings_or_exit
    from observability import configure_logging
    from storage import faq_versions
    from storage.db import open_pool
    from storage.tenants import TenantError, ensure_configured_tenant

    settings = settings_or_exit("encargo-migrate")
    configure_logging("migrate", settings.log_level)
    try:
        applied = apply_migrations(settings.database_url)
    except psycopg.OperationalError as exc:
        print(f"encargo-migrate: cannot reach PostgreSQL at DATABASE_URL: {exc}".splitlines()[0], file=sys.stderr)  # noqa: T201
        raise SystemExit(1) from None
    pool = open_pool(settings.database_url, max_size=1)
    changes = redis.Redis.from_url(settings.redis_url, socket_timeout=2, socket_connect_timeout=1)
    try:
        tenant_id = ensure_configured_tenant(pool, settings, changes)  # running processes see it within a second
        faq_versions.seed_all(pool, changes)  # each company's faq_data/<slug>.yaml, when it has no FAQ yet
    except TenantError as exc:
        print(f"encargo-migrate: {exc}", file=sys.stderr)  # noqa: T201
        raise SystemExit(1) from None
    finally:
        pool.close()
        changes.close()
    log.info("migrations up to date", extra={"applied": applied, "tenant_id": tenant_id})


if __name__ == "__main__":
    main()
