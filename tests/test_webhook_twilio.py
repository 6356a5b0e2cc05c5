"""Twilio WhatsApp webhook: RequestValidator signatures, form mapping, status callbacks, replies via the REST API."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask.testing import FlaskClient
from psycopg_pool import ConnectionPool
from werkzeug.datastructures import MultiDict

from channels import twilio_webhook
from channels.twilio_webhook import EMPTY_TWIML
from config import Settings
from tests.conftest import load_fixture
from tests.fakes.twilio_api import DEFAULT_ACCOUNT_SID, FakeTwilioAPI
from tests.harness import outbound, post_twilio, rows, run_jobs
from web.app import create_app

OUR_NUMBER = "whatsapp:+14155238886"


@pytest.fixture
def twilio() -> Iterator[FakeTwilioAPI]:
    fake = FakeTwilioAPI(auth_token="12345").start()
    yield fake
    fake.stop()


@pytest.fixture
def twilio_settings(settings: Settings, twilio: FakeTwilioAPI) -> Settings:
    return settings.with_overrides(
        whatsapp_provider="twilio", twilio_account_sid=DEFAULT_ACCOUNT_SID, twilio_auth_token="12345",
        twilio_whatsapp_number=OUR_NUMBER, twilio_api_base_url=twilio.url, simulator_enabled=False,
    )


@pytest.fixture
def client(twilio_settings: Settings) -> Iterator[FlaskClient]:
    with create_app(twilio_settings).test_client() as c:
        yield c


def fixture_form(name: str) -> dict[str, str]:
    form = {k: str(v) for k, v in load_fixture(name).items()}
    if "Body" in form or "MessageStatus" not in form:
        form["To"] = OUR_NUMBER  # fixtures were received on other numbers
    return form


def test_published_signature_vectors() -> None:
    vectors = load_fixture("signature_vectors.json")["twilio_x_twilio_signature"]["vectors"]
    checked = 0
    for vector in vectors:
        url = vector.get("url_seen_by_app") or vector["url"]
        if "params_multi" in vector:
            params: object = MultiDict(vector["params_multi"])
        else:
            params = vector.get("params", {})
        if "body" in vector:
            continue  # JSON-body signatures are not used for WhatsApp messaging webhooks
        assert twilio_webhook.signature_is_valid(vector["auth_token"], url, params, vector["x_twilio_signature"])
        if "negative_example" in vector:
            assert not twilio_webhook.signature_is_valid(
                vector["auth_token"], url, params, vector["negative_example"]["x_twilio_signature"]
            )
        checked += 1
    assert checked == 5


@pytest.mark.parametrize(("signature", "status"), [("", 401), ("bm90IGEgc2lnbmF0dXJl", 403)])
def test_bad_signature_refused(client: FlaskClient, db_pool: ConnectionPool, signature: str, status: int) -> None:
    resp = post_twilio(client, fixture_form("twilio_inbound_text.json"), signature=signature)
    assert resp.status_code == status
    assert rows(db_pool, "SELECT id FROM webhook_events") == []


def test_signature_over_other_url_refused(client: FlaskClient) -> None:
    form = fixture_form("twilio_inbound_text.json")
    sig = twilio_webhook.sign("12345", "http://localhost/elsewhere", form)
    assert post_twilio(client, form, signature=sig).status_code == 403


def test_public_base_url_is_what_twilio_signed(twilio_settings: Settings, db_pool: ConnectionPool) -> None:
    app = create_app(twilio_settings.with_overrides(public_base_url="https://bot.example.com"))
    form = fixture_form("twilio_inbound_text.json")
    sig = twilio_webhook.sign("12345", "https://bot.example.com/webhooks/twilio", form)
    with app.test_client() as c:
        assert post_twilio(c, form, signature=sig).status_code == 200


def test_not_a_form_or_no_sid_gets_400(client: FlaskClient) -> None:
    resp = client.post("/webhooks/twilio", json={"Body": "hola"}, headers={"X-Twilio-Signature": "x"})
    assert resp.status_code == 400
    form = {"From": "whatsapp:+50370000001", "Body": "hola"}
    resp = post_twilio(client, form)
    assert resp.status_code == 400
    assert "MessageSid" in resp.get_json()["error"]


@pytest.mark.parametrize(("fixture", "expected"), [
    ("twilio_inbound_text.json", "Transportes Express El Salvador"),
    ("twilio_inbound_media.json", "Recibí tu imagen"),
    ("twilio_inbound_location.json", "Gracias por tu ubicación"),
    ("twilio_inbound_quick_reply.json", "Transportes Express El Salvador"),
])
def test_inbound_gets_reply_through_twilio(client: FlaskClient, twilio_settings: Settings, twilio: FakeTwilioAPI,
                                           db_pool: ConnectionPool, fixture: str, expected: str) -> None:
    form = fixture_form(fixture)
    resp = post_twilio(client, form)
    assert resp.status_code == 200
    assert resp.data.decode() == EMPTY_TWIML
    assert resp.mimetype == "text/xml"
    run_jobs(twilio_settings)
    sent = twilio.messages_to(form["From"].removeprefix("whatsapp:"))
    assert sent, "no reply reached Twilio"
    assert expected in "\n".join(m.get("Body", "") for m in sent)
    assert all(m["From"] == OUR_NUMBER for m in sent)


def test_quick_reply_keeps_button_payload(client: FlaskClient, twilio_settings: Settings,
                                          db_pool: ConnectionPool) -> None:
    post_twilio(client, fixture_form("twilio_inbound_quick_reply.json"))
    run_jobs(twilio_settings)
    inbound = rows(db_pool, "SELECT kind, payload FROM messages WHERE direction = 'in'")[0]
    assert inbound["kind"] == "button_reply"
    assert inbound["payload"]["reply_id"] == "postback_data_1234"


def test_redelivered_message_sid_processed_once(client: FlaskClient, twilio_settings: Settings,
                                                twilio: FakeTwilioAPI, db_pool: ConnectionPool) -> None:
    form = fixture_form("twilio_inbound_text.json")
    assert post_twilio(client, form).status_code == 200
    assert post_twilio(client, form).status_code == 200
    run_jobs(twilio_settings)
    assert len(rows(db_pool, "SELECT id FROM webhook_events")) == 1
    assert len(twilio.sent) == 2  # welcome + menu, once


def test_status_callbacks_update_the_sent_message(client: FlaskClient, twilio_settings: Settings,
                                                  twilio: FakeTwilioAPI, db_pool: ConnectionPool) -> None:
    post_twilio(client, fixture_form("twilio_inbound_text.json"))
    run_jobs(twilio_settings)
    sid = outbound(db_pool)[0]["provider_message_id"]
    assert sid.startswith("SM")
    read = fixture_form("twilio_status_read.json")
    read["MessageSid"] = read["SmsSid"] = sid
    delivered = {**read, "MessageStatus": "delivered", "SmsStatus": "delivered", "EventType": "DELIVERED"}
    for form in (read, delivered, read):
        assert post_twilio(client, form, path="/webhooks/twilio/status").status_code == 200
    run_jobs(twilio_settings)
    first = rows(db_pool, "SELECT status, read_at FROM messages WHERE provider_message_id = %s", (sid,))[0]
    assert first["status"] == "read"
    assert first["read_at"] is not None


def test_undelivered_outside_window_is_recorded(client: FlaskClient, twilio_settings: Settings,
                                                twilio: FakeTwilioAPI, db_pool: ConnectionPool) -> None:
    post_twilio(client, fixture_form("twilio_inbound_text.json"))
    run_jobs(twilio_settings)
    sid = outbound(db_pool)[1]["provider_message_id"]
    failed = {"MessageSid": sid, "MessageStatus": "undelivered", "ErrorCode": "63016",
              "From": OUR_NUMBER, "To": "whatsapp:+886123456789", "AccountSid": DEFAULT_ACCOUNT_SID}
    assert post_twilio(client, failed, path="/webhooks/twilio/status").status_code == 200
    run_jobs(twilio_settings)
    row = rows(db_pool, "SELECT status, error_code FROM messages WHERE provider_message_id = %s", (sid,))[0]
    assert row == {"status": "failed", "error_code": "63016"}
