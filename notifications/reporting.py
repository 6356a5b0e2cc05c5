"""Telling the logistics core that a notification went out: `POST /api/notifications/log`.

Design 3.3.1: the core keeps its own record of what the bot told customers.
The report goes to the notification's tenant's own core (`runtime.cores`).
It carries our notification id (the core de-duplicates on it), the
tracking code, the kind, who was told (role, never the phone), template or
free-form, and when. It is tried once right after the send; a failure is
recorded (`report_attempts`) and the scheduler retries every unreported
notification until the core accepts it.

Failure policy: core errors are logged and recorded, never raised.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from core_api_client.errors import CoreError
from notifications import ledger
from runtime.resources import Runtime

log = logging.getLogger(__name__)


def report(rt: Runtime, log_id: int) -> bool:
    """Report one sent notification; True when the core accepted it (or had it already)."""
    with rt.pool.connection() as conn:
        details = ledger.report_details(conn, log_id)
    if details is None or details["reported_at"] is not None:
        return details is not None
    sent_at: datetime = details["sent_at"] or datetime.now(UTC)
    extra = {
        "notification_id": f"encargo-{details['id']}",
        "recipient_role": details["role"] or "",
        "mode": details["mode"] or "",
        "template": details["template_name"] or "",
        "status": details["status"],
    }
    try:
        rt.cores.client(details["tenant_id"]).log_notification(details["tracking_code"], details["kind"], sent_at,
                                                            details=extra)
    except CoreError as exc:
        log.warning("notification report refused or failed (%s); retried later", type(exc).__name__,
                    extra={"notification_id": log_id})
        ok = False
    else:
        ok = True
    with rt.pool.connection() as conn:
        ledger.mark_reported(conn, log_id, ok)
    return ok


def report_unreported(rt: Runtime, *, older_than_s: float = 30.0) -> int:
    """Retry every sent notification the core has not accepted yet; returns how many it accepted now."""
    accepted = 0
    for log_id in ledger.unreported(rt.pool, older_than_s=older_than_s):
        if report(rt, log_id):
            accepted += 1
    return accepted
