"""The scheduler's job that keeps the operations figures' rollups current (storage/metric_rollups.py).

Every INTERVAL_S, on the leader only: one transaction adds the raw rows since the last run to the
hourly rollups and, when an hour begins (and once a day), counts the recent hours again from the
raw rows to take in what came late. Failure policy: a database error raises to the scheduler (the
transaction rolls back; the next run starts from the same point).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from psycopg import Connection

from config import Settings
from notifications import tenant_templates
from runtime.leader import Leader
from runtime.resources import Runtime
from storage import metric_rollups
from storage.metric_counts import Categories, Sla

log = logging.getLogger(__name__)

INTERVAL_S = 60


def register_jobs(scheduler: Any, rt: Runtime, leader: Leader) -> None:
    def tick() -> None:
        if leader.holds():
            refresh(rt)

    scheduler.add_job(tick, "interval", seconds=INTERVAL_S, id="metric_rollups", max_instances=1, coalesce=True)


def refresh(rt: Runtime, now: datetime | None = None) -> metric_rollups.Refreshed:
    """One run of the job (what the tests and bench/dashboard.py call too)."""
    with rt.pool.connection() as conn, conn.transaction():
        done = metric_rollups.refresh(conn, now or datetime.now(UTC), sla=sla(rt.settings),
                                      categories=categories(conn))
    log.info("metric rollups refreshed", extra={"counted_from": done.counted_from.isoformat(),
                                                "counted_to": done.counted_to.isoformat(), "hours": done.hours,
                                                "healed_from": done.healed_from.isoformat()
                                                if done.healed_from else None})
    return done


def sla(settings: Settings) -> Sla:
    return Sla(normal_s=settings.console_sla_normal_s, high_s=settings.console_sla_high_s)


def categories(conn: Connection[Any]) -> Categories:
    """Each tenant's template categories (its templates.yaml block's and its rows'), looked up once per run."""
    slugs = {int(r["id"]): str(r["slug"]) for r in conn.execute("SELECT id, slug FROM tenants")}
    found: dict[int, Mapping[str, str]] = {}

    def of(tenant_id: int) -> Mapping[str, str]:
        if tenant_id not in found:
            found[tenant_id] = tenant_templates.categories(conn, tenant_id, slugs.get(tenant_id, ""))
        return found[tenant_id]

    return of
