"""Live console events from the worker, with the Meta transport and its receipts (fake Graph API on loopback):
a new escalation, a customer message in a case, an agent's reply going out, and its read receipt."""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from flask.testing import FlaskClient
from psycopg_pool import ConnectionPool

from config import Settings
from handoff import cases, live
from tests.conftest import load_fixture
from tests.console_support import Customer, desk_for, make_agent
from tests.fakes.graph_api import FakeGraphAPI
from tests.harness import post_meta, rows, run_jobs, to_our_number


@pytest.fixture
def settings(meta_settings: Settings, core_url: str) -> Settings:
    return meta_settings.with_overrides(core_api_url=core_url)


@pytest.fixture
def events(redis_conn: redis.Redis) -> Iterator[Any]:
    pubsub = redis_conn.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
    pubsub.subscribe(live.channel(1))
    time.sleep(0.1)
    yield pubsub
    pubsub.close()


def drain(pubsub: Any) -> list[dict[str, Any]]:
    """Every event published so far (waits until nothing more arrives for half a second)."""
    found = []
    quiet_until = time.monotonic() + 0.5
    while time.monotonic() < quiet_until:
        message = pubsub.get_message(timeout=0.1)
        if message is not None and message["type"] == "message":
            found.append(json.loads(message["data"]))
            quiet_until = time.monotonic() + 0.5
    return found


def read_receipt(wamid: str) -> dict[str, Any]:
    payload = to_our_number(copy.deepcopy(load_fixture("meta_status_sent.json")))
    item = payload["entry"][0]["changes"][0]["value"]["statuses"][0]
    item["id"], item["status"] = wamid, "read"
    return payload


def test_the_console_hears_escalations_messages_and_receipts(client: FlaskClient, settings: Settings,
                                                             db_pool: ConnectionPool, redis_conn: redis.Redis,
                                                             graph: FakeGraphAPI, events: Any) -> None:
    maria = Customer(client, settings, db_pool)
    case_id = maria.escalate("mi paquete llegó dañado, quiero poner un reclamo")
    heard = drain(events)
    assert {"type": "escalation", "case_id": case_id, "conversation_id": 1, "priority": "high",
            "status": "waiting"} in heard

    carlos = make_agent(db_pool, "Carlos Rivas", "carlos@example.com")
    desk = desk_for(settings, db_pool, redis_conn)
    cases.claim(desk, carlos, case_id)
    assert {"type": "handoff", "case_id": case_id, "conversation_id": 1, "action": "claim",
            "agent": "Carlos Rivas", "agent_id": carlos.id} in drain(events)

    message_id = cases.reply(desk, carlos, case_id, "Ya estoy revisando tu caso")
    run_jobs(settings)
    sent_to_meta = [m["text"]["body"] for m in graph.sent if m.get("type") == "text"]
    assert sent_to_meta[-1] == "Ya estoy revisando tu caso"
    wamid = rows(db_pool, "SELECT provider_message_id FROM messages WHERE id = %s", (message_id,))[0][
        "provider_message_id"]
    drain(events)

    assert post_meta(client, read_receipt(wamid)).status_code == 200
    run_jobs(settings)
    assert {"type": "status", "case_id": case_id, "conversation_id": 1, "message_id": message_id,
            "status": "read"} in drain(events)

    maria.send("gracias, espero")
    heard = drain(events)
    assert {"type": "message", "case_id": case_id, "conversation_id": 1} in heard
    assert not [e for e in heard if e["type"] == "escalation"]  # the same case, not a new one


def test_no_console_events_for_a_conversation_with_the_bot(client: FlaskClient, settings: Settings,
                                                           db_pool: ConnectionPool, events: Any) -> None:
    Customer(client, settings, db_pool).send("a qué hora abre el punto de Santa Ana")
    assert drain(events) == []
