"""Sending notifications through the Meta transport to the loopback Graph API (issue 7).

Window vs template, 131047 fallback (synchronous and by status callback), opt-out,
quiet hours, one message per customer per status, status callbacks copied into
notification_log, replies continuing the conversation, reports to the core.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from flask.testing import FlaskClient
from psycopg_pool import ConnectionPool

from config import Settings
from notifications import reporting, sending
from runtime.resources import build_runtime
from tests.conftest import load_fixture
from tests.fakes.graph_api import FakeGraphAPI
from tests.harness import post_meta, rows, run_jobs, text_payload, to_our_number
from tests.notifications_helpers import notification_settings, notifications, post_event, status_event
from web.app import create_app

MARIA = "+50370000002"
JUAN = "+50370000001"


@pytest.fixture
def nsettings(meta_settings: Settings, core_url: str) -> Settings:
    return notification_settings(meta_settings, core_url)


@pytest.fixture
def client(nsettings: Settings) -> Iterator[FlaskClient]:
    with create_app(nsettings).test_client() as c:
        yield c


def _customer_writes(client: FlaskClient, settings: Settings, phone: str, text: str, wamid: str) -> None:
    assert post_meta(client, text_payload(phone.lstrip("+"), text, wamid)).status_code == 200
    run_jobs(settings)


def _notify(client: FlaskClient, settings: Settings, code: str, status: str, **extra: Any) -> None:
    assert post_event(client, status_event(code, status, **extra)).status_code == 202
    run_jobs(settings)


def _template_params(body: dict[str, Any]) -> list[str]:
    components = body["template"]["components"]
    return [p["text"] for p in components[0]["parameters"]]


def _status_webhook(wamid: str, status: str, fixture: str = "meta_status_sent.json") -> dict[str, Any]:
    payload = to_our_number(copy.deepcopy(load_fixture(fixture)))
    item = payload["entry"][0]["changes"][0]["value"]["statuses"][0]
    item["id"] = wamid
    item["status"] = status
    return payload


def test_outside_the_window_the_recipient_gets_the_approved_template(
    client: FlaskClient, nsettings: Settings, graph: FakeGraphAPI, db_pool: ConnectionPool
) -> None:
    _notify(client, nsettings, "SV20260105007834", "ARRIVED_AT_DESTINATION")
    [body] = graph.messages_to(MARIA)
    assert body["type"] == "template"
    assert body["template"]["name"] == "paquete_llego"
    assert body["template"]["language"]["code"] == "es"
    assert _template_params(body) == [
        "María", "SV20260105007834", "Santa Ana - Punto Principal", "Calle Libertad esq. 10ª Av. Norte",
        "lun-vie 8:00–18:00, sáb 8:00–13:00", "$35.00"]
    buttons = [c for c in body["template"]["components"] if c["type"] == "button"]
    assert [b["parameters"][0]["payload"] for b in buttons] == ["pin:santa_ana", "menu_human"]
    [note] = notifications(db_pool)
    assert (note["kind"], note["role"], note["mode"], note["template_name"]) == (
        "arrived", "recipient", "template", "paquete_llego")
    assert note["provider_message_id"] == graph.sent_ids[0]
    assert note["status"] == "accepted"
    assert note["reported_at"] is not None  # the sandbox core accepted POST /api/notifications/log


def test_inside_the_window_an_interactive_message_and_si_sends_the_map_pin(
    client: FlaskClient, nsettings: Settings, graph: FakeGraphAPI, db_pool: ConnectionPool
) -> None:
    _customer_writes(client, nsettings, MARIA, "Hola", "wamid.IN-1")
    before = len(graph.messages_to(MARIA))
    _notify(client, nsettings, "SV20260105007834", "ARRIVED_AT_DESTINATION")
    body = graph.messages_to(MARIA)[before]
    assert body["type"] == "interactive"
    assert body["interactive"]["body"]["text"].startswith("¡Hola María! 👋 Tu paquete SV20260105007834 llegó")
    assert [b["reply"] for b in body["interactive"]["action"]["buttons"]] == [
        {"id": "pin:santa_ana", "title": "Enviar ubicación"}, {"id": "menu_human", "title": "Hablar con alguien"}]
    assert notifications(db_pool)[0]["mode"] == "free_form"
    _customer_writes(client, nsettings, MARIA, "Sí, manda la ubicación", "wamid.IN-2")
    pin = graph.messages_to(MARIA)[before + 1]
    assert pin["type"] == "location"
    assert pin["location"]["name"] == "Santa Ana - Punto Principal"


def test_tapping_the_template_button_sends_the_pin(
    client: FlaskClient, nsettings: Settings, graph: FakeGraphAPI
) -> None:
    _notify(client, nsettings, "SV20260105007834", "ARRIVED_AT_DESTINATION")
    tap = to_our_number(copy.deepcopy(load_fixture("meta_button_template_quick_reply.json")))
    message = tap["entry"][0]["changes"][0]["value"]["messages"][0]
    message["from"] = MARIA.lstrip("+")
    tap["entry"][0]["changes"][0]["value"]["contacts"][0]["wa_id"] = MARIA.lstrip("+")
    message["button"] = {"payload": "pin:santa_ana", "text": "Enviar ubicación"}
    assert post_meta(client, tap).status_code == 200
    run_jobs(nsettings)
    reply = graph.messages_to(MARIA)[1]  # after the template: the pin, then "anything else?"
    assert reply["type"] == "location"
    assert reply["location"]["name"] == "Santa Ana - Punto Principal"


def test_131047_on_the_free_form_message_is_retried_as_the_template(
    client: FlaskClient, nsettings: Settings, graph: FakeGraphAPI, db_pool: ConnectionPool
) -> None:
    _customer_writes(client, nsettings, MARIA, "Hola", "wamid.IN-3")
    before = len(graph.messages_to(MARIA))
    graph.fail_next(status=400, code=131047, details="More than 24 hours have passed since the recipient last "
                                                     "replied to the sender number.")
    _notify(client, nsettings, "SV20260105007834", "ARRIVED_AT_DESTINATION")
    after = graph.messages_to(MARIA)[before:]
    assert [b["type"] for b in after] == ["template"]
    [note] = notifications(db_pool)
    assert (note["mode"], note["status"]) == ("template", "accepted")
    kinds = rows(db_pool, "SELECT kind, status, error_code FROM messages WHERE idempotency_key LIKE 'notification:%%'"
                          " ORDER BY id")
    assert kinds == [{"kind": "buttons", "status": "failed", "error_code": "131047"},
                     {"kind": "template", "status": "accepted", "error_code": None}]


def test_131047_reported_by_status_callback_sends_the_template(
    client: FlaskClient, nsettings: Settings, graph: FakeGraphAPI, db_pool: ConnectionPool
) -> None:
    _customer_writes(client, nsettings, MARIA, "Hola", "wamid.IN-4")
    _notify(client, nsettings, "SV20260105007834", "ARRIVED_AT_DESTINATION")
    free_form = notifications(db_pool)[0]["provider_message_id"]
    assert post_meta(client, _status_webhook(free_form, "failed", "meta_status_failed_131047.json")).status_code == 200
    run_jobs(nsettings)
    sent = graph.messages_to(MARIA)
    assert [b["type"] for b in sent[-2:]] == ["interactive", "template"]
    [note] = notifications(db_pool)
    assert (note["mode"], note["status"]) == ("template", "accepted")
    assert note["provider_message_id"] == graph.sent_ids[-1]


def test_status_callbacks_update_the_notification_log(
    client: FlaskClient, nsettings: Settings, graph: FakeGraphAPI, db_pool: ConnectionPool
) -> None:
    _notify(client, nsettings, "SV20260105007834", "ARRIVED_AT_DESTINATION")
    wamid = notifications(db_pool)[0]["provider_message_id"]
    for status in ("read", "delivered", "sent"):  # out of order: read wins
        post_meta(client, _status_webhook(wamid, status))
    run_jobs(nsettings)
    [note] = notifications(db_pool)
    assert note["status"] == "read"
    assert note["delivered_at"] is not None and note["read_at"] is not None


def test_opted_out_customers_are_not_notified_until_they_opt_back_in(
    client: FlaskClient, nsettings: Settings, graph: FakeGraphAPI, db_pool: ConnectionPool
) -> None:
    _customer_writes(client, nsettings, MARIA, "BAJA", "wamid.IN-5")
    before = len(graph.messages_to(MARIA))
    _notify(client, nsettings, "SV20260105007834", "ARRIVED_AT_DESTINATION")
    assert len(graph.messages_to(MARIA)) == before
    assert [(n["status"], n["error"]) for n in notifications(db_pool)] == [
        ("skipped", "the customer opted out of notifications")]
    _customer_writes(client, nsettings, MARIA, "ALTA", "wamid.IN-6")
    before = len(graph.messages_to(MARIA))
    _notify(client, nsettings, "SV20260106012345", "ARRIVED_AT_DESTINATION")
    assert [b["type"] for b in graph.messages_to(MARIA)[before:]] == ["interactive"]


def test_quiet_hours_defer_the_message_to_the_morning_and_do_not_drop_it(
    meta_settings: Settings, core_url: str, graph: FakeGraphAPI, db_pool: ConnectionPool
) -> None:
    local = datetime.now(ZoneInfo("America/El_Salvador"))
    start, end = (local - timedelta(hours=1)).strftime("%H:%M"), (local + timedelta(hours=1)).strftime("%H:%M")
    settings = notification_settings(meta_settings, core_url, quiet_hours_start=start, quiet_hours_end=end)
    with create_app(settings).test_client() as client:
        _notify(client, settings, "SV20260105007834", "ARRIVED_AT_DESTINATION")
    assert graph.messages_to(MARIA) == []
    [note] = notifications(db_pool)
    assert note["status"] == "deferred"
    assert note["send_after"].astimezone(ZoneInfo("America/El_Salvador")).strftime("%H:%M") == end
    rt = build_runtime(settings, pool_size=2)
    try:
        assert sending.send(rt, note["id"], now=note["send_after"] - timedelta(minutes=1)).result == "not_waiting"
        assert sending.send(rt, note["id"], now=note["send_after"] + timedelta(seconds=1)).result == "sent"
        assert sending.send(rt, note["id"], now=note["send_after"] + timedelta(seconds=2)).result == "not_waiting"
    finally:
        rt.close()
    assert [b["template"]["name"] for b in graph.messages_to(MARIA)] == ["paquete_llego"]


def test_at_most_one_message_per_customer_per_package_status(
    client: FlaskClient, nsettings: Settings, graph: FakeGraphAPI, db_pool: ConnectionPool
) -> None:
    for event_id in ("a-1", "a-2", "a-3"):  # the core fired three events for the same change
        _notify(client, nsettings, "SV20260105007834", "ARRIVED_AT_DESTINATION", event_id=event_id)
    assert len(graph.messages_to(MARIA)) == 1
    assert len(notifications(db_pool)) == 1


def test_delivered_with_a_refund_tells_the_sender_amount_place_and_dui(
    client: FlaskClient, nsettings: Settings, graph: FakeGraphAPI, db_pool: ConnectionPool
) -> None:
    _notify(client, nsettings, "SV20260103008921", "DELIVERED")
    [body] = graph.messages_to(JUAN)
    assert body["template"]["name"] == "reembolso_disponible"
    assert _template_params(body) == ["Juan", "SV20260103008921", "$40.00",
                                      "San Salvador - Punto Centro (Calle Arce #450, entre 7ª y 9ª Av. Sur)"]
    message = rows(db_pool, "SELECT body FROM messages WHERE direction = 'out'")[0]["body"]
    assert "Lleva tu DUI" in message
    assert graph.messages_to("+50370000005") == []  # the recipient is not told about the sender's money


def test_returned_to_sender_tells_the_sender(
    client: FlaskClient, nsettings: Settings, graph: FakeGraphAPI
) -> None:
    _notify(client, nsettings, "SV20260105007834", "RETURNED_TO_SENDER")
    [body] = graph.messages_to("+50370000006")
    assert body["template"]["name"] == "paquete_devuelto"
    assert _template_params(body)[2] == "San Miguel - Punto Principal (Av. Roosevelt Sur #23)"
    assert graph.messages_to(MARIA) == []


def test_in_transit_and_received_are_off_by_default_and_can_be_switched_on(
    meta_settings: Settings, core_url: str, graph: FakeGraphAPI, db_pool: ConnectionPool
) -> None:
    settings = notification_settings(meta_settings, core_url)
    with create_app(settings).test_client() as client:
        _notify(client, settings, "SV20260106012345", "IN_TRANSIT")
        _notify(client, settings, "SV20260106012890", "RECEIVED_AT_ORIGIN")
    assert graph.sent == []
    assert notifications(db_pool) == []
    settings = settings.with_overrides(notify_in_transit=True, notify_received=True)
    with create_app(settings).test_client() as client:
        _notify(client, settings, "SV20260106012345", "IN_TRANSIT")
        _notify(client, settings, "SV20260106012890", "RECEIVED_AT_ORIGIN")
    assert [b["template"]["name"] for b in graph.messages_to(MARIA)] == ["paquete_en_camino"]
    assert [b["template"]["name"] for b in graph.messages_to(JUAN)] == ["paquete_recibido"]


def test_a_rate_limited_send_is_deferred_and_sent_once_later(
    client: FlaskClient, nsettings: Settings, graph: FakeGraphAPI, db_pool: ConnectionPool
) -> None:
    graph.fail_next(status=400, code=130429, details="Cloud API message throughput has been reached.")
    _notify(client, nsettings, "SV20260105007834", "ARRIVED_AT_DESTINATION")
    [note] = notifications(db_pool)
    assert note["status"] == "deferred"
    assert note["error"].startswith("130429")
    assert graph.messages_to(MARIA) == []
    rt = build_runtime(nsettings, pool_size=2)
    try:
        assert sending.send(rt, note["id"], now=note["send_after"] + timedelta(seconds=1)).result == "sent"
    finally:
        rt.close()
    assert len(graph.messages_to(MARIA)) == 1
    assert notifications(db_pool)[0]["attempts"] == 2


def test_reports_refused_by_the_core_are_retried_until_accepted(
    meta_settings: Settings, core_url: str, graph: FakeGraphAPI, db_pool: ConnectionPool
) -> None:
    wrong_core = notification_settings(meta_settings, core_url, core_api_url=core_url + "/nowhere")
    right_core = notification_settings(meta_settings, core_url)
    with create_app(right_core).test_client() as client:
        assert post_event(client, status_event("SV20260105007834", "ARRIVED_AT_DESTINATION")).status_code == 202
    run_jobs(right_core)  # decided and sent with the right core...
    with db_pool.connection() as conn:
        conn.execute("UPDATE notification_log SET reported_at = NULL, sent_at = now() - interval '1 minute'")
    rt = build_runtime(wrong_core, pool_size=2)
    try:
        assert reporting.report_unreported(rt) == 0  # ...but the core refused the report (404)
    finally:
        rt.close()
    assert notifications(db_pool)[0]["report_attempts"] == 2
    rt = build_runtime(right_core, pool_size=2)
    try:
        assert reporting.report_unreported(rt) == 1
        assert reporting.report_unreported(rt) == 0
    finally:
        rt.close()
    note = notifications(db_pool)[0]
    assert note["reported_at"] is not None


def test_through_twilio_the_template_goes_as_its_content_sid(
    settings: Settings, core_url: str, db_pool: ConnectionPool
) -> None:
    import json

    from tests.fakes.twilio_api import FakeTwilioAPI

    sid = "AC" + "b2" * 16
    with FakeTwilioAPI(account_sid=sid, auth_token="12345") as fake:
        twilio = notification_settings(settings, core_url, whatsapp_provider="twilio", twilio_account_sid=sid,
                                       twilio_api_base_url=fake.url, public_base_url="https://encargo.example")
        with create_app(twilio).test_client() as client:
            _notify(client, twilio, "SV20260105007834", "ARRIVED_AT_DESTINATION")
        [sent] = fake.messages_to(MARIA)
    assert sent["ContentSid"] == "HX5b1d6a8f0c2e4b7a9d3f1e0c8b6a4d21"
    assert json.loads(sent["ContentVariables"])["1"] == "María"
    assert json.loads(sent["ContentVariables"])["6"] == "$35.00"
    [note] = notifications(db_pool)
    assert (note["channel"], note["mode"], note["provider_message_id"]) == ("twilio", "template", fake.sent_ids[0])


def test_an_event_for_a_package_the_core_does_not_know_fails_visibly_and_sends_nothing(
    client: FlaskClient, nsettings: Settings, graph: FakeGraphAPI, db_pool: ConnectionPool
) -> None:
    _notify(client, nsettings, "SV99999999999999", "ARRIVED_AT_DESTINATION")
    assert rows(db_pool, "SELECT state, error FROM core_events") == [
        {"state": "failed", "error": "the core does not know this tracking code"}]
    assert graph.sent == []
    assert notifications(db_pool) == []
