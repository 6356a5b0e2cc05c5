"""Meta delivery receipts: a message's status only moves forward, whatever order receipts arrive in."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest
from flask.testing import FlaskClient
from psycopg_pool import ConnectionPool

from channels import twilio_webhook
from config import Settings
from tests.conftest import load_fixture
from tests.fakes.twilio_api import DEFAULT_ACCOUNT_SID, FakeTwilioAPI
from tests.harness import outbound, post_meta, post_twilio, rows, run_jobs, status_payload, text_payload
from web.app import create_app


@pytest.fixture
def client(meta_settings: Settings) -> Iterator[FlaskClient]:
    with create_app(meta_settings).test_client() as c:
        yield c


def send_hola(client: FlaskClient, settings: Settings, pool: ConnectionPool) -> list[str]:
    post_meta(client, text_payload("50370000001", "Hola", "wamid.IN1"))
    run_jobs(settings)
    return [m["provider_message_id"] for m in outbound(pool)]


def status_of(pool: ConnectionPool, wamid: str) -> dict[str, Any]:
    return rows(pool, "SELECT status, error_code, error_title, sent_at, delivered_at, read_at FROM messages"
                      " WHERE provider_message_id = %s", (wamid,))[0]


def test_out_of_order_and_repeated_receipts(client: FlaskClient, meta_settings: Settings,
                                            db_pool: ConnectionPool) -> None:
    wamid = send_hola(client, meta_settings, db_pool)[0]
    for status in ("read", "sent", "delivered", "read", "sent"):
        assert post_meta(client, status_payload("meta_status_sent.json", wamid, status)).status_code == 200
    run_jobs(meta_settings)
    row = status_of(db_pool, wamid)
    assert row["status"] == "read"
    assert row["read_at"] is not None
    # "sent" and "read" arrived twice: stored once each
    assert len(rows(db_pool, "SELECT id FROM webhook_events WHERE kind = 'status'")) == 3


def test_failed_is_final_and_keeps_the_reason(client: FlaskClient, meta_settings: Settings,
                                              db_pool: ConnectionPool) -> None:
    wamid = send_hola(client, meta_settings, db_pool)[1]
    post_meta(client, status_payload("meta_status_failed_131047.json", wamid))
    post_meta(client, status_payload("meta_status_sent.json", wamid, "delivered"))
    run_jobs(meta_settings)
    row = status_of(db_pool, wamid)
    assert row["status"] == "failed"
    assert row["error_code"] == "131047"
    assert row["error_title"] == "Re-engagement message"


def test_statuses_only_payload_with_several_items(client: FlaskClient, meta_settings: Settings,
                                                  db_pool: ConnectionPool) -> None:
    first, second = send_hola(client, meta_settings, db_pool)
    payload = status_payload("meta_status_read.json", first)
    extra = copy.deepcopy(payload["entry"][0]["changes"][0]["value"]["statuses"][0])
    extra.update(id=second, status="delivered")
    payload["entry"][0]["changes"][0]["value"]["statuses"].append(extra)
    assert post_meta(client, payload).status_code == 200
    run_jobs(meta_settings)
    assert status_of(db_pool, first)["status"] == "read"
    assert status_of(db_pool, second)["status"] == "delivered"


def test_receipt_before_the_send_is_recorded_is_retried(client: FlaskClient, meta_settings: Settings,
                                                        db_pool: ConnectionPool, redis_conn: Any) -> None:
    post_meta(client, status_payload("meta_status_sent.json", "wamid.NOT_YET_KNOWN"))
    run_jobs(meta_settings)
    event = rows(db_pool, "SELECT status, attempts FROM webhook_events")[0]
    assert event == {"status": "received", "attempts": 1}
    # rq keeps the job for a retry with back-off instead of dropping the receipt
    assert redis_conn.zcard("rq:scheduled:encargo") == 1


def test_receipt_matched_by_our_reference_when_send_response_was_lost(client: FlaskClient,
                                                                      meta_settings: Settings,
                                                                      db_pool: ConnectionPool) -> None:
    send_hola(client, meta_settings, db_pool)
    with db_pool.connection() as conn:
        conn.execute("UPDATE messages SET provider_message_id = NULL, status = 'failed', status_rank = 6"
                     " WHERE idempotency_key = '1:0'")
    payload = status_payload("meta_status_sent.json", "wamid.FROM_META", "delivered")
    payload["entry"][0]["changes"][0]["value"]["statuses"][0]["biz_opaque_callback_data"] = "1:0"
    post_meta(client, payload)
    run_jobs(meta_settings)
    row = rows(db_pool, "SELECT status, provider_message_id FROM messages WHERE idempotency_key = '1:0'")[0]
    assert row == {"status": "delivered", "provider_message_id": "wamid.FROM_META"}


# --- replies whose send response was lost: the receipt's reference finds them ------------------


def interrupt(pool: ConnectionPool, idempotency_key: str) -> None:
    """What runtime.delivery leaves when a worker died mid-send: failed/interrupted, no provider id."""
    with pool.connection() as conn:
        conn.execute("UPDATE messages SET provider_message_id = NULL, status = 'failed', status_rank = 6,"
                     " error_code = 'interrupted', error_title = 'the worker stopped while sending',"
                     " failed_at = now() WHERE idempotency_key = %s", (idempotency_key,))


def reply_row(pool: ConnectionPool, idempotency_key: str) -> dict[str, Any]:
    return rows(pool, "SELECT status, provider_message_id, error_code, error_title, failed_at IS NULL AS unfailed,"
                      " sent_at IS NOT NULL AS stamped FROM messages WHERE idempotency_key = %s",
                (idempotency_key,))[0]


def test_interrupted_meta_reply_becomes_what_the_customer_got(client: FlaskClient, meta_settings: Settings,
                                                              db_pool: ConnectionPool) -> None:
    wamid = send_hola(client, meta_settings, db_pool)[0]
    interrupt(db_pool, "1:0")
    payload = status_payload("meta_status_sent.json", wamid, "sent")
    payload["entry"][0]["changes"][0]["value"]["statuses"][0]["biz_opaque_callback_data"] = "1:0"
    assert post_meta(client, payload).status_code == 200
    run_jobs(meta_settings)
    assert reply_row(db_pool, "1:0") == {"status": "sent", "provider_message_id": wamid, "error_code": None,
                                         "error_title": None, "unfailed": True, "stamped": True}
    post_meta(client, status_payload("meta_status_read.json", wamid))  # later receipts find it by its id
    run_jobs(meta_settings)
    assert reply_row(db_pool, "1:0")["status"] == "read"
    # what the counts see: nothing failed any more
    assert rows(db_pool, "SELECT count(*) AS n FROM messages WHERE direction = 'out' AND status = 'failed'") \
        == [{"n": 0}]


@pytest.fixture
def twilio() -> Iterator[FakeTwilioAPI]:
    fake = FakeTwilioAPI(auth_token="12345").start()
    yield fake
    fake.stop()


def test_interrupted_twilio_reply_is_found_by_the_ref_of_its_status_callback(
        settings: Settings, twilio: FakeTwilioAPI, db_pool: ConnectionPool) -> None:
    public = "https://bot.example.com"
    twilio_settings = settings.with_overrides(
        whatsapp_provider="twilio", twilio_account_sid=DEFAULT_ACCOUNT_SID, twilio_auth_token="12345",
        twilio_whatsapp_number="whatsapp:+14155238886", twilio_api_base_url=twilio.url, simulator_enabled=False,
        public_base_url=public)
    inbound = {k: str(v) for k, v in load_fixture("twilio_inbound_text.json").items()}
    inbound["To"] = "whatsapp:+14155238886"
    with create_app(twilio_settings).test_client() as c:
        assert post_twilio(c, inbound, signature=twilio_webhook.sign(
            "12345", f"{public}/webhooks/twilio", inbound)).status_code == 200
        run_jobs(twilio_settings)
        callback = twilio.sent[0]["StatusCallback"]
        assert callback == f"{public}/webhooks/twilio?ref=1%3A0"
        sid = twilio.sent_ids[0]
        interrupt(db_pool, "1:0")
        delivered = {"MessageSid": sid, "SmsSid": sid, "MessageStatus": "delivered", "SmsStatus": "delivered",
                     "From": "whatsapp:+14155238886", "To": inbound["From"], "AccountSid": DEFAULT_ACCOUNT_SID}
        path = callback.removeprefix(public)
        assert post_twilio(c, delivered, path=path,
                           signature=twilio_webhook.sign("12345", callback, delivered)).status_code == 200
        run_jobs(twilio_settings)
    row = reply_row(db_pool, "1:0")
    assert (row["status"], row["provider_message_id"], row["error_code"]) == ("delivered", sid, None)
