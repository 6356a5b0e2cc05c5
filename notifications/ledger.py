"""The `notification_log` table: one row per notification we decided to send to one customer.

A row is written before anything is sent. Two unique keys make sending at most
once: (tenant, core event, contact) — the same event never notifies a customer
twice — and (tenant, dedupe_key) — at most one message per customer per
package status (and per reminder day). The row then records how it went out
(template or free-form, provider message id), the delivery status copied from
the provider's status callbacks (only ever forward), errors, and when the
core accepted our report of it.

status: pending / deferred (quiet hours) -> sending -> accepted -> sent ->
delivered -> read, or failed / skipped (opted out, no phone, no template);
held (`hold`, with `hold_reason`: WhatsApp's messaging limit reached, the template
paused by Meta) -> pending again when released (`release`, `release_held`), in the
order of `notifications.decision.PRIORITY`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import Connection
from psycopg_pool import ConnectionPool

from channels.events import DeliveryStatus
from notifications.decision import PRIORITY

SKIPPED = "skipped"
WAITING = ("pending", "deferred")
HELD = "held"
# Why a notification is held (notification_log.hold_reason); the admin reads them as notifications.limits words them.
HOLD_MESSAGING_LIMIT = "messaging_limit"
HOLD_TEMPLATE_PAUSED = "template_paused"


@dataclass(frozen=True)
class Notification:
    id: int
    tenant_id: int
    core_event_id: str
    tracking_code: str
    contact_id: int
    kind: str
    role: str | None
    package_status: str | None
    template_name: str | None
    values_encrypted: str | None
    status: str
    mode: str | None
    message_id: int | None
    attempts: int
    send_after: datetime | None
    admitted_at: datetime | None = None  # the messaging limit's pass let it go (held before)


_COLUMNS = """id, tenant_id, core_event_id, tracking_code, contact_id, kind, role, package_status, template_name,
              values_encrypted, status, mode, message_id, attempts, send_after, admitted_at"""


def create(
    conn: Connection[Any], *, tenant_id: int, core_event_id: str, core_event_pk: int | None, tracking_code: str,
    contact_id: int, kind: str, role: str, package_status: str | None, dedupe_key: str,
    template_name: str | None, values_encrypted: str, send_after: datetime | None,
) -> int | None:
    """Write a notification to send; None when this customer was already told (same event or same status)."""
    row = conn.execute(
        """
        INSERT INTO notification_log (tenant_id, core_event_id, core_event_pk, tracking_code, contact_id, kind,
                                      role, package_status, dedupe_key, template_name, values_encrypted,
                                      send_after, status)
        VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
        ON CONFLICT DO NOTHING
        RETURNING id
        """,
        (tenant_id, core_event_id, core_event_pk, tracking_code, contact_id, kind, role, package_status,
         dedupe_key, template_name, values_encrypted, send_after, "deferred" if send_after else "pending"),
    ).fetchone()
    return None if row is None else int(row["id"])


def load(conn: Connection[Any], log_id: int) -> Notification | None:
    row = conn.execute(f"SELECT {_COLUMNS} FROM notification_log WHERE id = %s", (log_id,)).fetchone()  # noqa: S608
    return None if row is None else Notification(**row)


@dataclass(frozen=True)
class Claimed:
    """A notification claimed for sending, with what sending needs of its customer and company."""

    note: Notification
    opted_out: bool
    phone_encrypted: str | None
    bsuid: str | None
    tenant_slug: str
    timezone: str


def claim(conn: Connection[Any], log_id: int, now: datetime) -> Claimed | None:
    """Move a waiting notification whose time came to `sending` (one sender only); None otherwise."""
    # Scalar subqueries rather than a join: the row is found by its primary key whatever the
    # planner's statistics say (a join planned on a freshly filled table scanned it every time).
    row = conn.execute(
        f"""
        UPDATE notification_log SET status = 'sending', status_rank = 1, attempts = attempts + 1, updated_at = now()
        WHERE id = %s AND status IN ('pending', 'deferred') AND (send_after IS NULL OR send_after <= %s)
        RETURNING {_COLUMNS},
            (SELECT c.opted_out_at IS NOT NULL FROM contacts c WHERE c.id = contact_id) AS opted_out,
            (SELECT c.phone_encrypted FROM contacts c WHERE c.id = contact_id) AS phone_encrypted,
            (SELECT c.bsuid FROM contacts c WHERE c.id = contact_id) AS bsuid,
            (SELECT t.slug FROM tenants t WHERE t.id = tenant_id) AS tenant_slug,
            (SELECT t.timezone FROM tenants t WHERE t.id = tenant_id) AS timezone
        """,  # noqa: S608 - fixed column list
        (log_id, now),
    ).fetchone()
    if row is None:
        return None
    extra = {k: row.pop(k) for k in ("opted_out", "phone_encrypted", "bsuid", "tenant_slug", "timezone")}
    return Claimed(note=Notification(**row), **extra)


def defer(conn: Connection[Any], log_id: int, until: datetime, reason: str) -> None:
    """Back to waiting until `until` (quiet hours, rate limit, transient provider error)."""
    conn.execute(
        "UPDATE notification_log SET status = 'deferred', status_rank = 0, send_after = %s, error = %s,"
        " updated_at = now() WHERE id = %s",
        (until, reason[:500], log_id),
    )


def hold(conn: Connection[Any], notification_id: int, reason: str, *, mode: str | None = None) -> bool:
    """Stop a notification not sent yet: `held` with `reason` (HOLD_*), until released. True when held.

    A waiting one (pending, deferred), one claimed by a sender that has not called the provider yet
    (sending; only its sender holds it), or a held one (its reason is replaced). Nothing is lost: a held
    notification keeps its place by `PRIORITY` and age. `mode`: how it is to go when released (the
    template, when the free-form message was already refused for the closed window).
    """
    row = conn.execute(
        """
        UPDATE notification_log SET status = 'held', status_rank = 0, hold_reason = %s,
               held_at = COALESCE(held_at, now()), admitted_at = NULL, mode = COALESCE(%s, mode), updated_at = now()
        WHERE id = %s AND status IN ('pending', 'deferred', 'sending', 'held')
        RETURNING id
        """,
        (reason, mode, notification_id),
    ).fetchone()
    return row is not None


def release(conn: Connection[Any], notification_id: int, *, admitted: bool = False,
            at: datetime | None = None) -> bool:
    """A held notification waits again, due at once (or from `at`): the scheduler's pass or a send job takes it.

    `admitted`: the messaging limit's pass gave it a place (it is not queued behind others again).
    """
    row = conn.execute(
        """
        UPDATE notification_log SET status = 'pending', status_rank = 0, hold_reason = NULL, held_at = NULL,
               send_after = COALESCE(%s, now()), admitted_at = CASE WHEN %s THEN now() END, updated_at = now()
        WHERE id = %s AND status = 'held'
        RETURNING id
        """,
        (at, admitted, notification_id),
    ).fetchone()
    return row is not None


def release_held(conn: Connection[Any], tenant_id: int, reason: str, *, limit: int | None = None,
                 kinds: Sequence[str] | None = None, admitted: bool = False,
                 at: datetime | None = None) -> list[int]:
    """Release a company's notifications held for `reason` (only of `kinds` when given), at most `limit`, in
    priority order (`PRIORITY`, then oldest first), due at once (or from `at`); returns their ids."""
    # The chosen rows in a MATERIALIZED CTE: as `WHERE id IN (SELECT ... LIMIT n FOR UPDATE SKIP LOCKED)` the
    # planner may run the subquery again per outer row, and each run skips the rows the last one locked, so
    # more than `limit` were released (seen once in CI: 260 released for a tier of 250).
    rows = conn.execute(
        """
        WITH chosen AS MATERIALIZED (
            SELECT id, kind, created_at FROM notification_log
            WHERE tenant_id = %(tenant)s AND status = 'held' AND hold_reason = %(reason)s
              AND (%(kinds)s::text[] IS NULL OR kind = ANY(%(kinds)s::text[]))
            ORDER BY array_position(%(order)s::text[], kind) NULLS LAST, created_at, id
            LIMIT %(limit)s FOR UPDATE SKIP LOCKED),
        released AS (
            UPDATE notification_log n SET status = 'pending', status_rank = 0, hold_reason = NULL, held_at = NULL,
                   send_after = COALESCE(%(at)s, now()), admitted_at = CASE WHEN %(admitted)s THEN now() END,
                   updated_at = now()
            FROM chosen
            WHERE n.id = chosen.id AND n.status = 'held'
            RETURNING n.id)
        SELECT c.id FROM chosen c JOIN released r ON r.id = c.id
        ORDER BY array_position(%(order)s::text[], c.kind) NULLS LAST, c.created_at, c.id
        """,
        {"tenant": tenant_id, "reason": reason, "kinds": list(kinds) if kinds is not None else None,
         "order": list(PRIORITY), "limit": limit, "admitted": admitted, "at": at},
    ).fetchall()
    return [int(r["id"]) for r in rows]


@dataclass(frozen=True)
class HeldNotification:
    id: int
    kind: str
    tracking_code: str
    hold_reason: str
    held_at: datetime
    created_at: datetime


def held(conn: Connection[Any], tenant_id: int, *, limit: int = 200) -> list[HeldNotification]:
    """A company's held notifications in the order they will go (`PRIORITY`, then oldest first)."""
    rows = conn.execute(
        """
        SELECT id, kind, tracking_code, hold_reason, held_at, created_at FROM notification_log
        WHERE tenant_id = %s AND status = 'held'
        ORDER BY array_position(%s::text[], kind) NULLS LAST, created_at, id LIMIT %s
        """,
        (tenant_id, list(PRIORITY), limit),
    ).fetchall()
    return [HeldNotification(**row) for row in rows]


def held_counts(conn: Connection[Any], tenant_id: int) -> dict[str, int]:
    """How many of a company's notifications are held, per reason."""
    rows = conn.execute(
        "SELECT hold_reason, count(*) AS n FROM notification_log WHERE tenant_id = %s AND status = 'held'"
        " GROUP BY hold_reason",
        (tenant_id,),
    ).fetchall()
    return {str(r["hold_reason"]): int(r["n"]) for r in rows}


def set_message(conn: Connection[Any], log_id: int, message_id: int, mode: str, template_name: str | None) -> None:
    conn.execute(
        "UPDATE notification_log SET message_id = %s, mode = %s, template_name = COALESCE(%s, template_name),"
        " updated_at = now() WHERE id = %s",
        (message_id, mode, template_name, log_id),
    )


def mark_sent(conn: Connection[Any], log_id: int, *, channel: str, provider_message_id: str,
              status: DeliveryStatus) -> None:
    conn.execute(
        """
        UPDATE notification_log SET status = %s, status_rank = %s, channel = %s, provider_message_id = %s,
               sent_at = now(), error = NULL, error_code = NULL, updated_at = now()
        WHERE id = %s AND status_rank < %s
        """,
        (status.value, status.rank, channel, provider_message_id, log_id, status.rank),
    )


def mark_failed(conn: Connection[Any], log_id: int, code: str, error: str) -> None:
    conn.execute(
        "UPDATE notification_log SET status = 'failed', status_rank = %s, error_code = %s, error = %s,"
        " failed_at = now(), updated_at = now() WHERE id = %s",
        (DeliveryStatus.FAILED.rank, code, error[:500], log_id),
    )


def mark_skipped(conn: Connection[Any], log_id: int, reason: str) -> None:
    conn.execute(
        "UPDATE notification_log SET status = 'skipped', status_rank = %s, error = %s, updated_at = now()"
        " WHERE id = %s",
        (DeliveryStatus.FAILED.rank, reason[:500], log_id),
    )


@dataclass(frozen=True)
class ReceiptOutcome:
    log_id: int
    mode: str | None
    status: str
    error_code: str | None


def apply_receipt(conn: Connection[Any], message_id: int) -> ReceiptOutcome | None:
    """Copy the (already applied, monotonic) status of our message to its notification; None if none."""
    row = conn.execute(
        """
        UPDATE notification_log n SET status = m.status, status_rank = m.status_rank,
               error_code = COALESCE(m.error_code, n.error_code), error = COALESCE(m.error_title, n.error),
               delivered_at = CASE WHEN m.status IN ('delivered', 'read') THEN COALESCE(n.delivered_at, now())
                                   ELSE n.delivered_at END,
               read_at = CASE WHEN m.status = 'read' THEN COALESCE(n.read_at, now()) ELSE n.read_at END,
               failed_at = CASE WHEN m.status = 'failed' THEN COALESCE(n.failed_at, now()) ELSE n.failed_at END,
               updated_at = now()
        FROM messages m
        WHERE m.id = %s AND n.message_id = m.id AND n.status_rank < m.status_rank
        RETURNING n.id, n.mode, n.status, n.error_code
        """,
        (message_id,),
    ).fetchone()
    if row is None:
        return None
    return ReceiptOutcome(log_id=row["id"], mode=row["mode"], status=row["status"], error_code=row["error_code"])


def reopen_as_template(conn: Connection[Any], log_id: int) -> bool:
    """A free-form notification the provider refused for the closed window: wait again, to go as the template."""
    row = conn.execute(
        """
        UPDATE notification_log SET status = 'pending', status_rank = 0, mode = 'template', send_after = NULL,
               failed_at = NULL, updated_at = now()
        WHERE id = %s AND mode = 'free_form' AND status = 'failed'
        RETURNING id
        """,
        (log_id,),
    ).fetchone()
    return row is not None


def due(pool: ConnectionPool, now: datetime, *, min_age_s: float, limit: int = 1000) -> list[int]:
    """Waiting notifications that may go now: deferred ones whose time came, and pending ones nobody sent."""
    with pool.connection() as conn:
        rows = conn.execute(
            """
            SELECT id FROM notification_log
            WHERE status IN ('pending', 'deferred')
              AND COALESCE(send_after, updated_at + make_interval(secs => %s)) <= %s
            ORDER BY id LIMIT %s
            """,
            (min_age_s, now, limit),
        ).fetchall()
    return [int(r["id"]) for r in rows]  # type: ignore[call-overload]


def interrupted(pool: ConnectionPool, *, older_than_s: float) -> int:
    """Rows left `sending` by a worker that died: failed, not resent (the customer may have it already)."""
    with pool.connection() as conn:
        rows = conn.execute(
            """
            UPDATE notification_log SET status = 'failed', status_rank = %s, error_code = 'interrupted',
                   error = 'the worker stopped while sending; not resent to avoid a duplicate', failed_at = now(),
                   updated_at = now()
            WHERE status = 'sending' AND updated_at < now() - make_interval(secs => %s)
            RETURNING id
            """,
            (DeliveryStatus.FAILED.rank, older_than_s),
        ).fetchall()
    return len(rows)


def unreported(pool: ConnectionPool, *, older_than_s: float, limit: int = 500) -> list[int]:
    """Sent notifications the core has not accepted a report of yet."""
    with pool.connection() as conn:
        rows = conn.execute(
            """
            SELECT id FROM notification_log
            WHERE reported_at IS NULL AND status IN ('accepted', 'sent', 'delivered', 'read')
              AND sent_at < now() - make_interval(secs => %s)
            ORDER BY id LIMIT %s
            """,
            (older_than_s, limit),
        ).fetchall()
    return [int(r["id"]) for r in rows]  # type: ignore[call-overload]


def report_details(conn: Connection[Any], log_id: int) -> dict[str, Any] | None:
    """What the core is told about a notification (no phone numbers, names or message text)."""
    return conn.execute(
        """
        SELECT id, tenant_id, tracking_code, kind, role, mode, template_name, status, sent_at, reported_at,
               core_event_id
        FROM notification_log WHERE id = %s
        """,
        (log_id,),
    ).fetchone()


def mark_reported(conn: Connection[Any], log_id: int, ok: bool) -> None:
    conn.execute(
        "UPDATE notification_log SET report_attempts = report_attempts + 1,"
        " reported_at = CASE WHEN %s THEN now() ELSE reported_at END WHERE id = %s",
        (ok, log_id),
    )


def arrived_packages(conn: Connection[Any], *, now: datetime, since: datetime, reminder_days: tuple[int, ...],
                     only_tenant: int | None = None, except_tenants: Sequence[int] = ()) -> list[tuple[int, str]]:
    """(tenant id, tracking code) of packages that may owe a reminder at `now` (candidates, checked with the core).

    Arrivals notified after `since`, old enough for the first reminder day, with fewer reminders
    recorded than reminder days reached; "reached" counts a day early (day N needs more than N - 1
    elapsed days), because reminder days are calendar days in company time. `only_tenant` /
    `except_tenants` limit the tenants (a company with reminder days of its own is asked apart).
    """
    if not reminder_days:
        return []
    rows = conn.execute(
        """
        WITH arrivals AS (
            SELECT tenant_id, tracking_code, min(created_at) AS first_at FROM notification_log
            WHERE kind = 'arrived' AND created_at > %(since)s
              AND created_at <= %(now)s - make_interval(days => %(first)s - 1)
              AND (%(only)s::int IS NULL OR tenant_id = %(only)s) AND NOT tenant_id = ANY(%(except)s::int[])
            GROUP BY tenant_id, tracking_code
        ), reminded AS (
            SELECT r.tenant_id, r.tracking_code, count(*) AS sent FROM notification_log r
            JOIN arrivals a ON a.tenant_id = r.tenant_id AND a.tracking_code = r.tracking_code
            WHERE r.kind = 'pickup_reminder'
            GROUP BY r.tenant_id, r.tracking_code
        )
        SELECT a.tenant_id, a.tracking_code FROM arrivals a
        LEFT JOIN reminded r ON r.tenant_id = a.tenant_id AND r.tracking_code = a.tracking_code
        WHERE COALESCE(r.sent, 0) < (SELECT count(*) FROM unnest(%(days)s::int[]) AS d
                                     WHERE d - 1 <= extract(epoch FROM %(now)s - a.first_at) / 86400)
        ORDER BY a.tenant_id, a.tracking_code
        """,
        {"now": now, "since": since, "days": list(reminder_days), "first": min(reminder_days), "only": only_tenant,
         "except": list(except_tenants)},
    ).fetchall()
    return [(int(r["tenant_id"]), str(r["tracking_code"])) for r in rows]
