"""What the bot knew when it handed over: the dialog state in Redis, the routing of each customer message,
and the live status of the packages the customer asked about (from the logistics core).

The dialog state is found by the same hashed key the worker uses
(`runtime.enqueue.conversation_hash`: provider, receiving number, customer);
when it expired, the routing decisions stored with the messages still give
intents, tracking codes and points. Failure policy: never raises; what cannot
be read (Redis down, core down) is simply left out.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import redis
from psycopg import Connection

from console import casefile
from console.summary import Facts
from core_api_client import CoreClient, CoreError
from handoff import cases
from services import texts
from storage import dialogs
from storage.crypto import Vault
from storage.dialogs import DialogState

log = logging.getLogger(__name__)

MAX_PACKAGES = 3


@dataclass(frozen=True)
class Knowledge:
    facts: Facts
    state: str | None = None  # the dialog's state name when the state was readable
    last_intent: str | None = None
    package_lines: list[dict[str, Any]] = field(default_factory=list)


def dialog_state(conn: Connection[Any], redis_conn: redis.Redis, vault: Vault,
                 conversation_id: int) -> DialogState | None:
    """The worker's dialog state for the conversation's customer, if it still belongs to this conversation."""
    row = conn.execute(
        """
        SELECT m.channel, ch.number, ct.phone_encrypted, ct.bsuid
        FROM conversations c JOIN contacts ct ON ct.id = c.contact_id
        JOIN LATERAL (SELECT channel FROM messages WHERE conversation_id = c.id AND direction = 'in'
                      ORDER BY id DESC LIMIT 1) m ON true
        -- the tenant's (first) number on that provider: the one the customer wrote to
        JOIN LATERAL (SELECT number FROM tenant_channels WHERE tenant_id = c.tenant_id AND provider = m.channel
                      ORDER BY id LIMIT 1) ch ON true
        WHERE c.id = %s
        """,
        (conversation_id,),
    ).fetchone()
    if row is None:
        return None
    number = row["number"]
    who = vault.decrypt(row["phone_encrypted"]) if row["phone_encrypted"] else row["bsuid"]
    key = vault.lookup_hash(f"{row['channel']}:{number}:{who}")[:32]
    state = dialogs.load(redis_conn, key)
    return state if state.conversation_id == conversation_id else None


def gather(conn: Connection[Any], redis_conn: redis.Redis, vault: Vault, core: CoreClient | None, *,
           conversation_id: int, case_number: str, reason: str, priority: str,
           customer_name: str | None) -> Knowledge:
    state = None
    try:
        state = dialog_state(conn, redis_conn, vault, conversation_id)
    except Exception as exc:  # noqa: BLE001 - an unreadable state only hides part of the picture
        log.warning("dialog state unavailable for the console: %s", type(exc).__name__)
    intents: list[str] = []
    codes: list[str] = []
    point = None
    for route in casefile.routes(conn, conversation_id):
        if route.get("intent"):
            intents.append(str(route["intent"]))
        entities = route.get("entities") or {}
        if entities.get("tracking_code") and entities["tracking_code"] not in codes:
            codes.append(str(entities["tracking_code"]))
        if entities.get("point"):
            point = str(entities["point"])
    searched = None
    if state is not None:
        for code in state.packages:
            if code not in codes:
                codes.append(code)
        point = state.point or point
        searched = str(state.search.get("name")) if state.search.get("name") else None
    lines = [_package_line(core, code) for code in codes[-MAX_PACKAGES:]]
    facts = Facts(case_number=case_number, reason=reason, priority=priority, customer_name=customer_name,
                  intents=intents, packages=[(line["code"], line["status"]) for line in lines], point=point,
                  searched_name=searched)
    return Knowledge(facts, state.state if state else None, state.last_intent if state else None, lines)


def _package_line(core: CoreClient | None, code: str) -> dict[str, Any]:
    line: dict[str, Any] = {"code": code, "status": None, "destination": None}
    if core is None:
        return line
    try:
        package = core.track(code)
    except CoreError as exc:
        log.warning("package status unavailable for the console: %s", type(exc).__name__)
        return line
    if package is None:
        line["status"] = "no existe en el sistema"
        return line
    names = texts.load("services")["statuses"].get(package.status)
    # a status this version has no words for is never shown as the core's id
    line["status"] = str(names["short"]) if names else str(cases.wording()["panel"]["status_unknown"])
    line["destination"] = package.destination_city or package.destination_point
    return line
