"""A company's approved templates as data: which one a notification uses, the seed, and the admin's edits.

A notification of kind K for a tenant uses the tenant's `notification_templates`
row of kind K (`storage.tenant_templates`, read through the worker's cache
`rt.rules`, runtime/tenant_rules.py): enabled, its content; disabled, none (the
notification fails as "no template", as for a kind nobody configured). A kind
without a row uses the tenant's block of notifications/templates.yaml, which is
also the seed: `seed` copies it into rows the first time the admin opens
"Plantillas" in the console. So a company nobody edited sends exactly what the
YAML says, as before.

An edit is checked with the rules notifications/templates.py applies to the
YAML (placeholders {{1}}..{{n}} in order, one value each; at most 3 quick
replies of up to 20 characters; a ContentSid HX + 32 hex digits) and refused
with a message in the admin's words (`TemplateFormError`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import redis
from psycopg import Connection
from psycopg_pool import ConnectionPool

from notifications import decision
from notifications.template_states import language_code
from notifications.templates import (
    MAX_BUTTON_TITLE,
    MAX_BUTTONS,
    NOTIFICATION_KINDS,
    PLACEHOLDER,
    TemplateButton,
    TemplateConfigError,
    TemplateSpec,
    fallbacks_for,
    parse_spec,
    template_for_notification,
    templates_for,
)
from runtime.resources import Runtime
from storage import account_notices, tenant_templates
from storage.tenant_templates import TemplateFields, TemplateRow

# What the customer reads for each notification kind, in the admin's words.
KIND_LABELS = {
    decision.ARRIVED: "Paquete listo para retirar",
    decision.REFUND: "Reembolso disponible",
    decision.RETURNED: "Paquete devuelto al remitente",
    decision.REMINDER: "Recordatorio de retiro",
    decision.IN_TRANSIT: "Paquete en camino",
    decision.RECEIVED: "Paquete recibido en origen",
}
# The values each placeholder can show, as the admin reads them.
VALUE_LABELS = {
    "customer_name": "Nombre del cliente",
    "tracking_code": "Código del paquete",
    "origin_city": "Ciudad de origen",
    "destination_city": "Ciudad de destino",
    "point_name": "Nombre del punto",
    "point_address": "Dirección del punto",
    "point_hours": "Horario del punto",
    "amount_due": "Monto a pagar",
    "refund_amount": "Monto del reembolso",
    "refund_point": "Punto donde se cobra el reembolso",
    "return_point": "Punto donde se retira la devolución",
    "days_waiting": "Días que lleva esperando",
    "days_left": "Días que le quedan para retirar",
}
_COMMON = ("customer_name", "tracking_code", "origin_city", "destination_city")
_ARRIVED = (*_COMMON, "point_name", "point_address", "point_hours", "amount_due")
# Which values each kind's notification carries (notifications/decision.py builds them).
VALUES_BY_KIND: dict[str, tuple[str, ...]] = {
    decision.ARRIVED: _ARRIVED,
    decision.REMINDER: (*_ARRIVED, "days_waiting", "days_left"),
    decision.REFUND: (*_COMMON, "refund_amount", "refund_point"),
    decision.RETURNED: (*_COMMON, "return_point"),
    decision.IN_TRANSIT: _COMMON,
    decision.RECEIVED: (*_COMMON, "point_name"),
}
# What a quick reply does when tapped (its payload, the conversation engine's option id) per kind.
_TALK = ("menu_human", "Pasar con una persona")
ACTIONS_BY_KIND: dict[str, tuple[tuple[str, str], ...]] = {
    decision.ARRIVED: (("pin:{point_id}", "Mandar la ubicación del punto"), _TALK),
    decision.REMINDER: (("pin:{point_id}", "Mandar la ubicación del punto"), _TALK),
    decision.REFUND: (("pin:{refund_point_id}", "Mandar la ubicación del punto de reembolso"), _TALK),
    decision.RETURNED: (("pin:{return_point_id}", "Mandar la ubicación del punto de devolución"), _TALK),
    decision.IN_TRANSIT: (_TALK,),
    decision.RECEIVED: (("pin:{point_id}", "Mandar la ubicación del punto"), _TALK),
}
LANGUAGES = {"es": "Español", "es_MX": "Español (México)", "es_ES": "Español (España)", "en_US": "Inglés (EE. UU.)"}
_NAME = re.compile(r"^[a-z0-9_]{1,512}$")
_CONTENT_SID = re.compile(r"^HX[0-9a-f]{32}$")


class TemplateFormError(ValueError):
    """An edit that is refused; the message is for the company's admin (Spanish)."""


def spec_of(row: TemplateRow, tenant_slug: str) -> TemplateSpec:
    """The row as the spec sending works with."""
    return TemplateSpec(tenant=tenant_slug, name=row.name, notification=row.kind, language=row.language,
                        category=row.category, body=row.body, params=row.params,
                        buttons=tuple(TemplateButton(title=t, payload=p) for t, p in row.buttons),
                        twilio_content_sid=row.twilio_content_sid)


def template_for(rt: Runtime, tenant_id: int, tenant_slug: str, kind: str) -> TemplateSpec | None:
    """The template a notification of `kind` uses (from memory): the tenant's row, else its YAML block's."""
    for row in rt.rules.templates(tenant_id):
        if row.kind == kind:
            return spec_of(row, tenant_slug) if row.enabled else None
    return template_for_notification(tenant_slug, kind)


def effective(pool: ConnectionPool, tenant_id: int, tenant_slug: str) -> list[TemplateSpec]:
    """Every template the company may send now (what the console offers its agents outside the 24-hour window):
    its enabled rows, and its YAML block's for the kinds without a row; none Meta paused, disabled or rejected
    (issue 17, `notifications.template_states`). Read from the database (a page)."""
    rows = tenant_templates.for_tenant(pool, tenant_id)
    own = {row.kind for row in rows}
    with pool.connection() as conn:
        blocked = account_notices.unusable_templates(conn, tenant_id)
    specs = [*(spec_of(row, tenant_slug) for row in rows if row.enabled),
             *(spec for spec in templates_for(tenant_slug) if spec.notification not in own)]
    return [spec for spec in specs if (spec.name, language_code(spec.language)) not in blocked]


def effective_named(pool: ConnectionPool, tenant_id: int, tenant_slug: str, name: str) -> TemplateSpec:
    """The company's template called `name` among `effective`; KeyError (in Spanish) when it has none so called."""
    for spec in effective(pool, tenant_id, tenant_slug):
        if spec.name == name:
            return spec
    raise KeyError("Esa plantilla no existe o está apagada.")


def categories(conn: Connection[Any], tenant_id: int, tenant_slug: str) -> dict[str, str]:
    """Template name -> WhatsApp category of every template the tenant has used or may use (usage reports):
    its YAML block's (what it sent before any edit) and its rows' (a renamed template too)."""
    found = {spec.name: spec.category for spec in templates_for(tenant_slug)}
    found.update({spec.name: spec.category for kind in sorted(NOTIFICATION_KINDS)  # sent when one is paused
                  for spec in fallbacks_for(tenant_slug, kind)})
    found.update(tenant_templates.categories(conn, tenant_id))
    return found


def seed(pool: ConnectionPool, redis_conn: redis.Redis | None, tenant_id: int, tenant_slug: str) -> int:
    """Copy the tenant's templates.yaml block into rows for the kinds it has none of; returns how many."""
    return tenant_templates.insert_missing(pool, redis_conn, tenant_id, (
        TemplateFields(kind=s.notification, name=s.name, language=s.language, category=s.category, body=s.body,
                       params=s.params, buttons=[(b.title, b.payload) for b in s.buttons],
                       twilio_content_sid=s.twilio_content_sid)
        for s in templates_for(tenant_slug)))


def placeholders(body: str) -> list[int]:
    """The placeholder numbers of a body, in order of first appearance ({{2}} {{1}} {{2}} -> [2, 1])."""
    return list(dict.fromkeys(int(n) for n in PLACEHOLDER.findall(body)))


def checked(row: TemplateRow, *, name: str, language: str, body: str, params: Sequence[str],
            buttons: Sequence[tuple[str, str]], twilio_content_sid: str, enabled: bool) -> TemplateFields:
    """The admin's edit of `row`, validated; raises TemplateFormError saying what to fix."""
    kind = row.kind
    name, language, body = name.strip(), language.strip(), body.strip()
    content_sid = twilio_content_sid.strip() or None
    if not _NAME.match(name):
        raise TemplateFormError("El nombre de la plantilla va como en Meta: minúsculas, números y guion bajo "
                                "(por ejemplo paquete_llego).")
    if language not in LANGUAGES:
        raise TemplateFormError("Elige el idioma con el que Meta aprobó la plantilla.")
    if not body:
        raise TemplateFormError("Escribe el texto de la plantilla.")
    numbers = sorted(set(placeholders(body)))
    if numbers != list(range(1, len(numbers) + 1)):
        raise TemplateFormError("Los espacios del texto van numerados seguidos desde {{1}}: {{1}}, {{2}}, {{3}}… "
                                "Revisa que no falte ninguno.")
    values = [p.strip() for p in params[:len(numbers)]]
    allowed = VALUES_BY_KIND.get(kind, ())
    for n, value in enumerate(values, 1):
        if value not in allowed:
            raise TemplateFormError(f"Elige qué dato va en {{{{{n}}}}}.")
    if len(values) < len(numbers):
        raise TemplateFormError(f"Elige qué dato va en {{{{{len(values) + 1}}}}}.")
    actions = dict(ACTIONS_BY_KIND.get(kind, ()))
    kept = [(title.strip(), payload) for title, payload in buttons if title.strip() or payload]
    if len(kept) > MAX_BUTTONS:
        raise TemplateFormError(f"Una plantilla puede tener hasta {MAX_BUTTONS} botones.")
    for title, payload in kept:
        if not title:
            raise TemplateFormError("Cada botón necesita su texto, tal como Meta lo aprobó.")
        if len(title) > MAX_BUTTON_TITLE:
            raise TemplateFormError(f"El botón «{title}» es muy largo: hasta {MAX_BUTTON_TITLE} letras.")
        if payload not in actions:
            raise TemplateFormError(f"Elige qué hace el botón «{title}».")
    if content_sid is not None and not _CONTENT_SID.match(content_sid):
        raise TemplateFormError("El ContentSid de Twilio empieza con HX y sigue con 32 letras y números "
                                "(cópialo de la consola de Twilio), o déjalo vacío.")
    fields = TemplateFields(kind=kind, name=name, language=language, category=row.category, body=body,
                            params=values, buttons=kept, twilio_content_sid=content_sid, enabled=enabled)
    try:  # the very rules the YAML is held to
        parse_spec("console", {"name": name, "notification": kind, "language": language, "category": row.category,
                               "body": body, "params": values,
                               "buttons": [{"title": t, "payload": p} for t, p in kept],
                               "twilio_content_sid": content_sid})
    except TemplateConfigError as exc:  # the checks above cover every rule; this guards their drifting apart
        raise TemplateFormError("La plantilla no es válida. Revisa el texto, los datos y los botones.") from exc
    return fields


def value_labels(kind: str) -> Mapping[str, str]:
    return {name: VALUE_LABELS[name] for name in VALUES_BY_KIND.get(kind, ())}
