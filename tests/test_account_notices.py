"""Meta's account webhooks (issue 17): a template paused falls back or holds, a number's quality and limit are
stored and shown to the admin, through the signed webhook and the worker (fixtures: tests/fixtures/SOURCES.md).
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from psycopg_pool import ConnectionPool

from channels import meta_webhook
from channels.events import AccountNotice
from config import Settings
from notifications import schedule, tenant_templates
from runtime.resources import build_runtime
from tests.conftest import load_fixture
from tests.console_support import logged_in, make_agent
from tests.fakes.graph_api import FakeGraphAPI
from tests.harness import post_meta, rows, run_jobs
from tests.notifications_helpers import notification_settings, notifications, post_event, status_event
from tests.operator_support import make_operator, operator_client
from web.app import create_app

WABA = "102290129340398"
MARIA = "+50370000002"  # the recipient of SV20260105007834 in the sandbox core


@pytest.fixture
def nsettings(meta_settings: Settings, core_url: str) -> Settings:
    return notification_settings(meta_settings, core_url)


@pytest.fixture
def napp(nsettings: Settings, db_pool: ConnectionPool) -> Iterator[Flask]:
    with db_pool.connection() as conn:  # the demo company's Meta number belongs to this business account
        conn.execute("UPDATE tenant_channels SET waba_id = %s WHERE provider = 'meta'", (WABA,))
    application = create_app(nsettings)
    yield application
    application.extensions["db_pool"].close()
    application.extensions["redis"].close()


@pytest.fixture
def client(napp: Flask) -> Iterator[FlaskClient]:
    with napp.test_client() as c:
        yield c


@pytest.fixture
def admin(napp: Flask, db_pool: ConnectionPool) -> FlaskClient:
    make_agent(db_pool, "Ana Admin", "ana@demo.encargo", role="admin")
    return logged_in(napp, "ana@demo.encargo")


def _template_notice(event: str, name: str, *, language: str = "es", time: int = 1751247548,
                     fixture: str = "meta_template_status_paused.json") -> dict[str, Any]:
    payload = copy.deepcopy(load_fixture(fixture))
    entry = payload["entry"][0]
    entry["time"] = time
    value = entry["changes"][0]["value"]
    value.update(event=event, message_template_name=name, message_template_language=language)
    if event != "PAUSED":
        value.pop("other_info", None)
    return payload


def _deliver(client: FlaskClient, settings: Settings, payload: dict[str, Any]) -> None:
    assert post_meta(client, payload).status_code == 200
    run_jobs(settings)


def _notify(client: FlaskClient, settings: Settings, code: str, status: str) -> None:
    assert post_event(client, status_event(code, status)).status_code == 202
    run_jobs(settings)


# --- parsing ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("fixture", "expected"), [
    ("meta_template_status_paused.json", {"topic": "template_status", "event": "PAUSED",
                                          "template_name": "order_confirmation", "template_language": "en-US",
                                          "reason": "FIRST_PAUSE", "template_id": "1689556908129832"}),
    ("meta_template_status_approved.json", {"topic": "template_status", "event": "APPROVED", "reason": None}),
    ("meta_phone_number_quality_update.json", {"topic": "number_quality", "event": "THROUGHPUT_UPGRADE",
                                                "phone": "15550783881", "tier": None}),
    ("meta_phone_number_quality_flagged.json", {"topic": "number_quality", "event": "FLAGGED",
                                                "tier": "TIER_10K"}),
    ("meta_business_capability_update.json", {"topic": "capability", "tier": "2000",
                                              "account_id": "524126980791429"}),
    ("meta_account_update_restriction.json", {"topic": "account", "event": "ACCOUNT_RESTRICTION",
                                              "reason": "RESTRICTED_BIZ_INITIATED_MESSAGING"}),
])
def test_each_account_webhook_becomes_one_notice(fixture: str, expected: dict[str, Any]) -> None:
    [notice] = meta_webhook.parse_body(json.dumps(load_fixture(fixture)).encode()).events
    assert isinstance(notice, AccountNotice)
    assert {key: getattr(notice, key) for key in expected} == expected
    assert AccountNotice.from_dict(notice.to_dict()) == notice


def test_notices_of_the_wrong_shape_are_ignored_not_refused() -> None:
    odd = {"object": "whatsapp_business_account", "entry": [{"id": ["x"], "time": "soon", "changes": [
        {"field": "message_template_status_update", "value": {"event": 7, "message_template_name": ["a"]}},
        {"field": "phone_number_quality_update", "value": "FLAGGED"},
        {"field": "account_update", "value": {}},
        {"field": "brand_new_field", "value": {"event": "X"}},
    ]}]}
    assert meta_webhook.parse_body(json.dumps(odd).encode()).events == []


# --- through the signed webhook and the worker --------------------------------------------------------------


def test_unknown_field_is_acknowledged_and_a_bad_signature_refused(
    client: FlaskClient, db_pool: ConnectionPool
) -> None:
    unknown = {"object": "whatsapp_business_account",
               "entry": [{"id": WABA, "time": 1, "changes": [{"field": "smb_app_state_sync", "value": {"x": 1}}]}]}
    assert post_meta(client, unknown).status_code == 200
    assert rows(db_pool, "SELECT id FROM webhook_events") == []
    assert post_meta(client, load_fixture("meta_template_status_paused.json"), secret="wrong").status_code == 403
    assert rows(db_pool, "SELECT id FROM webhook_events") == []


def test_a_notice_is_stored_once_for_its_company_and_an_unknown_account_is_unroutable(
    client: FlaskClient, napp: Flask, nsettings: Settings, db_pool: ConnectionPool
) -> None:
    paused = _template_notice("PAUSED", "paquete_en_camino")
    _deliver(client, nsettings, paused)
    _deliver(client, nsettings, paused)  # Meta's re-delivery
    [notice] = rows(db_pool, "SELECT * FROM account_notices")
    assert (notice["field"], notice["event"], notice["template_name"], notice["template_language"]) == (
        "template_status", "PAUSED", "paquete_en_camino", "es")
    assert notice["tenant_id"] is not None
    [state] = rows(db_pool, "SELECT * FROM template_states")
    assert (state["name"], state["status"], state["usable"]) == ("paquete_en_camino", "PAUSED", False)
    stranger = copy.deepcopy(paused)
    stranger["entry"][0]["id"] = "999000999"
    _deliver(client, nsettings, stranger)
    [event] = rows(db_pool, "SELECT * FROM webhook_events WHERE status = 'unroutable'")
    assert (event["kind"], event["error"], event["channel_number"]) == (
        "notice", "no tenant for the account", "999000999")
    assert len(rows(db_pool, "SELECT name FROM template_states")) == 1
    make_operator(db_pool)  # the operator sees it with the events no company took
    page = operator_client(napp).get("/operator").get_data(as_text=True)
    assert "999000999" in page and "ninguna empresa tiene esa cuenta de WhatsApp" in page


# --- a paused template: the fallback, or held until Meta approves it again -------------------------------------


def test_a_paused_template_gives_way_to_the_fallback_and_the_admin_sees_it(
    client: FlaskClient, admin: FlaskClient, nsettings: Settings, graph: FakeGraphAPI, db_pool: ConnectionPool
) -> None:
    _deliver(client, nsettings, _template_notice("PAUSED", "paquete_llego", time=1765000000))
    _notify(client, nsettings, "SV20260105007834", "ARRIVED_AT_DESTINATION")
    [body] = graph.messages_to(MARIA)
    assert body["type"] == "template"
    assert body["template"]["name"] == "paquete_llego_aviso"  # the demo's fallback in templates.yaml
    [note] = notifications(db_pool)
    assert (note["template_name"], note["status"]) == ("paquete_llego_aviso", "accepted")
    page = admin.get("/console/templates").get_data(as_text=True)
    assert "Pausada desde 05/12/2025 23:46" in page  # 1765000000 on the company's clock (UTC-6)
    assert "Meta pausó la plantilla «paquete_llego» por quejas de clientes" in page
    assert 'data-name="paquete_llego_aviso"' in page
    panel = admin.get("/console/dashboard").get_data(as_text=True)
    assert "Meta pausó una plantilla de avisos" in panel
    tenant_id = int(note["tenant_id"])  # nor is it offered to agents outside the 24-hour window
    assert "paquete_llego" not in {spec.name for spec in tenant_templates.effective(db_pool, tenant_id, "demo")}


def test_with_no_template_left_the_notice_is_held_and_a_reapproval_releases_it(
    client: FlaskClient, admin: FlaskClient, nsettings: Settings, graph: FakeGraphAPI, db_pool: ConnectionPool
) -> None:
    _deliver(client, nsettings, _template_notice("DISABLED", "paquete_devuelto", time=1765000000))
    _notify(client, nsettings, "SV20260105007834", "RETURNED_TO_SENDER")
    assert graph.messages_to("+50370000006") == []  # paquete_devuelto has no fallback
    [note] = notifications(db_pool)
    assert (note["status"], note["hold_reason"]) == ("held", "template_paused")
    page = admin.get("/console/templates").get_data(as_text=True)
    assert "Meta pausó la plantilla de este aviso" in page and "SV20260105007834" in page
    assert "Desactivada desde" in page
    # Meta's notices are not ordered: an older pause arriving late changes nothing after the approval
    _deliver(client, nsettings, _template_notice("APPROVED", "paquete_devuelto", time=1765003600,
                                                 fixture="meta_template_status_approved.json"))
    _deliver(client, nsettings, _template_notice("PAUSED", "paquete_devuelto", time=1764990000))
    [body] = graph.messages_to("+50370000006")
    assert body["template"]["name"] == "paquete_devuelto"
    [note] = notifications(db_pool)
    assert (note["status"], note["hold_reason"]) == ("accepted", None)
    [state] = rows(db_pool, "SELECT status, usable FROM template_states")
    assert (state["status"], state["usable"]) == ("APPROVED", True)
    page = admin.get("/console/templates").get_data(as_text=True)
    assert "Meta aprobó la plantilla «paquete_devuelto»" in page


# --- a number's quality and limits -----------------------------------------------------------------------------


def test_quality_and_limit_notices_reach_the_admin_the_operator_and_the_tier(
    client: FlaskClient, admin: FlaskClient, napp: Flask, nsettings: Settings, db_pool: ConnectionPool
) -> None:
    _deliver(client, nsettings, load_fixture("meta_phone_number_quality_flagged.json"))
    page = admin.get("/console/templates").get_data(as_text=True)
    assert "11/02/2025 18:43" in page  # entry.time 1739321024 on the company's clock
    assert "WhatsApp marcó tu número por baja calidad" in page
    assert "10.000 clientes en 24 horas" in page
    [limit] = rows(db_pool, "SELECT tier, source, account_id FROM messaging_limits")
    assert (limit["tier"], limit["source"], limit["account_id"]) == (10000, "webhook", WABA)
    assert "La calidad del número de WhatsApp está baja" in admin.get("/console/dashboard").get_data(as_text=True)
    make_operator(db_pool)
    operator_page = operator_client(napp).get("/operator").get_data(as_text=True)
    assert "calidad baja" in operator_page
    capability = copy.deepcopy(load_fixture("meta_business_capability_update.json"))
    capability["entry"][0]["id"] = WABA
    _deliver(client, nsettings, capability)
    [limit] = rows(db_pool, "SELECT tier, previous_tier FROM messaging_limits")
    assert (limit["tier"], limit["previous_tier"]) == (2000, 10000)
    throughput = copy.deepcopy(load_fixture("meta_phone_number_quality_update.json"))
    throughput["entry"][0]["id"] = WABA
    _deliver(client, nsettings, throughput)  # TIER_UNLIMITED here is a throughput level: the tier stays
    assert rows(db_pool, "SELECT tier FROM messaging_limits")[0]["tier"] == 2000
    page = admin.get("/console/templates").get_data(as_text=True)
    assert "Tu límite diario de WhatsApp ahora es de 2.000 clientes en 24 horas." in page
    assert "WhatsApp subió la velocidad de envío de tu número." in page


def test_a_send_meta_refuses_as_paused_marks_the_template_and_takes_the_fallback_at_once(
    client: FlaskClient, nsettings: Settings, graph: FakeGraphAPI, db_pool: ConnectionPool
) -> None:
    graph.fail_next(1, status=400, code=132015, details="Template is paused")  # before Meta's webhook came
    _notify(client, nsettings, "SV20260105007834", "ARRIVED_AT_DESTINATION")
    [body] = graph.messages_to(MARIA)
    assert body["template"]["name"] == "paquete_llego_aviso"
    [note] = notifications(db_pool)
    assert (note["status"], note["template_name"]) == ("accepted", "paquete_llego_aviso")
    [state] = rows(db_pool, "SELECT name, status, usable FROM template_states")
    assert (state["name"], state["status"], state["usable"]) == ("paquete_llego", "PAUSED", False)
    sends = rows(db_pool, "SELECT status, error_code FROM messages WHERE direction = 'out' ORDER BY id")
    assert [(m["status"], m["error_code"]) for m in sends] == [("failed", "132015"), ("accepted", None)]


def test_a_send_refused_as_disabled_without_a_fallback_is_held_then_sent_on_reapproval(
    client: FlaskClient, nsettings: Settings, graph: FakeGraphAPI, db_pool: ConnectionPool
) -> None:
    graph.fail_next(1, status=400, code=132016, details="Template is disabled")
    _notify(client, nsettings, "SV20260105007834", "RETURNED_TO_SENDER")
    assert graph.messages_to("+50370000006") == []
    [note] = notifications(db_pool)
    assert (note["status"], note["hold_reason"]) == ("held", "template_paused")
    _deliver(client, nsettings, _template_notice("REINSTATED", "paquete_devuelto", time=int(time.time()) + 60,
                                                 fixture="meta_template_status_approved.json"))
    [body] = graph.messages_to("+50370000006")
    assert body["template"]["name"] == "paquete_devuelto"
    assert notifications(db_pool)[0]["status"] == "accepted"


def test_a_timed_pause_ends_by_itself_when_meta_sends_no_notice_of_it(
    client: FlaskClient, admin: FlaskClient, nsettings: Settings, graph: FakeGraphAPI, db_pool: ConnectionPool
) -> None:
    paused_at = int(time.time()) - 600
    _deliver(client, nsettings, _template_notice("PAUSED", "paquete_devuelto", time=paused_at))  # FIRST_PAUSE: 3 h
    _notify(client, nsettings, "SV20260105007834", "RETURNED_TO_SENDER")
    assert notifications(db_pool)[0]["status"] == "held"
    rt = build_runtime(nsettings, pool_size=2)
    try:
        assert schedule.run_pass(rt)["pauses_over"] == 0  # 10 minutes in: still paused
        later = datetime.fromtimestamp(paused_at, UTC) + timedelta(hours=3, seconds=1)
        assert schedule.run_pass(rt, later)["pauses_over"] == 1
    finally:
        rt.close()
    run_jobs(nsettings)
    [body] = graph.messages_to("+50370000006")
    assert body["template"]["name"] == "paquete_devuelto"
    assert "Aprobada (terminó la pausa)" in admin.get("/console/templates").get_data(as_text=True)


def test_a_notice_with_an_absurd_time_is_kept_with_the_time_it_came(
    client: FlaskClient, nsettings: Settings, db_pool: ConnectionPool
) -> None:
    _deliver(client, nsettings, _template_notice("FLAGGED", "paquete_llego", time=999999999999))
    [event] = rows(db_pool, "SELECT status FROM webhook_events")
    assert event["status"] == "processed"
    [notice] = rows(db_pool, "SELECT event, occurred_at, received_at FROM account_notices")
    assert notice["event"] == "FLAGGED"
    assert abs((notice["occurred_at"] - notice["received_at"]).total_seconds()) < 60
