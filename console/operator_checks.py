"""The onboarding's two checks, in plain Spanish for the operator (what error codes mean: channels/error_meanings.py).

`send_test_message` sends one message from a company's number with the
credentials the operator typed (or those stored), through the project's own
transports (`channels.transport.channel_transport`, the very code replies use):
Meta gets the `hello_world` template in en_US, which every WhatsApp Business
account has; Twilio a short text. `test_core` asks a logistics core for its
company through `core_api_client` with the URL and key given.

Failure policy: nothing here raises for a provider's or a core's answer; the
result says what happened. Neither the token nor the key is logged.
"""

from __future__ import annotations

import logging
import re
import uuid
from dataclasses import dataclass

import redis

from channels import errors as send_errors
from channels.accounts import ChannelAccount
from channels.error_meanings import meaning
from channels.errors import SendError
from channels.events import e164
from channels.outbound import Recipient, Template, Text
from channels.transport import channel_transport
from config import Settings
from core_api_client import CoreClient
from core_api_client.errors import CoreAuthError, CoreBadRequest, CoreBadResponse, CoreError, CoreUnavailable

log = logging.getLogger(__name__)

TEST_TEMPLATE = Template(name="hello_world", language="en_US")
TEST_TEXT = "Mensaje de prueba de Encargo: este número ya puede enviar mensajes de WhatsApp."

BY_CATEGORY = {
    send_errors.AUTH: "Las credenciales fueron rechazadas: revisa el token.",
    send_errors.RECIPIENT: "Hubo un problema con el teléfono de destino.",
    send_errors.TEMPLATE: "Hubo un problema con la plantilla.",
    send_errors.ACCOUNT: "Hay una restricción en la cuenta: revísala con el proveedor.",
    send_errors.RATE_LIMIT: "Se alcanzó un límite de envío: se reintenta solo.",
    send_errors.UNAVAILABLE: "El proveedor tuvo un problema pasajero.",
    send_errors.WINDOW: "Fuera de la ventana de 24 horas: solo se pueden enviar plantillas.",
    send_errors.BAD_REQUEST: "El proveedor rechazó la solicitud: revisa los datos del número.",
}


@dataclass(frozen=True)
class CheckResult:
    ok: bool
    text: str  # what the operator reads
    code: str | None = None  # the provider's error code


def test_recipient(typed: str) -> str | None:
    """The phone the operator typed, in E.164: eight digits alone are a Salvadoran number (+503); None when it
    cannot be a phone with its country code."""
    to = e164(typed)
    if to and len(to) == 9 and not typed.strip().startswith(("+", "00")):
        to = "+503" + to[1:]
    return to if to and 11 <= len(to) <= 16 else None


def send_test_message(settings: Settings, redis_conn: redis.Redis, account: ChannelAccount,
                      phone: str) -> CheckResult:
    """Send the test message from `account` to `phone`; what happened, in Spanish."""
    to = test_recipient(phone)
    if to is None:
        return CheckResult(False, "Escribe el teléfono de destino con su código de país, por ejemplo +503 7000 0000.")
    message = TEST_TEMPLATE if account.provider == "meta" else Text(TEST_TEXT)
    transport = channel_transport(settings, redis_conn, account)
    try:
        transport.send(Recipient(phone=to), message, reference=f"operator-test:{uuid.uuid4().hex}")
    except SendError as exc:
        log.info("operator test message refused", extra={"provider": account.provider, "code": exc.code})
        why = meaning(exc.code, account.provider) or BY_CATEGORY.get(exc.category, "")
        said = f" (código {exc.code})" if exc.code else ""
        return CheckResult(False, f"No se envió{said}. {why}".strip(), exc.code)
    finally:
        close = getattr(transport, "close", None)
        if callable(close):
            close()
    if transport.channel == "local":
        return CheckResult(True, "Enviado en modo local: el mensaje aparece en el simulador, no sale a WhatsApp.")
    return CheckResult(True, f"Enviado: el proveedor lo aceptó. Revisa WhatsApp en {to}; llega en unos segundos.")


def test_core(base_url: str, api_key: str) -> CheckResult:
    """Ask the core at `base_url` for its company with `api_key`; its name, or why it failed, in Spanish."""
    if not re.match(r"^https?://[^\s/]+", base_url.strip()):
        return CheckResult(False, "Escribe la dirección del sistema logístico, empezando con https:// o http://.")
    try:
        with CoreClient(base_url.strip(), api_key, timeout_s=5.0, retry_delay_s=0.2) as client:
            company = client.company()
    except CoreAuthError:
        return CheckResult(False, "El sistema logístico rechazó la clave: revisa la clave de API.")
    except CoreUnavailable:
        return CheckResult(False, "No pudimos conectar con el sistema logístico: revisa la dirección, o que "
                                  "esté encendido y acepte conexiones de este servidor.")
    except CoreBadRequest as exc:
        return CheckResult(False, f"El sistema logístico rechazó la consulta (HTTP {exc.status_code}): "
                                  "revisa la dirección.")
    except CoreBadResponse:
        return CheckResult(False, "Respondió algo que no es un sistema logístico compatible: revisa la dirección.")
    except CoreError:
        return CheckResult(False, "No pudimos hablar con el sistema logístico: revisa la dirección.")
    return CheckResult(True, f"Conectado: el sistema responde como «{company.name}».")
