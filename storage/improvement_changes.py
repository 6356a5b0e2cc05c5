"""Table `improvement_changes`: every change an admin made from the "Mejoras" page, and its undoing (migration 0020).

A change is kept for good: undoing it sets `undone_by`/`undone_at` and
leaves the row, so the history says who made it, when, from which group of
messages, what it made (`target`), and who undid it. A change is named by its
row id; another company's id is treated as one that does not exist.
Failure policy: database errors raise.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import Connection
from psycopg.types.json import Jsonb

ACTIONS = ("faq", "phrase", "canned")
HISTORY_MAX = 100
_COLUMNS = ("c.id, c.tenant_id, c.action, c.group_text, c.summary, c.target, c.created_by, c.created_at,"
            " c.undone_by, c.undone_at, a.name AS author, u.name AS undone_by_name")


@dataclass(frozen=True)
class Change:
    id: int
    tenant_id: int
    action: str  # faq | phrase | canned
    group_text: str  # the group's representative message, masked
    summary: str  # what was made, in the admin's words
    target: dict[str, Any]  # the object made: {"faq_entry", "faq_version"} | {"phrase_id"} | {"canned_id"}
    created_by: int | None
    author: str | None
    created_at: datetime
    undone_by: int | None
    undone_by_name: str | None
    undone_at: datetime | None

    @property
    def undone(self) -> bool:
        return self.undone_at is not None


def _change(row: dict[str, Any]) -> Change:
    return Change(int(row["id"]), int(row["tenant_id"]), str(row["action"]), str(row["group_text"]),
                  str(row["summary"]), dict(row["target"]), row["created_by"], row["author"], row["created_at"],
                  row["undone_by"], row["undone_by_name"], row["undone_at"])


def record(conn: Connection[Any], *, tenant_id: int, action: str, group_text: str, summary: str,
           target: dict[str, Any], created_by: int | None) -> int:
    """Keep one change; returns its id."""
    if action not in ACTIONS:
        raise ValueError(f"unknown improvement action {action!r}")
    row: Any = conn.execute(
        "INSERT INTO improvement_changes (tenant_id, action, group_text, summary, target, created_by)"
        " VALUES (%s, %s, %s, %s, %s, %s) RETURNING id",
        (tenant_id, action, group_text[:300], summary[:300], Jsonb(target), created_by)).fetchone()
    return int(row["id"])


def history(conn: Connection[Any], tenant_id: int, limit: int = HISTORY_MAX) -> list[Change]:
    """The company's changes, newest first."""
    found: list[Any] = conn.execute(
        f"SELECT {_COLUMNS} FROM improvement_changes c LEFT JOIN agents a ON a.id = c.created_by"  # noqa: S608
        " LEFT JOIN agents u ON u.id = c.undone_by WHERE c.tenant_id = %s ORDER BY c.id DESC LIMIT %s",
        (tenant_id, limit)).fetchall()
    return [_change(row) for row in found]


def by_id(conn: Connection[Any], tenant_id: int, change_id: int) -> Change | None:
    """One of the company's changes (None when it has no such change)."""
    row: Any = conn.execute(
        f"SELECT {_COLUMNS} FROM improvement_changes c LEFT JOIN agents a ON a.id = c.created_by"  # noqa: S608
        " LEFT JOIN agents u ON u.id = c.undone_by WHERE c.tenant_id = %s AND c.id = %s",
        (tenant_id, change_id)).fetchone()
    return _change(row) if row is not None else None


def mark_undone(conn: Connection[Any], tenant_id: int, change_id: int, agent_id: int) -> bool:
    """Mark a change undone by `agent_id`; False when it was undone already (or is not the company's)."""
    row = conn.execute(
        "UPDATE improvement_changes SET undone_by = %s, undone_at = now()"
        " WHERE id = %s AND tenant_id = %s AND undone_at IS NULL RETURNING id",
        (agent_id, change_id, tenant_id)).fetchone()
    return row is not None
