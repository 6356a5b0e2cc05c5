"""TwilioTransport through the official twilio library, pointed at a local fake of Twilio's REST API."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from cryptography.fernet import Fernet

from channels.errors import (
    AUTH,
    PermanentSendError,
    SendError,
    TransientSendError,
    WindowClosedError,
    classify_twilio_error,
)
from channels.events import DeliveryStatus
from channels.outbound import Buttons, Choice, ChoiceList, Location, Recipient, Template, Text
from channels.twilio_api import RebasedHttpClient, TwilioTransport
from config import Settings
from tests.fakes.twilio_api import FakeTwilioAPI

SID = "AC" + "a1" * 16
TOKEN = "twilio-token-do-not-log"
PHONE = "+50370000001"
Twilio = TwilioTransport
SENDER = "whatsapp:+14155238886"


def twilio_settings(base_url: str, **overrides: Any) -> Settings:
    env = {
        "DATABASE_URL": "postgresql://unused/encargo",
        "REDIS_URL": "redis://127.0.0.1:1/0",
        "PHONE_ENCRYPTION_KEY": Fernet.generate_key().decode(),
        "PHONE_HASH_KEY": "k",
        "WHATSAPP_PROVIDER": "twilio",
        "TWILIO_ACCOUNT_SID": SID,
        "TWILIO_AUTH_TOKEN": TOKEN,
        "TWILIO_WHATSAPP_NUMBER": SENDER,
    }
    return Settings.from_env(env, twilio_api_base_url=base_url, **overrides)


@pytest.fixture
def fake() -> Iterator[FakeTwilioAPI]:
    with FakeTwilioAPI(account_sid=SID, auth_token=TOKEN) as server:
        yield server


@pytest.fixture
def transport(fake: FakeTwilioAPI) -> TwilioTransport:
    return TwilioTransport(twilio_settings(fake.url, public_base_url="https://encargo.example"))


def test_text_goes_through_the_rewritten_base_url(fake: FakeTwilioAPI, transport: Twilio) -> None:
    results = transport.send(Recipient(phone=PHONE), Text("Hola, ¿en qué te ayudo?"), reference="out-1")
    assert fake.sent == [{
        "To": f"whatsapp:{PHONE}",
        "From": SENDER,
        "Body": "Hola, ¿en qué te ayudo?",
        "StatusCallback": "https://encargo.example/webhooks/twilio?ref=out-1",  # our key comes back with receipts
    }]
    assert fake.received[0]["path"] == f"/2010-04-01/Accounts/{SID}/Messages.json"
    assert results[0].provider_message_id == fake.sent_ids[0]
    assert results[0].provider_message_id.startswith("SM") and len(results[0].provider_message_id) == 34
    assert results[0].status == DeliveryStatus.ACCEPTED


def test_http_client_sends_api_twilio_com_requests_to_the_configured_base(fake: FakeTwilioAPI) -> None:
    client = RebasedHttpClient(fake.url + "/", timeout=2)
    url = f"https://api.twilio.com/2010-04-01/Accounts/{SID}/Messages.json"
    response = client.request("POST", url, data={"To": f"whatsapp:{PHONE}", "From": SENDER, "Body": "x"},
                              auth=(SID, TOKEN))
    assert response.status_code == 201
    assert client._test_only_last_request.url == f"{fake.url}/2010-04-01/Accounts/{SID}/Messages.json"
    assert fake.sent[0]["Body"] == "x"


def test_no_status_callback_without_public_url(fake: FakeTwilioAPI) -> None:
    TwilioTransport(twilio_settings(fake.url)).send(Recipient(phone=PHONE), Text("hola"), reference="r")
    assert "StatusCallback" not in fake.sent[0]


def test_long_text_is_split_within_1600(fake: FakeTwilioAPI, transport: Twilio) -> None:
    text = "Detalle del envío número uno. " * 100  # 3000 characters
    results = transport.send(Recipient(phone=PHONE), Text(text), reference="r")
    bodies = [p["Body"] for p in fake.messages_to(PHONE)]
    assert len(bodies) == 2 and all(len(b) <= 1600 for b in bodies)
    assert len(results) == 2


def test_buttons_become_a_numbered_menu(fake: FakeTwilioAPI, transport: Twilio) -> None:
    message = Buttons(body="¿Qué deseas hacer?", buttons=(Choice("track", "Rastrear paquete"),
                                                         Choice("agent", "Hablar con un agente")))
    transport.send(Recipient(phone=PHONE), message, reference="r")
    assert fake.sent[0]["Body"] == "¿Qué deseas hacer?\n\n1. Rastrear paquete\n2. Hablar con un agente"


def test_list_becomes_a_numbered_menu_with_descriptions(fake: FakeTwilioAPI, transport: Twilio) -> None:
    rows = tuple(Choice(f"r{i}", f"Sucursal {i}", "abierta" if i == 1 else None) for i in range(1, 13))
    message = ChoiceList(body="Elige", button_label="Ver", rows=rows, header="Sucursales", footer="Fin")
    transport.send(Recipient(phone=PHONE), message, reference="r")
    body = fake.sent[0]["Body"]
    assert body.startswith("Sucursales\n\nElige\n\n1. Sucursal 1 (abierta)\n2. Sucursal 2\n")
    assert "12. Sucursal 12\n\nFin" in body


def test_location_uses_persistent_action(fake: FakeTwilioAPI, transport: Twilio) -> None:
    transport.send(Recipient(phone=PHONE), Location(13.69, -89.19, "Sucursal Centro", "Calle Arce 123"),
                   reference="r")
    assert fake.sent[0]["PersistentAction"] == "geo:13.69,-89.19|Sucursal Centro"
    assert fake.sent[0]["Body"] == "Sucursal Centro\nCalle Arce 123"


def test_template_uses_content_sid_and_variables(fake: FakeTwilioAPI, transport: Twilio) -> None:
    template = Template("paquete_llego", "es", body_params=("María", "SV20260106012345"),
                        button_payloads=("PKG:1",), content_sid="HX" + "b" * 32)
    transport.send(Recipient(phone=PHONE), template, reference="r")
    [params] = fake.sent
    assert params["ContentSid"] == "HX" + "b" * 32
    assert json.loads(params["ContentVariables"]) == {"1": "María", "2": "SV20260106012345"}
    assert "Body" not in params


def test_template_without_content_sid_is_permanent_and_not_sent(fake: FakeTwilioAPI,
                                                               transport: Twilio) -> None:
    with pytest.raises(PermanentSendError) as caught:
        transport.send(Recipient(phone=PHONE), Template("paquete_llego", "es"), reference="r")
    assert caught.value.code == "no_content_sid"
    assert fake.received == []


def test_bsuid_only_recipient_cannot_be_reached(fake: FakeTwilioAPI, transport: Twilio) -> None:
    with pytest.raises(PermanentSendError):
        transport.send(Recipient(bsuid="US.1349"), Text("hola"), reference="r")
    assert fake.received == []


@pytest.mark.parametrize(
    ("status", "code", "error_class"),
    [
        (400, 63016, WindowClosedError),
        (429, 20429, TransientSendError),
        (429, 63018, TransientSendError),
        (500, 20500, TransientSendError),
        (400, 21211, PermanentSendError),
    ],
)
def test_twilio_errors_are_classified(fake: FakeTwilioAPI, transport: Twilio, status: int, code: int,
                                      error_class: type[SendError]) -> None:
    fake.fail_next(1, status, code, "scripted")
    with pytest.raises(error_class) as caught:
        transport.send(Recipient(phone=PHONE), Text("hola"), reference="r")
    assert type(caught.value) is error_class
    assert caught.value.code == str(code) and caught.value.provider == "twilio"
    assert fake.sent == []


def test_wrong_credentials_are_a_permanent_auth_error(fake: FakeTwilioAPI) -> None:
    twilio = TwilioTransport(twilio_settings(fake.url, twilio_auth_token="wrong"))
    with pytest.raises(PermanentSendError) as caught:
        twilio.send(Recipient(phone=PHONE), Text("hola"), reference="r")
    assert caught.value.code == "20003" and caught.value.category == AUTH


def test_timeout_is_transient_and_may_have_been_sent(fake: FakeTwilioAPI) -> None:
    twilio = TwilioTransport(twilio_settings(fake.url, send_timeout_s=0.2))
    fake.delay_next(1.5)
    with pytest.raises(TransientSendError) as caught:
        twilio.send(Recipient(phone=PHONE), Text("hola"), reference="r")
    assert caught.value.code == "timeout" and caught.value.maybe_sent
    assert len(fake.sent) == 1


def test_unknown_5xx_and_plain_429_are_transient() -> None:
    assert isinstance(classify_twilio_error(503, None, "down"), TransientSendError)
    assert classify_twilio_error(429, None, "slow", retry_after_header="3").retry_after_s == 3.0
    assert isinstance(classify_twilio_error(400, 12345, "bad"), PermanentSendError)


def test_mark_read_sends_nothing(fake: FakeTwilioAPI, transport: Twilio) -> None:
    transport.mark_read("SM123")
    assert fake.received == []
