"""The console's timers: the honest "nobody is free yet" notice with the callback offer, the customer's
choice, and out-of-hours callbacks that become due at opening time (support hours from the sandbox core)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from flask.testing import FlaskClient
from psycopg_pool import ConnectionPool

from config import Settings
from console import case_queue
from handoff import timers
from runtime.resources import Runtime, build_runtime
from tests.console_support import TUESDAY_NIGHT, TZ, Customer
from tests.harness import rows, run_jobs


@pytest.fixture
def settings(base_env: dict[str, str], core_url: str) -> Settings:
    return Settings.from_env({**base_env, "CORE_API_URL": core_url, "CONSOLE_WAIT_NOTICE_S": "300"})


@pytest.fixture
def rt(settings: Settings) -> Iterator[Runtime]:
    built = build_runtime(settings, pool_size=2)
    yield built
    built.close()


@pytest.fixture
def maria(client: FlaskClient, settings: Settings, db_pool: ConnectionPool) -> Customer:
    return Customer(client, settings, db_pool)


def test_an_untaken_chat_gets_one_honest_notice_and_the_callback_offer(maria: Customer, rt: Runtime,
                                                                       db_pool: ConnectionPool,
                                                                       settings: Settings) -> None:
    case_id = maria.escalate()
    assert timers.run_due(rt).wait_notices == 0  # not waited long enough yet
    with db_pool.connection() as conn:
        conn.execute("UPDATE escalations SET created_at = now() - interval '6 minutes'")

    assert timers.run_due(rt).wait_notices == 1
    assert timers.run_due(rt).wait_notices == 0  # once per case
    run_jobs(settings)
    notice = rows(db_pool, "SELECT body, payload, status FROM messages WHERE idempotency_key LIKE %s",
                  (f"console:{case_id}:wait_notice",))
    assert len(notice) == 1 and notice[0]["status"] == "delivered"
    assert notice[0]["body"].startswith("Todos nuestros asesores siguen ocupados")
    assert [b["title"] for b in notice[0]["payload"]["buttons"]] == ["📞 Que me llamen", "Sigo esperando"]

    maria.send(reply=("console:wait", "Sigo esperando"))
    assert maria.received()[-1].startswith("¡Gracias por tu paciencia!")
    assert rows(db_pool, "SELECT status FROM escalations")[0]["status"] == "waiting"

    maria.send(reply=("console:callback", "📞 Que me llamen"))
    case = rows(db_pool, "SELECT case_number, status, callback_due_at FROM escalations")[0]
    assert case["status"] == "callback" and case["callback_due_at"] is not None
    assert maria.received()[-1] == (f"Listo, María. Un asesor te llamará al número desde el que escribes lo antes "
                                    f"posible. Tu caso es {case['case_number']}.")
    with db_pool.connection() as conn:
        top = case_queue.queue(conn, settings, 1, now=datetime.now(UTC))
    assert top[0].id == case_id and top[0].label == "Devolver llamada"


def test_no_notice_for_a_chat_an_agent_took(maria: Customer, rt: Runtime, db_pool: ConnectionPool) -> None:
    maria.escalate()
    with db_pool.connection() as conn:
        conn.execute("UPDATE escalations SET created_at = now() - interval '1 hour', status = 'taken'")
    assert timers.run_due(rt).wait_notices == 0


def test_an_out_of_hours_callback_becomes_due_at_opening_time(maria: Customer, rt: Runtime,
                                                              db_pool: ConnectionPool, settings: Settings) -> None:
    case_id = maria.escalate("quiero hablar con un asesor", at=TUESDAY_NIGHT)
    assert rows(db_pool, "SELECT status FROM escalations")[0]["status"] == "callback"

    night = TUESDAY_NIGHT + timedelta(minutes=30)
    assert timers.run_due(rt, night).callbacks_due == 0
    assert rows(db_pool, "SELECT callback_due_at FROM escalations")[0]["callback_due_at"] is None

    opening = datetime(2026, 1, 7, 8, 0, 30, tzinfo=TZ)  # Wednesday 8:00 am
    assert timers.run_due(rt, opening).callbacks_due == 1
    assert timers.run_due(rt, opening).callbacks_due == 0
    due = rows(db_pool, "SELECT callback_due_at FROM escalations")[0]["callback_due_at"]
    assert due == opening
    actions = rows(db_pool, "SELECT action FROM handoff_events WHERE escalation_id = %s", (case_id,))
    assert actions == [{"action": "callback_due"}]
    with db_pool.connection() as conn:
        queue = case_queue.queue(conn, settings, 1, now=opening + timedelta(minutes=1))
    assert queue[0].id == case_id and queue[0].callback_due


def test_the_scheduler_runs_the_console_timers(rt: Runtime) -> None:
    from runtime.leader import Leader
    from worker.scheduler import build_scheduler

    scheduler = build_scheduler(rt, Leader(rt.redis, lease_s=15))
    assert "console_timers" in [job.id for job in scheduler.get_jobs()]
