"""LocalTransport (the simulator's transport) and choosing a transport from the settings."""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

import redis

from channels.events import DeliveryStatus
from channels.local_transport import LOCAL_OUTBOX_CHANNEL, LocalTransport
from channels.meta_cloud import MetaCloudTransport
from channels.outbound import Buttons, Choice, Recipient, Text
from channels.transport import build_transport
from channels.twilio_api import TwilioTransport
from config import Settings


def read_notices(pubsub: Any, expected: int) -> list[dict[str, Any]]:
    notices: list[dict[str, Any]] = []
    deadline = time.monotonic() + 5
    while len(notices) < expected and time.monotonic() < deadline:
        message = pubsub.get_message(ignore_subscribe_messages=True, timeout=0.2)
        if message is not None:
            notices.append(json.loads(message["data"]))
    return notices


def test_send_delivers_each_fitted_part_and_announces_it(redis_conn: redis.Redis) -> None:
    pubsub = redis_conn.pubsub()
    pubsub.subscribe(LOCAL_OUTBOX_CHANNEL)
    pubsub.get_message(timeout=1)  # the subscribe confirmation
    transport = LocalTransport(redis_conn, "123456789012345")

    results = transport.send(Recipient(phone="+50370000001"), Text("palabra " * 700), reference="out-9")

    assert len(results) == 2  # 5600 characters: two WhatsApp messages
    assert all(r.status == DeliveryStatus.DELIVERED for r in results)
    ids = [r.provider_message_id for r in results]
    assert all(i.startswith("local.") and len(i) == 38 for i in ids)
    assert read_notices(pubsub, 2) == [
        {"provider_message_id": r.provider_message_id, "reference": "out-9", "kind": "text",
         "number": "123456789012345",  # the company number it left from; the customer only hashed
         "to": hashlib.sha256(b"+50370000001").hexdigest()[:20]} for r in results
    ]
    pubsub.close()


def test_five_buttons_are_announced_as_a_list(redis_conn: redis.Redis) -> None:
    pubsub = redis_conn.pubsub()
    pubsub.subscribe(LOCAL_OUTBOX_CHANNEL)
    pubsub.get_message(timeout=1)
    buttons = tuple(Choice(f"b{i}", f"Opción {i}") for i in range(5))
    LocalTransport(redis_conn).send(Recipient(bsuid="US.1"), Buttons("Elige", buttons), reference="r")
    assert [n["kind"] for n in read_notices(pubsub, 1)] == ["list"]
    pubsub.close()


def test_redis_down_still_returns_results() -> None:
    dead = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
    results = LocalTransport(dead).send(Recipient(phone="+50370000001"), Text("hola"), reference="r")
    assert len(results) == 1 and results[0].status == DeliveryStatus.DELIVERED
    LocalTransport(dead).mark_read("local.x")


def test_build_transport_follows_the_provider(settings: Settings, redis_conn: redis.Redis) -> None:
    assert isinstance(build_transport(settings, redis_conn), LocalTransport)
    meta = settings.with_overrides(whatsapp_provider="meta", meta_access_token="t")
    assert isinstance(build_transport(meta, redis_conn), MetaCloudTransport)
    twilio = settings.with_overrides(whatsapp_provider="twilio", twilio_account_sid="AC" + "0" * 32)
    built = build_transport(twilio, redis_conn)
    assert isinstance(built, TwilioTransport) and built.channel == "twilio"
