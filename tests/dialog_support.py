"""Talking to the dialog directly: one message through the real router, dialog and services, against the
sandbox core on loopback and the test Redis (nothing of the project is faked). Used by the dialog tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import redis

from channels.outbound import Buttons, ChoiceList, Location, OutboundMessage, Text
from chatbot import guard
from chatbot.dialog import machine
from chatbot.dialog.turn import Customer, Situation, Turn
from chatbot.router import route
from core_api_client import CoreClient
from services import ServiceContext
from storage.dialogs import DialogState

ROOT = Path(__file__).resolve().parent.parent
TZ = ZoneInfo("America/El_Salvador")
TUESDAY_10AM = datetime(2026, 1, 6, 10, 0, tzinfo=TZ)
JUAN, MARIA, STRANGER = "+50370000001", "+50370000002", "+50379990001"
COMPANY = "Transportes Express El Salvador"


def readable(replies: list[OutboundMessage]) -> str:
    parts: list[str] = []
    for reply in replies:
        if isinstance(reply, Text):
            parts.append(reply.body)
        elif isinstance(reply, Buttons):
            parts += [reply.body, *(b.title for b in reply.buttons)]
        elif isinstance(reply, ChoiceList):
            parts += [reply.body, *(r.title for r in reply.rows)]
        elif isinstance(reply, Location):
            parts += [reply.name or "", reply.address or ""]
    return "\n".join(parts)


Say = Callable[..., Turn]


def talk(core_url: str, redis_conn: redis.Redis) -> Iterator[Say]:
    """Send one message to the dialog with a session `ds` (mutated) and get the turn back (the `say` fixture)."""
    client = CoreClient(core_url, retry_delay_s=0)

    def send(ds: DialogState, text: str, *, phone: str | None = JUAN, at: datetime = TUESDAY_10AM,
             status: str = "bot", reply_id: str | None = None, repeats: int = 0, is_new: bool = False,
             opted_out: bool = False, core: CoreClient | None = None) -> Turn:
        clean = guard.clean(text)
        decision = route(clean.text, machine.context_for(ds), reply_id=reply_id)
        ctx = ServiceContext(core or client, redis_conn, "demo", COMPANY, TZ, at)
        turn = Turn(decision, clean, reply_id, ds, ctx, Customer(phone, "Juan", is_new, opted_out),
                    Situation(1, status, "ENC-TEST" if status != "bot" else None), repeats)
        machine.step(turn)
        return turn

    yield send
    client.close()
