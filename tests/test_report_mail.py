"""The weekly report e-mail (console/report_mail.py) and the alert e-mails (console/alert_mail.py) through a real
SMTP conversation with a mail server on loopback (tests/fakes/smtp_server.py): once per company and week, with
the figures and the chart in both parts; each alert at most once an hour."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta

import pytest
import redis
from psycopg_pool import ConnectionPool

from config import Settings
from console import alert_mail, report_mail
from storage.crypto import Vault
from tests.fakes.smtp_server import FakeSMTPServer, Received, closed_port
from tests.harness import rows
from tests.metrics_support import Rows
from tests.report_support import configured_tenant, local, make_agent, refresh_rollups, write_months

SENDER = "Encargo Reportes <reportes@encargo.test>"
MONDAY = local(11, 16, 7, 30)  # the week of Monday 9 to Sunday 15 November is due


@pytest.fixture
def smtp() -> Iterator[FakeSMTPServer]:
    with FakeSMTPServer() as server:
        yield server


def mail_settings(base_env: dict[str, str], port: int) -> Settings:
    return Settings.from_env({**base_env, "SMTP_URL": f"smtp://127.0.0.1:{port}", "SMTP_FROM": SENDER,
                              "SMTP_TIMEOUT_S": "5", "PUBLIC_BASE_URL": "https://soporte.encargo.test"})


@pytest.fixture
def companies(settings: Settings, db_pool: ConnectionPool) -> tuple[int, int]:
    a = configured_tenant(db_pool, settings.tenant_slug)
    made = write_months(db_pool, a)
    make_agent(db_pool, a, "admin@primera.sv", "admin")
    make_agent(db_pool, a, "agente@primera.sv", "agent", "Amanda Agente")  # not an admin: gets nothing
    gone = make_agent(db_pool, a, "antes@primera.sv", "admin", "Adela Anterior")
    with db_pool.connection() as conn:
        conn.execute("UPDATE agents SET active = false WHERE id = %s", (gone.id,))
    make_agent(db_pool, made.b, "admin@otra.sv", "admin", "Bruno Bodega")
    return a, made.b


def to(mail: Received) -> str:
    return ",".join(mail.rcpt_to)


def subject(mail: Received) -> str:
    """The Subject as a reader sees it (the standard library's folding of encoded words may double a space)."""
    return " ".join(str(mail.message["Subject"]).split())


def name_of(pool: ConnectionPool, tenant: int) -> str:
    return str(rows(pool, "SELECT name FROM tenants WHERE id = %s", (tenant,))[0]["name"])


def html(mail: Received) -> str:
    part = mail.message.get_body(("html",))
    assert part is not None, "no text/html part"
    return str(part.get_content())


def test_each_company_gets_the_weeks_report_once(base_env: dict[str, str], smtp: FakeSMTPServer,
                                                  companies: tuple[int, int], db_pool: ConnectionPool) -> None:
    settings = mail_settings(base_env, smtp.port)
    refresh_rollups(settings, db_pool)
    assert report_mail.send_due(settings, db_pool, MONDAY) == 2
    mails = smtp.wait_for(2)
    by_company = {to(m): m for m in mails}
    assert set(by_company) == {"admin@primera.sv", "admin@otra.sv"}  # admins only, active ones only
    mine = by_company["admin@primera.sv"]
    a, _ = companies
    assert subject(mine) == f"Reporte semanal del asistente de {name_of(db_pool, a)}: 09/11 al 15/11/2026"
    text = mine.text
    # the week of the 9th: Tuesday the 10th's conversation, escalated (a complaint), rated 4 of 5
    assert "- Conversaciones: 1 (semana anterior: 0)" in text
    assert "- Resueltas sin persona: 0 % (semana anterior: —) · objetivo: más de 75 %" in text
    assert "- Satisfacción con el asistente: 4.0 de 5" in text
    assert "Reclamos (1): Revisa los reclamos" in text
    assert "mar 10/11  #################### 1" in text and "lun 09/11   0" in text
    assert "https://soporte.encargo.test/console/report" in text
    body = html(mine)
    assert '<tr data-figure="conversations">' in body and "<svg" not in body
    assert body.count('class="bar-row"') == 7  # one bar a day, drawn with inline styles
    assert 'width="100%" style="width:100%;height:14px' in body and "#0b7a6c" in body
    assert "Bruno" not in text and "otra empresa" not in text

    # a second run, and a second scheduler at the same moment: nothing more for that week
    runs = [threading.Thread(target=report_mail.send_due, args=(settings, db_pool, MONDAY + timedelta(minutes=m)))
            for m in (10, 10, 20)]
    for run in runs:
        run.start()
    for run in runs:
        run.join()
    assert len(smtp.received) == 2
    assert rows(db_pool, "SELECT count(*) AS n FROM weekly_report_sends WHERE sent_at IS NOT NULL")[0]["n"] == 2
    # the next Monday: the next week, once more per company
    assert report_mail.send_due(settings, db_pool, MONDAY + timedelta(days=7)) == 2
    assert len(smtp.wait_for(4)) == 4


def test_before_monday_morning_nothing_new_is_due(base_env: dict[str, str], smtp: FakeSMTPServer,
                                                  companies: tuple[int, int], db_pool: ConnectionPool) -> None:
    settings = mail_settings(base_env, smtp.port)
    refresh_rollups(settings, db_pool)
    assert report_mail.send_due(settings, db_pool, MONDAY) == 2
    # Monday 6:59 a week later is still the same week's turn: already sent
    assert report_mail.send_due(settings, db_pool, local(11, 23, 6, 59)) == 0
    assert report_mail.due_week(local(11, 23, 6, 59), "America/El_Salvador", 7).isoformat() == "2026-11-09"
    assert report_mail.due_week(local(11, 23, 7, 0), "America/El_Salvador", 7).isoformat() == "2026-11-16"


def test_a_failed_send_is_tried_again_later_and_sent_once(base_env: dict[str, str], smtp: FakeSMTPServer,
                                                          companies: tuple[int, int], db_pool: ConnectionPool) -> None:
    down = mail_settings(base_env, closed_port())
    refresh_rollups(down, db_pool)
    assert report_mail.send_due(down, db_pool, MONDAY) == 0
    assert {r["error"] for r in rows(db_pool, "SELECT error FROM weekly_report_sends")} == {"ConnectionRefusedError"}
    settings = mail_settings(base_env, smtp.port)
    assert report_mail.send_due(settings, db_pool, MONDAY + timedelta(minutes=5)) == 0  # claimed a moment ago
    assert report_mail.send_due(settings, db_pool, MONDAY + timedelta(minutes=16)) == 2
    assert report_mail.send_due(settings, db_pool, MONDAY + timedelta(minutes=40)) == 0
    assert len(smtp.wait_for(2)) == 2


def test_without_smtp_nothing_is_claimed(settings: Settings, companies: tuple[int, int],
                                         db_pool: ConnectionPool) -> None:
    assert report_mail.send_due(settings, db_pool, MONDAY) == 0
    assert rows(db_pool, "SELECT count(*) AS n FROM weekly_report_sends")[0]["n"] == 0


def busy_hour(pool: ConnectionPool, tenant: int) -> None:
    """Three more conversations at 10:05-10:15 on Tuesday the 10th, two of them escalated (with the 10:00 one:
    3 of 4, 75 %), and a send WhatsApp refused a moment ago (131047)."""
    with pool.connection() as conn:
        r = Rows(conn)
        for minute, escalate in ((5, True), (10, True), (15, False)):
            at = local(11, 10, 10, minute)
            conversation = r.conversation(tenant, r.contact(tenant), at)
            r.customer_message(tenant, conversation, at)
            if escalate:
                r.escalation(tenant, conversation, at + timedelta(minutes=1))
        refused = r.notification(tenant, conversation, at, template="aviso")
        conn.execute("UPDATE messages SET status = 'failed', failed_at = now(), error_code = '131047' WHERE id = %s",
                     (refused,))


def test_alerts_reach_the_admins_at_most_once_an_hour(base_env: dict[str, str], smtp: FakeSMTPServer,
                                                     companies: tuple[int, int], db_pool: ConnectionPool) -> None:
    a, _ = companies
    busy_hour(db_pool, a)
    settings = mail_settings(base_env, smtp.port)
    refresh_rollups(settings, db_pool)
    redis_conn = redis.Redis.from_url(settings.redis_url)
    vault = Vault(settings.phone_encryption_keys, settings.phone_hash_key)
    now = local(11, 10, 10, 40)
    try:
        assert alert_mail.send_alerts(settings, db_pool, redis_conn, vault, now) == 1
        [mail] = smtp.wait_for(1)
        assert mail.rcpt_to == ("admin@primera.sv",)
        assert subject(mail) == f"Alerta del asistente de {name_of(db_pool, a)}: 2 alertas"
        assert "⚠ Escalamiento alto: 75 % en la última hora" in mail.text
        assert "Código 131047: 1" in mail.text
        assert "https://soporte.encargo.test/console/search?" in mail.text  # the cases behind it
        # 10 and 59 minutes later (two schedulers at once the first time): nothing new
        runs = [threading.Thread(target=alert_mail.send_alerts,
                                 args=(settings, db_pool, redis_conn, vault, now + timedelta(minutes=10)))
                for _ in range(2)]
        for run in runs:
            run.start()
        for run in runs:
            run.join()
        assert alert_mail.send_alerts(settings, db_pool, redis_conn, vault, now + timedelta(minutes=59)) == 0
        assert len(smtp.received) == 1
        # an hour later both still stand (the escalation's window is this clock hour and the one before):
        # e-mailed again
        assert alert_mail.send_alerts(settings, db_pool, redis_conn, vault, now + timedelta(minutes=61)) == 1
        second = smtp.wait_for(2)[1]
        assert "Código 131047: 1" in second.text and "Escalamiento alto" in second.text
        # two hours later the escalations are out of the window; the provider errors (24 hours) are e-mailed
        # again once their last e-mail is an hour old
        assert alert_mail.send_alerts(settings, db_pool, redis_conn, vault, now + timedelta(minutes=120)) == 0
        assert alert_mail.send_alerts(settings, db_pool, redis_conn, vault, now + timedelta(minutes=125)) == 1
        third = smtp.wait_for(3)[2]
        assert "Código 131047: 1" in third.text and "Escalamiento alto" not in third.text
        assert subject(third).endswith(": WhatsApp rechazó 1 envío en las últimas 24 horas")
    finally:
        redis_conn.close()
