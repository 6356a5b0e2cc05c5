"""The operations figures counted straight from the raw tables, per tenant and UTC hour (the "recount").

`count_hours` turns the rows of [start, end) into one `Tally` per (tenant, hour): additive counts and
fixed histograms, so any range's figures are sums of hours (storage/metrics.py reduces them). The
rollups (storage/metric_rollups.py) store exactly these tallies, computed by the same queries for
the hours that may have changed; the recount is also the reference the tests compare them with.
docs/METRICS.md defines every figure. Read-only; database errors raise.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from psycopg import Connection
from psycopg.rows import tuple_row

SESSION = timedelta(hours=24)
# Bot response time histogram: bucket i holds times in [EDGES[i-1], EDGES[i]) ms (bucket 0: under 100 ms,
# the last: 60 s or more). 100 ms steps up to 3 s, around the 2 s target.
RESPONSE_EDGES_MS: tuple[int, ...] = (*range(100, 3001, 100), 3500, 4000, 5000, 6000, 8000, 10000, 15000, 20000,
                                      30000, 60000)
BUCKETS = len(RESPONSE_EDGES_MS) + 1
RULE_STAGES = ("regex", "keyword")
LLM_STAGES = ("llm",)
BOT_STAGES = (*RULE_STAGES, *LLM_STAGES, "fallback", "none", "error")  # the bot routed it (not console, people)
SENT = ("accepted", "sent", "delivered", "read")
TEMPLATE_CATEGORIES = ("marketing", "utility", "authentication")

# tenant id -> its template name -> WhatsApp category mapping
Categories = Callable[[int], Mapping[str, str]]


@dataclass(frozen=True)
class Sla:
    """First-response targets in seconds (settings CONSOLE_SLA_NORMAL_S, CONSOLE_SLA_HIGH_S)."""

    normal_s: int = 300
    high_s: int = 120

    def of(self, priority: str) -> int:
        return self.high_s if priority == "high" else self.normal_s


@dataclass
class Tally:
    """Additive counts of one tenant-hour (or, summed, of a range). docs/METRICS.md says what each counts."""

    conversations: int = 0  # sessions opened (attributed to the session's first message)
    escalated_conversations: int = 0  # of those, sessions in which a case was opened
    customer_messages: int = 0
    notifications: int = 0
    escalations: int = 0
    routed: int = 0
    by_rules: int = 0
    by_llm: int = 0
    not_understood: int = 0
    response_buckets: list[int] = field(default_factory=lambda: [0] * BUCKETS)
    csat5: list[int] = field(default_factory=lambda: [0] * 5)
    csat10: list[int] = field(default_factory=lambda: [0] * 10)
    first_responses: int = 0
    first_response_ms: int = 0
    first_responses_in_sla: int = 0
    templates_marketing: int = 0
    templates_utility: int = 0
    templates_utility_free: int = 0
    templates_authentication: int = 0
    templates_uncategorised: int = 0
    llm_calls: int = 0
    llm_usd: Decimal = Decimal(0)
    intents: dict[str, int] = field(default_factory=dict)

    def add(self, other: Tally) -> None:
        for f in fields(self):
            mine, theirs = getattr(self, f.name), getattr(other, f.name)
            if isinstance(mine, list):
                for i, n in enumerate(theirs):
                    mine[i] += n
            elif isinstance(mine, dict):
                for key, n in theirs.items():
                    mine[key] = mine.get(key, 0) + n
            else:
                setattr(self, f.name, mine + theirs)

    @classmethod
    def total(cls, tallies: Iterable[Tally]) -> Tally:
        out = cls()
        for t in tallies:
            out.add(t)
        return out

    def is_empty(self) -> bool:
        return self == Tally()


Hours = dict[tuple[int, datetime], Tally]  # (tenant id, hour in UTC) -> its tally


def tenant_list(conn: Connection[Any], tenant_ids: Sequence[int] | None) -> list[int]:
    """The ids to count: the given ones, or every tenant's."""
    if tenant_ids is not None:
        return sorted(set(tenant_ids))
    return [int(r[0]) for r in conn.cursor(row_factory=tuple_row).execute("SELECT id FROM tenants ORDER BY id")]


def count_hours(conn: Connection[Any], tenant_ids: Sequence[int] | None, start: datetime, end: datetime, *,
                sla: Sla, categories: Categories, with_sessions: bool = True) -> Hours:
    """Every (tenant, hour) tally of [start, end) from the raw rows (hours with nothing are left out).

    `with_sessions=False` leaves `conversations` and `escalated_conversations` at 0 (the rollups walk
    the sessions from their own table, storage/metric_rollups.py)."""
    tenants = tenant_list(conn, tenant_ids)
    span = {"tenants": tenants, "start": start, "end": end, "edges": list(RESPONSE_EDGES_MS),
            "session": SESSION}
    hours: Hours = defaultdict(Tally)
    cur = conn.cursor(row_factory=tuple_row)
    for tenant, hour, n in cur.execute(_CUSTOMER_MESSAGES, span):
        hours[tenant, hour].customer_messages = n
    for tenant, hour, n in cur.execute(_NOTIFICATIONS, span):
        hours[tenant, hour].notifications = n
    for tenant, hour, n in cur.execute(_ESCALATIONS, span):
        hours[tenant, hour].escalations = n
    for tenant, hour, kind, stage, intent, score, scale, n in cur.execute(_EVENTS, span):
        _count_event(hours[tenant, hour], kind, stage, intent, score, scale, n)
    for tenant, hour, bucket, n in cur.execute(_RESPONSES, span):
        hours[tenant, hour].response_buckets[bucket] += n
    for tenant, hour, priority, ms in cur.execute(_FIRST_RESPONSES, span):
        t = hours[tenant, hour]
        t.first_responses += 1
        t.first_response_ms += int(ms)
        t.first_responses_in_sla += int(ms) <= sla.of(priority) * 1000
    by_tenant: dict[int, Mapping[str, str]] = {}
    for tenant, hour, name, in_window, n in cur.execute(_TEMPLATES, span):
        if tenant not in by_tenant:
            by_tenant[tenant] = categories(tenant)
        _count_template(hours[tenant, hour], by_tenant[tenant].get(name or "", ""), in_window, n)
    for tenant, hour, calls, usd in cur.execute(_LLM, span):
        hours[tenant, hour].llm_calls = calls
        hours[tenant, hour].llm_usd = Decimal(usd)
    if with_sessions:
        starts = walk_sessions(cur.execute(_CUSTOMER_TIMES, span), start, end)
        add_sessions(hours, starts, escalation_times(conn, tenants, start, end + SESSION))
    return {key: t for key, t in hours.items() if not t.is_empty()}


def unique_customers(conn: Connection[Any], tenant_ids: Sequence[int] | None, start: datetime, end: datetime) -> int:
    """Distinct customers (contacts) who wrote in [start, end)."""
    row = conn.cursor(row_factory=tuple_row).execute(
        "SELECT count(DISTINCT c.contact_id) FROM messages m JOIN conversations c ON c.id = m.conversation_id"
        " WHERE m.tenant_id = ANY(%s) AND m.direction = 'in' AND m.created_at >= %s AND m.created_at < %s",
        (tenant_list(conn, tenant_ids), start, end)).fetchone()
    assert row is not None
    return int(row[0])


Session = tuple[int, int, datetime]  # (tenant id, contact id, start)


def walk_sessions(rows: Iterable[tuple[Any, ...]], start: datetime, end: datetime,
                  opened: Mapping[int, datetime] | None = None) -> list[Session]:
    """The sessions opened in [start, end), from (tenant, contact, time) rows in contact and time order.

    A message opens a session when it is the customer's first or comes 24 hours or more after the
    previous session's start. `opened`: each contact's last session start before the rows (the
    rollups know it); without it, the rows begin at a message that surely opened one."""
    found: list[Session] = []
    contact: int | None = None
    since: datetime | None = None
    for tenant, contact_id, at in rows:
        if contact_id != contact:
            contact, since = contact_id, (opened or {}).get(contact_id)
        if since is None or at >= since + SESSION:
            since = at
            if start <= at < end:
                found.append((int(tenant), int(contact_id), at))
    return found


def escalation_times(conn: Connection[Any], tenants: Sequence[int], start: datetime,
                     end: datetime) -> dict[int, list[datetime]]:
    """Each contact's case openings in [start, end), in time order."""
    times: dict[int, list[datetime]] = defaultdict(list)
    for contact_id, at in conn.cursor(row_factory=tuple_row).execute(
            "SELECT c.contact_id, e.created_at FROM escalations e JOIN conversations c ON c.id = e.conversation_id"
            " WHERE e.tenant_id = ANY(%s) AND e.created_at >= %s AND e.created_at < %s ORDER BY 1, 2",
            (list(tenants), start, end)):
        times[int(contact_id)].append(at)
    return times


def escalated(session_start: datetime, cases: Sequence[datetime]) -> bool:
    """Whether a case was opened in the session (its 24 hours from its start)."""
    i = bisect.bisect_left(cases, session_start)
    return i < len(cases) and cases[i] < session_start + SESSION


def add_sessions(hours: Hours, starts: Iterable[Session], cases: Mapping[int, Sequence[datetime]]) -> None:
    for tenant, contact, at in starts:
        t = hours[tenant, hour_of(at)]
        t.conversations += 1
        t.escalated_conversations += escalated(at, cases.get(contact, ()))


def hour_of(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def hours_between(start: datetime, end: datetime) -> Iterator[datetime]:
    hour = hour_of(start)
    while hour < end:
        yield hour
        hour += timedelta(hours=1)


def _count_event(t: Tally, kind: str, stage: str | None, intent: str | None, score: str | None,
                 scale: str | None, n: int) -> None:
    if kind == "not_understood":
        t.not_understood += n
    elif kind == "csat":
        if score is None or not score.isdigit():
            return
        ratings = t.csat10 if scale == "10" else t.csat5
        if 1 <= int(score) <= len(ratings):
            ratings[int(score) - 1] += n
    elif kind == "route" and stage in BOT_STAGES:
        t.routed += n
        t.by_rules += n if stage in RULE_STAGES else 0
        t.by_llm += n if stage in LLM_STAGES else 0
        if intent:
            t.intents[intent] = t.intents.get(intent, 0) + n


def _count_template(t: Tally, category: str, in_window: bool, n: int) -> None:
    category = category.lower()
    if category not in TEMPLATE_CATEGORIES:
        t.templates_uncategorised += n
    elif category == "utility" and in_window:
        t.templates_utility_free += n
    else:
        name = f"templates_{category}"
        setattr(t, name, getattr(t, name) + n)


_HOUR = "date_trunc('hour', {}, 'UTC')"
_IN_RANGE = "m.tenant_id = ANY(%(tenants)s) AND m.created_at >= %(start)s AND m.created_at < %(end)s"
_SENT = f"m.direction = 'out' AND m.status IN {SENT} AND coalesce(m.idempotency_key, '') !~ '/part[0-9]+$'"

_CUSTOMER_MESSAGES = f"""
SELECT m.tenant_id, {_HOUR.format('m.created_at')}, count(*) FROM messages m
WHERE {_IN_RANGE} AND m.direction = 'in' AND m.kind <> ALL('{{transcript,photo_text}}') GROUP BY 1, 2
"""  # noqa: S608 - fixed conditions. A voice note's transcript, a photo's code (issue 17): the file counted already

_NOTIFICATIONS = f"""
SELECT m.tenant_id, {_HOUR.format('m.created_at')}, count(*) FROM messages m
WHERE {_IN_RANGE} AND {_SENT} AND coalesce(m.idempotency_key, '') LIKE 'notification:%%' GROUP BY 1, 2
"""  # noqa: S608 - fixed conditions

_ESCALATIONS = f"""
SELECT tenant_id, {_HOUR.format('created_at')}, count(*) FROM escalations
WHERE tenant_id = ANY(%(tenants)s) AND created_at >= %(start)s AND created_at < %(end)s GROUP BY 1, 2
"""  # noqa: S608 - fixed conditions

_EVENTS = f"""
SELECT tenant_id, {_HOUR.format('created_at')}, kind, data->>'stage', data->>'intent', data->>'score',
       data->>'scale', count(*)
FROM events
WHERE tenant_id = ANY(%(tenants)s) AND kind IN ('route', 'not_understood', 'csat')
  AND created_at >= %(start)s AND created_at < %(end)s
GROUP BY 1, 2, 3, 4, 5, 6, 7
"""  # noqa: S608 - fixed conditions

# The first reply to each customer message ("<event>:0"), by the hour its webhook arrived; the reply row is
# written within minutes of the arrival (six hours bound the scan). The replies are found first (by
# messages_tenant_time), then their events by id: a scan of webhook_events by time has no index.
_RESPONSES = f"""
WITH replies AS MATERIALIZED (
    SELECT m.tenant_id, m.webhook_event_id, m.accepted_at FROM messages m
    WHERE m.tenant_id = ANY(%(tenants)s) AND m.created_at >= %(start)s
      AND m.created_at < %(end)s + interval '6 hours'
      AND m.direction = 'out' AND m.agent_id IS NULL AND m.accepted_at IS NOT NULL
      AND m.idempotency_key = m.webhook_event_id || ':0'
)
SELECT r.tenant_id, {_HOUR.format('w.received_at')},
       width_bucket(extract(epoch FROM r.accepted_at - w.received_at) * 1000, %(edges)s::float8[]), count(*)
FROM replies r JOIN webhook_events w ON w.id = r.webhook_event_id
WHERE w.received_at >= %(start)s AND w.received_at < %(end)s
GROUP BY 1, 2, 3
"""  # noqa: S608 - fixed conditions

_FIRST_RESPONSES = f"""
SELECT tenant_id, {_HOUR.format('first_response_at')}, priority,
       greatest(0, round(extract(epoch FROM first_response_at - coalesce(callback_due_at, created_at)) * 1000))
FROM escalations
WHERE tenant_id = ANY(%(tenants)s) AND first_response_at >= %(start)s AND first_response_at < %(end)s
"""  # noqa: S608 - fixed conditions

# A template is in the service window when the same customer wrote in the 24 hours before it (storage/usage.py).
_TEMPLATES = f"""
SELECT m.tenant_id, {_HOUR.format('m.created_at')}, m.payload->>'name', EXISTS (
           SELECT 1 FROM messages i JOIN conversations ic ON ic.id = i.conversation_id
           WHERE ic.contact_id = c.contact_id AND i.tenant_id = m.tenant_id AND i.direction = 'in'
             AND i.created_at <= m.created_at AND i.created_at > m.created_at - interval '24 hours'),
       count(*)
FROM messages m JOIN conversations c ON c.id = m.conversation_id
WHERE {_IN_RANGE} AND {_SENT} AND m.kind = 'template'
GROUP BY 1, 2, 3, 4
"""  # noqa: S608 - fixed conditions

_LLM = f"""
SELECT tenant_id, {_HOUR.format('created_at')}, count(*) FILTER (WHERE outcome <> 'skipped'),
       coalesce(sum(cost_usd), 0)
FROM llm_calls
WHERE tenant_id = ANY(%(tenants)s) AND created_at >= %(start)s AND created_at < %(end)s
GROUP BY 1, 2
"""  # noqa: S608 - fixed conditions

# Each customer's message times up to `end`, from the last one before `start` that surely opened a session
# (24 h or more after the message before it, or the first), for customers who wrote in [start, end)
# (storage/usage.py's walk, over several tenants).
_CUSTOMER_TIMES = """
WITH customer_messages AS (
    SELECT m.tenant_id, c.contact_id, m.created_at,
           lag(m.created_at) OVER (PARTITION BY c.contact_id ORDER BY m.created_at, m.id) AS previous
    FROM messages m JOIN conversations c ON c.id = m.conversation_id
    WHERE m.tenant_id = ANY(%(tenants)s) AND m.direction = 'in' AND m.created_at < %(end)s
), anchors AS (
    SELECT contact_id,
           max(created_at) FILTER (WHERE created_at < %(start)s
                                     AND (previous IS NULL OR created_at >= previous + %(session)s)) AS anchor
    FROM customer_messages
    GROUP BY contact_id
    HAVING max(created_at) >= %(start)s
)
SELECT cm.tenant_id, cm.contact_id, cm.created_at
FROM customer_messages cm JOIN anchors a ON a.contact_id = cm.contact_id
WHERE a.anchor IS NULL OR cm.created_at >= a.anchor
ORDER BY cm.contact_id, cm.created_at
"""
