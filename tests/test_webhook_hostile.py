"""Hostile input on the WhatsApp webhooks (issue 12): one bad message never costs the good ones.

Lone UTF-16 surrogates, NULs, wrong JSON types, deep nesting, huge numbers:
each bad message is quarantined with its reason (or answered as an unsupported
message when its sender is known), the good messages of the same delivery are
stored, queued and answered, and the provider gets its 200 once all of it is
durable. Whole bodies that are not webhooks get a 4xx, never a 500.
"""

from __future__ import annotations

import copy
import json
import socket
import time
from collections.abc import Iterable, Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from flask.testing import FlaskClient
from psycopg_pool import ConnectionPool

from channels import meta_webhook
from config import Settings
from notifications import events as core_events
from tests.fakes.graph_api import FakeGraphAPI
from tests.fakes.twilio_api import DEFAULT_ACCOUNT_SID, FakeTwilioAPI
from tests.harness import post_meta, post_twilio, rows, run_jobs, served, text_payload
from tests.notifications_helpers import SECRET as EVENTS_SECRET
from tests.notifications_helpers import status_event
from web.app import create_app

UNSUPPORTED_REPLY = "No pude leer ese mensaje"


@pytest.fixture
def client(meta_settings: Settings) -> Iterator[FlaskClient]:
    app = create_app(meta_settings)
    with app.test_client() as c:
        yield c
    app.extensions["db_pool"].close()
    app.extensions["redis"].close()


def _texts(graph: FakeGraphAPI, phone: str) -> str:
    return "\n".join(json.dumps(body, ensure_ascii=False) for body in graph.messages_to(phone))


def three_messages(middle_text_json: str) -> bytes:
    """A delivery of three text messages from three customers; the middle text is given as raw JSON."""
    payload = text_payload("50370000001", "Hola", "wamid.GOOD1")
    value = payload["entry"][0]["changes"][0]["value"]
    value["contacts"] = [{"profile": {"name": "Uno"}, "wa_id": "50370000001"},
                         {"profile": {"name": "Dos"}, "wa_id": "50370000002"},
                         {"profile": {"name": "Tres"}, "wa_id": "50370000003"}]
    value["messages"].append({"from": "50370000002", "id": "wamid.BAD2", "timestamp": "1749416384", "type": "text",
                              "text": {"body": "@MIDDLE@"}})
    value["messages"].append({"from": "50370000003", "id": "wamid.GOOD3", "timestamp": "1749416385", "type": "text",
                              "text": {"body": "Buenas"}})
    return json.dumps(payload).replace('"@MIDDLE@"', middle_text_json).encode()


def _events(pool: ConnectionPool) -> dict[str, dict[str, Any]]:
    found = rows(pool, "SELECT event_id, status, error FROM webhook_events ORDER BY id")
    return {row["event_id"]: row for row in found}


# --- one bad message in a delivery ---------------------------------------------------------------


@pytest.mark.parametrize("middle", [r'"hola \ud800 amigo"', r'"\udfff"', r'"\ud83d"'])
def test_a_lone_surrogate_quarantines_its_message_and_the_others_are_answered(
    client: FlaskClient, meta_settings: Settings, graph: FakeGraphAPI, db_pool: ConnectionPool, middle: str
) -> None:
    body = three_messages(middle)
    response = post_meta(client, body)
    assert response.status_code == 200
    events = _events(db_pool)
    assert set(events) == {"wamid.GOOD1", "wamid.BAD2", "wamid.GOOD3"}
    assert events["wamid.BAD2"]["status"] == "quarantined"
    assert "surrogate" in events["wamid.BAD2"]["error"]
    assert events["wamid.GOOD1"]["status"] != "quarantined"
    assert events["wamid.GOOD3"]["status"] != "quarantined"
    # Meta delivers again: acknowledged, nothing stored twice
    assert post_meta(client, body).status_code == 200
    assert len(rows(db_pool, "SELECT id FROM webhook_events")) == 3
    run_jobs(meta_settings)
    assert "Transportes Express El Salvador" in _texts(graph, "+50370000001")
    assert "Transportes Express El Salvador" in _texts(graph, "+50370000003")
    assert graph.messages_to("+50370000002") == []
    inbound = rows(db_pool, "SELECT provider_message_id FROM messages WHERE direction = 'in' ORDER BY id")
    assert [m["provider_message_id"] for m in inbound] == ["wamid.GOOD1", "wamid.GOOD3"]


def test_the_quarantined_part_is_kept_encrypted_with_its_content(client: FlaskClient, db_pool: ConnectionPool,
                                                                  meta_settings: Settings) -> None:
    from storage.crypto import Vault

    assert post_meta(client, three_messages(r'"hola \ud800"')).status_code == 200
    kept = rows(db_pool, "SELECT payload_encrypted FROM webhook_events WHERE status = 'quarantined'")
    assert len(kept) == 1
    assert "50370000002" not in kept[0]["payload_encrypted"]
    vault = Vault(meta_settings.phone_encryption_keys, meta_settings.phone_hash_key)
    envelope = json.loads(vault.decrypt(kept[0]["payload_encrypted"]))
    assert envelope["kind"] == "message"
    assert envelope["event"]["text"] == "hola \ud800"


def test_a_nul_in_a_message_id_quarantines_only_that_message(client: FlaskClient, db_pool: ConnectionPool) -> None:
    payload = text_payload("50370000001", "Hola", "wamid.GOOD1")
    messages = payload["entry"][0]["changes"][0]["value"]["messages"]
    messages.insert(0, {**messages[0], "id": "wamid.\u0000BAD"})
    assert post_meta(client, payload).status_code == 200
    events = rows(db_pool, "SELECT event_id, status, error FROM webhook_events ORDER BY id")
    assert [e["status"] for e in events] == ["quarantined", "received"]
    assert "\x00" not in events[0]["event_id"]
    assert events[1]["event_id"] == "wamid.GOOD1"


def test_the_worker_answers_a_stored_message_whose_text_holds_a_lone_surrogate(
    meta_settings: Settings, graph: FakeGraphAPI, db_pool: ConnectionPool, redis_conn: Any
) -> None:
    """An event sealed before this check existed (or by another writer, as ASCII JSON) still gets its answer."""
    from rq import Queue

    from channels.events import InboundMessage, MessageKind
    from runtime import inbox
    from runtime.enqueue import conversation_hash
    from storage import webhook_events
    from storage.crypto import Vault

    vault = Vault(meta_settings.phone_encryption_keys, meta_settings.phone_hash_key)
    message = InboundMessage(provider="meta", channel_number="106540352242922", message_id="wamid.OLD",
                             kind=MessageKind.TEXT, timestamp=1749416383, user_phone="+50370000001",
                             profile_name="Ana \udc80", text="hola \ud800")
    sealed = vault.encrypt(json.dumps({"kind": "message", "event": message.to_dict()}, ensure_ascii=True))
    pk = webhook_events.record(db_pool, provider="meta", event_id="wamid.OLD", kind="message",
                               payload_encrypted=sealed, correlation_id="c-old")
    assert pk is not None
    key = conversation_hash(vault, message)
    assert key is not None
    inbox.deliver(redis_conn, Queue(meta_settings.queue_name, connection=redis_conn), meta_settings, key, pk, "c-old")
    run_jobs(meta_settings)
    assert "Transportes Express El Salvador" in _texts(graph, "+50370000001")
    assert rows(db_pool, "SELECT body FROM messages WHERE direction = 'in'") == [{"body": "hola \ufffd"}]


# --- wrong types in a well-signed payload ----------------------------------------------------


@pytest.mark.parametrize("text", [5037, None, ["hola"], {"body": "hola"}, True, 1.5e300])
def test_a_text_body_of_the_wrong_type_is_answered_like_an_unsupported_message(
    client: FlaskClient, meta_settings: Settings, graph: FakeGraphAPI, db_pool: ConnectionPool, text: Any
) -> None:
    payload = text_payload("50370000001", "x", "wamid.TYPED")
    payload["entry"][0]["changes"][0]["value"]["messages"][0]["text"] = {"body": text}
    assert post_meta(client, payload).status_code == 200
    run_jobs(meta_settings)
    assert UNSUPPORTED_REPLY in _texts(graph, "+50370000001")
    assert rows(db_pool, "SELECT status FROM webhook_events") == [{"status": "processed"}]
    assert rows(db_pool, "SELECT kind FROM messages WHERE direction = 'in'") == [{"kind": "unsupported"}]


@pytest.mark.parametrize(("where", "value"), [
    ("text", "hola"), ("interactive", ["x"]), ("location", {"latitude": "NaN", "longitude": {}}),
    ("location", {"latitude": 10**400, "longitude": -89.2}),  # an integer no float can hold
    ("context", 7), ("errors", {"code": 1}), ("image", "abc"),
])
def test_wrong_types_in_message_parts_are_answered_not_crashed(
    client: FlaskClient, meta_settings: Settings, graph: FakeGraphAPI, db_pool: ConnectionPool, where: str,
    value: Any
) -> None:
    payload = text_payload("50370000001", "x", "wamid.PART")
    message = payload["entry"][0]["changes"][0]["value"]["messages"][0]
    message[where] = value
    if where in ("interactive", "location", "image"):
        message["type"] = where
    assert post_meta(client, payload).status_code == 200
    run_jobs(meta_settings)
    assert graph.messages_to("+50370000001") != []
    assert rows(db_pool, "SELECT status FROM webhook_events") == [{"status": "processed"}]


@pytest.mark.parametrize(("change", "value"), [
    ("id", ["wamid.X"]), ("id", {"a": 1}), ("from", {"a": 1}), ("from", ["503"]),
])
def test_a_message_whose_identity_has_the_wrong_type_is_quarantined(
    client: FlaskClient, meta_settings: Settings, graph: FakeGraphAPI, db_pool: ConnectionPool, change: str,
    value: Any
) -> None:
    payload = text_payload("50370000001", "Hola", "wamid.GOOD1")
    messages = payload["entry"][0]["changes"][0]["value"]["messages"]
    bad = {**copy.deepcopy(messages[0]), "id": "wamid.BAD1"}
    bad[change] = value
    payload["entry"][0]["changes"][0]["value"]["contacts"] = []
    messages.append(bad)
    assert post_meta(client, payload).status_code == 200
    events = rows(db_pool, "SELECT event_id, status, error FROM webhook_events ORDER BY id")
    assert [e["status"] for e in events] == ["received", "quarantined"]
    assert change in events[1]["error"]
    run_jobs(meta_settings)
    assert "Transportes Express El Salvador" in _texts(graph, "+50370000001")


def test_a_metadata_of_the_wrong_type_quarantines_its_messages(client: FlaskClient,
                                                               db_pool: ConnectionPool) -> None:
    good = text_payload("50370000001", "Hola", "wamid.GOOD1")
    bad = text_payload("50370000002", "Hola", "wamid.BAD1")
    bad["entry"][0]["changes"][0]["value"]["metadata"] = ["106540352242922"]
    good["entry"].extend(bad["entry"])
    assert post_meta(client, good).status_code == 200
    events = rows(db_pool, "SELECT event_id, status, error FROM webhook_events ORDER BY id")
    assert [(e["event_id"], e["status"]) for e in events][0] == ("wamid.GOOD1", "received")
    assert events[1]["status"] == "quarantined"
    assert "metadata" in events[1]["error"]


def test_statuses_of_the_wrong_type_are_quarantined(client: FlaskClient, db_pool: ConnectionPool) -> None:
    payload = text_payload("50370000001", "Hola", "wamid.GOOD1")
    payload["entry"][0]["changes"][0]["value"]["statuses"] = [
        {"id": {"x": 1}, "status": "delivered", "timestamp": "1749416383", "recipient_id": "50370000001"},
        {"id": "wamid.OUT1", "status": "failed", "timestamp": "1749416383", "recipient_id": "50370000001",
         "errors": {"code": 131047}},
        {"id": "wamid.OUT2", "status": "read", "timestamp": [1], "recipient_id": ["50370000001"]},
    ]
    assert post_meta(client, payload).status_code == 200
    events = rows(db_pool, "SELECT event_id, kind, status FROM webhook_events ORDER BY kind, status, event_id")
    assert [(e["kind"], e["event_id"], e["status"]) for e in events] == [
        ("message", "wamid.GOOD1", "received"), ("status", events[1]["event_id"], "quarantined"),
        ("status", "wamid.OUT2", "quarantined"), ("status", "wamid.OUT1:failed", "received")]
    assert events[1]["event_id"].startswith("quarantine:")  # its id was an object


# --- whole bodies that are not webhooks ----------------------------------------------------


@pytest.mark.parametrize(("body", "reason"), [
    (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    (b'{"object": "whatsapp_business_account", "entry": ' + b"[" * 70 + b"]" * 70 + b"}", "nested too deeply"),
    (b'{"entry": [], "n": ' + b"9" * 5000 + b"}", "number"),
    (b'{"entry": [], "n": "\xff\xfe"}', "not valid JSON"),
])
def test_a_hostile_body_gets_a_400_not_a_500(client: FlaskClient, db_pool: ConnectionPool, body: bytes,
                                             reason: str) -> None:
    response = post_meta(client, body)
    assert response.status_code == 400
    assert reason in response.get_json()["error"]
    assert rows(db_pool, "SELECT id FROM webhook_events") == []


# --- Twilio ---------------------------------------------------------------------------------------


@pytest.fixture
def twilio_client(settings: Settings) -> Iterator[tuple[FlaskClient, Settings, FakeTwilioAPI]]:
    fake = FakeTwilioAPI(auth_token="12345").start()
    tsettings = settings.with_overrides(
        whatsapp_provider="twilio", twilio_account_sid=DEFAULT_ACCOUNT_SID, twilio_auth_token="12345",
        twilio_whatsapp_number="whatsapp:+14155238886", twilio_api_base_url=fake.url, simulator_enabled=False,
    )
    app = create_app(tsettings)
    with app.test_client() as c:
        yield c, tsettings, fake
    app.extensions["db_pool"].close()
    app.extensions["redis"].close()
    fake.stop()


def _form(sid: str, **extra: str) -> dict[str, str]:
    return {"MessageSid": sid, "SmsStatus": "received", "NumMedia": "0", "Body": "hola",
            "From": "whatsapp:+50370000001", "To": "whatsapp:+14155238886", **extra}


def test_twilio_nul_in_the_message_sid_is_quarantined_not_retried_forever(
    twilio_client: tuple[FlaskClient, Settings, FakeTwilioAPI], db_pool: ConnectionPool
) -> None:
    client, _, _ = twilio_client
    response = post_twilio(client, _form("SM\x00" + "1" * 32))
    assert response.status_code == 200
    assert rows(db_pool, "SELECT status FROM webhook_events") == [{"status": "quarantined"}]


@pytest.mark.parametrize("extra", [
    {"Latitude": "nan", "Longitude": "inf"},
    {"NumMedia": "9" * 5000},
    {"Body": "hola\x00 ¿cuánto cuesta?"},
    {"Body": "9" * 5000},
])
def test_twilio_hostile_values_are_answered(
    twilio_client: tuple[FlaskClient, Settings, FakeTwilioAPI], db_pool: ConnectionPool, extra: dict[str, str]
) -> None:
    client, tsettings, fake = twilio_client
    assert post_twilio(client, _form("SM" + "2" * 32, **extra)).status_code == 200
    run_jobs(tsettings)
    assert rows(db_pool, "SELECT status FROM webhook_events") == [{"status": "processed"}]
    assert fake.messages_to("+50370000001") != []


@pytest.mark.parametrize("sender", ["whatsapp:+²³¹", "whatsapp:", "whatsapp:+١٢٣٤٥٦٧٨"])
def test_twilio_message_without_a_usable_sender_is_quarantined(
    twilio_client: tuple[FlaskClient, Settings, FakeTwilioAPI], db_pool: ConnectionPool, sender: str
) -> None:
    client, _, _ = twilio_client
    assert post_twilio(client, _form("SM" + "3" * 32, From=sender)).status_code == 200
    events = rows(db_pool, "SELECT status, error FROM webhook_events")
    assert [e["status"] for e in events] == ["quarantined"]
    assert "sender" in events[0]["error"]


# --- body limits, over a real socket to the app on Werkzeug's server --------------------------------


def raw_post(base_url: str, path: str, headers: dict[str, str], parts: Iterable[bytes], *,
             chunked: bool = False, pause_s: float = 0.0) -> tuple[int, bytes]:
    """Send a request the way a slow client does, part by part, then read the answer: (status, body)."""
    where = urlsplit(base_url)
    head = [f"POST {path} HTTP/1.1", f"Host: {where.netloc}", "Connection: close"]
    head += [f"{name}: {value}" for name, value in headers.items()]
    if chunked:
        head.append("Transfer-Encoding: chunked")
    with socket.create_connection((where.hostname, where.port), timeout=20) as sock:
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))
        for part in parts:
            sock.sendall(f"{len(part):x}\r\n".encode() + part + b"\r\n" if chunked else part)
            time.sleep(pause_s)
        if chunked:
            sock.sendall(b"0\r\n\r\n")
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    status_line, _, rest = answer.partition(b"\r\n")
    return int(status_line.split()[1]), rest.partition(b"\r\n\r\n")[2]


def _pieces(data: bytes, size: int) -> list[bytes]:
    return [data[i:i + size] for i in range(0, len(data), size)]


@pytest.fixture
def served_app(meta_settings: Settings) -> Iterator[str]:
    with served(meta_settings) as (_app, url):
        yield url


def test_a_signed_chunked_event_past_64_kib_is_refused_unparsed(served_app: str, db_pool: ConnectionPool) -> None:
    event = json.dumps(status_event("SV20260105007834", "ARRIVED_AT_DESTINATION", event_id="e-big"))
    raw = (event + " " * (200 * 1024)).encode()  # still one valid, signed event: whitespace is JSON
    ts = str(int(time.time()))
    headers = {"Content-Type": "application/json", core_events.TIMESTAMP_HEADER: ts,
               core_events.SIGNATURE_HEADER: core_events.sign(EVENTS_SECRET, ts, raw)}
    status, body = raw_post(served_app, "/internal/events", headers, _pieces(raw, 16 * 1024), chunked=True)
    assert status == 413
    assert json.loads(body)["error"] == "too_large"
    assert rows(db_pool, "SELECT id FROM core_events") == []
    # the same event, small enough, chunked: accepted
    raw = event.encode()
    headers[core_events.SIGNATURE_HEADER] = core_events.sign(EVENTS_SECRET, ts, raw)
    status, body = raw_post(served_app, "/internal/events", headers, _pieces(raw, 40), chunked=True)
    assert (status, json.loads(body)) == (202, {"event_id": "e-big", "status": "accepted"})


def test_a_client_still_sending_an_oversize_body_reads_the_413(served_app: str, db_pool: ConnectionPool) -> None:
    raw = b'{"entry": [], "pad": "' + b"x" * (4 * 1024 * 1024) + b'"}'
    headers = {"Content-Type": "application/json", "Content-Length": str(len(raw)),
               "X-Hub-Signature-256": meta_webhook.sign("test-app-secret", raw)}
    status, body = raw_post(served_app, "/webhooks/whatsapp", headers, _pieces(raw, 256 * 1024), pause_s=0.05)
    assert status == 413
    assert json.loads(body)["error"] == "too_large"
    assert rows(db_pool, "SELECT id FROM webhook_events") == []


def test_a_chunked_webhook_within_the_limit_is_stored(served_app: str, db_pool: ConnectionPool) -> None:
    raw = json.dumps(text_payload("50370000001", "Hola", "wamid.CHUNKED")).encode()
    headers = {"Content-Type": "application/json", "X-Hub-Signature-256": meta_webhook.sign("test-app-secret", raw)}
    status, _ = raw_post(served_app, "/webhooks/whatsapp", headers, _pieces(raw, 100), chunked=True)
    assert status == 200
    assert [r["event_id"] for r in rows(db_pool, "SELECT event_id FROM webhook_events")] == ["wamid.CHUNKED"]
    over = b" " * (3 * 1024 * 1024 + 1)
    status, _ = raw_post(served_app, "/webhooks/whatsapp", headers, _pieces(over, 256 * 1024), chunked=True)
    assert status == 413
