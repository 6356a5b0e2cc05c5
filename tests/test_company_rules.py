"""A company's own hours, holidays, notification rules and templates, set by its admin in the console (issue 15).

The admin logs in to the real console and saves the forms of "Horario" and "Plantillas"; customers write through
the signed webhook and the worker; notifications come from signed core events and leave through the Meta
transport to the loopback Graph API. What the admin saved is what the bot and the notifications use next,
another company's ids answer 404, and the hours page works in a real Chromium.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from psycopg_pool import ConnectionPool

from config import Settings
from handoff import timers
from notifications import reminders
from runtime.resources import build_runtime
from sandbox_core.app import create_sandbox_app
from sandbox_core.server import BackgroundServer
from storage import tenant_admin, tenant_hours
from storage.crypto import Vault
from tests.browser import launch
from tests.console_support import PASSWORD, TUESDAY_10AM, TUESDAY_NIGHT, Customer, make_agent
from tests.fakes.graph_api import FakeGraphAPI
from tests.harness import rows, run_jobs
from tests.harness import served as harness_served
from tests.notifications_helpers import notification_settings, notifications, post_event, status_event
from web.app import create_app

SV = ZoneInfo("America/El_Salvador")
WEEK = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MARIA = "+50370000002"


@pytest.fixture
def settings(base_env: dict[str, str], core_url: str) -> Settings:
    return Settings.from_env({**base_env, "CORE_API_URL": core_url})


@pytest.fixture
def app(settings: Settings) -> Iterator[Flask]:
    app = create_app(settings)
    yield app
    app.extensions["db_pool"].close()
    app.extensions["redis"].close()


def tenant_id(pool: ConnectionPool, slug: str) -> int:
    return int(rows(pool, "SELECT id FROM tenants WHERE slug = %s", (slug,))[0]["id"])


def admin_of(app: Flask, pool: ConnectionPool, email: str, tenant: int | None = None,
             role: str = "admin") -> FlaskClient:
    make_agent(pool, "Alicia Admin", email, role=role, tenant_id=tenant)
    client = app.test_client()
    page = client.get("/console/login").get_data(as_text=True)
    token = re.search(r'name="csrf-token" content="([^"]+)"', page)
    assert token
    answer = client.post("/console/login", data={"email": email, "password": PASSWORD, "csrf_token": token.group(1)})
    assert answer.status_code == 302
    return client


def post(client: FlaskClient, path: str, **form: str) -> tuple[int, str]:
    with client.session_transaction("/console") as session:
        token = session["csrf"]
    answer = client.post(path, data={**form, "csrf_token": token}, follow_redirects=True)
    return answer.status_code, answer.get_data(as_text=True)


def week_form(**days: tuple[str, str] | None) -> dict[str, str]:
    """The hours grid as the browser posts it: every weekday open 08:00-17:00 unless given (None: closed)."""
    form = {"action": "hours"}
    for key in WEEK:
        span = days.get(key, ("08:00", "17:00"))
        form[f"{key}_opens"], form[f"{key}_closes"] = span if span else ("", "")
        if span is None:
            form[f"{key}_closed"] = "1"
    return form


# -- hours ---------------------------------------------------------------------------------------------------


def test_hours_the_admin_sets_close_support_for_the_worker_and_the_core_hours_come_back(
        app: Flask, settings: Settings, db_pool: ConnectionPool) -> None:
    admin = admin_of(app, db_pool, "alicia@primera.sv")
    status, page = post(admin, "/console/hours", **week_form(tue=("14:00", "18:00"), sun=None))
    assert status == 200 and "Horario guardado" in page
    maria = Customer(app.test_client(), settings, db_pool)
    maria.escalate(at=TUESDAY_10AM)  # the core's hours (8:00-18:00) would have it open
    said = maria.received()[-1]
    assert "no está disponible" in said and "hoy a las 2:00pm" in said, said
    assert "atendemos lunes de 8:00am a 5:00pm, martes de 2:00pm a 6:00pm y miércoles a sábado de 8:00am a 5:00pm." \
        in said, said
    assert rows(db_pool, "SELECT status FROM escalations") == [{"status": "callback"}]

    status, page = post(admin, "/console/hours", action="core_hours")
    assert status == 200 and "horario del sistema" in page
    juan = Customer(app.test_client(), settings, db_pool, phone="+50370000001", name="Juan Pérez")
    juan.escalate(at=TUESDAY_10AM)
    assert "en breve" in juan.received()[-1]


def test_an_out_of_hours_callback_becomes_due_when_the_company_opens(
        app: Flask, settings: Settings, db_pool: ConnectionPool) -> None:
    admin = admin_of(app, db_pool, "alicia@primera.sv")
    assert post(admin, "/console/hours", **week_form(wed=("10:00", "17:00")))[0] == 200
    maria = Customer(app.test_client(), settings, db_pool)
    maria.escalate("quiero hablar con un asesor", at=TUESDAY_NIGHT)
    assert rows(db_pool, "SELECT status FROM escalations")[0]["status"] == "callback"
    assert "mañana (miércoles) a las 10:00am" in maria.received()[-1]
    rt = build_runtime(settings, pool_size=2)
    try:
        at_eight = datetime(2026, 1, 7, 8, 0, 30, tzinfo=SV)  # the core's hours open at 8:00, the company's at 10
        assert timers.run_due(rt, at_eight).callbacks_due == 0
        at_ten = datetime(2026, 1, 7, 10, 0, 30, tzinfo=SV)
        assert timers.run_due(rt, at_ten).callbacks_due == 1
    finally:
        rt.close()
    assert rows(db_pool, "SELECT callback_due_at FROM escalations") == [{"callback_due_at": at_ten}]


def test_a_holiday_closes_support_all_day_and_the_callback_is_the_next_working_day(
        app: Flask, settings: Settings, db_pool: ConnectionPool) -> None:
    admin = admin_of(app, db_pool, "alicia@primera.sv")
    status, page = post(admin, "/console/hours", action="holiday_add", day="2026-01-06", name="Día de la empresa")
    assert status == 200 and "Día de la empresa" in page and "06/01/2026" in page
    maria = Customer(app.test_client(), settings, db_pool)
    maria.escalate(at=TUESDAY_10AM)  # the core's own hours, but Tuesday is a holiday now
    said = maria.received()[-1]
    assert "no está disponible" in said and "mañana (miércoles) a las" in said, said

    holiday = rows(db_pool, "SELECT id FROM tenant_holidays")[0]["id"]
    status, page = post(admin, "/console/hours", action="holiday_remove", holiday_id=str(holiday))
    assert status == 200 and "Día de la empresa" not in page
    assert rows(db_pool, "SELECT id FROM tenant_holidays") == []


@pytest.mark.parametrize(("form", "message"), [
    (week_form(mon=("17:00", "08:00")), "El lunes la hora de cierre tiene que ser después de la de apertura."),
    (week_form(wed=("09:00", "")), "El miércoles necesita la hora de apertura y la de cierre"),
    (week_form(**dict.fromkeys(WEEK)), "Deja al menos un día abierto."),
    ({"action": "holiday_add", "day": "", "name": "Feriado"}, "Elige la fecha del feriado."),
    ({"action": "holiday_add", "day": "2026-05-01", "name": " "}, "Escribe el nombre del feriado"),
    ({"action": "rules", "quiet_start": "21:00", "quiet_end": "", "reminders_default": "1"},
     "Escribe el inicio y el fin de las horas de silencio"),
    ({"action": "rules", "quiet_default": "1", "reminder_0": "3", "reminder_1": "30"},
     "Los recordatorios van del día 1 al"),
])
def test_the_hours_forms_refuse_mistakes_in_spanish_and_save_nothing(
        app: Flask, db_pool: ConnectionPool, form: dict[str, str], message: str) -> None:
    admin = admin_of(app, db_pool, "alicia@primera.sv")
    status, page = post(admin, "/console/hours", **form)
    assert status == 400 and message in page, page[:2000]
    assert rows(db_pool, "SELECT support_hours, quiet_hours_start, reminder_days FROM tenants") == [
        {"support_hours": None, "quiet_hours_start": None, "reminder_days": None}]
    assert rows(db_pool, "SELECT id FROM tenant_holidays") == []


def test_only_the_admin_sees_the_hours_and_templates_pages(app: Flask, db_pool: ConnectionPool) -> None:
    for role in ("agent", "supervisor"):
        client = admin_of(app, db_pool, f"{role}@primera.sv", role=role)
        for path in ("/console/hours", "/console/templates"):
            assert client.get(path).status_code == 403
        assert post(client, "/console/hours", **week_form())[0] == 403
        assert "/console/hours" not in client.get("/console").get_data(as_text=True)
    assert rows(db_pool, "SELECT support_hours FROM tenants") == [{"support_hours": None}]


# -- notifications -------------------------------------------------------------------------------------------


@pytest.fixture
def nsettings(meta_settings: Settings, core_url: str) -> Settings:
    return notification_settings(meta_settings, core_url)  # the deployment's quiet hours: none


@pytest.fixture
def napp(nsettings: Settings) -> Iterator[Flask]:
    app = create_app(nsettings)
    yield app
    app.extensions["db_pool"].close()
    app.extensions["redis"].close()


def notify(client: FlaskClient, settings: Settings, code: str, status: str) -> None:
    assert post_event(client, status_event(code, status)).status_code == 202
    run_jobs(settings)


def test_the_companys_quiet_hours_delay_a_notification_to_their_end(
        napp: Flask, nsettings: Settings, graph: FakeGraphAPI, db_pool: ConnectionPool) -> None:
    local = datetime.now(SV)
    start, end = (local - timedelta(hours=1)).strftime("%H:%M"), (local + timedelta(hours=1)).strftime("%H:%M")
    admin = admin_of(napp, db_pool, "alicia@primera.sv")
    status, _ = post(admin, "/console/hours", action="rules", quiet_start=start, quiet_end=end,
                     reminders_default="1")
    assert status == 200
    notify(napp.test_client(), nsettings, "SV20260105007834", "ARRIVED_AT_DESTINATION")
    assert graph.messages_to(MARIA) == []
    [note] = notifications(db_pool)
    assert note["status"] == "deferred"
    assert note["send_after"].astimezone(SV).strftime("%H:%M") == end

    post(admin, "/console/hours", action="rules", quiet_default="1", reminders_default="1")  # back to none
    notify(napp.test_client(), nsettings, "SV20260106012345", "ARRIVED_AT_DESTINATION")
    assert [b["type"] for b in graph.messages_to(MARIA)] == ["template"]


def template_form(page: str) -> dict[str, str]:
    """The edit form's fields as the page shows them (inputs, selected options, the textarea)."""
    form: dict[str, str] = {}
    for name, value in re.findall(r'<input name="([^"]+)" value="([^"]*)"', page):
        form[name] = value
    for name, body in re.findall(r'<select name="([^"]+)">(.*?)</select>', page, re.S):
        chosen = re.search(r'<option value="([^"]*)" selected', body)
        form[name] = chosen.group(1) if chosen else ""
    body = re.search(r'<textarea name="body"[^>]*>(.*?)</textarea>', page, re.S)
    assert body
    form["body"] = body.group(1).replace("&#39;", "'").replace("&amp;", "&")
    if 'name="enabled" value="1" checked' in page:
        form["enabled"] = "1"
    return form


def test_a_template_edited_in_the_console_is_what_meta_receives_next(
        napp: Flask, nsettings: Settings, graph: FakeGraphAPI, db_pool: ConnectionPool) -> None:
    admin = admin_of(napp, db_pool, "alicia@primera.sv")
    listing = admin.get("/console/templates").get_data(as_text=True)
    assert "exactamente" in listing and "Meta" in listing and "paquete_llego" in listing
    arrived = rows(db_pool, "SELECT id FROM notification_templates WHERE kind = 'arrived'")[0]["id"]
    form = template_form(admin.get(f"/console/templates/{arrived}").get_data(as_text=True))
    assert form["param_1"] == "customer_name" and form["button_0_action"] == "pin:{point_id}"
    form.update(name="paquete_listo_v2", body="Hola {{1}}, tu paquete {{2}} ya está en {{3}}.",
                param_1="customer_name", param_2="tracking_code", param_3="point_name",
                button_1_title="", button_1_action="")
    for n in range(4, 9):
        form[f"param_{n}"] = ""
    status, page = post(admin, f"/console/templates/{arrived}", **form)
    assert status == 200 and "Plantilla guardada" in page, page[:1500]

    notify(napp.test_client(), nsettings, "SV20260105007834", "ARRIVED_AT_DESTINATION")
    [body] = graph.messages_to(MARIA)
    assert body["template"]["name"] == "paquete_listo_v2"
    params = [p["text"] for p in body["template"]["components"][0]["parameters"]]
    assert params == ["María", "SV20260105007834", "Santa Ana - Punto Principal"]
    buttons = [c for c in body["template"]["components"] if c["type"] == "button"]
    assert [b["parameters"][0]["payload"] for b in buttons] == ["pin:santa_ana"]
    assert rows(db_pool, "SELECT template_name FROM notification_log") == [{"template_name": "paquete_listo_v2"}]

    form.pop("enabled")  # switched off: that notification is not sent at all
    assert post(admin, f"/console/templates/{arrived}", **form)[0] == 200
    notify(napp.test_client(), nsettings, "SV20260106012345", "ARRIVED_AT_DESTINATION")
    assert len(graph.messages_to(MARIA)) == 1


def test_agents_offer_the_template_as_the_admin_left_it_outside_the_window(
        app: Flask, settings: Settings, db_pool: ConnectionPool) -> None:
    admin = admin_of(app, db_pool, "alicia@primera.sv")
    admin.get("/console/templates")
    arrived = rows(db_pool, "SELECT id FROM notification_templates WHERE kind = 'arrived'")[0]["id"]
    form = template_form(admin.get(f"/console/templates/{arrived}").get_data(as_text=True))
    form.update(name="paquete_listo_v2", body="Hola {{1}}, tu paquete {{2}} te espera.", param_3="", param_4="",
                param_5="", param_6="")
    assert post(admin, f"/console/templates/{arrived}", **form)[0] == 200
    refund = rows(db_pool, "SELECT id FROM notification_templates WHERE kind = 'refund_available'")[0]["id"]
    form = template_form(admin.get(f"/console/templates/{refund}").get_data(as_text=True))
    form.pop("enabled")
    assert post(admin, f"/console/templates/{refund}", **form)[0] == 200

    case_id = Customer(app.test_client(), settings, db_pool).escalate()
    carlos = admin_of(app, db_pool, "carlos@primera.sv", role="agent")
    with carlos.session_transaction("/console") as session:
        headers = {"X-CSRF-Token": session["csrf"]}
    carlos.post(f"/console/api/cases/{case_id}/claim", headers=headers)
    page = carlos.get(f"/console/cases/{case_id}").get_data(as_text=True)
    assert 'value="paquete_listo_v2"' in page and 'value="paquete_llego"' not in page
    assert 'value="reembolso_disponible"' not in page and 'value="paquete_devuelto"' in page  # off; untouched
    old = carlos.post(f"/console/api/cases/{case_id}/template", headers=headers,
                      json={"name": "paquete_llego", "values": {}})
    assert old.status_code == 400 and old.get_json()["error"] == "Esa plantilla no existe o está apagada."
    sent = carlos.post(f"/console/api/cases/{case_id}/template", headers=headers, json={
        "name": "paquete_listo_v2", "values": {"customer_name": "María", "tracking_code": "SV20260105007823",
                                               "point_id": "santa_ana"}})
    assert sent.status_code == 202, sent.get_json()
    run_jobs(settings)
    assert rows(db_pool, "SELECT body FROM messages WHERE id = %s", (sent.get_json()["message_id"],)) == [
        {"body": "Hola María, tu paquete SV20260105007823 te espera."}]


@pytest.mark.parametrize(("change", "message"), [
    ({"body": "Hola {{1}}, tu paquete {{3}}."}, "Los espacios del texto van numerados seguidos desde {{1}}"),
    ({"param_2": ""}, "Elige qué dato va en {{2}}."),
    ({"button_0_title": "Un botón con un texto larguísimo"}, "es muy largo: hasta 20 letras"),
    ({"button_0_action": ""}, "Elige qué hace el botón"),
    ({"name": "Paquete Llegó"}, "minúsculas, números y guion bajo"),
    ({"content_sid": "HX123"}, "El ContentSid de Twilio empieza con HX"),
])
def test_a_template_edit_is_checked_like_the_approved_yaml(
        napp: Flask, db_pool: ConnectionPool, change: dict[str, str], message: str) -> None:
    admin = admin_of(napp, db_pool, "alicia@primera.sv")
    admin.get("/console/templates")
    arrived = rows(db_pool, "SELECT id, body FROM notification_templates WHERE kind = 'arrived'")[0]
    form = {**template_form(admin.get(f"/console/templates/{arrived['id']}").get_data(as_text=True)), **change}
    status, page = post(admin, f"/console/templates/{arrived['id']}", **form)
    assert status == 400 and message in page.replace("&#34;", '"').replace("&#39;", "'"), page[:1500]
    assert rows(db_pool, "SELECT body FROM notification_templates WHERE id = %s", (arrived["id"],)) == [
        {"body": arrived["body"]}]


def test_the_companys_reminder_days_replace_the_deployments(
        meta_settings: Settings, graph: FakeGraphAPI, db_pool: ConnectionPool, redis_conn: redis.Redis) -> None:
    sandbox = create_sandbox_app()  # a core of this test alone: its package arrives now
    with BackgroundServer(sandbox) as server, sandbox.test_client() as control:
        settings = notification_settings(meta_settings, server.url)
        app = create_app(settings)
        try:
            assert control.post("/sandbox/packages/SV20260106012345/status",
                                json={"status": "ARRIVED_AT_DESTINATION"}).status_code == 200
            arrival = datetime.now(UTC)
            notify(app.test_client(), settings, "SV20260106012345", "ARRIVED_AT_DESTINATION")
            rt = build_runtime(settings, pool_size=2)
            try:
                day_two = arrival + timedelta(days=2)
                assert reminders.send_reminders(rt, now=day_two) == []  # the deployment's days: 3, 7, 14
                admin = admin_of(app, db_pool, "alicia@primera.sv")
                assert post(admin, "/console/hours", action="rules", quiet_default="1", reminder_0="2",
                            reminder_1="5")[0] == 200
                for key in redis_conn.scan_iter("throttle:*"):  # days pass, but not on Redis's clock
                    redis_conn.delete(key)
                sent = reminders.send_reminders(rt, now=day_two)
            finally:
                rt.close()
        finally:
            app.extensions["db_pool"].close()
            app.extensions["redis"].close()
    assert len(sent) == 1
    assert rows(db_pool, "SELECT kind, package_status FROM notification_log WHERE id = %s", (sent[0],)) == [
        {"kind": "pickup_reminder", "package_status": "REMINDER_DAY_2"}]
    [reminder] = [b for b in graph.messages_to(MARIA) if b["template"]["name"] == "recordatorio_retiro"]
    assert [p["text"] for p in reminder["template"]["components"][0]["parameters"]][3:5] == ["2", "13"]


# -- isolation -----------------------------------------------------------------------------------------------


def test_another_companys_templates_and_holidays_answer_404(
        app: Flask, settings: Settings, db_pool: ConnectionPool) -> None:
    redis_conn = redis.Redis.from_url(settings.redis_url)
    vault = Vault(settings.phone_encryption_keys, settings.phone_hash_key)
    other = tenant_admin.create_tenant(db_pool, vault, redis_conn, slug="cuscatlan", name="Envíos Rápidos Cuscatlán")
    redis_conn.close()
    theirs = admin_of(app, db_pool, "bruno@cuscatlan.sv", tenant=other.id)
    assert "encargo_llego" in theirs.get("/console/templates").get_data(as_text=True)
    assert post(theirs, "/console/hours", action="holiday_add", day="2026-09-15", name="Independencia")[0] == 200
    their_template = rows(db_pool, "SELECT id, name, body FROM notification_templates WHERE tenant_id = %s"
                                   " AND kind = 'arrived'", (other.id,))[0]
    their_holiday = rows(db_pool, "SELECT id FROM tenant_holidays WHERE tenant_id = %s", (other.id,))[0]["id"]

    mine = admin_of(app, db_pool, "alicia@primera.sv", tenant=tenant_id(db_pool, settings.tenant_slug))
    nowhere = 987_654_321
    for template in (their_template["id"], nowhere):
        page = mine.get(f"/console/templates/{template}")
        assert page.status_code == 404 and "encargo" not in page.get_data(as_text=True)
        status, text = post(mine, f"/console/templates/{template}", name="robado", language="es", body="x",
                            enabled="1")
        assert status == 404 and "encargo" not in text
    answers = {post(mine, "/console/hours", action="holiday_remove", holiday_id=str(h)) for h in (their_holiday,
                                                                                                   nowhere)}
    assert len(answers) == 1 and next(iter(answers))[0] == 404
    own_pages = mine.get("/console/templates").get_data(as_text=True) + mine.get("/console/hours").get_data(
        as_text=True)
    assert "encargo_llego" not in own_pages and "Independencia" not in own_pages and "paquete_llego" in own_pages
    assert rows(db_pool, "SELECT id, name, body FROM notification_templates WHERE id = %s",
                (their_template["id"],)) == [their_template]
    assert rows(db_pool, "SELECT tenant_id FROM tenant_holidays") == [{"tenant_id": other.id}]
    assert tenant_hours.read(db_pool, other.id).closed_days == {datetime(2026, 9, 15).date()}  # noqa: DTZ001


# -- in a real browser ---------------------------------------------------------------------------------------


@pytest.fixture
def served(settings: Settings) -> Iterator[tuple[Flask, str]]:
    with harness_served(settings) as app_and_url:
        yield app_and_url


@pytest.mark.browser
def test_the_hours_page_in_chromium(served: tuple[Flask, str], settings: Settings, db_pool: ConnectionPool) -> None:
    from playwright.sync_api import expect, sync_playwright

    app, base_url = served
    make_agent(db_pool, "Alicia Admin", "alicia@primera.sv", role="admin")
    with sync_playwright() as pw:
        browser = launch(pw)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(base_url + "/console/login")
            page.fill("input[name=email]", "alicia@primera.sv")
            page.fill("input[name=password]", PASSWORD)
            page.click("button[type=submit]")
            page.click("nav >> text=Horario")
            expect(page.locator("h1")).to_have_text("Horario")
            expect(page.locator("#support-hours .hint")).to_contain_text("horario del sistema")
            grid = page.locator("#support-hours")
            expect(grid.locator("input[name=mon_opens]")).to_have_value("08:00")  # the core's hours, to start from

            # a mistake: Monday closing before it opens
            grid.locator("input[name=mon_opens]").fill("18:00")
            grid.locator("input[name=mon_closes]").fill("09:00")
            grid.locator("button[type=submit]").click()
            expect(page.locator(".error")).to_have_text(
                "El lunes la hora de cierre tiene que ser después de la de apertura.")
            expect(page.locator("#support-hours input[name=mon_opens]")).to_have_value("18:00")  # kept as typed

            grid = page.locator("#support-hours")
            grid.locator("input[name=mon_opens]").fill("07:30")
            grid.locator("input[name=mon_closes]").fill("16:00")
            grid.locator("input[name=sat_closed]").check()
            grid.locator("button[type=submit]").click()
            expect(page.locator(".flash")).to_contain_text("Horario guardado")
            expect(page.locator("#support-hours input[name=mon_opens]")).to_have_value("07:30")
            expect(page.locator("#support-hours input[name=sat_closed]")).to_be_checked()

            holidays = page.locator("#holidays")
            holidays.locator("input[name=day]").fill("2099-09-15")
            holidays.locator("input[name=name]").fill("Día de la Independencia")
            holidays.locator("button[type=submit]").click()
            expect(page.locator("#holidays tr.holiday")).to_have_text(
                re.compile(r"15/09/2099\s*Día de la Independencia"))

            rules = page.locator("#notification-rules")
            rules.locator("input[name=quiet_default]").uncheck()
            rules.locator("input[name=quiet_start]").fill("20:00")
            rules.locator("input[name=quiet_end]").fill("08:00")
            rules.locator("button[type=submit]").click()
            expect(page.locator(".flash")).to_contain_text("Avisos guardados")

            page.locator("#holidays tr.holiday button").click()
            expect(page.locator("#holidays tr.holiday")).to_have_count(0)
            assert errors == []
        finally:
            browser.close()
    tenant = rows(db_pool, "SELECT support_hours, quiet_hours_start, quiet_hours_end FROM tenants")[0]
    assert tenant["support_hours"]["mon"] == ["07:30", "16:00"] and tenant["support_hours"]["sat"] is None
    assert (tenant["quiet_hours_start"], tenant["quiet_hours_end"]) == ("20:00", "08:00")
