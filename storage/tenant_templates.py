"""A company's approved WhatsApp templates, one row per notification kind (`notification_templates`, 0016).

The rows are seeded from the tenant's block of notifications/templates.yaml
(`notifications.tenant_templates.seed`) and then edited by the company's
admin; `notifications.tenant_templates` validates them (the rules of
notifications/templates.py) before they reach this module, which only stores.
Every write is scoped to its tenant and announced (`storage.tenant_changes`).
Failure policy: database errors raise.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import redis
from psycopg import Connection
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool

from storage import tenant_changes

_COLUMNS = ("id, tenant_id, kind, name, language, category, body, params, buttons, twilio_content_sid, enabled,"
            " updated_at")


@dataclass(frozen=True)
class TemplateRow:
    id: int
    tenant_id: int
    kind: str  # the notification it carries (notifications.templates.NOTIFICATION_KINDS)
    name: str  # the template's name at Meta
    language: str
    category: str
    body: str  # with {{1}}, {{2}}...
    params: tuple[str, ...]  # the notification value that fills each placeholder, in order
    buttons: tuple[tuple[str, str], ...]  # (title, payload) quick replies, in the approved order
    twilio_content_sid: str | None
    enabled: bool


def _row(raw: Any) -> TemplateRow:
    return TemplateRow(
        id=int(raw["id"]), tenant_id=int(raw["tenant_id"]), kind=str(raw["kind"]), name=str(raw["name"]),
        language=str(raw["language"]), category=str(raw["category"]), body=str(raw["body"]),
        params=tuple(raw["params"] or ()), buttons=tuple((str(b["title"]), str(b["payload"])) for b in raw["buttons"]),
        twilio_content_sid=raw["twilio_content_sid"], enabled=bool(raw["enabled"]),
    )


def for_tenant(pool: ConnectionPool, tenant_id: int) -> tuple[TemplateRow, ...]:
    with pool.connection() as conn:
        found = conn.execute(f"SELECT {_COLUMNS} FROM notification_templates WHERE tenant_id = %s"  # noqa: S608
                             " ORDER BY id", (tenant_id,)).fetchall()  # (the column list is a constant)
    return tuple(_row(r) for r in found)


def categories(conn: Connection[Any], tenant_id: int) -> dict[str, str]:
    """Template name -> WhatsApp category of the tenant's rows (usage reports count templates by category)."""
    found = conn.execute("SELECT name, category FROM notification_templates WHERE tenant_id = %s",
                         (tenant_id,)).fetchall()
    return {str(r["name"]): str(r["category"]) for r in found}


def get(pool: ConnectionPool, tenant_id: int, template_id: int) -> TemplateRow | None:
    """The tenant's template `template_id`; None for an unknown id or another company's."""
    with pool.connection() as conn:
        found = conn.execute(f"SELECT {_COLUMNS} FROM notification_templates"  # noqa: S608
                             " WHERE id = %s AND tenant_id = %s", (template_id, tenant_id)).fetchone()
    return _row(found) if found is not None else None


@dataclass(frozen=True)
class TemplateFields:
    """What a template row holds besides its tenant and id (validated by the caller)."""

    kind: str
    name: str
    language: str
    category: str
    body: str
    params: Sequence[str]
    buttons: Sequence[tuple[str, str]]
    twilio_content_sid: str | None
    enabled: bool = True


def _values(fields: TemplateFields) -> tuple[Any, ...]:
    return (fields.name, fields.language, fields.category, fields.body, list(fields.params),
            Jsonb([{"title": t, "payload": p} for t, p in fields.buttons]), fields.twilio_content_sid, fields.enabled)


def insert_missing(pool: ConnectionPool, redis_conn: redis.Redis | None, tenant_id: int,
                   templates: Iterable[TemplateFields]) -> int:
    """Add the templates of kinds the tenant has no row for (the seed); returns how many were added."""
    added = 0
    with pool.connection() as conn:
        for fields in templates:
            added += conn.execute(
                "INSERT INTO notification_templates (tenant_id, kind, name, language, category, body, params,"
                " buttons, twilio_content_sid, enabled) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
                " ON CONFLICT (tenant_id, kind) DO NOTHING", (tenant_id, fields.kind, *_values(fields)),
            ).rowcount
    if added:
        tenant_changes.announce(redis_conn)
    return added


def update(pool: ConnectionPool, redis_conn: redis.Redis | None, tenant_id: int, template_id: int,
           fields: TemplateFields) -> bool:
    """Replace the template's content (its kind stays); False for an unknown id or another company's."""
    with pool.connection() as conn:
        changed = conn.execute(
            "UPDATE notification_templates SET name = %s, language = %s, category = %s, body = %s, params = %s,"
            " buttons = %s, twilio_content_sid = %s, enabled = %s, updated_at = now()"
            " WHERE id = %s AND tenant_id = %s AND kind = %s",
            (*_values(fields), template_id, tenant_id, fields.kind),
        ).rowcount
    if changed:
        tenant_changes.announce(redis_conn)
    return bool(changed)
