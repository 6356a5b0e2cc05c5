"""Each company's own rules, kept in memory per process: its hours (`storage.tenant_hours`) and templates
(`storage.tenant_templates`).

Every customer message and every notification asks, and the rules rarely
change: each tenant's are read once and kept until `storage.tenant_changes`
announces a change (read at most once a second), so a message costs no
database round trip and an admin's edit in the console is used within about
a second, without a restart.

Each process's `Runtime` holds one (`rt.rules`).
Failure policy: database errors raise (the job is retried); nothing is cached then.
"""

from __future__ import annotations

import redis
from psycopg_pool import ConnectionPool

from storage import tenant_hours, tenant_templates
from storage.tenant_changes import TenantCache
from storage.tenant_hours import Schedule
from storage.tenant_templates import TemplateRow


class TenantRules:
    """The schedules and template rows of the tenants, by tenant id."""

    def __init__(self, pool: ConnectionPool, redis_conn: redis.Redis) -> None:
        self._schedules: TenantCache[int, Schedule] = TenantCache(
            redis_conn, lambda tenant_id: tenant_hours.read(pool, tenant_id))
        self._templates: TenantCache[int, tuple[TemplateRow, ...]] = TenantCache(
            redis_conn, lambda tenant_id: tenant_templates.for_tenant(pool, tenant_id))

    def schedule(self, tenant_id: int) -> Schedule:
        return self._schedules.get(tenant_id)

    def templates(self, tenant_id: int) -> tuple[TemplateRow, ...]:
        return self._templates.get(tenant_id)

