"""The onboarding's two checks, and what provider error codes mean, in plain Spanish for the operator.

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

# What a provider's (or our own) error code usually means, and what to do about it.
MEANINGS = {
    "meta": {
        "190": "El token de acceso no es válido o ya venció: genera uno nuevo en Meta y pégalo aquí.",
        "0": "Meta rechazó el token: revisa que sea el de esta cuenta de WhatsApp Business.",
        "10": "El token no tiene permiso para este número: dale el permiso whatsapp_business_messaging.",
        "100": "Meta no reconoce la solicitud: revisa el identificador del número (phone number id).",
        "133010": "El número no está registrado en la API de WhatsApp: regístralo en Meta antes de usarlo.",
        "131030": "Ese teléfono no está en la lista de números de prueba de la cuenta: agrégalo en Meta.",
        "131026": "Ese teléfono no tiene WhatsApp o no ha aceptado las condiciones de WhatsApp.",
        "131047": "Pasaron más de 24 horas desde que el cliente escribió: solo se puede enviar una plantilla.",
        "131048": "Meta frenó los envíos por posible spam: pausa los mensajes que no piden los clientes.",
        "131049": "Meta no entregó este mensaje de marketing para no saturar al cliente.",
        "131050": "El cliente pidió no recibir mensajes de marketing.",
        "131031": "Meta bloqueó la cuenta de WhatsApp Business: revisa el estado de la cuenta en Meta.",
        "368": "Meta bloqueó la cuenta por un tiempo por sus políticas: revisa el aviso en Meta.",
        "130429": "Se alcanzó el límite de mensajes por segundo del número: se reintenta solo.",
        "131056": "Demasiados mensajes seguidos al mismo cliente: se reintenta solo.",
        "131000": "Error pasajero de Meta: se reintenta solo.",
        "132000": "La plantilla no coincide con la aprobada (número de valores distinto).",
        "132001": "La plantilla no existe o no está aprobada en ese idioma.",
    },
    "twilio": {
        "20003": "El Account SID o el Auth Token no son correctos.",
        "20404": "Twilio no encuentra esa cuenta: revisa el Account SID.",
        "21211": "El teléfono de destino no es válido.",
        "21610": "El cliente pidió no recibir mensajes (respondió STOP).",
        "21701": "El Messaging Service SID no es válido.",
        "63003": "Ese teléfono no se encontró en WhatsApp.",
        "63007": "Twilio no tiene ese número como remitente de WhatsApp en esta cuenta.",
        "63016": "Fuera de la ventana de 24 horas: solo se pueden enviar plantillas. Escribe primero desde ese "
                 "teléfono al número de la empresa y vuelve a probar.",
        "63018": "Se alcanzó el límite de envío del número: se reintenta solo.",
        "63038": "Se alcanzó el límite diario de mensajes de la cuenta.",
    },
    "": {
        "timeout": "El proveedor no respondió a tiempo; puede que el mensaje sí haya salido.",
        "connection": "No pudimos conectar con el proveedor: revisa la conexión del servidor.",
        "no_credentials": "El número no tiene credenciales propias y el servidor tampoco tiene unas generales.",
        "interrupted": "El envío se interrumpió (se detuvo un proceso) y no se repitió para no duplicarlo.",
        "no_recipient": "Falta el teléfono del destinatario.",
    },
}
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


def meaning(code: str, provider: str = "") -> str:
    """What an error code usually means ('' when we do not know it)."""
    for table in (MEANINGS.get(provider, {}), *MEANINGS.values()):
        if code in table:
            return table[code]
    if code.startswith("http_5"):
        return "El proveedor tuvo un problema pasajero."
    return ""


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
