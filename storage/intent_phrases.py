"""Table `tenant_intent_phrases`: a company's own phrases for the router's intents (migration 0020).

The lexicon (chatbot/lexicon/es_sv.yaml) is the same for every company; a
company's admin adds phrases of its own from the "Mejoras" page (a group of
messages the bot did not understand becomes a phrase of an existing intent).
The router matches a company's phrases only for that company, as a phrase of
its keyword stage (chatbot/phrases.py `company_score`). The worker keeps each
company's phrases in memory (`Runtime.phrases`, a `TenantCache`): every write
here announces a change (`storage.tenant_changes`), so the next message reads
the new phrases within about a second, and a message costs no query.

`INTENT_LABELS` are the intents an admin may add phrases to, with the names the
page shows (the others are the dialog's own: greetings, the menu, opting out).
Failure policy: database errors raise; `PhraseError` says in the admin's words why a phrase is refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import redis
from psycopg import Connection, errors
from psycopg_pool import ConnectionPool

from storage import tenant_changes

PHRASE_MAX = 200
MAX_PER_TENANT = 500  # what one company's router reads per message stays small

INTENT_LABELS = {
    "track_package": "Rastrear un paquete",
    "find_packages": "Buscar mis paquetes sin código",
    "hours": "Horarios de atención",
    "locations": "Puntos de entrega y direcciones",
    "pricing": "Precios y tarifas",
    "delivery_time": "Tiempo de entrega",
    "requirements": "Requisitos para enviar",
    "unclaimed_policy": "Paquetes que nadie retira",
    "refund": "Reembolsos",
    "payment": "Pagos",
    "change_delivery": "Cambiar la entrega o la dirección",
    "sales_lead": "Quiere contratar el servicio (ventas)",
    "complaint": "Queja o reclamo",
    "human_agent": "Hablar con una persona",
}


class PhraseError(ValueError):
    """A phrase the page refuses; the message is for the admin, in Spanish."""


@dataclass(frozen=True)
class Phrase:
    id: int
    intent: str
    phrase: str


@dataclass(frozen=True)
class CompanyPhrases:
    """What the router reads for one company: (intent, phrase) pairs, oldest first (hashable: the router
    compiles each distinct set once per process)."""

    tenant_id: int
    phrases: tuple[tuple[str, str], ...] = ()


def for_tenant(pool: ConnectionPool, tenant_id: int) -> CompanyPhrases:
    """The company's phrases, for the worker's cache (one query)."""
    with pool.connection() as conn:
        found = conn.execute("SELECT intent, phrase FROM tenant_intent_phrases WHERE tenant_id = %s ORDER BY id"
                             " LIMIT %s", (tenant_id, MAX_PER_TENANT)).fetchall()
    return CompanyPhrases(tenant_id, tuple((str(r["intent"]), str(r["phrase"])) for r in found))  # type: ignore[call-overload]


def listed(conn: Connection[Any], tenant_id: int) -> list[Phrase]:
    rows: list[Any] = conn.execute("SELECT id, intent, phrase FROM tenant_intent_phrases WHERE tenant_id = %s"
                                   " ORDER BY id", (tenant_id,)).fetchall()
    return [Phrase(int(r["id"]), str(r["intent"]), str(r["phrase"])) for r in rows]


def add(conn: Connection[Any], redis_conn: redis.Redis | None, tenant_id: int, intent: str, phrase: str, *,
        created_by: int | None) -> int:
    """Store a phrase of `intent` for the company and announce it; returns its id. PhraseError when refused."""
    phrase = " ".join(phrase.split())
    if intent not in INTENT_LABELS:
        raise PhraseError("Elige qué quiere el cliente con esa frase.")
    if not any(len(word) >= 3 for word in phrase.split()):
        raise PhraseError("Escribe la frase como la escribiría un cliente, con al menos una palabra completa.")
    if len(phrase) > PHRASE_MAX:
        raise PhraseError(f"La frase es muy larga: máximo {PHRASE_MAX} caracteres.")
    count: Any = conn.execute("SELECT count(*) AS n FROM tenant_intent_phrases WHERE tenant_id = %s",
                              (tenant_id,)).fetchone()
    if int(count["n"]) >= MAX_PER_TENANT:
        raise PhraseError(f"Tu empresa ya tiene {MAX_PER_TENANT} frases: quita alguna antes de agregar otra.")
    try:
        with conn.transaction():
            row: Any = conn.execute(
                "INSERT INTO tenant_intent_phrases (tenant_id, intent, phrase, created_by) VALUES (%s, %s, %s, %s)"
                " RETURNING id", (tenant_id, intent, phrase, created_by)).fetchone()
    except errors.UniqueViolation:
        raise PhraseError("Esa frase ya está agregada.") from None
    tenant_changes.announce(redis_conn)
    return int(row["id"])


def remove(conn: Connection[Any], redis_conn: redis.Redis | None, tenant_id: int, phrase_id: int) -> bool:
    """Delete one of the company's phrases and announce it; False when it has no such phrase."""
    row = conn.execute("DELETE FROM tenant_intent_phrases WHERE id = %s AND tenant_id = %s RETURNING id",
                       (phrase_id, tenant_id)).fetchone()
    if row is not None:
        tenant_changes.announce(redis_conn)
    return row is not None
