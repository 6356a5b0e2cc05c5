"""What a provider's error code (or one of our own) usually means, and what to do about it, in plain Spanish.

Read by the operator's area (its landing page, the onboarding's test message) and by the operations view's
alerts (`handoff.alerts`). Codes are Meta's and Twilio's as they arrive in `messages.error_code`; the ""
table holds our own (`runtime.delivery` writes them).
"""

from __future__ import annotations

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


def meaning(code: str, provider: str = "") -> str:
    """What an error code usually means ('' when we do not know it)."""
    for table in (MEANINGS.get(provider, {}), *MEANINGS.values()):
        if code in table:
            return table[code]
    if code.startswith("http_5"):
        return "El proveedor tuvo un problema pasajero."
    return ""
