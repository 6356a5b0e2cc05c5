"""Usage per tenant and calendar month, counted from the rows the product writes.

A month runs from midnight of its first day to midnight of the next month's
first day *on the tenant's clock* (`tenants.timezone`, e.g. America/El_Salvador);
a row belongs to the month its `created_at` falls in. Every query is scoped by
`tenant_id`. The figures:

- `bot_conversations`: 24-hour sessions a customer opened. A customer's
  message opens a session when it is their first message ever, or when it
  arrives 24 hours or more after the start of that customer's previous
  session; the messages in between belong to the open session. A session is
  counted in the month it began (one that began at 23:00 on the 31st and goes
  on the next day is the earlier month's). Customers are contacts, so a new
  conversation row inside a session does not open another one. Counted for
  every customer message, whoever answered it.
- `customer_messages`: messages customers sent (`messages.direction = 'in'`; a voice note's transcript and a
  photo's code, rows the worker adds for a file, are not counted again).
- `bot_replies`: messages the assistant sent on its own (its replies, and the
  hand-over's automatic notices), `agent_replies`: messages an agent sent
  from the console (`messages.agent_id` is set), `notifications`: proactive
  notifications (idempotency key `notification:...`). Outbound messages count
  when the provider took them (status accepted, sent, delivered or read);
  the extra parts of a reply split to fit WhatsApp's limits do not count again.
- `templates_*`: outbound template messages that the provider took (sent by
  notifications or by an agent), by their WhatsApp category (MARKETING,
  UTILITY, AUTHENTICATION, looked up by template name in the mapping the
  caller passes, from notifications/templates.yaml). Since July 2025 Meta
  charges per template message, and a utility template sent while the
  customer's 24-hour service window is open (the customer wrote in the 24 hours
  before it) is free: those are `templates_utility_free`, the charged ones
  `templates_utility`. A name the mapping does not know is
  `templates_uncategorised`.
- `escalations`: cases handed to people.
- `llm_calls` (requests made: calls skipped because the circuit was open are
  not), `llm_tokens_in`, `llm_tokens_out`, `llm_usd` (their priced cost, exact).

Read-only; database errors raise.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from psycopg import Connection
from psycopg.rows import tuple_row

from storage import plans

SESSION = timedelta(hours=24)
SENT = ("accepted", "sent", "delivered", "read")
CATEGORIES = ("marketing", "utility", "authentication")
# The figures a plan's `limits` can bound, by limit name.
LIMITED = {"bot_conversations": "bot_conversations", "llm_usd": "llm_usd"}
_MONTH = re.compile(r"(\d{4})-(0[1-9]|1[0-2])")


@dataclass(frozen=True, order=True)
class Month:
    year: int
    month: int

    @classmethod
    def parse(cls, text: str) -> Month:
        """'2026-12' -> Month(2026, 12); ValueError for anything else."""
        found = _MONTH.fullmatch(text.strip())
        if found is None:
            raise ValueError(f"a month is written YYYY-MM, not {text!r}")
        return cls(int(found.group(1)), int(found.group(2)))

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"

    def next(self) -> Month:
        return Month(self.year + 1, 1) if self.month == 12 else Month(self.year, self.month + 1)

    def bounds(self, timezone: str) -> tuple[datetime, datetime]:
        """The month's first instant and the next month's, on the tenant's clock, in UTC."""
        zone = ZoneInfo(timezone)
        after = self.next()
        start = datetime(self.year, self.month, 1, tzinfo=zone)
        end = datetime(after.year, after.month, 1, tzinfo=zone)
        return start.astimezone(UTC), end.astimezone(UTC)


@dataclass(frozen=True)
class Usage:
    """One tenant's month, figure by figure (see the module docstring for what each counts)."""

    tenant: str
    month: str
    bot_conversations: int
    customer_messages: int
    bot_replies: int
    agent_replies: int
    notifications: int
    templates_utility: int
    templates_utility_free: int
    templates_marketing: int
    templates_authentication: int
    templates_uncategorised: int
    escalations: int
    llm_calls: int
    llm_tokens_in: int
    llm_tokens_out: int
    llm_usd: Decimal

    def figures(self) -> dict[str, Any]:
        """Every figure by name, in column order (tenant and month first)."""
        return asdict(self)


@dataclass(frozen=True)
class Overage:
    """A plan limit the month went over, and what the plan's rule says to do about it."""

    limit: str
    allowed: Decimal
    used: Decimal
    rule: str  # plans.FLAG | plans.RULES_ONLY


def tenants(conn: Connection[Any]) -> list[tuple[int, str]]:
    """Every tenant's id and slug, by slug."""
    rows = conn.cursor(row_factory=tuple_row).execute("SELECT id, slug FROM tenants ORDER BY slug").fetchall()
    return [(int(r[0]), str(r[1])) for r in rows]


def tenant_month(conn: Connection[Any], tenant_id: int, month: Month) -> tuple[str, datetime, datetime]:
    """The tenant's slug and the month's bounds on its clock; raises plans.UnknownTenant."""
    row = conn.execute("SELECT slug, timezone FROM tenants WHERE id = %s", (tenant_id,)).fetchone()
    if row is None:
        raise plans.UnknownTenant(str(tenant_id))
    start, end = month.bounds(row["timezone"])
    return row["slug"], start, end


def month_usage(conn: Connection[Any], tenant_id: int, month: Month,
                template_categories: Mapping[str, str]) -> Usage:
    """Tenant `tenant_id`'s figures for `month`; `template_categories` maps its template names to categories."""
    slug, start, end = tenant_month(conn, tenant_id, month)
    span = {"tenant": tenant_id, "start": start, "end": end}
    cur = conn.cursor(row_factory=tuple_row)
    outbound = cur.execute(_MESSAGES, span).fetchone()
    assert outbound is not None
    templates = _templates(cur.execute(_TEMPLATES, span).fetchall(), template_categories)
    escalations = cur.execute(
        "SELECT count(*) FROM escalations WHERE tenant_id = %(tenant)s"
        " AND created_at >= %(start)s AND created_at < %(end)s", span).fetchone()
    llm = cur.execute(_LLM, span).fetchone()
    assert escalations is not None and llm is not None
    return Usage(
        tenant=slug, month=str(month), bot_conversations=bot_conversations(conn, tenant_id, start, end),
        customer_messages=outbound[0], bot_replies=outbound[1], agent_replies=outbound[2], notifications=outbound[3],
        templates_utility=templates["utility"], templates_utility_free=templates["utility_free"],
        templates_marketing=templates["marketing"], templates_authentication=templates["authentication"],
        templates_uncategorised=templates["uncategorised"], escalations=escalations[0],
        llm_calls=llm[0], llm_tokens_in=llm[1], llm_tokens_out=llm[2], llm_usd=Decimal(llm[3]),
    )


def bot_conversations(conn: Connection[Any], tenant_id: int, start: datetime, end: datetime) -> int:
    """24-hour sessions customers opened in [start, end) (see the module docstring).

    A session's start depends on the previous session's start, a chain no window
    function expresses, so one query returns the customers' message times in
    order and the chain is walked here. It starts at each customer's last message
    before `start` that came 24 hours or more after their message before it (or
    their first message): such a message opened a session whatever came earlier.
    """
    rows = conn.cursor(row_factory=tuple_row).execute(_CUSTOMER_TIMES, {"tenant": tenant_id, "start": start,
                                                                        "end": end, "session": SESSION})
    count = 0
    customer: int | None = None
    opened: datetime | None = None
    for contact_id, at in rows:
        if contact_id != customer:
            customer, opened = contact_id, None
        if opened is None or at >= opened + SESSION:
            opened = at
            if start <= at < end:
                count += 1
    return count


def current_month(conn: Connection[Any], tenant_id: int, now: datetime | None = None) -> Month:
    """The month it is now on the tenant's clock; raises plans.UnknownTenant."""
    row = conn.cursor(row_factory=tuple_row).execute("SELECT timezone FROM tenants WHERE id = %s",
                                                     (tenant_id,)).fetchone()
    if row is None:
        raise plans.UnknownTenant(str(tenant_id))
    today = (now or datetime.now(UTC)).astimezone(ZoneInfo(row[0]))
    return Month(today.year, today.month)


def llm_spend(conn: Connection[Any], tenant_id: int, month: Month) -> Decimal:
    """What the tenant's model calls cost in `month`, in dollars."""
    _, start, end = tenant_month(conn, tenant_id, month)
    row = conn.cursor(row_factory=tuple_row).execute(
        "SELECT coalesce(sum(cost_usd), 0) FROM llm_calls WHERE tenant_id = %s AND created_at >= %s"
        " AND created_at < %s", (tenant_id, start, end)).fetchone()
    assert row is not None
    return Decimal(row[0])


def exceeded(plan: plans.Plan, usage: Usage) -> list[Overage]:
    """The plan's limits this month's usage went over (a null limit is no limit)."""
    found = []
    for limit_name, figure in LIMITED.items():
        allowed = plan.limit(limit_name)
        used = Decimal(getattr(usage, figure))
        if allowed is not None and used > allowed:
            found.append(Overage(limit_name, allowed, used, plan.overage))
    return found


def overages(conn: Connection[Any], tenant_id: int, month: Month) -> list[Overage]:
    """Which of the tenant's plan limits `month` went over, with the plan's rule for each."""
    return exceeded(plans.plan_of(conn, tenant_id), month_usage(conn, tenant_id, month, {}))


def _templates(rows: list[tuple[Any, ...]], categories: Mapping[str, str]) -> dict[str, int]:
    counts = dict.fromkeys((*CATEGORIES, "utility_free", "uncategorised"), 0)
    for name, in_window, count in rows:
        category = categories.get(name or "", "").lower()
        if category not in CATEGORIES:
            category = "uncategorised"
        elif category == "utility" and in_window:
            category = "utility_free"
        counts[category] += int(count)
    return counts


_SENT = f"status IN {SENT}"
_NOT_A_PART = "coalesce(idempotency_key, '') !~ '/part[0-9]+$'"
_NOTIFICATION = "coalesce(idempotency_key, '') LIKE 'notification:%%'"

_MESSAGES = f"""
SELECT count(*) FILTER (WHERE direction = 'in' AND kind <> ALL('{{transcript,photo_text}}')),  -- issue 17: once
       count(*) FILTER (WHERE direction = 'out' AND {_SENT} AND {_NOT_A_PART} AND agent_id IS NULL
                        AND NOT {_NOTIFICATION}),
       count(*) FILTER (WHERE direction = 'out' AND {_SENT} AND {_NOT_A_PART} AND agent_id IS NOT NULL),
       count(*) FILTER (WHERE direction = 'out' AND {_SENT} AND {_NOT_A_PART} AND {_NOTIFICATION})
FROM messages
WHERE tenant_id = %(tenant)s AND created_at >= %(start)s AND created_at < %(end)s
"""  # noqa: S608 - fixed conditions

# A template is in the service window when the same customer wrote in the 24 hours before it.
_TEMPLATES = f"""
SELECT m.payload->>'name', EXISTS (
           SELECT 1 FROM messages i JOIN conversations ic ON ic.id = i.conversation_id
           WHERE ic.contact_id = c.contact_id AND i.tenant_id = %(tenant)s AND i.direction = 'in'
             AND i.created_at <= m.created_at AND i.created_at > m.created_at - interval '24 hours'),
       count(*)
FROM messages m JOIN conversations c ON c.id = m.conversation_id
WHERE m.tenant_id = %(tenant)s AND m.created_at >= %(start)s AND m.created_at < %(end)s
  AND m.direction = 'out' AND m.kind = 'template' AND m.status IN {SENT}
  AND coalesce(m.idempotency_key, '') !~ '/part[0-9]+$'
GROUP BY 1, 2
"""  # noqa: S608 - fixed conditions

_LLM = """
SELECT count(*) FILTER (WHERE outcome <> 'skipped'), coalesce(sum(tokens_in), 0), coalesce(sum(tokens_out), 0),
       coalesce(sum(cost_usd), 0)
FROM llm_calls
WHERE tenant_id = %(tenant)s AND created_at >= %(start)s AND created_at < %(end)s
"""

# Each customer's message times up to `end`, from the last one before `start` that surely opened a session
# (24 h or more after the message before it, or the first), for customers who wrote in the month.
_CUSTOMER_TIMES = """
WITH customer_messages AS (
    SELECT c.contact_id, m.created_at,
           lag(m.created_at) OVER (PARTITION BY c.contact_id ORDER BY m.created_at, m.id) AS previous
    FROM messages m JOIN conversations c ON c.id = m.conversation_id
    WHERE m.tenant_id = %(tenant)s AND c.tenant_id = %(tenant)s AND m.direction = 'in' AND m.created_at < %(end)s
), anchors AS (
    SELECT contact_id,
           max(created_at) FILTER (WHERE created_at < %(start)s
                                     AND (previous IS NULL OR created_at >= previous + %(session)s)) AS anchor
    FROM customer_messages
    GROUP BY contact_id
    HAVING max(created_at) >= %(start)s
)
SELECT cm.contact_id, cm.created_at
FROM customer_messages cm JOIN anchors a ON a.contact_id = cm.contact_id
WHERE a.anchor IS NULL OR cm.created_at >= a.anchor
ORDER BY cm.contact_id, cm.created_at
"""
