"""The `account_notices` and `template_states` tables (0024): what Meta said about a company's account.

- `record`: one notice for one company (or for nobody: `tenant_id` None, an account no company has), once per
  webhook event and company, so a worker that handles the event again stores nothing twice;
- `set_template_state`: a template's state at Meta (name + language), only moved by a notice newer than the
  one that set it (Meta does not promise order);
- `unusable_templates`: the (name, language) pairs a company may not send now (what notification sending asks);
- `recent` / `number_quality` / `template_states`: what the admin's and the operator's pages show.

Failure policy: database errors raise (the worker's job is retried).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import Connection


@dataclass(frozen=True)
class Notice:
    id: int
    tenant_id: int | None
    field: str  # template_status | template_quality | number_quality | capability | account
    waba_id: str | None
    phone: str | None
    template_name: str | None
    template_language: str | None
    event: str
    tier: str | None
    quality: str | None
    reason: str | None
    occurred_at: datetime


@dataclass(frozen=True)
class TemplateState:
    name: str
    language: str
    status: str  # Meta's event word: APPROVED, PAUSED, DISABLED, REJECTED...
    usable: bool
    reason: str | None
    since: datetime


_NOTICE_COLUMNS = ("id, tenant_id, field, waba_id, phone, template_name, template_language, event, tier, quality,"
                   " reason, occurred_at")


def record(conn: Connection[Any], *, tenant_id: int | None, webhook_event_id: int, field: str, waba_id: str,
           phone: str | None, template_name: str | None, template_language: str | None, event: str,
           tier: str | None, quality: str | None, reason: str | None, occurred_at: datetime) -> int | None:
    """Store one notice; its id, or None when this event was stored for this company before."""
    row = conn.execute(
        """
        INSERT INTO account_notices (tenant_id, webhook_event_id, field, waba_id, phone, template_name,
                                     template_language, event, tier, quality, reason, occurred_at)
        SELECT %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s
        WHERE NOT EXISTS (SELECT 1 FROM account_notices WHERE webhook_event_id = %s
                          AND tenant_id IS NOT DISTINCT FROM %s)
        RETURNING id
        """,
        (tenant_id, webhook_event_id, field, waba_id or None, phone, template_name, template_language, event, tier,
         quality, reason, occurred_at, webhook_event_id, tenant_id),
    ).fetchone()
    return None if row is None else int(row["id"])


def set_template_state(conn: Connection[Any], *, tenant_id: int, name: str, language: str, status: str,
                       usable: bool, reason: str | None, since: datetime) -> bool:
    """Record a template's state at Meta unless a newer notice set it already; True when it changed usability
    (usable -> not, or back), which is when held notifications may go or must wait."""
    before = conn.execute(
        "SELECT usable FROM template_states WHERE tenant_id = %s AND name = %s AND language = %s FOR UPDATE",
        (tenant_id, name, language),
    ).fetchone()
    changed = conn.execute(
        """
        INSERT INTO template_states AS s (tenant_id, name, language, status, usable, reason, since)
        VALUES (%s, %s, %s, %s, %s, %s, %s)
        ON CONFLICT (tenant_id, name, language) DO UPDATE
            SET status = EXCLUDED.status, usable = EXCLUDED.usable, reason = EXCLUDED.reason, since = EXCLUDED.since
            WHERE s.since <= EXCLUDED.since
        """,
        (tenant_id, name, language, status, usable, reason, since),
    ).rowcount
    was_usable = True if before is None else bool(before["usable"])
    return bool(changed) and was_usable != usable


def unusable_templates(conn: Connection[Any], tenant_id: int) -> set[tuple[str, str]]:
    """(name, language) of every template Meta paused, disabled or rejected for this company (index-only read)."""
    rows = conn.execute("SELECT name, language FROM template_states WHERE tenant_id = %s AND NOT usable",
                        (tenant_id,)).fetchall()
    return {(str(r["name"]), str(r["language"])) for r in rows}


def template_states(conn: Connection[Any], tenant_id: int) -> dict[tuple[str, str], TemplateState]:
    """Every template state Meta told us for this company, by (name, language)."""
    rows = conn.execute("SELECT name, language, status, usable, reason, since FROM template_states"
                        " WHERE tenant_id = %s", (tenant_id,)).fetchall()
    return {(str(r["name"]), str(r["language"])): TemplateState(**r) for r in rows}


def recent(conn: Connection[Any], tenant_id: int, limit: int = 20) -> list[Notice]:
    """The company's newest notices, newest first."""
    rows = conn.execute(f"SELECT {_NOTICE_COLUMNS} FROM account_notices WHERE tenant_id = %s"  # noqa: S608
                        " ORDER BY occurred_at DESC, id DESC LIMIT %s", (tenant_id, limit)).fetchall()
    return [Notice(**r) for r in rows]


def number_quality(conn: Connection[Any]) -> dict[int, Notice]:
    """Each company's newest number-quality notice (the operator's list: one statement for every company)."""
    rows = conn.execute(
        f"""
        SELECT DISTINCT ON (tenant_id) {_NOTICE_COLUMNS} FROM account_notices
        WHERE tenant_id IS NOT NULL AND field = 'number_quality'
        ORDER BY tenant_id, occurred_at DESC, id DESC
        """,  # noqa: S608 - fixed column list
    ).fetchall()
    return {int(r["tenant_id"]): Notice(**r) for r in rows}


def unusable_by_tenant(conn: Connection[Any], tenant_ids: list[int]) -> dict[int, list[str]]:
    """tenant id -> names of its templates Meta paused, disabled or rejected (the Panel's alerts)."""
    rows = conn.execute("SELECT tenant_id, name FROM template_states WHERE tenant_id = ANY(%s) AND NOT usable"
                        " ORDER BY tenant_id, name", (tenant_ids,)).fetchall()
    found: dict[int, list[str]] = {}
    for row in rows:
        found.setdefault(int(row["tenant_id"]), []).append(str(row["name"]))
    return found


def end_pauses(conn: Connection[Any], durations_s: dict[str, int], now: datetime) -> list[int]:
    """Templates whose timed pause is over (`reason` FIRST_PAUSE... and `since` + its duration passed) become
    usable again (status PAUSE_OVER, since the pause's end); returns the companies concerned, once each."""
    found: set[int] = set()
    for reason, seconds in durations_s.items():
        rows = conn.execute(
            """
            UPDATE template_states SET usable = true, status = 'PAUSE_OVER', since = since + make_interval(secs => %s)
            WHERE NOT usable AND status = 'PAUSED' AND reason = %s AND since + make_interval(secs => %s) <= %s
            RETURNING tenant_id
            """,
            (seconds, reason, seconds, now),
        ).fetchall()
        found.update(int(r["tenant_id"]) for r in rows)
    return sorted(found)
