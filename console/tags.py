"""Tags on cases: short free words an agent adds ("reembolso", "daño", "vip"), per tenant.

A tag is normalised before it is stored: lower case, no leading "#", spaces
become "-", only letters, digits, "-" and "_". Its key also drops accents, so
"Daño", "#daño" and "dano" are one tag: a case holds it once, and the spelling
the tenant used first is the one every case shows. Tags are shown in the queue
and on the case page and are searchable (console.search). Adding or removing
one is recorded in the case history and announced live.
Failure policy: bad input raises TagError (the agent's answer, 400); database errors raise.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from psycopg import Connection
from psycopg.types.json import Jsonb

from console.team_texts import text
from handoff import cases, live
from handoff.agents import Agent
from handoff.cases import Desk, HandoffError

TAG_MAX = 30
TAGS_PER_CASE = 10
VOCABULARY = 50
_ALLOWED = re.compile(r"^[\w-]+$")


class TagError(HandoffError):
    """A tag that cannot be stored as written (the message says why, in Spanish)."""


def normalise(raw: str) -> tuple[str, str]:
    """('daño', 'dano') from ' #Daño '; raises TagError for an empty, long or odd tag."""
    tag = unicodedata.normalize("NFC", raw).strip().lstrip("#").strip().lower()
    tag = re.sub(r"\s+", "-", tag)
    if not tag:
        raise TagError(text("tag_errors", "empty"))
    if len(tag) > TAG_MAX:
        raise TagError(text("tag_errors", "too_long", max=TAG_MAX))
    if not _ALLOWED.match(tag):
        raise TagError(text("tag_errors", "invalid"))
    return tag, tag_key(tag)


def tag_key(tag: str) -> str:
    """What makes two spellings one tag: lower case, no accents, '_' as '-'."""
    decomposed = unicodedata.normalize("NFKD", tag.strip().lstrip("#").lower())
    plain = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return re.sub(r"[\s_]+", "-", plain)[:TAG_MAX]


def for_case(conn: Connection[Any], case_id: int) -> list[str]:
    rows = conn.execute("SELECT tag FROM case_tags WHERE escalation_id = %s ORDER BY tag", (case_id,)).fetchall()
    return [str(r["tag"]) for r in rows]


def vocabulary(conn: Connection[Any], tenant_id: int) -> list[str]:
    """The tenant's tags, most used first (suggestions while typing)."""
    rows = conn.execute(
        "SELECT min(tag) AS tag FROM case_tags WHERE tenant_id = %s GROUP BY tag_key"
        " ORDER BY count(*) DESC, min(tag) LIMIT %s",
        (tenant_id, VOCABULARY),
    ).fetchall()
    return [str(r["tag"]) for r in rows]


def add(desk: Desk, agent: Agent, case_id: int, raw: str) -> list[str]:
    """Tag the case (a tag it has already is no change); returns the case's tags."""
    tag, key = normalise(raw)
    with desk.pool.connection() as conn, conn.transaction():
        case = cases.load_case(conn, agent.tenant_id, case_id, lock=True)
        current = for_case(conn, case.id)
        if key in {tag_key(t) for t in current}:
            return current
        if len(current) >= TAGS_PER_CASE:
            raise TagError(text("tag_errors", "too_many", max=TAGS_PER_CASE))
        known: Any = conn.execute(
            "SELECT tag FROM case_tags WHERE tenant_id = %s AND tag_key = %s ORDER BY created_at LIMIT 1",
            (agent.tenant_id, key),
        ).fetchone()
        spelling = str(known["tag"]) if known else tag
        conn.execute(
            "INSERT INTO case_tags (tenant_id, escalation_id, tag, tag_key, agent_id) VALUES (%s, %s, %s, %s, %s)"
            " ON CONFLICT DO NOTHING",
            (agent.tenant_id, case.id, spelling, key, agent.id),
        )
        _record(conn, agent, case.id, "tag", spelling)
        tags = for_case(conn, case.id)
    live.publish(desk.redis, agent.tenant_id, "handoff", case_id=case.id, conversation_id=case.conversation_id,
                 action="tag", agent=agent.name, agent_id=agent.id)
    return tags


def remove(desk: Desk, agent: Agent, case_id: int, raw: str) -> list[str]:
    """Take the tag off the case (a tag it does not have is no change); returns the case's tags."""
    key = tag_key(raw)
    with desk.pool.connection() as conn, conn.transaction():
        case = cases.load_case(conn, agent.tenant_id, case_id, lock=True)
        gone: Any = conn.execute(
            "DELETE FROM case_tags WHERE escalation_id = %s AND tag_key = %s RETURNING tag", (case.id, key),
        ).fetchone()
        if gone is not None:
            _record(conn, agent, case.id, "untag", str(gone["tag"]))
        tags = for_case(conn, case.id)
    if gone is not None:
        live.publish(desk.redis, agent.tenant_id, "handoff", case_id=case.id, conversation_id=case.conversation_id,
                     action="untag", agent=agent.name, agent_id=agent.id)
    return tags


def _record(conn: Connection[Any], agent: Agent, case_id: int, action: str, tag: str) -> None:
    conn.execute(
        "INSERT INTO handoff_events (tenant_id, escalation_id, agent_id, action, data) VALUES (%s, %s, %s, %s, %s)",
        (agent.tenant_id, case_id, agent.id, action, Jsonb({"tag": tag})),
    )
