"""Who the agent is talking to: the customer's name and phone, their packages and their cases.

The phone is decrypted only for the agent's own company (the case was loaded for the agent's tenant). A
company may hide it from agents with the `agent` role (`tenants.mask_phones_for_agents`): they read
"+503 7••• ••02"; supervisors and admins always see it. The packages are the ones whose sender or recipient
phone is the customer's own WhatsApp number, found through `services.lookup.own_packages` (never by
a name), each with the customer's role in it, its status in words and the amount to collect. The cases are
the customer's cases in this company, newest first.

Failure policy: never raises for the core. When the core cannot answer, the panel says so in Spanish and the
rest of the page works; database errors raise.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import redis
from psycopg import Connection

from console import words
from core_api_client import CoreClient, CoreError, Package
from handoff.agents import Agent
from handoff.cases import Case, wording
from services import ServiceContext, catalog, lookup, money, texts
from storage.crypto import Vault

log = logging.getLogger(__name__)

MAX_CASES = 20
# The customer's package lines, kept briefly: a case page reloads on every live event, and the core should not
# be searched each time (nor waited for each time while it is down). Keyed by contact id, never by a phone.
PACKAGES_KEY = "console:customer_packages:{tenant}:{contact_id}"
PACKAGES_TTL_S = 60
CORE_DOWN_TTL_S = 15
MASK = "•"
_SV = re.compile(r"^503(\d{4})(\d{4})$")


@dataclass(frozen=True)
class Panel:
    """What the case page shows about the customer; `phone` is None when hidden or unknown."""

    name: str
    phone: str | None  # "+503 7000 0002" when the agent may see it
    phone_shown: str  # what the page prints: the phone, masked, or "oculto" / nothing
    packages: list[dict[str, Any]]
    packages_notice: str | None  # why there is no list (core down, no phone, none found)
    cases: list[dict[str, Any]]
    callback_phone: str | None = None  # the number to call back, when the customer is waiting for a call

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "phone": self.phone, "phone_shown": self.phone_shown,
                "tel": tel_href(self.phone), "packages": self.packages, "packages_notice": self.packages_notice,
                "cases": self.cases,
                "callback": {"phone": self.callback_phone, "tel": tel_href(self.callback_phone)}
                if self.callback_phone else None}


def _digits(phone: str) -> str:
    return re.sub(r"\D", "", phone)


def _local(phone: str) -> str:
    """The digits with El Salvador's country code, however the number was written ("7000-0002" too)."""
    digits = _digits(phone)
    return "503" + digits if len(digits) == 8 else digits


def format_phone(phone: str) -> str:
    """"+503 7000 0002" for a Salvadoran number, "+<digits>" for any other."""
    digits = _digits(phone)
    found = _SV.match(digits)
    return f"+503 {found.group(1)} {found.group(2)}" if found else f"+{digits}"


def mask_phone(phone: str) -> str:
    """"+503 7••• ••02": the country, the first digit and the last two; the rest hidden."""
    digits = _digits(phone)
    found = _SV.match(digits)
    if found:
        local = found.group(1) + found.group(2)
        return f"+503 {local[0]}{MASK * 3} {MASK * 2}{local[-2:]}"
    if len(digits) <= 4:
        return "+" + MASK * len(digits)
    return "+" + digits[:2] + MASK * (len(digits) - 4) + digits[-2:]


def tel_href(phone: str | None) -> str | None:
    return f"tel:+{_digits(phone)}" if phone else None


def sees_phone(agent: Agent, masked_for_agents: bool) -> bool:
    """Supervisors and admins always; agents unless their company hides phones from them."""
    return agent.role != "agent" or not masked_for_agents


def service_context(conn: Connection[Any], redis_conn: redis.Redis, core: CoreClient, tenant_id: int,
                    now: datetime) -> ServiceContext:
    """The services' view of the agent's company (its core, its cache keys, its clock)."""
    row = conn.execute("SELECT slug, name, timezone FROM tenants WHERE id = %s", (tenant_id,)).fetchone()
    if row is None:
        raise LookupError(f"tenant {tenant_id} does not exist")
    return ServiceContext(core=core, redis=redis_conn, tenant_slug=row["slug"], company_name=row["name"],
                          timezone=ZoneInfo(row["timezone"]), now=now)


def point_names(ctx: ServiceContext) -> dict[str, str]:
    """Point id -> its name ("La Unión - Punto Centro"); empty when the core cannot list them."""
    try:
        return {p.id: p.name for p in catalog.points(ctx)}
    except CoreError as exc:
        log.warning("service points unavailable for the console: %s", type(exc).__name__)
        return {}


def build(conn: Connection[Any], ctx: ServiceContext, vault: Vault, agent: Agent, case: Case,
          names: dict[str, str], *, call_pending: bool = False) -> Panel:
    """The panel for one case of the agent's company.

    A customer waiting for a call gets the number to call shown to whoever opens the case, whatever the
    masking: they asked to be called at it, and calling is the agent's job.
    """
    row = conn.execute(
        "SELECT ct.phone_encrypted, ct.profile_name, t.mask_phones_for_agents FROM contacts ct"
        " JOIN tenants t ON t.id = ct.tenant_id WHERE ct.id = %s AND ct.tenant_id = %s",
        (case.contact_id, agent.tenant_id),
    ).fetchone()
    if row is None:
        raise LookupError(f"contact {case.contact_id} is not of tenant {agent.tenant_id}")
    w = wording()["panel"]
    phone = vault.decrypt(row["phone_encrypted"]) if row["phone_encrypted"] else None
    visible = sees_phone(agent, row["mask_phones_for_agents"])
    if phone is None:
        shown = ""
    else:
        shown = format_phone(phone) if visible else mask_phone(phone)
    lines, notice = cached_packages(ctx, case.contact_id, phone, names)
    return Panel(name=row["profile_name"] or "", phone=format_phone(phone) if phone and visible else None,
                 phone_shown=shown or (w["phone_hidden"] if phone else ""), packages=lines,
                 packages_notice=notice, cases=cases(conn, agent.tenant_id, case, ctx.timezone),
                 callback_phone=format_phone(phone) if phone and call_pending else None)


def cached_packages(ctx: ServiceContext, contact_id: int, phone: str | None,
                    names: dict[str, str]) -> tuple[list[dict[str, Any]], str | None]:
    """`packages`, kept PACKAGES_TTL_S in Redis (CORE_DOWN_TTL_S when the core did not answer).

    Failure policy: Redis errors are logged and the core is asked.
    """
    key = PACKAGES_KEY.format(tenant=ctx.tenant_slug, contact_id=contact_id)
    try:
        raw = ctx.redis.get(key)
    except redis.RedisError as exc:
        log.warning("customer's packages not read from the cache: %s", type(exc).__name__)
        return packages(ctx, phone, names)
    if isinstance(raw, bytes | str):
        kept = json.loads(raw)
        return kept["lines"], kept["notice"]
    lines, notice = packages(ctx, phone, names)
    ttl = CORE_DOWN_TTL_S if notice == wording()["panel"]["core_down"] else PACKAGES_TTL_S
    try:
        ctx.redis.set(key, json.dumps({"lines": lines, "notice": notice}, ensure_ascii=False), ex=ttl)
    except redis.RedisError as exc:
        log.warning("customer's packages not cached: %s", type(exc).__name__)
    return lines, notice


def packages(ctx: ServiceContext, phone: str | None, names: dict[str, str]) -> tuple[list[dict[str, Any]], str | None]:
    """The customer's own packages as lines, or why there are none to show."""
    w = wording()["panel"]
    if not phone:
        return [], str(w["no_phone"])
    try:
        found = lookup.own_packages(ctx, phone)
    except CoreError as exc:
        log.warning("customer's packages unavailable for the console: %s", type(exc).__name__)
        return [], str(w["core_down"])
    if not found.packages:
        return [], str(w["no_packages"])
    return [package_line(p, phone, names) for p in found.packages], None


# Statuses after which the amount to collect has been paid (or never will be).
COLLECTED = frozenset({"DELIVERED", "RETURNED_TO_SENDER", "CANCELLED"})


def package_line(package: Package, phone: str, names: dict[str, str]) -> dict[str, Any]:
    w = wording()["panel"]
    mine = _local(phone)
    sender, recipient = _local(package.sender.phone) == mine, _local(package.recipient.phone) == mine
    role = w["role_both"] if sender and recipient else w["role_sender"] if sender else w["role_recipient"]
    status = texts.load("services")["statuses"].get(package.status)
    other = package.recipient.name if sender and not recipient else package.sender.name
    destination = names.get(package.destination_point) or package.destination_city or words.readable_id(
        package.destination_point)
    amount = package.amount_to_collect
    collected = package.status in COLLECTED
    refund = package.refund
    if amount > 0 and collected:  # already paid at pickup: the sender's refund, not money still to collect
        key = "refund_available" if refund is not None and refund.status == "AVAILABLE" and sender else "collected"
        to_collect = str(w[key]).format(amount=money(refund.amount if refund and key == "refund_available" else amount))
    else:
        to_collect = str(w["to_collect"]).format(amount=money(amount)) if amount > 0 else str(w["nothing_to_collect"])
    return {
        "code": package.tracking_code, "role": str(role), "other_party": other,
        "status": str(status["short"]) if status else str(w["status_unknown"]),
        "destination": destination,
        "to_collect": to_collect,
        "collect_amount": money(amount) if amount > 0 and not collected else None,
    }


def cases(conn: Connection[Any], tenant_id: int, current: Case, zone: ZoneInfo) -> list[dict[str, Any]]:
    """The customer's cases in this company, open and past, newest first (the current one marked)."""
    rows = conn.execute(
        "SELECT e.id, e.case_number, e.created_at, e.status, e.reason FROM escalations e"
        " JOIN conversations c ON c.id = e.conversation_id"
        " WHERE c.contact_id = %s AND e.tenant_id = %s ORDER BY e.created_at DESC, e.id DESC LIMIT %s",
        (current.contact_id, tenant_id, MAX_CASES),
    ).fetchall()
    return [{"id": r["id"], "case_number": r["case_number"], "current": r["id"] == current.id,
             "open": r["status"] in ("waiting", "taken", "callback"),
             "date": r["created_at"].astimezone(zone).strftime("%d/%m/%Y %H:%M"),
             "status": words.case_status(r["status"]), "reason": words.reason(r["reason"])} for r in rows]
