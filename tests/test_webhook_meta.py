"""Meta Cloud API webhook: verification, signatures, bad input, and what each inbound type gets back.

Every message goes through the real path: signed POST to the Flask app, row in
webhook_events, RQ job run by a worker, reply sent through the Meta transport
to a fake Graph API on loopback that speaks Meta's wire format.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

import pytest
from flask.testing import FlaskClient
from psycopg_pool import ConnectionPool

from channels import meta_webhook
from config import Settings
from tests.conftest import fixture_bytes, load_fixture
from tests.fakes.graph_api import FakeGraphAPI
from tests.harness import outbound, post_meta, rows, run_jobs, text_payload, to_our_number
from web.app import create_app


@pytest.fixture
def client(meta_settings: Settings) -> Iterator[FlaskClient]:
    with create_app(meta_settings).test_client() as c:
        yield c


def bodies_text(sent: list[dict[str, Any]]) -> str:
    """Everything the customer reads in the sent messages (text bodies, interactive bodies and rows)."""
    parts: list[str] = []
    for body in sent:
        if body.get("type") == "text":
            parts.append(body["text"]["body"])
        elif body.get("type") == "interactive":
            inter = body["interactive"]
            parts.append(inter["body"]["text"])
            for section in inter.get("action", {}).get("sections", []):
                parts.extend(row["title"] for row in section["rows"])
            parts.extend(b["reply"]["title"] for b in inter.get("action", {}).get("buttons", []))
    return "\n".join(parts)


# --- verification -------------------------------------------------------------------------


def test_verification_echoes_challenge(client: FlaskClient) -> None:
    query = "hub.mode=subscribe&hub.verify_token=test-verify-token&hub.challenge=1158201444"
    resp = client.get(f"/webhooks/whatsapp?{query}")
    assert resp.status_code == 200
    assert resp.data == b"1158201444"
    assert resp.mimetype == "text/plain"


@pytest.mark.parametrize("query", [
    "hub.mode=subscribe&hub.verify_token=wrong&hub.challenge=1",
    "hub.mode=unsubscribe&hub.verify_token=test-verify-token&hub.challenge=1",
    "hub.challenge=1",
])
def test_verification_refused(client: FlaskClient, query: str) -> None:
    assert client.get(f"/webhooks/whatsapp?{query}").status_code == 403


# --- signatures ----------------------------------------------------------------------------


def test_published_signature_vectors() -> None:
    vectors = load_fixture("signature_vectors.json")["meta_x_hub_signature_256"]["vectors"]
    for vector in vectors:
        raw = vector["raw_body_as_sent_on_the_wire"].encode()
        assert meta_webhook.signature_is_valid(vector["app_secret"], raw, vector["x_hub_signature_256"])
        # the decoded (re-serialised) text is not what Meta signs
        if "decoded_body_for_reference_NOT_what_is_signed" in vector:
            decoded = vector["decoded_body_for_reference_NOT_what_is_signed"].encode()
            assert not meta_webhook.signature_is_valid(vector["app_secret"], decoded, vector["x_hub_signature_256"])
        assert not meta_webhook.signature_is_valid("other-secret", raw, vector["x_hub_signature_256"])


@pytest.mark.parametrize(("signature", "status"), [("", 401), ("sha256=" + "0" * 64, 403), ("md5=abc", 403)])
def test_bad_signature_refused_and_nothing_stored(client: FlaskClient, db_pool: ConnectionPool,
                                                  caplog: pytest.LogCaptureFixture, signature: str,
                                                  status: int) -> None:
    body = fixture_bytes("meta_text.json")
    resp = post_meta(client, body, signature=signature)
    assert resp.status_code == status
    assert rows(db_pool, "SELECT id FROM webhook_events") == []
    assert "Does it come in another color" not in caplog.text  # the body is never logged


def test_signed_with_other_secret_refused(client: FlaskClient, db_pool: ConnectionPool) -> None:
    assert post_meta(client, fixture_bytes("meta_text.json"), secret="not-our-secret").status_code == 403
    assert rows(db_pool, "SELECT id FROM webhook_events") == []


def test_no_app_secret_configured_refuses_everything(meta_settings: Settings, db_pool: ConnectionPool) -> None:
    app = create_app(meta_settings.with_overrides(whatsapp_provider="local", meta_app_secret=""))
    with app.test_client() as c:
        resp = post_meta(c, fixture_bytes("meta_text.json"))
    assert resp.status_code == 403
    assert resp.get_json() == {"error": "webhook signing secret is not configured"}


# --- malformed and oversize input ----------------------------------------------------------


@pytest.mark.parametrize(("body", "reason"), [
    (b"{not json", "body is not valid JSON"),
    (b"[1, 2]", "expected an object with an 'entry' list"),
    (b'{"object": "whatsapp_business_account", "entry": {}}', "expected an object with an 'entry' list"),
])
def test_malformed_body_gets_400_with_reason(client: FlaskClient, body: bytes, reason: str) -> None:
    resp = post_meta(client, body)
    assert resp.status_code == 400
    assert reason in resp.get_json()["error"]


def test_oversize_body_gets_413(client: FlaskClient, db_pool: ConnectionPool) -> None:
    body = b'{"entry": [], "pad": "' + b"x" * (3 * 1024 * 1024) + b'"}'
    resp = post_meta(client, body)
    assert resp.status_code == 413
    assert rows(db_pool, "SELECT id FROM webhook_events") == []


def test_unknown_fields_and_other_objects_are_acknowledged(client: FlaskClient, db_pool: ConnectionPool) -> None:
    payload = load_fixture("meta_text.json")
    payload["entry"][0]["changes"][0]["value"]["brand_new_field"] = {"x": 1}
    payload["entry"][0]["changes"][0]["value"]["messages"][0]["another_new_field"] = True
    assert post_meta(client, payload).status_code == 200
    assert post_meta(client, {"object": "page", "entry": [{"id": "1"}]}).status_code == 200
    other_field = {"object": "whatsapp_business_account",
                   "entry": [{"id": "1", "changes": [{"field": "account_update", "value": {}}]}]}
    assert post_meta(client, other_field).status_code == 200
    assert len(rows(db_pool, "SELECT id FROM webhook_events")) == 1


# --- each inbound type, through the worker, to what the customer sees -------------------------


@pytest.mark.parametrize(("fixture", "expected"), [
    ("meta_text.json", ["Transportes Express El Salvador", "Rastrear paquete"]),
    ("meta_text_v25_bsuid.json", ["Transportes Express El Salvador"]),
    ("meta_image.json", ["Recibí tu imagen", "escríbeme el código de rastreo"]),  # its caption says nothing to us
    ("meta_audio_voice.json", ["Recibí tu nota de voz", "no puedo escuchar audios"]),
    ("meta_document.json", ["Recibí tu documento"]),
    ("meta_location.json", ["Gracias por tu ubicación"]),
    ("meta_unsupported.json", ["No pude leer ese mensaje"]),
    ("meta_interactive_list_reply.json", ["Transportes Express El Salvador"]),
    ("meta_interactive_button_reply.json", ["Transportes Express El Salvador"]),
    ("meta_button_template_quick_reply.json", ["Transportes Express El Salvador"]),
])
def test_inbound_type_gets_reply(client: FlaskClient, meta_settings: Settings, graph: FakeGraphAPI,
                                 db_pool: ConnectionPool, fixture: str, expected: list[str]) -> None:
    payload = load_fixture(fixture)
    phone = "+" + payload["entry"][0]["changes"][0]["value"]["messages"][0]["from"]
    assert post_meta(client, to_our_number(payload)).status_code == 200
    run_jobs(meta_settings)
    text = bodies_text(graph.messages_to(phone))
    for fragment in expected:
        assert fragment in text
    stored = rows(db_pool, "SELECT kind, body, payload FROM messages WHERE direction = 'in'")
    assert len(stored) == 1
    assert all(m["status"] in ("accepted", "sent") for m in outbound(db_pool))


def test_button_reply_keeps_the_tapped_id(client: FlaskClient, meta_settings: Settings,
                                          db_pool: ConnectionPool) -> None:
    post_meta(client, fixture_bytes("meta_interactive_list_reply.json"))
    run_jobs(meta_settings)
    inbound = rows(db_pool, "SELECT kind, body, payload FROM messages WHERE direction = 'in'")[0]
    assert inbound["kind"] == "list_reply"
    assert inbound["payload"]["reply_id"] == "priority_express"
    assert inbound["body"] == "Priority Mail Express"


def test_reaction_is_stored_without_reply(client: FlaskClient, meta_settings: Settings, graph: FakeGraphAPI,
                                          db_pool: ConnectionPool) -> None:
    assert post_meta(client, fixture_bytes("meta_reaction.json")).status_code == 200
    run_jobs(meta_settings)
    assert graph.sent == []
    inbound = rows(db_pool, "SELECT kind, payload FROM messages WHERE direction = 'in'")[0]
    assert inbound["kind"] == "reaction"
    assert inbound["payload"]["reaction_emoji"] == "👍"


def test_media_is_stored_by_id(client: FlaskClient, meta_settings: Settings, db_pool: ConnectionPool) -> None:
    post_meta(client, to_our_number(load_fixture("meta_image.json")))
    run_jobs(meta_settings)
    media_id = load_fixture("meta_image.json")["entry"][0]["changes"][0]["value"]["messages"][0]["image"]["id"]
    inbound = rows(db_pool, "SELECT payload FROM messages WHERE direction = 'in'")[0]
    assert inbound["payload"]["media_ref"] == media_id
    assert inbound["payload"]["media_type"] == "image"


def test_several_entries_and_messages_in_one_post(client: FlaskClient, meta_settings: Settings,
                                                  graph: FakeGraphAPI, db_pool: ConnectionPool) -> None:
    one = text_payload("50370000001", "Hola", "wamid.A1")
    two = text_payload("50370000002", "Buenas", "wamid.B1")
    two["entry"][0]["changes"][0]["value"]["messages"].append(
        {"from": "50370000002", "id": "wamid.B2", "timestamp": "1749416390", "type": "text", "text": {"body": "?"}}
    )
    combined = copy.deepcopy(one)
    combined["entry"].extend(two["entry"])
    assert post_meta(client, combined).status_code == 200
    assert len(rows(db_pool, "SELECT id FROM webhook_events")) == 3
    run_jobs(meta_settings)
    assert len(graph.messages_to("+50370000001")) == 2
    assert len(graph.messages_to("+50370000002")) == 4


def test_username_only_customer_is_answered_by_bsuid(client: FlaskClient, meta_settings: Settings,
                                                     graph: FakeGraphAPI, db_pool: ConnectionPool) -> None:
    payload = load_fixture("meta_text_username_only.json")
    assert post_meta(client, to_our_number(payload)).status_code == 200
    run_jobs(meta_settings)
    sent = graph.messages_to("US.13491208655302741918")
    assert len(sent) == 2
    assert all("to" not in body for body in sent)
    contact = rows(db_pool, "SELECT phone_hash, phone_encrypted, bsuid FROM contacts")
    assert contact == [{"phone_hash": None, "phone_encrypted": None, "bsuid": "US.13491208655302741918"}]


def test_phone_and_bsuid_are_both_kept_for_one_customer(client: FlaskClient, meta_settings: Settings,
                                                         graph: FakeGraphAPI, db_pool: ConnectionPool) -> None:
    post_meta(client, to_our_number(load_fixture("meta_text_v25_bsuid.json")))
    later = to_our_number(load_fixture("meta_text_username_only.json"))  # same BSUID, phone now hidden
    later["entry"][0]["changes"][0]["value"]["messages"][0]["id"] = "wamid.LATER"
    post_meta(client, later)
    run_jobs(meta_settings)
    contacts = rows(db_pool, "SELECT bsuid, phone_hash IS NOT NULL AS has_phone FROM contacts")
    assert contacts == [{"bsuid": "US.13491208655302741918", "has_phone": True}]
    assert len(rows(db_pool, "SELECT id FROM conversations")) == 1
    # the customer is answered on the phone WhatsApp gave us first
    assert len(graph.messages_to("+16315551181")) == 4


def test_username_customer_and_phone_customer_are_not_mixed(client: FlaskClient, meta_settings: Settings,
                                                            graph: FakeGraphAPI, db_pool: ConnectionPool) -> None:
    username = load_fixture("meta_text_username_only.json")
    post_meta(client, to_our_number(username))
    post_meta(client, text_payload("50370000003", "Hola", "wamid.PHONE1"))
    run_jobs(meta_settings)
    assert len(rows(db_pool, "SELECT id FROM contacts")) == 2
    assert len(rows(db_pool, "SELECT id FROM conversations")) == 2
    assert len(graph.messages_to("+50370000003")) == 2


def test_phone_is_encrypted_at_rest(client: FlaskClient, meta_settings: Settings, db_pool: ConnectionPool) -> None:
    post_meta(client, text_payload("50370000001", "Hola", "wamid.ENC"))
    run_jobs(meta_settings)
    contact = rows(db_pool, "SELECT phone_hash, phone_encrypted FROM contacts")[0]
    assert "50370000001" not in json.dumps(contact)
    event = rows(db_pool, "SELECT payload_encrypted FROM webhook_events")[0]
    assert "50370000001" not in event["payload_encrypted"]


def test_unknown_receiving_number_is_acknowledged_not_answered(client: FlaskClient, meta_settings: Settings,
                                                               graph: FakeGraphAPI, db_pool: ConnectionPool) -> None:
    payload = text_payload("50370000001", "Hola", "wamid.OTHER", phone_number_id="999999")
    assert post_meta(client, payload).status_code == 200
    run_jobs(meta_settings)
    assert graph.sent == []
    assert rows(db_pool, "SELECT status, error FROM webhook_events") == [
        {"status": "unroutable", "error": "no tenant for the receiving number"}
    ]
