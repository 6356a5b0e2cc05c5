"""Searching a company's cases, closed ones included, over the retention period.

One box finds a case by its number ("ENC-260106-7K3P", or part of it), the
customer's phone as typed ("7000-0002", "+503 7000 0002": matched by the keyed
phone hash, no row is decrypted), the customer's name (accents and case do not
matter), a tracking code or any text of the conversation, or a tag. Filters:
status, agent (who had or resolved it), priority, tag and a date range (the
day the case opened, company time). Cases older than RETENTION_ESCALATED_DAYS
are not searched: their conversation text is erased by then
(notifications/retention.py). Newest first, PER_PAGE a page.
Read-only; every query is limited to the agent's tenant.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from psycopg import Connection

from console import tags
from console.case_queue import OPEN, PRIORITIES, priority_text
from console.team_texts import text, wording
from storage.crypto import Vault

PER_PAGE = 20
STATUSES = ("", "open", "resolved", "returned")
QUERY_MAX = 100
SNIPPET = 90
_PHONE_LIKE = re.compile(r"[\d\s()+.\-]+")
# Lower case without the accents Spanish uses, the same on both sides of LIKE.
_FOLD_SQL = "translate(lower({}), 'áéíóúüñ', 'aeiouun')"
_FOLD = str.maketrans("áéíóúüñ", "aeiouun")


class SearchError(ValueError):
    """A filter the search cannot use (the message says which, in Spanish)."""


@dataclass(frozen=True)
class Search:
    q: str = ""
    status: str = ""
    agent_id: int | None = None
    priority: str = ""
    tag: str = ""
    date_from: date | None = None
    date_to: date | None = None
    page: int = 1

    @classmethod
    def from_args(cls, args: dict[str, str]) -> Search:
        """The search a form asked for; raises SearchError for a filter that does not exist."""
        status, priority = args.get("status", ""), args.get("priority", "")
        agent, page = args.get("agent", ""), args.get("page", "") or "1"
        if status not in STATUSES or (priority and priority not in PRIORITIES) or (agent and not agent.isdigit()):
            raise SearchError(text("search_errors", "bad_filter"))
        if not page.isdigit() or not 1 <= int(page) <= 10_000:
            raise SearchError(text("search_errors", "bad_page"))
        return cls(q=" ".join(args.get("q", "").split())[:QUERY_MAX], status=status,
                   agent_id=int(agent) if agent else None, priority=priority,
                   tag=args.get("tag", "").strip()[:tags.TAG_MAX], date_from=_day(args.get("from", "")),
                   date_to=_day(args.get("to", "")), page=int(page))

    @property
    def asked(self) -> bool:
        return bool(self.q or self.status or self.agent_id or self.priority or self.tag or self.date_from
                    or self.date_to)


@dataclass(frozen=True)
class Hit:
    id: int
    case_number: str
    opened: datetime  # company time
    customer_name: str | None
    status: str
    status_label: str
    priority: str
    priority_label: str
    agent_name: str | None
    tags: tuple[str, ...]
    snippet: str | None

    @property
    def opened_text(self) -> str:
        """'6 ene 2026, 10:05' (company time)."""
        month = wording()["months"][self.opened.month - 1]
        return f"{self.opened.day} {month} {self.opened.year}, {self.opened:%H:%M}"


@dataclass(frozen=True)
class Results:
    hits: list[Hit] = field(default_factory=list)
    total: int = 0
    page: int = 1

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // PER_PAGE))


def fold_like_sql(value: str) -> str:
    """'María LÓPEZ' -> 'maria lopez': exactly what _FOLD_SQL does in the database, one character for one (a
    position found in the folded text is the same in the original). Not `services.normalize.fold`, which
    folds every accent and mark and may change the length, and which SQL does not mirror."""
    return value.lower().translate(_FOLD)


def phone_hashes(vault: Vault, query: str) -> list[str]:
    """The lookup hashes of the phone the agent typed, any format; [] when it is not a phone."""
    if not _PHONE_LIKE.fullmatch(query):
        return []
    digits = re.sub(r"\D", "", query)
    if len(digits) == 8:  # a Salvadoran number without the country code
        return [vault.lookup_hash(f"+503{digits}")]
    if 10 <= len(digits) <= 15:
        return [vault.lookup_hash(f"+{digits}")]
    return []


def search(conn: Connection[Any], vault: Vault, tenant_id: int, wanted: Search, *, now: datetime,
           retention_days: int) -> Results:
    """One page of the tenant's cases matching `wanted`, newest first."""
    zone = _zone(conn, tenant_id)
    params: dict[str, Any] = {"tenant": tenant_id, "oldest": now - timedelta(days=retention_days),
                              "limit": PER_PAGE, "offset": (wanted.page - 1) * PER_PAGE}
    where = ["e.tenant_id = %(tenant)s", "e.created_at >= %(oldest)s"]
    matched_text = "NULL::text"
    if wanted.q:
        params["like"] = "%" + _escape(wanted.q) + "%"
        params["fold_like"] = "%" + _escape(fold_like_sql(wanted.q)) + "%"
        params["key"] = tags.tag_key(wanted.q)
        params["hashes"] = phone_hashes(vault, wanted.q)
        body_matches = f"m.conversation_id = e.conversation_id AND {_FOLD_SQL.format('m.body')} LIKE %(fold_like)s"
        where.append(f"""(e.case_number ILIKE %(like)s
            OR {_FOLD_SQL.format("ct.profile_name")} LIKE %(fold_like)s
            OR ct.phone_hash = ANY(%(hashes)s)
            OR EXISTS (SELECT 1 FROM case_tags qt WHERE qt.escalation_id = e.id AND qt.tag_key = %(key)s)
            OR EXISTS (SELECT 1 FROM messages m WHERE {body_matches}))""")  # noqa: S608 - fixed clauses
        matched_text = f"(SELECT m.body FROM messages m WHERE {body_matches} ORDER BY m.id LIMIT 1)"  # noqa: S608
    if wanted.status == "open":
        where.append("e.status = ANY(%(open)s)")
        params["open"] = list(OPEN)
    elif wanted.status:
        where.append("e.status = %(status)s")
        params["status"] = wanted.status
    if wanted.agent_id is not None:
        where.append("(e.taken_by = %(agent)s OR e.resolved_by = %(agent)s)")
        params["agent"] = wanted.agent_id
    if wanted.priority:
        where.append("e.priority = %(priority)s")
        params["priority"] = wanted.priority
    if wanted.tag:
        where.append("EXISTS (SELECT 1 FROM case_tags ft WHERE ft.escalation_id = e.id AND ft.tag_key = %(tag)s)")
        params["tag"] = tags.tag_key(wanted.tag)
    if wanted.date_from:
        where.append("e.created_at >= %(from)s")
        params["from"] = datetime.combine(wanted.date_from, time.min, zone)
    if wanted.date_to:
        where.append("e.created_at < %(to)s")
        params["to"] = datetime.combine(wanted.date_to + timedelta(days=1), time.min, zone)
    rows = conn.execute(
        f"""
        SELECT e.id, e.case_number, e.created_at, e.status, e.priority, ct.profile_name AS customer_name,
               COALESCE(a.name, r.name) AS agent_name, {matched_text} AS matched_text,
               ARRAY(SELECT t.tag FROM case_tags t WHERE t.escalation_id = e.id ORDER BY t.tag) AS tags,
               count(*) OVER () AS total
        FROM escalations e
        JOIN conversations c ON c.id = e.conversation_id
        JOIN contacts ct ON ct.id = c.contact_id
        LEFT JOIN agents a ON a.id = e.taken_by
        LEFT JOIN agents r ON r.id = e.resolved_by
        WHERE {" AND ".join(where)}
        ORDER BY e.created_at DESC, e.id DESC
        LIMIT %(limit)s OFFSET %(offset)s
        """,  # noqa: S608 - fixed clauses chosen above; values are parameters
        params,
    ).fetchall()
    hits = [Hit(
        id=r["id"], case_number=r["case_number"], opened=r["created_at"].astimezone(zone),
        customer_name=r["customer_name"], status=r["status"], status_label=text("statuses", r["status"]),
        priority=r["priority"], priority_label=priority_text(r["priority"]), agent_name=r["agent_name"],
        tags=tuple(r["tags"] or ()), snippet=_snippet(r["matched_text"], wanted.q) if r["matched_text"] else None,
    ) for r in rows]
    return Results(hits=hits, total=int(rows[0]["total"]) if rows else 0, page=wanted.page)


def _day(value: str) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise SearchError(text("search_errors", "bad_date")) from None


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _zone(conn: Connection[Any], tenant_id: int) -> ZoneInfo:
    row = conn.execute("SELECT timezone FROM tenants WHERE id = %s", (tenant_id,)).fetchone()
    try:
        return ZoneInfo(str(row["timezone"])) if row else ZoneInfo("America/El_Salvador")
    except (KeyError, ValueError):
        return ZoneInfo("America/El_Salvador")


def _snippet(body: str, query: str) -> str:
    """About SNIPPET characters of the message around the first match, with "…" where it was cut."""
    flat = " ".join(body.split())
    at = fold_like_sql(flat).find(fold_like_sql(query))
    if len(flat) <= SNIPPET:
        return flat
    start = max(0, at - SNIPPET // 3) if at >= 0 else 0
    piece = flat[start:start + SNIPPET]
    return ("…" if start else "") + piece + ("…" if start + SNIPPET < len(flat) else "")
