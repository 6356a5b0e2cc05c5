"""The rollups behind the operations figures: per tenant and UTC hour, kept current by the scheduler.

`refresh` (the scheduler's job, leader only, every minute) adds the raw rows of [counted_through,
now - LAG) to the hour rows: the same per-hour queries as the recount (storage/metric_counts.py),
added column by column, so each row is read once there. Three things are not plain additions:

- sessions: a customer's message opens a 24-hour session or joins the open one; `metric_sessions`
  keeps each customer's session starts, so a new message is judged against the last one without
  re-reading old messages. A new case marks its session (`escalated_at`) and counts in the hour
  the session began, however much later it came (at most 24 hours);
- unique customers: `metric_customer_hours` keeps who wrote in each hour (a set, not a count), so
  any range's distinct customers are counted over it;
- what changes after it was counted (a row committed after the window passed it, a send retried
  later, a `failed` receipt after `accepted`, a reply accepted after the window): a heal. When an
  hour begins, everything from HEAL_HOURS hours back is taken out of the rollups and counted again
  from the raw rows; once a day DEEP_HEAL_HOURS hours back. Each raw row is thus read at most
  5 times (docs/METRICS.md), and a row that changes more than DEEP_HEAL_HOURS
  hours after its time is counted as it was.

Everything happens in the caller's transaction (READ COMMITTED, its first statement) under an advisory
lock (one refresh at a time: a waiting one then reads the state the first one left); readers see the
previous state until it commits. Database errors raise.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from psycopg import Connection
from psycopg.rows import tuple_row

from storage.metric_counts import (
    BUCKETS,
    SESSION,
    Categories,
    Hours,
    Session,
    Sla,
    Tally,
    count_hours,
    hour_of,
    tenant_list,
    walk_sessions,
)

LAG = timedelta(seconds=30)  # rows younger than this wait for the next run (their transactions may still be open)
HEAL_HOURS = 2
DEEP_HEAL_HOURS = 26
_LOCK = 16_0001  # pg_advisory_xact_lock key of the refresh

_COUNTS = [f.name for f in fields(Tally) if f.name not in ("response_buckets", "csat5", "csat10", "intents")]
_RESPONSES = [f"response_{i:02d}" for i in range(BUCKETS)]
_CSAT5 = [f"csat5_{i}" for i in range(1, 6)]
_CSAT10 = [f"csat10_{i:02d}" for i in range(1, 11)]
_COLUMNS = [*_COUNTS, *_RESPONSES, *_CSAT5, *_CSAT10]


@dataclass(frozen=True)
class Refreshed:
    """What one refresh did: the window counted and, when it healed, where it started again from."""

    counted_from: datetime
    counted_to: datetime
    healed_from: datetime | None
    hours: int  # tenant-hours changed


def refresh(conn: Connection[Any], now: datetime, *, sla: Sla, categories: Categories) -> Refreshed:
    """Bring the rollups up to `now - LAG` (and heal when it is time): see the module docstring."""
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK,))
    cur = conn.cursor(row_factory=tuple_row)
    state = cur.execute("SELECT counted_through, healed_hour, deep_healed_at FROM metric_state").fetchone()
    hour = hour_of(now)
    if state is None:
        first = _first_row_hour(conn) or hour
        counted, healed_hour, deep_at = first, hour, now
        cur.execute("INSERT INTO metric_state (counted_through, healed_hour, deep_healed_at) VALUES (%s, %s, %s)",
                    (first, hour, now))
    else:
        counted, healed_hour, deep_at = state
    heal_from = None
    if now - deep_at >= timedelta(hours=24):
        heal_from, deep_at, healed_hour = hour - timedelta(hours=DEEP_HEAL_HOURS), now, hour
    elif hour > healed_hour:
        heal_from, healed_hour = hour - timedelta(hours=HEAL_HOURS), hour
    if heal_from is not None and heal_from < counted:
        _take_out(conn, heal_from)
        counted = heal_from
    else:
        heal_from = None
    until = max(counted, now - LAG)
    changed = add(conn, counted, until, sla=sla, categories=categories)
    cur.execute("UPDATE metric_state SET counted_through = %s, healed_hour = %s, deep_healed_at = %s",
                (until, healed_hour, deep_at))
    return Refreshed(counted, until, heal_from, changed)


def add(conn: Connection[Any], start: datetime, end: datetime, *, sla: Sla, categories: Categories) -> int:
    """Add the raw rows of [start, end) to the rollups (every tenant); returns the tenant-hours changed."""
    if end <= start:
        return 0
    tenants = tenant_list(conn, None)
    hours = count_hours(conn, None, start, end, sla=sla, categories=categories, with_sessions=False)
    _add_sessions(conn, hours, tenants, start, end)
    _mark_escalated(conn, hours, tenants, start, end)
    span = {"tenants": tenants, "start": start, "end": end}
    conn.execute(_CUSTOMER_HOURS, span)
    _upsert(conn, hours)
    return len(hours)


def read_tally(conn: Connection[Any], tenant_ids: Sequence[int] | None, start: datetime, end: datetime) -> Tally:
    """The sum of the hour rows of [start, end) (intents too)."""
    where, args = _where(tenant_ids, start, end)
    sums = ", ".join(f"coalesce(sum({c}), 0)" for c in _COLUMNS)
    cur = conn.cursor(row_factory=tuple_row)
    row = cur.execute(f"SELECT {sums} FROM metric_hours WHERE {where}", args).fetchone()  # noqa: S608
    assert row is not None
    tally = _tally(row)
    tally.intents = {str(intent): int(n) for intent, n in cur.execute(
        f"SELECT intent, sum(messages) FROM metric_intent_hours WHERE {where} GROUP BY intent", args)}  # noqa: S608
    return tally


# The columns each of storage.metrics.METRICS needs (unique_customers reads metric_customer_hours).
SERIES_COLUMNS: dict[str, list[str]] = {
    "conversations": ["conversations"], "customer_messages": ["customer_messages"], "unique_customers": [],
    "notifications": ["notifications"], "resolution_rate": ["conversations", "escalated_conversations"],
    "escalation_rate": ["conversations", "escalated_conversations"],
    "not_understood_rate": ["not_understood", "routed"],
    "response_p50_s": _RESPONSES, "response_p95_s": _RESPONSES, "csat_average": [*_CSAT5, *_CSAT10],
    "first_response_in_sla_rate": ["first_responses", "first_responses_in_sla"], "llm_usd": ["llm_usd"],
    "templates": ["templates_marketing", "templates_utility", "templates_utility_free", "templates_authentication",
                  "templates_uncategorised"],
}


def read_steps(conn: Connection[Any], tenant_ids: Sequence[int] | None, start: datetime, end: datetime, tz: str,
               step: str, metric: str) -> dict[datetime, Tally]:
    """The hour rows of [start, end) summed per hour or per day on the clock `tz`, only the columns `metric`
    needs (the others stay 0); each step by its first instant (the range's start for a partial first day)."""
    columns = SERIES_COLUMNS[metric]
    if not columns:
        return {}
    where, args = _where(tenant_ids, start, end)
    args.update(step=step, tz=tz)
    sums = ", ".join(f"sum({c})" for c in columns)
    out: dict[datetime, Tally] = {}
    for row in conn.cursor(row_factory=tuple_row).execute(
            f"SELECT date_trunc(%(step)s, hour, %(tz)s), {sums} FROM metric_hours WHERE {where}"  # noqa: S608
            " GROUP BY 1", args):
        tally = Tally()
        values = dict(zip(columns, row[1:], strict=True))
        for c in _COUNTS:
            if c in values:
                setattr(tally, c, Decimal(values[c]) if c == "llm_usd" else int(values[c]))
        tally.response_buckets = [int(values.get(c, 0)) for c in _RESPONSES]
        tally.csat5 = [int(values.get(c, 0)) for c in _CSAT5]
        tally.csat10 = [int(values.get(c, 0)) for c in _CSAT10]
        out[max(row[0], start)] = tally
    return out


def unique_customers(conn: Connection[Any], tenant_ids: Sequence[int] | None, start: datetime, end: datetime) -> int:
    where, args = _where(tenant_ids, start, end)
    row = conn.cursor(row_factory=tuple_row).execute(
        f"SELECT count(DISTINCT contact_id) FROM metric_customer_hours WHERE {where}", args).fetchone()  # noqa: S608
    assert row is not None
    return int(row[0])


def _where(tenant_ids: Sequence[int] | None, start: datetime, end: datetime) -> tuple[str, dict[str, Any]]:
    args: dict[str, Any] = {"start": start, "end": end, "tenants": sorted(set(tenant_ids or ()))}
    where = "hour >= %(start)s AND hour < %(end)s"
    return (where if tenant_ids is None else f"tenant_id = ANY(%(tenants)s) AND {where}"), args


def _tally(row: Sequence[Any]) -> Tally:
    values = dict(zip(_COLUMNS, row, strict=True))
    tally = Tally()
    for c in _COUNTS:
        setattr(tally, c, int(values[c] or 0))
    tally.llm_usd = Decimal(values["llm_usd"] or 0)
    tally.response_buckets = [int(values[c] or 0) for c in _RESPONSES]
    tally.csat5 = [int(values[c] or 0) for c in _CSAT5]
    tally.csat10 = [int(values[c] or 0) for c in _CSAT10]
    return tally


def _upsert(conn: Connection[Any], hours: Hours) -> None:
    if not hours:
        return
    names = ", ".join(_COLUMNS)
    marks = ", ".join(["%s"] * (len(_COLUMNS) + 2))
    adds = ", ".join(f"{c} = metric_hours.{c} + EXCLUDED.{c}" for c in _COLUMNS)
    rows: list[tuple[Any, ...]] = []
    intents: list[tuple[int, datetime, str, int]] = []
    for (tenant, hour), t in hours.items():
        rows.append((tenant, hour, *(getattr(t, c) for c in _COUNTS), *t.response_buckets, *t.csat5, *t.csat10))
        intents.extend((tenant, hour, intent, n) for intent, n in t.intents.items())
    with conn.cursor() as cur:
        cur.executemany(f"INSERT INTO metric_hours (tenant_id, hour, {names}) VALUES ({marks})"  # noqa: S608
                        f" ON CONFLICT (tenant_id, hour) DO UPDATE SET {adds}", rows)
        if intents:
            cur.executemany("INSERT INTO metric_intent_hours (tenant_id, hour, intent, messages)"
                            " VALUES (%s, %s, %s, %s) ON CONFLICT (tenant_id, hour, intent)"
                            " DO UPDATE SET messages = metric_intent_hours.messages + EXCLUDED.messages", intents)


def _add_sessions(conn: Connection[Any], hours: Hours, tenants: list[int], start: datetime, end: datetime) -> None:
    """Walk the customers' new messages from each one's last session start (metric_sessions)."""
    cur = conn.cursor(row_factory=tuple_row)
    times = cur.execute(_NEW_CUSTOMER_TIMES, {"tenants": tenants, "start": start, "end": end}).fetchall()
    contacts = sorted({int(r[1]) for r in times})
    opened = {int(c): at for c, at in cur.execute(
        "SELECT DISTINCT ON (contact_id) contact_id, started_at FROM metric_sessions"
        " WHERE contact_id = ANY(%s) AND started_at < %s ORDER BY contact_id, started_at DESC", (contacts, start))}
    starts: list[Session] = walk_sessions(times, start, end, opened)
    if starts:
        cur.executemany("INSERT INTO metric_sessions (tenant_id, contact_id, started_at) VALUES (%s, %s, %s)", starts)
    for tenant, _contact, at in starts:
        hours.setdefault((tenant, hour_of(at)), Tally()).conversations += 1


def _mark_escalated(conn: Connection[Any], hours: Hours, tenants: list[int], start: datetime, end: datetime) -> None:
    """Each case opened in [start, end) marks its customer's session; a session's first mark counts it."""
    cur = conn.cursor(row_factory=tuple_row)
    cases = cur.execute(
        "SELECT c.contact_id, e.created_at FROM escalations e JOIN conversations c ON c.id = e.conversation_id"
        " WHERE e.tenant_id = ANY(%s) AND e.created_at >= %s AND e.created_at < %s ORDER BY 2",
        (tenants, start, end)).fetchall()
    for contact, at in cases:
        session = cur.execute(
            "SELECT tenant_id, started_at, escalated_at FROM metric_sessions WHERE contact_id = %s"
            " AND started_at <= %s ORDER BY started_at DESC LIMIT 1", (contact, at)).fetchone()
        if session is None or at >= session[1] + SESSION:
            continue  # no session holds it (the customer never wrote, or wrote over a day before)
        tenant, started, marked = session
        if marked is None or at < marked:
            cur.execute("UPDATE metric_sessions SET escalated_at = %s WHERE contact_id = %s AND started_at = %s",
                        (at, contact, started))
        if marked is None:
            hours.setdefault((tenant, hour_of(started)), Tally()).escalated_conversations += 1


def _take_out(conn: Connection[Any], since: datetime) -> None:
    """Remove everything counted from `since` on (an hour start), so that it can be counted again."""
    cur = conn.cursor(row_factory=tuple_row)
    for table in ("metric_hours", "metric_intent_hours", "metric_customer_hours"):
        cur.execute(f"DELETE FROM {table} WHERE hour >= %s", (since,))  # noqa: S608 - fixed table names
    cur.execute("DELETE FROM metric_sessions WHERE started_at >= %s", (since,))
    # Sessions that began before `since` but were marked by a case after it: unmarked, the case comes again.
    unmarked: dict[tuple[int, datetime], int] = defaultdict(int)
    for tenant, started in cur.execute(
            "UPDATE metric_sessions SET escalated_at = NULL WHERE started_at >= %s AND escalated_at >= %s"
            " RETURNING tenant_id, started_at", (since - SESSION, since)).fetchall():
        unmarked[tenant, hour_of(started)] += 1
    cur.executemany("UPDATE metric_hours SET escalated_conversations = escalated_conversations - %s"
                    " WHERE tenant_id = %s AND hour = %s", [(n, t, h) for (t, h), n in unmarked.items()])


def _first_row_hour(conn: Connection[Any]) -> datetime | None:
    """The hour of the oldest row the figures count (where a new deployment's first refresh starts)."""
    row = conn.cursor(row_factory=tuple_row).execute(
        "SELECT least((SELECT min(created_at) FROM messages), (SELECT min(created_at) FROM events),"
        " (SELECT min(created_at) FROM escalations), (SELECT min(created_at) FROM llm_calls))").fetchone()
    return hour_of(row[0]) if row is not None and row[0] is not None else None


_NEW_CUSTOMER_TIMES = """
SELECT m.tenant_id, c.contact_id, m.created_at
FROM messages m JOIN conversations c ON c.id = m.conversation_id
WHERE m.tenant_id = ANY(%(tenants)s) AND m.direction = 'in' AND m.created_at >= %(start)s AND m.created_at < %(end)s
ORDER BY c.contact_id, m.created_at, m.id
"""

_CUSTOMER_HOURS = """
INSERT INTO metric_customer_hours (tenant_id, hour, contact_id)
SELECT DISTINCT m.tenant_id, date_trunc('hour', m.created_at, 'UTC'), c.contact_id
FROM messages m JOIN conversations c ON c.id = m.conversation_id
WHERE m.tenant_id = ANY(%(tenants)s) AND m.direction = 'in' AND m.created_at >= %(start)s AND m.created_at < %(end)s
ON CONFLICT DO NOTHING
"""
