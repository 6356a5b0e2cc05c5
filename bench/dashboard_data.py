"""Generated rows for bench/dashboard.py: companies, customers, conversations and their messages, by COPY.

The shapes are the product's (tests/metrics_support.py writes the same ones row by row): each customer
message has its webhook event, a `route` event (sometimes `not_understood`, sometimes a model call) and
the bot's first reply "<event>:0" accepted 0.2-3 s later; some conversations end in a case with agents'
messages and a rating; notifications are template messages. Times fall over `days` days before `end`,
mostly in the companies' daytime (America/El_Salvador). Rows are written to per-table files first, then
copied in the order the foreign keys need.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

from psycopg import Connection

TABLES = {  # table -> columns, in COPY order
    "contacts": "id, tenant_id, phone_hash, created_at",
    "conversations": "id, tenant_id, contact_id, status, started_at, last_message_at",
    "webhook_events": "id, tenant_id, provider, event_id, kind, payload_encrypted, correlation_id, status,"
                      " received_at, processed_at",
    "messages": "id, tenant_id, conversation_id, direction, channel, provider_message_id, idempotency_key,"
                " webhook_event_id, kind, body, payload, status, status_rank, created_at, updated_at, accepted_at",
    "escalations": "id, tenant_id, conversation_id, case_number, priority, reason, status, created_at,"
                   " first_response_at",
    "events": "tenant_id, conversation_id, kind, data, created_at",
    "llm_calls": "tenant_id, conversation_id, provider, model, purpose, prompt_version, tokens_in, tokens_out,"
                 " cost_usd, outcome, created_at",
}
STAGES = (("keyword", 55), ("regex", 10), ("llm", 25), ("fallback", 7), ("console", 3))
INTENTS = ("tracking", "tracking", "tracking", "hours", "prices", "coverage", "human", "complaint", "pickup")
TEMPLATES = ("envio_en_camino", "envio_entregado", "promo_navidad", "sin_categoria")
HOURS = [h for h, weight in enumerate([0, 0, 0, 0, 0, 1, 2, 4, 6, 8, 8, 8, 7, 7, 8, 8, 7, 6, 5, 4, 3, 2, 1, 1])
         for _ in range(weight)]  # local hours, weighted like a working day


@dataclass(frozen=True)
class Made:
    tenants: list[int]
    messages: int
    conversations: int
    rows: dict[str, int]


class _Writer:
    def __init__(self, folder: Path) -> None:
        self.files: dict[str, TextIO] = {t: (folder / f"{t}.tsv").open("w") for t in TABLES}
        self.counts = dict.fromkeys(TABLES, 0)

    def row(self, table: str, *values: Any) -> None:
        self.files[table].write("\t".join(_text(v) for v in values) + "\n")
        self.counts[table] += 1


def _text(value: Any) -> str:
    if value is None:
        return "\\N"
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return json.dumps(value)
    return str(value)


def generate(conn: Connection[Any], folder: Path, *, messages: int, conversations: int, tenants: int,
             start: datetime, end: datetime, daytime: bool = True, seed: int = 16, first_id: int = 1) -> Made:
    """Write and copy the rows of conversations starting in [start, end) (`daytime`: mostly at the companies'
    working hours, else uniformly); `first_id` numbers every table's rows after an earlier batch's."""
    rng = random.Random(seed)  # noqa: S311 - benchmark data
    tenant_ids = _tenants(conn, tenants)
    weights = [1 / (i + 1) ** 0.7 for i in range(tenants)]
    per_tenant = [max(1, round(conversations * w / sum(weights))) for w in weights]
    writer = _Writer(folder)
    inbound_target = round(messages * 0.46)
    notifications = round(messages * 0.06)
    ids = _Ids(first_id)
    made_messages = 0
    for tenant, count in zip(tenant_ids, per_tenant, strict=True):
        contacts = [ids.next("contacts") for _ in range(max(1, int(count * 0.7)))]
        for contact in contacts:
            writer.row("contacts", contact, tenant, f"bench-{contact}", start - timedelta(days=1))
        convs = []
        for _ in range(count):
            began = _moment(rng, start, end) if daytime else start + (end - start) * rng.random()
            conv = ids.next("conversations")
            contact = rng.choice(contacts)
            convs.append((conv, began, contact))
            writer.row("conversations", conv, tenant, contact, "closed", began, began)
            made_messages += _conversation(rng, writer, ids, tenant, conv, contact, began,
                                           inbound_target / conversations)
        for _ in range(round(notifications * count / conversations)):
            conv, began, _contact = rng.choice(convs)
            at = began + (end - began) * rng.random()
            mid = ids.next("messages")
            writer.row("messages", mid, tenant, conv, "out", "meta", f"n.{mid}", f"notification:{mid}", None,
                       "template", "aviso", {"name": rng.choice(TEMPLATES)},
                       "failed" if rng.random() < 0.05 else "delivered", 4, at, at, at)
            made_messages += 1
    for f in writer.files.values():
        f.close()
    for table, columns in TABLES.items():
        with conn.cursor().copy(f"COPY {table} ({columns}) FROM STDIN") as copy, \
                (folder / f"{table}.tsv").open("rb") as source:
            while chunk := source.read(1 << 20):
                copy.write(chunk)
    for table in ("contacts", "conversations", "webhook_events", "messages", "escalations"):
        conn.execute(f"SELECT setval('{table}_id_seq', (SELECT max(id) FROM {table}))")  # noqa: S608
    conn.execute("ANALYZE")
    return Made(tenant_ids, made_messages, sum(per_tenant), dict(writer.counts))


class _Ids:
    def __init__(self, first: int) -> None:
        self.last = dict.fromkeys(TABLES, first - 1)

    def next(self, table: str) -> int:
        self.last[table] += 1
        return self.last[table]


def _tenants(conn: Connection[Any], count: int) -> list[int]:
    found = [int(r[0]) for r in conn.execute("SELECT id FROM tenants WHERE slug LIKE 'tablero-%%' ORDER BY id")]
    for n in range(len(found), count):
        row = conn.execute("INSERT INTO tenants (slug, name) VALUES (%s, %s) RETURNING id",
                           (f"tablero-{n:02d}", f"Paquetería Tablero {n:02d}")).fetchone()
        assert row is not None
        found.append(int(row[0]))
    return found[:count]


def _moment(rng: random.Random, start: datetime, end: datetime) -> datetime:
    """A moment in [start, end), at a local working hour (El Salvador: UTC-6) of one of its days."""
    days = max(1, (end - start).days)
    day = start + timedelta(days=rng.randrange(days))
    local_midnight = day.replace(hour=6, minute=0, second=0, microsecond=0)  # 00:00 in El Salvador
    at = local_midnight + timedelta(hours=rng.choice(HOURS), seconds=rng.uniform(0, 3600))
    return min(max(at, start), end - timedelta(seconds=rng.uniform(60, 3600)))


def _conversation(rng: random.Random, w: _Writer, ids: _Ids, tenant: int, conv: int, contact: int,
                  start: datetime, mean_inbound: float) -> int:
    """One conversation's rows; returns how many messages."""
    inbound = max(1, round(rng.expovariate(1 / mean_inbound))) if mean_inbound > 1 else 1
    at = start
    written = 0
    last = start
    for _ in range(inbound):
        event = ids.next("webhook_events")
        w.row("webhook_events", event, tenant, "meta", f"wamid.{event}", "message", "x", f"c{event}", "processed",
              at, at)
        stage = rng.choices([s for s, _ in STAGES], [p for _, p in STAGES])[0]
        understood = rng.random() > 0.07
        intent = rng.choice(INTENTS) if understood and stage != "fallback" else None
        mid = ids.next("messages")
        w.row("messages", mid, tenant, conv, "in", "meta", f"in.{event}", None, event, "text", "hola", {},
              "received", 0, at, at, None)
        w.row("events", tenant, conv, "route", {"stage": stage, "intent": intent}, at)
        if not understood:
            w.row("events", tenant, conv, "not_understood", {"count": 1}, at)
        if stage == "llm":
            w.row("llm_calls", tenant, conv, "openai", "gpt-4o-mini", "route", "v1", 900, 60,
                  f"{rng.uniform(0.0002, 0.0009):.8f}", "ok", at)
        reply = ids.next("messages")
        accepted = at + timedelta(seconds=rng.lognormvariate(-0.2, 0.6))
        w.row("messages", reply, tenant, conv, "out", "meta", f"out.{reply}", f"{event}:0", event, "text", "ok", {},
              "delivered", 4, at + timedelta(milliseconds=150), accepted, accepted)
        written += 2
        last = at
        at += timedelta(seconds=rng.uniform(20, 240))
    if rng.random() < 0.15:
        case = ids.next("escalations")
        opened = last + timedelta(seconds=30)
        first = opened + timedelta(seconds=rng.uniform(20, 900)) if rng.random() < 0.9 else None
        w.row("escalations", case, tenant, conv, f"B-{case}", rng.choice(("high", "normal")), "asked", "resolved",
              opened, first)
        for k in range(2 if first else 0):
            mid = ids.next("messages")
            when = (first or opened) + timedelta(seconds=60 * k)
            w.row("messages", mid, tenant, conv, "out", "meta", f"a.{mid}", f"console:{mid}", None, "text", "ok", {},
                  "delivered", 4, when, when, when)
            written += 1
        if rng.random() < 0.4:
            w.row("events", tenant, conv, "csat", {"score": rng.randint(6, 10), "scale": 10},
                  opened + timedelta(minutes=20))
    elif rng.random() < 0.08:
        w.row("events", tenant, conv, "csat", {"score": rng.randint(3, 5)}, last + timedelta(minutes=1))
    return written


def rows_between(conn: Connection[Any], start: datetime, end: datetime) -> int:
    """Messages with a time in [start, end) (what a refresh over that window reads)."""
    row = conn.execute("SELECT count(*) FROM messages WHERE created_at >= %s AND created_at < %s",
                       (start, end)).fetchone()
    assert row is not None
    return int(row[0])

