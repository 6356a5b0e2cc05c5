"""MetaCloudTransport against a local Graph API fake: what goes on the wire, and how failures come back."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from cryptography.fernet import Fernet

from channels.errors import (
    AUTH,
    RECIPIENT,
    PermanentSendError,
    SendError,
    TransientSendError,
    WindowClosedError,
    classify_meta_error,
)
from channels.events import DeliveryStatus
from channels.meta_cloud import MetaCloudTransport
from channels.outbound import Buttons, Choice, ChoiceList, Location, Recipient, SendResult, Template, Text
from config import Settings
from tests.conftest import load_fixture
from tests.fakes.graph_api import FakeGraphAPI

TOKEN = "EAAG-test-token-do-not-log"
NUMBER_ID = "106540352242922"
PHONE = "+50370000001"
Meta = MetaCloudTransport
BSUID = "US.13491208655302741918"


def meta_settings(base_url: str, **overrides: Any) -> Settings:
    env = {
        "DATABASE_URL": "postgresql://unused/encargo",
        "REDIS_URL": "redis://127.0.0.1:1/0",
        "PHONE_ENCRYPTION_KEY": Fernet.generate_key().decode(),
        "PHONE_HASH_KEY": "k",
        "WHATSAPP_PROVIDER": "meta",
        "META_ACCESS_TOKEN": TOKEN,
        "META_PHONE_NUMBER_ID": NUMBER_ID,
        "META_APP_SECRET": "secret",
    }
    return Settings.from_env(env, meta_graph_base_url=base_url, **overrides)


@pytest.fixture
def graph() -> Iterator[FakeGraphAPI]:
    with FakeGraphAPI(access_token=TOKEN, phone_number_id=NUMBER_ID) as fake:
        yield fake


@pytest.fixture
def transport(graph: FakeGraphAPI) -> Iterator[Meta]:
    meta = MetaCloudTransport(meta_settings(graph.url))
    yield meta
    meta.close()


def same_shape(ours: Any, reference: Any, where: str = "body") -> None:
    """Every key we send exists at the same place in Meta's own example (fixtures/meta_send_*.json)."""
    if isinstance(ours, dict):
        assert isinstance(reference, dict), where
        for key, value in ours.items():
            assert key in reference, f"{where}.{key} is not in Meta's example"
            same_shape(value, reference[key], f"{where}.{key}")
    elif isinstance(ours, list):
        assert isinstance(reference, list) and reference, where
        for item in ours:
            same_shape(item, reference[0], f"{where}[]")


# --- bodies -------------------------------------------------------------------------------


def test_text_body_path_and_token(graph: FakeGraphAPI, transport: Meta) -> None:
    results = transport.send(Recipient(phone=PHONE), Text("Hola, ¿en qué te ayudo?"), reference="out-1")
    assert graph.sent == [{
        "messaging_product": "whatsapp", "recipient_type": "individual", "to": PHONE, "type": "text",
        "text": {"body": "Hola, ¿en qué te ayudo?", "preview_url": False},
        "biz_opaque_callback_data": "out-1",
    }]
    request = graph.received[0]
    assert request["path"] == f"/v23.0/{NUMBER_ID}/messages"
    assert request["headers"]["Authorization"] == f"Bearer {TOKEN}"
    assert results == [SendResult(provider_message_id=graph.sent_ids[0], status=DeliveryStatus.ACCEPTED)]
    assert results[0].provider_message_id.startswith("wamid.")


def test_phone_without_plus_is_sent_in_e164(graph: FakeGraphAPI, transport: Meta) -> None:
    transport.send(Recipient(phone="503 7000-0001"), Text("hola"), reference="r")
    assert graph.sent[0]["to"] == PHONE


def test_reply_buttons_match_metas_example(graph: FakeGraphAPI, transport: Meta) -> None:
    message = Buttons(body="¿Qué deseas hacer?",
                      buttons=(Choice("track", "Rastrear paquete"), Choice("agent", "Hablar con agente")))
    transport.send(Recipient(phone=PHONE), message, reference="r")
    [body] = graph.sent
    assert body["type"] == "interactive"
    assert body["interactive"] == {
        "type": "button",
        "body": {"text": "¿Qué deseas hacer?"},
        "action": {"buttons": [
            {"type": "reply", "reply": {"id": "track", "title": "Rastrear paquete"}},
            {"type": "reply", "reply": {"id": "agent", "title": "Hablar con agente"}},
        ]},
    }
    same_shape({k: v for k, v in body.items() if k != "biz_opaque_callback_data"},
               load_fixture("meta_send_interactive_buttons.json"))


def test_list_matches_metas_example(graph: FakeGraphAPI, transport: Meta) -> None:
    rows = (Choice("pt_sa", "Santa Ana", "Sucursal occidente"), Choice("pt_ss", "San Salvador"))
    message = ChoiceList(body="Elige el punto", button_label="Ver puntos", rows=rows, header="Puntos",
                         footer="Transportes Express", section_title="Occidente")
    transport.send(Recipient(phone=PHONE), message, reference="r")
    [body] = graph.sent
    assert body["interactive"] == {
        "type": "list",
        "header": {"type": "text", "text": "Puntos"},
        "body": {"text": "Elige el punto"},
        "footer": {"text": "Transportes Express"},
        "action": {"button": "Ver puntos", "sections": [{"title": "Occidente", "rows": [
            {"id": "pt_sa", "title": "Santa Ana", "description": "Sucursal occidente"},
            {"id": "pt_ss", "title": "San Salvador"},
        ]}]},
    }
    same_shape({k: v for k, v in body.items() if k != "biz_opaque_callback_data"},
               load_fixture("meta_send_interactive_list.json"))


def test_location_body(graph: FakeGraphAPI, transport: Meta) -> None:
    location = Location(13.69, -89.19, "Sucursal", "Calle Arce 123")
    transport.send(Recipient(phone=PHONE), location, reference="r")
    assert graph.sent[0]["type"] == "location"
    assert graph.sent[0]["location"] == {"latitude": 13.69, "longitude": -89.19, "name": "Sucursal",
                                         "address": "Calle Arce 123"}


def test_template_with_body_params_and_quick_reply_payload(graph: FakeGraphAPI,
                                                           transport: Meta) -> None:
    template = Template("paquete_llego", "es", body_params=("María", "SV20260106012345"),
                        button_payloads=("PKG:SV20260106012345",))
    transport.send(Recipient(phone=PHONE), template, reference="notif-7")
    [body] = graph.sent
    assert body["template"] == {
        "name": "paquete_llego",
        "language": {"code": "es", "policy": "deterministic"},
        "components": [
            {"type": "body", "parameters": [{"type": "text", "text": "María"},
                                            {"type": "text", "text": "SV20260106012345"}]},
            {"type": "button", "sub_type": "quick_reply", "index": "0",
             "parameters": [{"type": "payload", "payload": "PKG:SV20260106012345"}]},
        ],
    }
    assert body["biz_opaque_callback_data"] == "notif-7"
    reference = load_fixture("meta_send_template.json")
    same_shape(body["template"]["components"][0], reference["template"]["components"][0])


def test_username_only_customer_is_addressed_by_bsuid(graph: FakeGraphAPI, transport: Meta) -> None:
    transport.send(Recipient(bsuid=BSUID), Text("hola"), reference="r")
    [body] = graph.sent
    assert body["recipient"] == BSUID
    assert "to" not in body
    assert graph.messages_to(BSUID) == [body]


def test_recipient_without_phone_or_bsuid_is_refused_before_sending(graph: FakeGraphAPI,
                                                                    transport: Meta) -> None:
    with pytest.raises(PermanentSendError):
        transport.send(Recipient(), Text("hola"), reference="r")
    assert graph.received == []


# --- fitting ------------------------------------------------------------------------------


def test_5000_character_text_arrives_as_two_messages(graph: FakeGraphAPI, transport: Meta) -> None:
    text = ("Su paquete está en camino a la sucursal. " * 130)[:5000]
    results = transport.send(Recipient(phone=PHONE), Text(text), reference="r")
    bodies = [b["text"]["body"] for b in graph.messages_to(PHONE)]
    assert len(bodies) == 2 and all(len(b) <= 4096 for b in bodies)
    assert [r.provider_message_id for r in results] == graph.sent_ids


def test_five_buttons_arrive_as_a_list(graph: FakeGraphAPI, transport: Meta) -> None:
    buttons = tuple(Choice(f"b{i}", f"Opción {i}") for i in range(5))
    transport.send(Recipient(phone=PHONE), Buttons(body="Elige", buttons=buttons), reference="r")
    [body] = graph.sent
    assert body["interactive"]["type"] == "list"
    rows = body["interactive"]["action"]["sections"][0]["rows"]
    assert [r["id"] for r in rows] == [f"b{i}" for i in range(5)]


def test_30_character_button_title_arrives_within_20(graph: FakeGraphAPI, transport: Meta) -> None:
    title = "Consultar el estado del envío!"
    assert len(title) == 30
    transport.send(Recipient(phone=PHONE), Buttons(body="Hola", buttons=(Choice("status", title),)),
                   reference="r")
    sent_title = graph.sent[0]["interactive"]["action"]["buttons"][0]["reply"]["title"]
    assert len(sent_title) <= 20 and sent_title.endswith("…")


# --- failures -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "code", "error_class", "retryable"),
    [
        (400, 130429, TransientSendError, True),
        (400, 131056, TransientSendError, True),
        (500, 131000, TransientSendError, True),
        (503, 133004, TransientSendError, True),
        (400, 131047, WindowClosedError, False),
        (400, 470, WindowClosedError, False),
        (400, 131026, PermanentSendError, False),
        (400, 132001, PermanentSendError, False),
        (400, 100, PermanentSendError, False),
        (502, 999999, TransientSendError, True),  # unknown code: the HTTP status decides
    ],
)
def test_error_codes_are_classified(graph: FakeGraphAPI, transport: Meta, status: int, code: int,
                                    error_class: type[SendError], retryable: bool) -> None:
    graph.fail_next(1, status, code, "scripted")
    with pytest.raises(error_class) as caught:
        transport.send(Recipient(phone=PHONE), Text("hola"), reference="r")
    assert type(caught.value) is error_class
    assert caught.value.code == str(code)
    assert caught.value.retryable is retryable
    assert caught.value.details == "scripted"
    assert graph.sent == []


def test_throughput_error_hints_a_short_retry_and_the_fixture_body_classifies() -> None:
    error = classify_meta_error(400, load_fixture("meta_error_response_130429.json"))
    assert isinstance(error, TransientSendError) and error.code == "130429"
    assert error.retry_after_s is not None and 1.0 <= error.retry_after_s <= 2.0
    assert error.details == "Cloud API message throughput has been reached."
    assert classify_meta_error(429, {"error": {"code": 130429}}, retry_after_header="7").retry_after_s == 7.0


def test_pair_rate_limit_backs_off_four_to_the_attempt() -> None:
    error = classify_meta_error(400, {"error": {"code": 131056, "message": "pair rate limit"}})
    assert error.retry_after_s == 6.0
    assert [error.retry_delay_s(a) for a in range(4)] == [6.0, 6.0, 16.0, 64.0]
    assert classify_meta_error(400, {"error": {"code": 131047}}).retry_delay_s(3) == 0.0


@pytest.mark.parametrize(("code", "category"), [(190, AUTH), (250, AUTH), (131050, RECIPIENT)])
def test_permanent_errors_carry_who_must_act(code: int, category: str) -> None:
    error = classify_meta_error(400, {"error": {"code": code}})
    assert isinstance(error, PermanentSendError) and error.category == category


def test_non_json_5xx_is_transient_and_4xx_permanent() -> None:
    assert isinstance(classify_meta_error(502, None), TransientSendError)
    assert isinstance(classify_meta_error(404, "<html>"), PermanentSendError)


def test_wrong_token_is_a_permanent_auth_error(graph: FakeGraphAPI) -> None:
    meta = MetaCloudTransport(meta_settings(graph.url, meta_access_token="wrong"))
    with pytest.raises(PermanentSendError) as caught:
        meta.send(Recipient(phone=PHONE), Text("hola"), reference="r")
    assert caught.value.code == "190" and caught.value.category == AUTH


def test_timeout_is_transient_and_says_the_message_may_have_been_sent(graph: FakeGraphAPI) -> None:
    meta = MetaCloudTransport(meta_settings(graph.url, send_timeout_s=0.2))
    graph.delay_next(1.5)
    with pytest.raises(TransientSendError) as caught:
        meta.send(Recipient(phone=PHONE), Text("hola"), reference="r")
    assert caught.value.code == "timeout" and caught.value.maybe_sent
    assert len(graph.sent) == 1  # Meta got it: a blind retry would send it twice


def test_unreachable_api_is_transient_and_nothing_was_sent() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    meta = MetaCloudTransport(meta_settings(f"http://127.0.0.1:{port}"))
    with pytest.raises(TransientSendError) as caught:
        meta.send(Recipient(phone=PHONE), Text("hola"), reference="r")
    assert caught.value.code == "connection" and not caught.value.maybe_sent


def test_failure_on_a_later_part_reports_the_parts_already_sent(graph: FakeGraphAPI,
                                                                transport: Meta) -> None:
    graph.enforce_pair_limit(1, per_seconds=60)
    with pytest.raises(TransientSendError) as caught:
        transport.send(Recipient(phone=PHONE), Text("a " * 3000), reference="r")
    assert caught.value.code == "131056"
    assert [r.provider_message_id for r in caught.value.partial_results] == graph.sent_ids
    assert len(graph.sent) == 1


def test_fake_enforces_throughput_per_number(graph: FakeGraphAPI, transport: Meta) -> None:
    graph.enforce_throughput(2)
    transport.send(Recipient(phone=PHONE), Text("1"), reference="r1")
    transport.send(Recipient(phone="+50370000002"), Text("2"), reference="r2")
    with pytest.raises(TransientSendError) as caught:
        transport.send(Recipient(phone="+50370000003"), Text("3"), reference="r3")
    assert caught.value.code == "130429"


# --- mark as read -------------------------------------------------------------------------


def test_mark_read_sends_read_status_with_typing_indicator(graph: FakeGraphAPI,
                                                           transport: Meta) -> None:
    transport.mark_read("wamid.ABC")
    assert graph.read_receipts == [{"messaging_product": "whatsapp", "status": "read",
                                    "message_id": "wamid.ABC", "typing_indicator": {"type": "text"}}]
    assert graph.sent == []


def test_mark_read_never_raises(graph: FakeGraphAPI, transport: Meta) -> None:
    refused = MetaCloudTransport(meta_settings(graph.url, meta_access_token="expired"))
    refused.mark_read("wamid.ABC")  # 401 from Meta: logged
    graph.stop()
    transport.mark_read("wamid.DEF")
    assert graph.read_receipts == []


def test_logs_carry_no_phone_body_or_token(graph: FakeGraphAPI, transport: Meta,
                                           caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    transport.send(Recipient(phone=PHONE), Text("secreto del cliente"), reference="r")
    graph.fail_next(1, 400, 131047)
    with pytest.raises(WindowClosedError):
        transport.send(Recipient(phone=PHONE), Text("secreto del cliente"), reference="r")
    transport.mark_read("wamid.X")
    assert caplog.records
    for needle in (PHONE, PHONE.lstrip("+"), "secreto", TOKEN):
        assert needle not in caplog.text
