"""Rows for the operations figures' tests, written straight into the tables with the moments a scenario needs.

The product stamps rows with the database clock; the figures' tests need hours and days in the past
(across midnight in America/El_Salvador, late statuses, sessions over 24 hours), so `Rows` writes
them with explicit times, in the shapes the worker, the console and the notifications write them
(the idempotency keys, the route/csat/not_understood events, the first reply "<event>:0").
`generate` makes a random but reproducible month of several companies for the rollup tests.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from psycopg import Connection
from psycopg.types.json import Jsonb

_ids = itertools.count(1)


class Rows:
    def __init__(self, conn: Connection[Any]) -> None:
        self.conn = conn

    def _one(self, sql: str, args: tuple[Any, ...]) -> int:
        row = self.conn.execute(sql, args).fetchone()
        assert row is not None
        return int(row["id"])

    def tenant(self, slug: str) -> int:
        return self._one("INSERT INTO tenants (slug, name) VALUES (%s, %s) RETURNING id", (slug, slug.title()))

    def contact(self, tenant: int) -> int:
        return self._one("INSERT INTO contacts (tenant_id, phone_hash) VALUES (%s, %s) RETURNING id",
                         (tenant, f"hash-{next(_ids)}"))

    def conversation(self, tenant: int, contact: int, at: datetime) -> int:
        return self._one("INSERT INTO conversations (tenant_id, contact_id, status, started_at, last_message_at)"
                         " VALUES (%s, %s, 'closed', %s, %s) RETURNING id", (tenant, contact, at, at))

    def customer_message(self, tenant: int, conversation: int, at: datetime, *, stage: str = "keyword",
                         intent: str | None = "tracking", understood: bool = True,
                         reply_after_s: float | None = 0.8, reply_status: str = "delivered") -> int:
        """A customer's message as the worker stores it: its webhook event, the message, the route event,
        a not_understood event when not understood, and the first reply accepted `reply_after_s` later.
        Returns the webhook event's id."""
        event = self._one(
            "INSERT INTO webhook_events (tenant_id, provider, event_id, kind, payload_encrypted, correlation_id,"
            " status, received_at, processed_at) VALUES (%s, 'local', %s, 'message', 'x', 'c', 'processed', %s, %s)"
            " RETURNING id", (tenant, f"wamid.{next(_ids)}", at, at))
        self.conn.execute(
            "INSERT INTO messages (tenant_id, conversation_id, direction, channel, provider_message_id,"
            " webhook_event_id, kind, body, status, created_at, route)"
            " VALUES (%s, %s, 'in', 'local', %s, %s, 'text', 'hola', 'received', %s, %s)",
            (tenant, conversation, f"in.{event}", event, at, Jsonb({"stage": stage, "intent": intent})))
        self.event(tenant, conversation, "route", {"stage": stage, "intent": intent}, at)
        if not understood:
            self.event(tenant, conversation, "not_understood", {"count": 1}, at)
        if reply_after_s is not None:
            accepted = at + timedelta(seconds=reply_after_s)
            self.conn.execute(
                "INSERT INTO messages (tenant_id, conversation_id, direction, channel, provider_message_id,"
                " idempotency_key, webhook_event_id, kind, body, status, status_rank, created_at, accepted_at)"
                " VALUES (%s, %s, 'out', 'local', %s, %s, %s, 'text', 'ok', %s, 4, %s, %s)",
                (tenant, conversation, f"out.{event}", f"{event}:0", event, reply_status,
                 at + timedelta(milliseconds=200), accepted if reply_status != "pending" else None))
        return event

    def event(self, tenant: int, conversation: int | None, kind: str, data: dict[str, Any], at: datetime) -> None:
        self.conn.execute("INSERT INTO events (tenant_id, conversation_id, kind, data, created_at)"
                          " VALUES (%s, %s, %s, %s, %s)", (tenant, conversation, kind, Jsonb(data), at))

    def escalation(self, tenant: int, conversation: int, at: datetime, *, priority: str = "normal",
                   first_response_after_s: float | None = None, callback_due: datetime | None = None) -> int:
        first = None
        if first_response_after_s is not None:
            first = (callback_due or at) + timedelta(seconds=first_response_after_s)
        return self._one(
            "INSERT INTO escalations (tenant_id, conversation_id, case_number, priority, reason, status, created_at,"
            " first_response_at, callback_due_at) VALUES (%s, %s, %s, %s, 'asked', 'resolved', %s, %s, %s)"
            " RETURNING id", (tenant, conversation, f"C-{next(_ids)}", priority, at, first, callback_due))

    def notification(self, tenant: int, conversation: int, at: datetime, *, template: str,
                     status: str = "delivered") -> int:
        return self._one(
            "INSERT INTO messages (tenant_id, conversation_id, direction, channel, provider_message_id,"
            " idempotency_key, kind, body, payload, status, created_at, accepted_at)"
            " VALUES (%s, %s, 'out', 'local', %s, %s, 'template', 'aviso', %s, %s, %s, %s) RETURNING id",
            (tenant, conversation, f"n.{next(_ids)}", f"notification:{next(_ids)}", Jsonb({"name": template}),
             status, at, at if status != "pending" else None))

    def set_status(self, message_id: int, status: str) -> None:
        """A receipt arriving later (e.g. `failed` after `accepted`): the row changes, its time does not."""
        self.conn.execute("UPDATE messages SET status = %s WHERE id = %s", (status, message_id))

    def llm_call(self, tenant: int, conversation: int, at: datetime, usd: str, outcome: str = "ok") -> None:
        self.conn.execute(
            "INSERT INTO llm_calls (tenant_id, conversation_id, provider, model, purpose, prompt_version, cost_usd,"
            " outcome, created_at) VALUES (%s, %s, 'openai', 'm', 'route', 'v1', %s, %s, %s)",
            (tenant, conversation, Decimal(usd), outcome, at))


CATEGORIES = {"envio_en_camino": "UTILITY", "promo_navidad": "MARKETING", "codigo_acceso": "AUTHENTICATION"}
INTENTS = ("tracking", "hours", "prices", "coverage", "human", "complaint")


@dataclass(frozen=True)
class Generated:
    tenants: list[int]
    notifications: list[int]  # the notification rows (a test may fail some later)


def generate(conn: Connection[Any], *, start: datetime, hours: int, tenants: int = 3, customers: int = 12,
             seed: int = 16) -> Generated:
    """Several companies' customers writing over `hours` hours from `start`, reproducibly (`seed`)."""
    rng = random.Random(seed)  # noqa: S311 - test data, not security
    rows = Rows(conn)
    ids = [rows.tenant(f"metricas-{seed}-{n}") for n in range(tenants)]
    sent: list[int] = []
    for tenant in ids:
        for _ in range(customers):
            contact = rows.contact(tenant)
            at = start + timedelta(minutes=rng.randrange(0, 60 * hours))
            conversation = rows.conversation(tenant, contact, at)
            while at < start + timedelta(hours=hours):
                stage = rng.choice(("keyword", "regex", "llm", "llm", "fallback", "console"))
                understood = rng.random() > 0.12
                rows.customer_message(
                    tenant, conversation, at, stage=stage, intent=rng.choice(INTENTS) if understood else None,
                    understood=understood, reply_after_s=rng.choice((0.05, 0.4, 1.3, 1.95, 2.4, 7.0, None)),
                    reply_status=rng.choice(("delivered", "read", "accepted", "failed", "pending")))
                if rng.random() < 0.15:
                    case_at = at + timedelta(seconds=30)
                    rows.escalation(tenant, conversation, case_at, priority=rng.choice(("high", "normal")),
                                    first_response_after_s=rng.choice((45, 200, 900, None)),
                                    callback_due=case_at + timedelta(hours=9) if rng.random() < 0.2 else None)
                if rng.random() < 0.2:
                    rows.event(tenant, conversation, "csat", {"score": rng.randint(1, 10), "scale": 10}
                               if rng.random() < 0.5 else {"score": rng.randint(1, 5)}, at + timedelta(minutes=1))
                if rng.random() < 0.3:
                    rows.llm_call(tenant, conversation, at, f"0.00{rng.randint(1, 9)}",
                                  rng.choice(("ok", "ok", "timeout", "skipped")))
                if rng.random() < 0.25:
                    sent.append(rows.notification(tenant, conversation, at + timedelta(minutes=2),
                                                  template=rng.choice((*CATEGORIES, "sin_categoria")),
                                                  status=rng.choice(("delivered", "accepted", "failed"))))
                # the next message: minutes later (same session), or 20-30 hours later (a new one, maybe)
                at += timedelta(minutes=rng.randrange(1, 50)) if rng.random() < 0.8 \
                    else timedelta(hours=rng.randrange(20, 30))
    return Generated(ids, sent)
