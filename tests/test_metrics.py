"""The operations figures (storage/metrics.py, docs/METRICS.md) on a small scenario whose answers are known.

One company's day on El Salvador's clock (UTC-6), written with explicit moments (tests/metrics_support.py),
and a second company's rows that must never show in the first one's figures.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from psycopg_pool import ConnectionPool

from storage import metric_texts, metrics
from storage.metric_counts import Sla
from tests.metrics_support import CATEGORIES, Rows

SV_TZ = "America/El_Salvador"
SV = ZoneInfo(SV_TZ)
DAY = datetime(2026, 11, 10, tzinfo=SV)  # midnight on the company's clock (06:00 UTC)


def at(hour: int, minute: int = 0, day: int = 0) -> datetime:
    return DAY + timedelta(days=day, hours=hour, minutes=minute)


def categories(_tenant: int) -> dict[str, str]:
    return CATEGORIES


def test_a_days_figures_by_their_definitions(db_pool: ConnectionPool) -> None:
    with db_pool.connection() as conn:
        rows = Rows(conn)
        shop, other = rows.tenant("tienda"), rows.tenant("otra")
        ana, beto, carla = rows.contact(shop), rows.contact(shop), rows.contact(shop)
        # Ana: the day before at 23:30 (a session that began yesterday), 00:10 today (inside it), 23:40 today
        # (24 hours after 23:30 or more: a new session, today's), the next day at 00:00 (inside that one).
        c_ana = rows.conversation(shop, ana, at(-1, 30))
        rows.customer_message(shop, c_ana, at(-1, 30))
        rows.customer_message(shop, c_ana, at(0, 10), reply_after_s=0.3)
        rows.customer_message(shop, c_ana, at(23, 40), stage="llm", intent="prices", reply_after_s=1.25)
        rows.customer_message(shop, c_ana, at(24, 0))
        # Beto: two messages today (one session), not understood once, a case with a first response in 200 s
        # (normal priority: within the 300 s SLA), a 10-point rating of 9.
        c_beto = rows.conversation(shop, beto, at(9, 0))
        rows.customer_message(shop, c_beto, at(9, 0), stage="fallback", intent=None, understood=False,
                              reply_after_s=2.5)
        rows.customer_message(shop, c_beto, at(9, 5), intent="human", reply_after_s=0.05)
        rows.escalation(shop, c_beto, at(9, 6), first_response_after_s=200)
        rows.event(shop, c_beto, "csat", {"score": 9, "scale": 10}, at(9, 30))
        # Carla: one message answered by the company's people (no bot stage), a high-priority case answered
        # in 150 s (over the 120 s SLA), a bot rating of 4/5, a notification, an LLM call.
        c_carla = rows.conversation(shop, carla, at(15, 0))
        rows.customer_message(shop, c_carla, at(15, 0), stage="people_only", intent=None, reply_after_s=None)
        rows.escalation(shop, c_carla, at(15, 0), priority="high", first_response_after_s=150)
        rows.event(shop, c_carla, "csat", {"score": 4}, at(15, 10))
        sent = rows.notification(shop, c_carla, at(16, 0), template="envio_en_camino")  # in the window: free
        failed = rows.notification(shop, c_carla, at(16, 5), template="promo_navidad")
        rows.set_status(failed, "failed")  # a later receipt: not sent after all
        rows.llm_call(shop, c_carla, at(15, 0), "0.0125")
        rows.llm_call(shop, c_carla, at(15, 0), "0", outcome="skipped")
        # The other company, same hours.
        c_other = rows.conversation(other, rows.contact(other), at(10, 0))
        rows.customer_message(other, c_other, at(10, 0), intent="complaint")
        rows.escalation(other, c_other, at(10, 1), first_response_after_s=10)
        del sent

        ops = metrics.recount(conn, [shop], DAY, DAY + timedelta(days=1), SV_TZ, sla=Sla(),
                              categories=categories)

    assert ops.volume == metrics.Volume(conversations=3, customer_messages=5, unique_customers=3, notifications=1)
    q = ops.quality
    assert (q.escalation.numerator, q.escalation.denominator) == (2, 3)  # Beto's and Carla's sessions had a case
    assert (q.resolution.numerator, q.resolution.denominator) == (1, 3) and q.resolution.met is False
    assert (q.not_understood.numerator, q.not_understood.denominator) == (1, 4)  # people_only is not the bot's
    assert q.response_time.replies == 4
    assert (q.response_time.p50_s, q.response_time.p95_s) == (0.4, 2.6)  # 0.05, 0.3, 1.25, 2.5 -> buckets
    assert [(c.scale, c.ratings, c.average) for c in q.csat] == [(5, 1, 4.0), (10, 1, 9.0)]
    assert q.csat[1].distribution[8] == 1
    assert q.first_response.answered == 2 and q.first_response.average_s == 175.0
    assert (q.first_response.within_sla.numerator, q.first_response.within_sla.denominator) == (1, 2)
    assert ops.intents.routed == 4 and ops.intents.by_rules == 2 and ops.intents.by_llm == 1
    assert [(i.intent, i.messages) for i in ops.intents.top] == [("human", 1), ("prices", 1), ("tracking", 1)]
    assert ops.cost.templates_utility_free == 1 and ops.cost.templates == 1
    assert ops.cost.llm_calls == 1 and ops.cost.llm_usd == Decimal("0.0125")
    assert ops.cost.llm_usd_per_conversation == Decimal("0.004167")
    for name in ("conversations", "resolution_rate", "response_p95_s", "llm_usd"):
        assert metric_texts.label(name) and metric_texts.tooltip(name)


def test_ranges_must_be_whole_hours(db_pool: ConnectionPool) -> None:
    with db_pool.connection() as conn, pytest.raises(ValueError, match="whole hours"):
        metrics.operations(conn, None, datetime(2026, 11, 10, 6, 30, tzinfo=UTC),
                           datetime(2026, 11, 11, 6, tzinfo=UTC), SV_TZ)
