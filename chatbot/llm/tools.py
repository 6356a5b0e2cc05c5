"""The tools a model may call for a grounded answer, executed through the same services as the rules.

Every tool returns the text the rules path would show for the same request,
at the writer's information level (`services.tracking`): the writer's
phone comes from WhatsApp, never from the model's arguments, so a stranger
never gets names, amounts or refunds, whatever the prompt says. There is no
tool that lists customers or phone numbers, and none that searches by a name or
a typed phone: `find_packages` goes through `services.lookup`, which
only searches the writer's own phone (nothing for a username-only writer).
`escalate` runs nothing here: it asks the dialog to hand over, with the rules'
own case number and wording.

Every result is kept in `Toolbox.results`: the output guard accepts a fact in
an answer only when one of them (or the company data) carries it.

Failure policy: a tool never raises; core or FAQ-data failures become a short
"not available" result the model must report honestly.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from channels.outbound import Buttons, ChoiceList, Location, OutboundMessage, Text
from chatbot import entities as ent
from core_api_client import CoreError
from llm.types import ToolCall, ToolSpec
from services import ServiceContext, business, catalog, faq, lookup, tracking

log = logging.getLogger(__name__)

ESCALATION_REASONS = ("complaint", "customer_request", "not_understood")
PUBLIC_TOOLS = frozenset({"get_point", "list_points", "quote_price", "delivery_time", "get_policy"})
MAX_RESULT_CHARS = 1800
UNAVAILABLE = "El sistema no está disponible en este momento; no hay datos."
NO_SUCH_TOOL = "No existe esa herramienta."
BAD_ARGUMENTS = "Argumentos no válidos."
NOT_A_CODE = "Ese no es un código de rastreo válido (SV + 13 o 14 dígitos). Pídele el código al cliente."
NO_PHONE = "No hay número de teléfono del cliente; pídele el código de rastreo."
NO_POLICY = "La empresa no tiene información escrita sobre eso."
# Results that carry no fact: an answer built on them alone is a decline or a question, not an answer.
NOTHING = frozenset({UNAVAILABLE, NO_SUCH_TOOL, BAD_ARGUMENTS, NOT_A_CODE, NO_PHONE, NO_POLICY})

SPECS: tuple[ToolSpec, ...] = (
    ToolSpec("track_package", "Estado, origen, destino e historial de UN paquete por su código de rastreo.",
             {"type": "object", "properties": {"code": {"type": "string", "description": "SV + 13 o 14 dígitos"}},
              "required": ["code"]}),
    ToolSpec("find_packages", "Los paquetes del número de WhatsApp del cliente (como remitente o destinatario).",
             {"type": "object", "properties": {}}),
    ToolSpec("get_point", "Dirección, teléfono y horario de un punto de servicio.",
             {"type": "object", "properties": {"point": {"type": "string", "description": "id, nombre o ciudad"}},
              "required": ["point"]}),
    ToolSpec("list_points", "Todos los puntos de servicio.", {"type": "object", "properties": {}}),
    ToolSpec("quote_price", "Precio de un envío desde San Salvador a un destino, con el peso en libras.",
             {"type": "object", "properties": {"destination": {"type": "string"}, "weight_lbs": {"type": "number"}},
              "required": ["destination"]}),
    ToolSpec("delivery_time", "Cuánto tarda un envío a un destino (sin destino: todos los tiempos).",
             {"type": "object", "properties": {"destination": {"type": "string"}}}),
    ToolSpec("get_policy", "Políticas y preguntas frecuentes de la empresa: requisitos y artículos prohibidos, "
             "paquetes no retirados, reembolsos, pagos, y otras preguntas.",
             {"type": "object", "properties": {
                 "topic": {"type": "string", "enum": [*faq.POLICY_TOPICS, "other"]},
                 "question": {"type": "string", "description": "la pregunta del cliente"}},
              "required": ["topic"]}),
    ToolSpec("escalate", "Pasar la conversación a un asesor humano (reclamos, enojo, lo que no puedes resolver).",
             {"type": "object", "properties": {"reason": {"type": "string", "enum": list(ESCALATION_REASONS)}},
              "required": ["reason"]}),
)


def bodies(replies: list[OutboundMessage]) -> str:
    """The words of the rules' replies, as one text."""
    parts: list[str] = []
    for reply in replies:
        if isinstance(reply, Text):
            parts.append(reply.body)
        elif isinstance(reply, Buttons):
            parts.append(reply.body)
        elif isinstance(reply, ChoiceList):
            parts.append(reply.body)
        elif isinstance(reply, Location):
            parts.append(f"{reply.name}: {reply.address}")
    return "\n\n".join(p for p in parts if p)


@dataclass
class Toolbox:
    """The tools bound to one customer message: the services' context and the writer's own phone."""

    ctx: ServiceContext
    writer_phone: str | None
    results: list[str] = field(default_factory=list)
    used: list[str] = field(default_factory=list)
    codes: list[str] = field(default_factory=list)  # tracking codes looked up (the session remembers them)

    def run(self, call: ToolCall) -> str:
        """The tool's result text (never raises)."""
        self.used.append(call.name)
        handler = _HANDLERS.get(call.name)
        if handler is None:
            result = NO_SUCH_TOOL
        else:
            try:
                result = handler(self, call.arguments)
            except (CoreError, faq.FaqDataError) as exc:
                log.warning("llm tool %s unavailable: %s", call.name, type(exc).__name__)
                result = UNAVAILABLE
            except (TypeError, ValueError, KeyError) as exc:
                log.warning("llm tool %s got unusable arguments: %s", call.name, type(exc).__name__)
                result = BAD_ARGUMENTS
        result = result[:MAX_RESULT_CHARS]
        self.results.append(result)
        return result

    @property
    def informed(self) -> bool:
        """Whether some tool returned facts (not only "not available" or "no information")."""
        return any(result not in NOTHING for result in self.results)

    @property
    def only_public(self) -> bool:
        """Whether every tool used so far gives the same answer to everyone (safe to cache)."""
        return all(name in PUBLIC_TOOLS for name in self.used)


def _text(args: dict[str, Any], key: str) -> str:
    value = args.get(key)
    return value.strip()[:120] if isinstance(value, str) else ""


def _track(box: Toolbox, args: dict[str, Any]) -> str:
    raw = _text(args, "code")
    code = ent.extract_tracking_code(raw) or ent.extract_bare_code(raw)
    if code is None:
        return NOT_A_CODE
    answer = tracking.track(box.ctx, code, box.writer_phone)
    if answer.outcome == "core_unavailable":
        return UNAVAILABLE
    if answer.outcome == "found":
        box.codes.append(code)
    return bodies(answer.replies)


def _find(box: Toolbox, args: dict[str, Any]) -> str:
    """The writer's own packages (`lookup.own_packages`); the model's arguments are never a key."""
    own = lookup.own_packages(box.ctx, box.writer_phone)
    if own.outcome == "no_phone":
        return NO_PHONE
    box.codes.extend(own.codes)
    return bodies(own.replies)


def _point(box: Toolbox, args: dict[str, Any]) -> str:
    wanted = _text(args, "point")
    point = catalog.point_by_id(box.ctx, wanted) or catalog.find_point(box.ctx, wanted)
    if point is None:
        return "No hay un punto con ese nombre. " + bodies(business.location_answer(box.ctx, None))
    return bodies(business.location_answer(box.ctx, point.id))


def _points(box: Toolbox, args: dict[str, Any]) -> str:
    return bodies(business.location_answer(box.ctx, None))


def _quote(box: Toolbox, args: dict[str, Any]) -> str:
    weight = args.get("weight_lbs")
    pounds = float(weight) if isinstance(weight, int | float) and not isinstance(weight, bool) else None
    if pounds is not None and not 0 < pounds <= 1000:
        pounds = None
    return bodies(business.pricing_answer(box.ctx, _text(args, "destination") or None, pounds).replies)


def _delivery(box: Toolbox, args: dict[str, Any]) -> str:
    return bodies(business.delivery_time_answer(box.ctx, _text(args, "destination") or None))


def _policy(box: Toolbox, args: dict[str, Any]) -> str:
    topic = _text(args, "topic")
    if topic in faq.POLICY_TOPICS and faq.has_policy(box.ctx, topic):
        return faq.policy_text(box.ctx, topic)  # the whole text: the model is not the customer
    question = _text(args, "question")
    entries = faq.faq_search(box.ctx, question, limit=3) if question else []
    if not entries:
        return NO_POLICY
    return "\n\n".join(f"P: {e.question}\nR: {e.answer}" for e in entries)


def _escalate(box: Toolbox, args: dict[str, Any]) -> str:
    return "Conectando con un asesor."


_HANDLERS = {
    "track_package": _track, "find_packages": _find, "get_point": _point, "list_points": _points,
    "quote_price": _quote, "delivery_time": _delivery, "get_policy": _policy, "escalate": _escalate,
}
