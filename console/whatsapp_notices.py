"""What Meta said about a company's WhatsApp account, in the admin's and the operator's words (issue 17).

- `templates_context`: for the templates page (/console/templates): each template's state at Meta
  ("Aprobada", "Pausada desde 05/12/2026 14:03", "Desactivada"...), the fallback templates of
  templates.yaml with theirs, and the short "Avisos de WhatsApp" list, times on the company's clock;
- `quality_words`: a number's quality for the operator's list of companies;
- `notice_text`: one notice as a sentence.

Read-only; database errors raise (the page answers 500).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from psycopg import Connection

from notifications import template_states
from notifications.templates import NOTIFICATION_KINDS, fallbacks_for
from storage import account_notices, messaging_limits
from storage.account_notices import Notice, TemplateState
from storage.tenant_templates import TemplateRow

NOTICES_SHOWN = 10
_STATE_WORDS = {
    "PAUSED": "Pausada", "DISABLED": "Desactivada", "REJECTED": "Rechazada", "PENDING": "En revisión",
    "PENDING_DELETION": "Borrada", "DELETED": "Borrada", "ARCHIVED": "Archivada", "FLAGGED": "Aprobada, con quejas",
    "IN_APPEAL": "En apelación", "LOCKED": "Aprobada (bloqueada para editar)",
}
_TEMPLATE_EVENTS = {
    "APPROVED": "Meta aprobó la plantilla «{name}».",
    "REINSTATED": "Meta reactivó la plantilla «{name}»: ya se puede mandar otra vez.",
    "UNARCHIVED": "Meta sacó del archivo la plantilla «{name}».",
    "PAUSED": "Meta pausó la plantilla «{name}» por quejas de clientes. Los avisos usan la de respaldo o esperan.",
    "DISABLED": "Meta desactivó la plantilla «{name}». Los avisos usan la de respaldo o esperan.",
    "REJECTED": "Meta rechazó la plantilla «{name}».",
    "FLAGGED": "Meta marcó la plantilla «{name}» por quejas: si siguen, la puede pausar.",
    "PENDING": "La plantilla «{name}» está en revisión en Meta.",
    "ARCHIVED": "Meta archivó la plantilla «{name}» por no usarse.",
    "DELETED": "La plantilla «{name}» fue borrada en Meta.",
    "PENDING_DELETION": "La plantilla «{name}» fue borrada en Meta.",
}
_QUALITY = {"GREEN": "verde (alta)", "YELLOW": "amarilla (media)", "RED": "roja (baja)", "UNKNOWN": "sin calificar"}
_ACCOUNT_EVENTS = {
    "ACCOUNT_RESTRICTION": "WhatsApp restringió tu cuenta: por ahora no puedes iniciar conversaciones con clientes.",
    "ACCOUNT_VIOLATION": "WhatsApp dice que tu cuenta no cumplió sus políticas. Revisa tu WhatsApp Manager.",
    "DISABLED_UPDATE": "WhatsApp bloqueó tu cuenta. Revisa tu WhatsApp Manager.",
    "ACCOUNT_DELETED": "Tu cuenta de WhatsApp fue eliminada.",
    "ACCOUNT_OFFBOARDED": "Tu número se desconectó de WhatsApp (cambio de teléfono o nuevo registro).",
    "ACCOUNT_RECONNECTED": "Tu número se volvió a conectar a WhatsApp.",
}


def _when(moment: datetime, zone: ZoneInfo) -> str:
    return moment.astimezone(zone).strftime("%d/%m/%Y %H:%M")


def _limit_words(tier: str | None) -> str | None:
    try:
        value = messaging_limits.parse_tier(tier)
    except ValueError:
        return None
    return "sin límite" if value is None else f"{value:,}".replace(",", ".") + " clientes en 24 horas"


def notice_text(notice: Notice) -> str:
    """One notice as the admin reads it (Spanish, no internal ids)."""
    event = notice.event.upper()
    if notice.field == "template_status":
        return _TEMPLATE_EVENTS.get(event, "Meta cambió el estado de la plantilla «{name}».").format(
            name=notice.template_name or "")
    if notice.field == "template_quality":
        return f"La calidad de la plantilla «{notice.template_name}» ahora es " \
               f"{_QUALITY.get((notice.quality or '').upper(), 'otra')}."
    if notice.field == "account":
        return _ACCOUNT_EVENTS.get(event, "WhatsApp mandó un aviso sobre tu cuenta. Revisa tu WhatsApp Manager.")
    limit = _limit_words(notice.tier) if notice.tier else None
    if notice.field == "capability":
        return f"Tu límite diario de WhatsApp ahora es de {limit}." if limit else \
            "WhatsApp cambió los límites de tu cuenta."
    if notice.quality and notice.quality.upper() in _QUALITY:
        return f"La calidad de tu número de WhatsApp ahora es {_QUALITY[notice.quality.upper()]}."
    if event == "FLAGGED":
        return "WhatsApp marcó tu número por baja calidad: muchos clientes bloquean o reportan los mensajes. " \
               "Cuida qué avisos mandas." + (f" Tu límite diario queda en {limit}." if limit else "")
    if event == "UNFLAGGED":
        return "La calidad de tu número de WhatsApp volvió a la normalidad."
    if event == "THROUGHPUT_UPGRADE":
        return "WhatsApp subió la velocidad de envío de tu número."
    if event == "ONBOARDING":
        return "Tu número todavía se está registrando en WhatsApp."
    if limit:
        return f"Tu límite diario de WhatsApp ahora es de {limit}."
    return "WhatsApp mandó un aviso sobre la calidad de tu número."


def _state_text(state: TemplateState | None, zone: ZoneInfo) -> tuple[str, bool]:
    """("Aprobada" / "Pausada desde ..." ..., usable). No notice yet: approved, as configured."""
    if state is not None and state.status == "PAUSE_OVER":
        return "Aprobada (terminó la pausa)", True
    if state is None or state.status in template_states.USABLE or (state.usable and state.status == "PAUSED"):
        return "Aprobada", True
    word = _STATE_WORDS.get(state.status, "Con cambios en Meta")
    return (f"{word} desde {_when(state.since, zone)}" if not state.usable else word), state.usable


def templates_context(conn: Connection[Any], tenant_id: int, tenant_slug: str,
                      rows: tuple[TemplateRow, ...] | list[TemplateRow]) -> dict[str, Any]:
    """The templates page's WhatsApp part: state per template row id, the fallbacks, the notices."""
    found = conn.execute("SELECT timezone FROM tenants WHERE id = %s", (tenant_id,)).fetchone()
    zone = ZoneInfo(str(found["timezone"]) if found else "America/El_Salvador")
    states = account_notices.template_states(conn, tenant_id)

    def state_of(name: str, language: str) -> dict[str, Any]:
        text, usable = _state_text(states.get((name, template_states.language_code(language))), zone)
        return {"text": text, "usable": usable}

    fallbacks = [{"name": spec.name, "kind": spec.notification, "language": spec.language, "body": spec.body,
                  **state_of(spec.name, spec.language)}
                 for kind in sorted(NOTIFICATION_KINDS) for spec in fallbacks_for(tenant_slug, kind)]
    return {
        "states": {row.id: state_of(row.name, row.language) for row in rows},
        "fallbacks": fallbacks,
        "notices": [{"when": _when(n.occurred_at, zone), "text": notice_text(n),
                     "serious": n.event.upper() in ("PAUSED", "DISABLED", "REJECTED", "FLAGGED", "ACCOUNT_RESTRICTION",
                                                    "DISABLED_UPDATE", "ACCOUNT_VIOLATION")
                     or (n.quality or "").upper() in ("YELLOW", "RED")}
                    for n in account_notices.recent(conn, tenant_id, NOTICES_SHOWN)],
    }


def quality_words(notice: Notice | None) -> tuple[str, str] | None:
    """The operator's badge for a company's number: (words, badge class), or None without a notice."""
    if notice is None:
        return None
    quality = (notice.quality or "").upper()
    if quality == "RED" or notice.event.upper() == "FLAGGED":
        return "calidad baja", "high"
    if quality == "YELLOW":
        return "calidad media", "warn"
    if quality == "GREEN" or notice.event.upper() == "UNFLAGGED":
        return "calidad buena", "ok"
    return None
