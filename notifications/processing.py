"""From a stored core event to notification rows: who is told, and the first send attempt.

`process_event(rt, pk)`: reads the package from the core (names, phones,
points are not in the event), applies `notifications.decision`, writes one
`notification_log` row per customer (the unique keys make a repeated event or
a repeated status a no-op), marks the event processed, and returns the ids of
the new rows for the caller to send.

Failure policy: the core unreachable -> raises (RQ retries with back-off; after
MAX_ATTEMPTS the event is marked failed); an unknown package -> the event is
marked failed, nothing is sent; an event of a tenant suspended after it was
accepted -> marked failed ("tenant suspended"), nothing is sent; database errors raise.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from datetime import UTC, datetime

from core_api_client.errors import CoreError
from core_api_client.models import ServicePoint
from notifications import decision, ledger, recipients, store
from notifications.quiet_hours import quiet_hours_of, release_time
from notifications.tenant_templates import template_for
from runtime.resources import Runtime
from storage.tenants import ACTIVE

log = logging.getLogger(__name__)

POINTS_TTL_S = 300.0
_points_cache: dict[tuple[str, str], tuple[float, dict[str, ServicePoint]]] = {}
_points_lock = threading.Lock()


def service_points(rt: Runtime, tenant_id: int) -> dict[str, ServicePoint]:
    """The tenant's core's service points by id, cached for five minutes per process (per core URL and key)."""
    cores = rt.cores
    access = cores.access(tenant_id)
    key = (access.base_url, access.api_key)
    with _points_lock:
        cached = _points_cache.get(key)
        if cached and time.monotonic() - cached[0] < POINTS_TTL_S:
            return cached[1]
    points = {p.id: p for p in cores.client(tenant_id).points()}
    with _points_lock:
        _points_cache[key] = (time.monotonic(), points)
    return points


def process_event(rt: Runtime, pk: int, *, now: datetime | None = None) -> list[int]:
    """Decide and record the notifications of one event; returns the new notification ids."""
    now = now or datetime.now(UTC)
    with rt.pool.connection() as conn:
        begun = store.begin_attempt(conn, pk)
    if begun is None:
        raise LookupError(f"core event {pk} does not exist")
    event, tenant = begun
    if event.state in ("processed", "failed"):
        return []
    if tenant.status != ACTIVE:  # accepted before the suspension: a suspended company notifies nobody
        with rt.pool.connection() as conn:
            store.finish(conn, pk, "failed", "tenant suspended")
        log.warning("core event of a suspended tenant dropped", extra={"core_event_pk": pk})
        return []
    attempt = event.attempts
    core = rt.cores.client(event.tenant_id)  # the tenant's own core
    try:
        package = core.track(event.tracking_code)
        points = service_points(rt, event.tenant_id) if package is not None else {}
    except CoreError as exc:
        if attempt >= store.MAX_ATTEMPTS:
            with rt.pool.connection() as conn:
                store.finish(conn, pk, "failed", f"core unavailable: {exc}")
            log.error("core event failed: core unavailable", extra={"core_event_pk": pk})
            return []
        raise
    if package is None:
        with rt.pool.connection() as conn:
            store.finish(conn, pk, "failed", "the core does not know this tracking code")
        log.warning("core event for an unknown package", extra={"core_event_pk": pk})
        return []
    refund = event.payload.get("refund") or {}
    plans = decision.decide(
        event.type, event.status, package, points,
        notify_in_transit=rt.settings.notify_in_transit, notify_received=rt.settings.notify_received,
        refund_amount=float(refund["amount"]) if "amount" in refund else None,
        refund_point=refund.get("pickup_point"),
    )
    created = record_plans(rt, plans, tenant_id=event.tenant_id, tenant_slug=tenant.slug,
                           timezone=tenant.timezone, core_event_id=event.event_id, core_event_pk=pk, now=now)
    with rt.pool.connection() as conn:
        store.finish(conn, pk, "processed")
    log.info("core event processed", extra={"core_event_pk": pk, "notifications": len(created)})
    return created


def record_plans(rt: Runtime, plans: list[decision.Plan], *, tenant_id: int, tenant_slug: str, timezone: str,
                 core_event_id: str, core_event_pk: int | None, now: datetime) -> list[int]:
    """Write a notification row per plan (skipping customers already told); returns the new ids."""
    quiet_until = release_time(now, timezone, *quiet_hours_of(rt, tenant_id))
    created: list[int] = []
    with rt.pool.connection() as conn:  # no transaction: a repeated plan is a no-op (unique keys)
        for plan in plans:
            if not plan.phone:
                log.warning("notification not possible: the core has no phone", extra={"kind": plan.kind})
                continue
            contact_id = recipients.contact_for_phone(conn, rt.vault, tenant_id, plan.phone)
            spec = template_for(rt, tenant_id, tenant_slug, plan.kind)
            log_id = ledger.create(
                conn, tenant_id=tenant_id, core_event_id=core_event_id, core_event_pk=core_event_pk,
                tracking_code=plan.values["tracking_code"], contact_id=contact_id, kind=plan.kind, role=plan.role,
                package_status=plan.package_status,
                dedupe_key=f"{plan.values['tracking_code']}:{plan.package_status}:{contact_id}",
                template_name=spec.name if spec else None,
                values_encrypted=rt.vault.encrypt(json.dumps(plan.values, ensure_ascii=False)),
                send_after=quiet_until,
            )
            if log_id is not None:
                created.append(log_id)
    return created
