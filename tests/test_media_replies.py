"""What the bot answers to photos, albums, stickers and voice notes, through the real pipeline (issue 17).

Each message is a signed Meta webhook posted to the real app, stored, queued and
handled by an RQ burst worker; the replies are read back from the messages table
(what the customer gets) and sent to the fake Graph API. The logistics core is the
sandbox core on loopback. An album is several media webhooks whose WhatsApp
timestamps are seconds apart (ALBUM_WINDOW_S, 8 by default).
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from flask.testing import FlaskClient
from psycopg_pool import ConnectionPool

from config import Settings
from runtime.resources import build_runtime
from tests.fakes.graph_api import DEFAULT_TOKEN as GRAPH_TOKEN
from tests.fakes.graph_api import FakeGraphAPI
from tests.fakes.transcription_api import FakeTranscriptionAPI
from tests.harness import post_meta, rows, run_jobs
from web.app import create_app
from worker import inbound

ROOT = Path(__file__).resolve().parent.parent
TZ = ZoneInfo("America/El_Salvador")
T0 = int(datetime(2026, 1, 6, 10, 0, tzinfo=TZ).timestamp())  # a Tuesday, 10:00: support is open
ANA = "+50370000003"
DAMAGED = "este es el paquete dañado"


@pytest.fixture
def settings(base_env: dict[str, str], core_url: str) -> Settings:
    return Settings.from_env({**base_env, "CORE_API_URL": core_url})


@pytest.fixture
def worker_settings(settings: Settings, graph: FakeGraphAPI) -> Settings:
    """The worker sends through Meta's transport to the fake Graph API (which also serves media downloads)."""
    return settings.with_overrides(whatsapp_provider="meta", meta_access_token=GRAPH_TOKEN,
                                   meta_graph_base_url=graph.url, simulator_enabled=False)


class Phone:
    """One customer's WhatsApp: `post` delivers a webhook, `run` lets the worker handle what arrived."""

    def __init__(self, client: FlaskClient, settings: Settings, pool: ConnectionPool, phone: str = ANA) -> None:
        self.client, self.settings, self.pool, self.phone = client, settings, pool, phone

    def post(self, at: int, *, text: str | None = None, media: str | None = None, caption: str | None = None,
             voice: bool = False, reply: tuple[str, str] | None = None, reaction: str | None = None) -> str:
        message_id = f"wamid.MEDIA{uuid.uuid4().hex}"
        message: dict[str, Any] = {"from": self.phone.lstrip("+"), "id": message_id, "timestamp": str(at)}
        if media is not None:
            mime = {"image": "image/jpeg", "audio": "audio/ogg; codecs=opus", "sticker": "image/webp",
                    "document": "application/pdf", "video": "video/mp4"}[media]
            item: dict[str, Any] = {"id": str(uuid.uuid4().int)[:16], "mime_type": mime, "sha256": "x"}
            if caption is not None:
                item["caption"] = caption
            if media == "audio":
                item["voice"] = voice
            message.update(type=media, **{media: item})
        elif reaction is not None:
            message.update(type="reaction", reaction={"message_id": "wamid.SOMETHING", "emoji": reaction})
        elif reply is not None:
            message.update(type="interactive", interactive={
                "type": "button_reply", "button_reply": {"id": reply[0], "title": reply[1]}})
        else:
            message.update(type="text", text={"body": text or ""})
        body = {"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{
            "field": "messages", "value": {
                "messaging_product": "whatsapp",
                "metadata": {"display_phone_number": "15550783881", "phone_number_id": "106540352242922"},
                "contacts": [{"profile": {"name": "Ana"}, "wa_id": self.phone.lstrip("+")}],
                "messages": [message]}}]}]}
        assert post_meta(self.client, body).status_code == 200
        return message_id

    def run(self) -> None:
        run_jobs(self.settings)

    def send(self, at: int, **kwargs: Any) -> list[dict[str, Any]]:
        """Post one message, let the worker answer it: the replies to it."""
        message_id = self.post(at, **kwargs)
        self.run()
        return self.replies_to(message_id)

    def event(self, message_id: str) -> int:
        found = rows(self.pool, "SELECT id, status FROM webhook_events WHERE event_id = %s", (message_id,))[0]
        assert found["status"] == "processed"
        return int(found["id"])

    def replies_to(self, message_id: str) -> list[dict[str, Any]]:
        return [r["payload"] for r in rows(
            self.pool, "SELECT payload FROM messages WHERE webhook_event_id = %s AND direction = 'out' ORDER BY id",
            (self.event(message_id),))]

    def route(self, message_id: str) -> dict[str, Any]:
        found = rows(self.pool, "SELECT route FROM messages WHERE provider_message_id = %s AND direction = 'in'",
                     (message_id,))[0]["route"]
        assert isinstance(found, dict)
        return found


def everything_sent(pool: ConnectionPool) -> list[dict[str, Any]]:
    return [r["payload"] for r in rows(pool, "SELECT payload FROM messages WHERE direction = 'out' ORDER BY id")]


def readable(payloads: list[dict[str, Any]]) -> str:
    parts: list[str] = []
    for p in payloads:
        parts.append(str(p.get("body") or ""))
        parts += [str(c["title"]) for c in p.get("buttons") or p.get("rows") or []]
    return "\n".join(parts)


def make_phone(settings: Settings, worker_settings: Settings, pool: ConnectionPool) -> Iterator[Phone]:
    app = create_app(settings)
    with app.test_client() as client:
        yield Phone(client, worker_settings, pool)
    app.extensions["db_pool"].close()
    app.extensions["redis"].close()


@pytest.fixture
def ana(settings: Settings, worker_settings: Settings, db_pool: ConnectionPool) -> Iterator[Phone]:
    yield from make_phone(settings, worker_settings, db_pool)


# -- albums ------------------------------------------------------------------------------------------------


def test_three_photos_sent_together_get_one_reply(ana: Phone, db_pool: ConnectionPool) -> None:
    ids = [ana.post(T0 + offset, media="image") for offset in (0, 1, 3)]  # all three arrive before the worker runs
    ana.run()
    sent = everything_sent(db_pool)
    assert len(sent) == 1
    text = readable(sent)
    assert "Recibí tu imagen" in text and "empieza con SV" in text
    assert [b["id"] for b in sent[0]["buttons"]] == ["menu_track", "menu_human"]
    assert "Rastrear paquete" in text and "Hablar con persona" in text
    assert [ana.route(i)["stage"] for i in ids] == ["none", "album", "album"]


def test_photos_a_minute_apart_are_two_turns(ana: Phone, db_pool: ConnectionPool) -> None:
    assert "Recibí tu imagen" in readable(ana.send(T0, media="image"))
    assert "Recibí tu imagen" in readable(ana.send(T0 + 60, media="image"))
    assert len(everything_sent(db_pool)) == 2


def test_a_message_between_two_photos_ends_the_album(ana: Phone) -> None:
    assert ana.send(T0, media="image")
    assert ana.send(T0 + 2, text="hola")
    assert "Recibí tu imagen" in readable(ana.send(T0 + 4, media="image"))


def test_a_reaction_between_photos_does_not_end_the_album(ana: Phone, db_pool: ConnectionPool) -> None:
    ana.post(T0, media="image")
    ana.post(T0 + 1, reaction="👍")
    ana.post(T0 + 2, media="video")
    ana.run()
    assert len(everything_sent(db_pool)) == 1


def test_the_reply_buttons_work(ana: Phone) -> None:
    ana.send(T0, media="image")
    assert "código de rastreo" in readable(ana.send(T0 + 30, reply=("menu_track", "Rastrear paquete")))


def test_an_albums_caption_is_answered_once(ana: Phone, db_pool: ConnectionPool) -> None:
    first = ana.send(T0, media="image")
    assert "Recibí tu imagen" in readable(first)
    complaint = readable(ana.send(T0 + 1, media="image", caption=DAMAGED))  # the caption is the customer's words
    case = rows(db_pool, "SELECT case_number, reason, priority FROM escalations")
    assert len(case) == 1 and (case[0]["reason"], case[0]["priority"]) == ("complaint", "high")
    assert case[0]["case_number"] in complaint
    assert ana.send(T0 + 2, media="image", caption=DAMAGED) == []  # same album: the caption is not answered again
    assert len(rows(db_pool, "SELECT id FROM escalations")) == 1


def test_a_second_caption_of_the_same_album_is_not_answered(ana: Phone) -> None:
    assert "Recibí tu imagen" in readable(ana.send(T0, media="image"))
    assert "En tránsito hacia Santa Ana" in readable(ana.send(T0 + 1, media="image", caption="SV20260106012345"))
    assert ana.send(T0 + 2, media="image", caption="SV20260106012345") == []
    assert "En tránsito hacia Santa Ana" in readable(ana.send(T0 + 30, text="SV20260106012345"))  # typed: answered


def test_a_caption_on_the_first_photo_is_the_albums_one_answer(ana: Phone, db_pool: ConnectionPool) -> None:
    ids = [ana.post(T0, media="image", caption=DAMAGED), ana.post(T0 + 1, media="image"),
           ana.post(T0 + 2, media="image")]
    ana.run()
    assert len(rows(db_pool, "SELECT id FROM escalations")) == 1
    assert ana.replies_to(ids[1]) == [] and ana.replies_to(ids[2]) == []
    assert "Recibí tu imagen" not in readable(everything_sent(db_pool))
    assert ana.route(ids[0])["intent"] == "complaint" and ana.route(ids[0])["media"] == "image"


def test_a_caption_the_bot_cannot_place_gets_the_photos_reply(ana: Phone) -> None:
    text = readable(ana.send(T0, media="image", caption="Taj Mahal"))
    assert "Recibí tu imagen" in text and "no entend" not in text.lower()


# -- by context --------------------------------------------------------------------------------------------


def test_a_photo_during_a_complaint_goes_with_it(ana: Phone) -> None:
    assert "código de rastreo" in readable(ana.send(T0, text="mi paquete está perdido"))
    text = readable(ana.send(T0 + 30, media="image"))
    assert "junto a tu reclamo" in text and "código de rastreo" in text
    assert "Santa Ana" in readable(ana.send(T0 + 60, text="SV20260106012345"))  # still waiting for the code


def test_a_photo_with_a_case_waiting_goes_with_the_case(ana: Phone, db_pool: ConnectionPool) -> None:
    ana.send(T0, text="quiero hablar con un asesor")
    case = rows(db_pool, "SELECT case_number FROM escalations")[0]["case_number"]
    text = readable(ana.send(T0 + 60, media="document"))
    assert "ya quedó con tu caso" in text and case in text and "persona que te atiende" in text


def test_a_photo_while_an_agent_has_the_chat_is_silent(ana: Phone, db_pool: ConnectionPool) -> None:
    ana.send(T0, text="quiero hablar con un asesor")
    with db_pool.connection() as conn:
        conn.execute("UPDATE conversations SET status = 'agent'")
    assert ana.send(T0 + 60, media="image") == []
    assert ana.send(T0 + 120, media="audio", voice=True) == []


def test_a_sticker_gets_a_light_reply(ana: Phone) -> None:
    assert "¿En qué te ayudo?" in readable(ana.send(T0, media="sticker"))


# -- voice notes -------------------------------------------------------------------------------------------


def test_a_voice_note_without_a_transcriber_is_told_honestly(ana: Phone, db_pool: ConnectionPool) -> None:
    sent = ana.send(T0, media="audio", voice=True)
    text = readable(sent)
    assert "no puedo escuchar audios" in text and "escribes" in text
    assert [b["id"] for b in sent[0]["buttons"]] == ["menu_human"] and "Hablar con persona" in text
    assert "en breve" in readable(ana.send(T0 + 30, reply=("menu_human", "Hablar con persona")))
    assert rows(db_pool, "SELECT reason FROM escalations") == [{"reason": "customer_request"}]


def test_a_voice_note_is_not_part_of_an_album(ana: Phone) -> None:
    assert ana.send(T0, media="image")
    assert "no puedo escuchar audios" in readable(ana.send(T0 + 2, media="audio", voice=True))
    assert "Recibí tu imagen" in readable(ana.send(T0 + 4, media="image"))


def test_a_voice_note_with_a_transcriber_waits_for_its_transcript(
        settings: Settings, worker_settings: Settings, db_pool: ConnectionPool) -> None:
    with FakeTranscriptionAPI(default_text="¿ya llegó mi paquete?") as fake:
        listening = worker_settings.with_overrides(transcription_model="whisper-1",
                                                   transcription_base_url=fake.base_url)
        for phone in make_phone(settings, listening, db_pool):
            voice = phone.post(T0, media="audio", voice=True)
            phone.run()
            assert phone.replies_to(voice) == []  # the transcript's own turn answers
            assert phone.route(voice)["answer"] == "awaiting_transcript"


# -- once ----------------------------------------------------------------------------------------------------


def test_a_retried_job_does_not_reply_twice(ana: Phone, worker_settings: Settings,
                                             db_pool: ConnectionPool) -> None:
    ids = [ana.post(T0, media="image"), ana.post(T0 + 2, media="image", caption=DAMAGED)]
    ana.run()
    before = everything_sent(db_pool)
    assert len(before) >= 2 and len(rows(db_pool, "SELECT id FROM escalations")) == 1
    events = [ana.event(i) for i in ids]
    with db_pool.connection() as conn:
        conn.execute("UPDATE webhook_events SET status = 'queued' WHERE id = ANY(%s)", (events,))
    rt = build_runtime(worker_settings, pool_size=2)
    try:
        assert [inbound.process_message(rt, e) for e in events] == ["processed", "processed"]
    finally:
        rt.close()
    assert everything_sent(db_pool) == before
    assert len(rows(db_pool, "SELECT id FROM escalations")) == 1


# -- scenarios -----------------------------------------------------------------------------------------------


def test_the_media_scenarios_pass(base_env: dict[str, str]) -> None:
    """tests/scenarios/media.yaml through scripts/converse.py (files as `media` turns, silent turns as replies: 0)."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "converse.py"),
                             str(ROOT / "tests" / "scenarios" / "media.yaml")], capture_output=True, text=True,
                            timeout=200, cwd=ROOT, env={**env, **base_env}, check=False)
    assert result.returncode == 0, result.stdout + result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "8 passed, 0 failed"
