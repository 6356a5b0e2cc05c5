"""Shared by the monthly report's tests: a known November and October of two companies, and logging in.

Company A (the configured one, El Salvador's clock, UTC-6) has four conversations in November 2026 on its
clock, two of them on the month's edges in UTC (00:30 on the 1st, 23:30 on the 30th), and two in October (one
at 23:30 on the 31st, already November in UTC); one more on December 1st at 00:30 that November must not count.
Rows are written with explicit moments (tests/metrics_support.py), as the worker writes them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool

from config import Settings
from handoff import agents
from runtime.resources import build_runtime
from tests.console_support import PASSWORD
from tests.harness import rows
from tests.metrics_support import Rows

SV = ZoneInfo("America/El_Salvador")
QUESTION = "¿hacen envíos a Guatemala?"
SUGGESTION = "Agregar una pregunta frecuente sobre cambios de dirección"


def local(month: int, day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=SV)


@dataclass(frozen=True)
class Scenario:
    a: int
    b: int
    b_slug: str


def _message(r: Rows, tenant: int, conversation: int, at: datetime, text: str | None = None, **kw: Any) -> int:
    event = r.customer_message(tenant, conversation, at, **kw)
    if text is not None:
        r.conn.execute("UPDATE messages SET body = %s WHERE webhook_event_id = %s AND direction = 'in'",
                       (text, event))
    return event


def _escalate(r: Rows, tenant: int, conversation: int, at: datetime, reason: str) -> int:
    case = r.escalation(tenant, conversation, at)
    r.conn.execute("UPDATE escalations SET reason = %s WHERE id = %s", (reason, case))
    return case


def write_months(pool: ConnectionPool, a: int) -> Scenario:
    """The scenario above for company `a`, and company B ('otra') with one November conversation."""
    with pool.connection() as conn:
        r = Rows(conn)
        b = r.tenant("otra")
        # October: one at midday, one at 23:30 on the 31st (05:30 UTC on November 1st)
        for at in (local(10, 15, 12), local(10, 31, 23, 30)):
            conv = r.conversation(a, r.contact(a), at)
            _message(r, a, conv, at)
            if at.day == 15:
                _escalate(r, a, conv, at + timedelta(minutes=1), "customer_request")
        # November: 00:30 on the 1st (not understood), the 10th (not understood, a complaint, a 4/5 rating,
        # a model call), the 20th (a change of delivery, analysed; a 9/10 rating), 23:30 on the 30th (a template)
        c1 = r.conversation(a, r.contact(a), local(11, 1, 0, 30))
        _message(r, a, c1, local(11, 1, 0, 30), QUESTION, intent=None, understood=False, stage="fallback")
        c2 = r.conversation(a, r.contact(a), local(11, 10, 10))
        _message(r, a, c2, local(11, 10, 10), "hacen envios a guatemala", intent=None, understood=False,
                 stage="fallback")
        _escalate(r, a, c2, local(11, 10, 10, 1), "complaint")
        r.event(a, c2, "csat", {"score": 4}, local(11, 10, 10, 5))
        r.llm_call(a, c2, local(11, 10, 10), "0.004")
        c3 = r.conversation(a, r.contact(a), local(11, 20, 10))
        _message(r, a, c3, local(11, 20, 10), "quiero cambiar la dirección de entrega")
        case = _escalate(r, a, c3, local(11, 20, 10, 1), "change_delivery")
        r.event(a, c3, "csat", {"score": 9, "scale": 10}, local(11, 20, 11))
        conn.execute("INSERT INTO escalation_analyses (tenant_id, escalation_id, conversation_id, prompt_version,"
                     " analysis) VALUES (%s, %s, %s, 'v1', %s)",
                     (a, case, c3, Jsonb({"category": "cambio_de_datos", "escalation_reason": "fuera_de_capacidad",
                                          "was_necessary": False, "suggestion": SUGGESTION, "priority": "media",
                                          "example_query": "quiero cambiar la dirección de entrega"})))
        c4 = r.conversation(a, r.contact(a), local(11, 30, 23, 30))
        _message(r, a, c4, local(11, 30, 23, 30))
        r.notification(a, c4, local(11, 30, 23, 40), template="aviso_sin_categoria")
        # December 1st, 00:30: not November's
        c5 = r.conversation(a, r.contact(a), local(12, 1, 0, 30))
        _message(r, a, c5, local(12, 1, 0, 30))
        # B: one November conversation, a complaint
        cb = r.conversation(b, r.contact(b), local(11, 12, 9))
        _message(r, b, cb, local(11, 12, 9), "mi paquete de otra empresa")
        _escalate(r, b, cb, local(11, 12, 9, 1), "complaint")
    return Scenario(a, b, "otra")


def refresh_rollups(settings: Settings, pool: ConnectionPool, now: datetime | None = None) -> None:
    """One run of the scheduler's rollup job (worker/metrics_job.py), as the leader runs it every minute
    (`now`: a run a little later, so that rows written a moment ago are past the job's lag)."""
    from worker import metrics_job

    rt = build_runtime(settings, pool=pool)
    try:
        metrics_job.refresh(rt, now)
    finally:
        rt.redis.close()


def configured_tenant(pool: ConnectionPool, slug: str) -> int:
    return int(rows(pool, "SELECT id FROM tenants WHERE slug = %s", (slug,))[0]["id"])


def make_agent(pool: ConnectionPool, tenant_id: int, email: str, role: str, name: str = "Alicia Admin") -> agents.Agent:
    with pool.connection() as conn:
        return agents.create_agent(conn, tenant_id=tenant_id, name=name, role=role, password=PASSWORD, email=email)


def figures(page: str) -> dict[str, tuple[str, str]]:
    """data-figure -> (data-value, data-previous) of every figure on a report page."""
    return {m.group(1): (m.group(2), m.group(3)) for m in re.finditer(
        r'data-figure="([a-z0-9_]+)"\s+data-value="([^"]*)" data-previous="([^"]*)"', page)}


def cases(page: str) -> dict[str, int]:
    """data-case -> data-count of every improvement case on a report page."""
    return {m.group(1): int(m.group(2)) for m in re.finditer(r'data-case="([^"]+)" data-count="(\d+)"', page)}
