"""Files in the console over HTTP (real app, real PostgreSQL and Redis, the worker's jobs, Meta's Graph API
faked on loopback): an agent sees a customer's photo through a signed, expiring link of ours that only the
agents of that company can open; the page never holds the provider's media id or URL; a download still
running, failed or gone reads as such; a voice note carries its transcript; an album is one group; an
agent's PDF reaches Meta as an upload and a document message, refused outside the 24-hour window or when
it is not a JPEG/PNG/PDF or too large."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from psycopg_pool import ConnectionPool

from channels import twilio_webhook
from channels.outbound import Media
from channels.twilio_api import message_params
from config import Settings
from runtime import delivery, media_links
from runtime.resources import build_runtime
from storage import media
from tests.conftest import load_fixture
from tests.console_media_support import OGG, media_row, pdf, png, send_media, store_downloaded
from tests.console_support import TUESDAY_10AM, Customer, logged_in, make_agent, other_tenant, session_csrf
from tests.fakes.graph_api import DEFAULT_TOKEN as GRAPH_TOKEN
from tests.fakes.graph_api import FakeGraphAPI
from tests.fakes.twilio_api import DEFAULT_ACCOUNT_SID, FakeTwilioAPI
from tests.harness import post_twilio, rows, run_jobs
from web.app import create_app

PHOTO_ID = "1003383421387256"  # Meta's id of the customer's photo: never in a page


@pytest.fixture
def settings(base_env: dict[str, str], graph: FakeGraphAPI, core_url: str, tmp_path: Path) -> Settings:
    """Meta's transport to the fake Graph API, files in a private directory."""
    return Settings.from_env(base_env).with_overrides(
        whatsapp_provider="meta", meta_access_token=GRAPH_TOKEN, meta_graph_base_url=graph.url,
        simulator_enabled=False, core_api_url=core_url, media_store_url=f"file:{tmp_path / 'media'}",
        public_base_url="https://encargo.example")


@pytest.fixture
def app(settings: Settings) -> Iterator[Flask]:
    application = create_app(settings)
    yield application
    application.extensions["db_pool"].close()
    application.extensions["redis"].close()


def case_json(agent: FlaskClient, case_id: int) -> dict[str, Any]:
    answer = agent.get(f"/console/api/cases/{case_id}")
    assert answer.status_code == 200, answer.get_data(as_text=True)
    data: dict[str, Any] = answer.get_json()
    return data


def files_of(data: dict[str, Any]) -> list[dict[str, Any]]:
    return [f for m in data["messages"] for f in m.get("media", [])]


def claim(agent: FlaskClient, case_id: int) -> None:
    answer = agent.post(f"/console/api/cases/{case_id}/claim", headers={"X-CSRF-Token": session_csrf(agent)})
    assert answer.status_code == 200, answer.get_data(as_text=True)


def carlos_has_the_case(app: Flask, settings: Settings,
                        db_pool: ConnectionPool) -> tuple[FlaskClient, FlaskClient, int]:
    """María's case, taken by the agent Carlos: (the client María's webhooks go through, Carlos's, the case id)."""
    client = app.test_client()
    case_id = Customer(client, settings, db_pool).escalate()
    make_agent(db_pool, "Carlos Rivas", "carlos@example.com")
    carlos = logged_in(app, "carlos@example.com")
    claim(carlos, case_id)
    return client, carlos, case_id


def send_file(agent: FlaskClient, case_id: int, data: bytes, name: str, caption: str = "") -> Any:
    from io import BytesIO

    return agent.post("/console/api/files", headers={"X-CSRF-Token": session_csrf(agent)},
                      data={"case_id": str(case_id), "caption": caption, "client_key": name,
                            "file": (BytesIO(data), name)}, content_type="multipart/form-data")


def test_a_photo_reaches_only_its_companys_agents_through_our_signed_link(
        app: Flask, settings: Settings, db_pool: ConnectionPool, graph: FakeGraphAPI) -> None:
    client = app.test_client()
    maria = Customer(client, settings, db_pool)
    case_id = maria.escalate()
    photo = png()
    graph.media.add(PHOTO_ID, photo, "image/png")  # Meta has the file; the worker downloads it
    wamid = send_media(client, "image", {"id": PHOTO_ID, "mime_type": "image/png", "sha256": "x",
                                         "caption": "así llegó la caja"})
    run_jobs(settings)
    assert media_row(db_pool, wamid)["status"] == "stored"
    make_agent(db_pool, "Carlos Rivas", "carlos@example.com")
    carlos = logged_in(app, "carlos@example.com")

    data = case_json(carlos, case_id)
    (shown,) = files_of(data)
    assert shown["type"] == "image" and shown["status"] == "stored" and shown["status_text"] is None
    url = shown["url"]
    assert url.startswith(f"/console/media/{shown['id']}?e=") and "&s=" in url
    message = next(m for m in data["messages"] if m.get("media"))
    assert message["body"] == "así llegó la caja"
    page = carlos.get(f"/console/cases/{case_id}").get_data(as_text=True)
    for text in (page, str(data)):
        assert PHOTO_ID not in text and "graph" not in text.lower() and "storage_key" not in text

    answer = carlos.get(url)
    assert answer.status_code == 200 and answer.data == photo
    assert answer.headers["Content-Type"] == "image/png"
    assert answer.headers["Content-Disposition"].startswith("inline")
    assert answer.headers["X-Content-Type-Options"] == "nosniff"
    assert answer.headers["Cache-Control"].startswith("private")
    part = carlos.get(url, headers={"Range": "bytes=0-7"})  # players seek with ranges
    assert part.status_code == 206 and part.data == photo[:8]

    # Another company's agent, with the very same link: as if it did not exist.
    make_agent(db_pool, "Otro Agente", "otro@example.com", tenant_id=other_tenant(db_pool))
    assert logged_in(app, "otro@example.com").get(url).status_code == 404
    assert app.test_client().get(url).status_code == 404  # nobody logged in
    # A link of the right company with a wrong or old signature.
    assert carlos.get(url[:-4] + "0000").status_code == 403
    old = media_links.signed_query(media_links.link_key(settings), media_links.VIEW, shown["id"], 1,
                                   time.time() - 3600, media_links.VIEW_TTL_S)
    assert carlos.get(f"/console/media/{shown['id']}?e={old['e']}&s={old['s']}").status_code == 403
    assert carlos.get(f"/console/media/{shown['id']}").status_code == 403


def test_downloading_failed_gone_and_a_voice_note_with_its_transcript(
        app: Flask, settings: Settings, db_pool: ConnectionPool) -> None:
    client = app.test_client()
    maria = Customer(client, settings, db_pool)
    case_id = maria.escalate()
    waiting = send_media(client, "image", {"id": "111", "mime_type": "image/jpeg"})
    failed = send_media(client, "document", {"id": "222", "mime_type": "application/pdf", "filename": "guia.pdf"})
    gone = send_media(client, "image", {"id": "333", "mime_type": "image/jpeg"},
                      at=TUESDAY_10AM + timedelta(minutes=5))
    voice = send_media(client, "audio", {"id": "444", "mime_type": "audio/ogg; codecs=opus", "voice": True})
    run_jobs(settings)
    with db_pool.connection() as conn:
        conn.execute("UPDATE media SET status = 'pending', attempts = 0, last_error = NULL WHERE id = %s",
                     (media_row(db_pool, waiting)["id"],))
        conn.execute("UPDATE media SET attempts = 6 WHERE id = %s", (media_row(db_pool, failed)["id"],))
        media.mark_failed(conn, int(media_row(db_pool, failed)["id"]), "provider_5xx")
        # the last try at 16:24 UTC, read on the company's own clock (its row, not the deployment's setting)
        conn.execute("UPDATE media SET next_attempt_at = '2026-01-06 16:24:00+00' WHERE id = %s",
                     (media_row(db_pool, failed)["id"],))
        conn.execute("UPDATE tenants SET timezone = 'America/Bogota' WHERE id = %s",
                     (media_row(db_pool, failed)["tenant_id"],))
        media.mark_gone(conn, int(media_row(db_pool, gone)["id"]), "expired")
    voice_id = int(media_row(db_pool, voice)["id"])
    store_downloaded(settings, db_pool, voice_id, OGG, "audio/ogg")
    with db_pool.connection() as conn:
        media.set_transcript(conn, voice_id, "¿ya llegó lo que me mandaron de San Miguel?", 0.87, "done")
        original = conn.execute("SELECT tenant_id, conversation_id FROM messages WHERE provider_message_id = %s",
                                (voice,)).fetchone()
        assert original is not None
        conn.execute(  # the transcript's re-entry event, stored as the worker stores a customer's message
            "INSERT INTO messages (tenant_id, conversation_id, direction, channel, provider_message_id, kind, body,"
            " payload, status, status_rank) VALUES (%s, %s, 'in', 'meta', %s, 'transcript', %s, %s, 'received', 0)",
            (original["tenant_id"], original["conversation_id"], f"{voice}:transcript",
             "¿ya llegó lo que me mandaron de San Miguel?", f'{{"context_message_id": "{voice}"}}'))
    make_agent(db_pool, "Carlos Rivas", "carlos@example.com")
    carlos = logged_in(app, "carlos@example.com")

    data = case_json(carlos, case_id)
    by_id = {f["id"]: f for f in files_of(data)}
    assert by_id[media_row(db_pool, waiting)["id"]]["status_text"] == "Descargando…"
    failed_text = by_id[media_row(db_pool, failed)["id"]]["status_text"]
    assert failed_text.startswith("No se pudo descargar (WhatsApp no respondió bien). Se intentó 6 veces")
    assert "11:24" in failed_text  # Bogotá is UTC-5 (El Salvador's 10:24 would be the deployment's clock)
    assert by_id[media_row(db_pool, gone)["id"]]["status_text"] == "WhatsApp ya no tiene este archivo"
    assert all(f["url"] is None for f in by_id.values() if f["status"] != "stored")
    heard = by_id[voice_id]
    assert heard["label"] == "Nota de voz" and heard["url"]
    assert heard["transcript_label"] == "Transcripción (confianza 87 %)"
    assert heard["transcript"] == "¿ya llegó lo que me mandaron de San Miguel?"
    bodies = [m["body"] for m in data["messages"]]
    assert "¿ya llegó lo que me mandaron de San Miguel?" not in bodies  # not a bubble of its own
    assert carlos.get(heard["url"]).data == OGG


def test_an_album_is_one_group(app: Flask, settings: Settings, db_pool: ConnectionPool) -> None:
    client = app.test_client()
    maria = Customer(client, settings, db_pool)
    case_id = maria.escalate()
    for n in range(3):
        send_media(client, "image", {"id": f"90{n}", "mime_type": "image/jpeg"})
    run_jobs(settings)
    make_agent(db_pool, "Carlos Rivas", "carlos@example.com")
    data = case_json(logged_in(app, "carlos@example.com"), case_id)
    albums = [m for m in data["messages"] if m.get("media")]
    assert len(albums) == 1 and albums[0]["album"] is True and len(albums[0]["media"]) == 3
    assert albums[0]["album_text"] == "3 fotos"


def test_an_agents_pdf_reaches_meta_as_an_upload_and_a_document(
        app: Flask, settings: Settings, db_pool: ConnectionPool, graph: FakeGraphAPI) -> None:
    _, carlos, case_id = carlos_has_the_case(app, settings, db_pool)
    form = pdf()

    answer = send_file(carlos, case_id, form, "formulario reclamo.pdf", caption="Llénalo y me lo mandas 🙏")
    assert answer.status_code == 202, answer.get_data(as_text=True)
    again = send_file(carlos, case_id, form, "formulario reclamo.pdf", caption="Llénalo y me lo mandas 🙏")
    assert again.get_json()["message_id"] == answer.get_json()["message_id"]  # a double click sends once
    run_jobs(settings)

    (upload,) = graph.uploads
    assert upload.data == form and upload.mime == "application/pdf"
    (document,) = [b for b in graph.messages_to("+50370000002") if b["type"] == "document"]
    assert document["document"] == {"id": upload.id, "caption": "Llénalo y me lo mandas 🙏",
                                    "filename": "formulario_reclamo.pdf"}
    sent = rows(db_pool, "SELECT status, kind, agent_id FROM messages WHERE id = %s",
                (answer.get_json()["message_id"],))[0]
    assert sent["status"] == "accepted" and sent["kind"] == "media" and sent["agent_id"]

    data = case_json(carlos, case_id)
    mine = next(m for m in data["messages"] if m["id"] == answer.get_json()["message_id"])
    assert mine["is_agent"] and mine["media"][0]["filename"] == "formulario_reclamo.pdf"
    assert mine["body"] == "Llénalo y me lo mandas 🙏"  # the caption; the file is shown as a file
    download = carlos.get(mine["media"][0]["url"])
    assert download.data == form and download.headers["Content-Disposition"].startswith("attachment")
    assert 'filename="formulario_reclamo.pdf"' in download.headers["Content-Disposition"]


def test_a_failed_upload_leaves_the_file_waiting_and_the_retry_sends_it(
        app: Flask, settings: Settings, db_pool: ConnectionPool, graph: FakeGraphAPI) -> None:
    _, carlos, case_id = carlos_has_the_case(app, settings, db_pool)
    graph.upload_failures = 1
    message_id = send_file(carlos, case_id, png(), "caja.png").get_json()["message_id"]
    run_jobs(settings)

    waiting = rows(db_pool, "SELECT status, error_code FROM messages WHERE id = %s", (message_id,))[0]
    assert waiting == {"status": "pending", "error_code": "131000"}  # nothing reached the customer: retried
    assert graph.uploads == [] and not [b for b in graph.sent if b["type"] == "image"]
    rt = build_runtime(settings, pool_size=1)
    try:
        assert delivery.deliver(rt, message_id).kind == delivery.SENT  # the delivery job's retry
    finally:
        rt.close()
    (upload,) = graph.uploads
    assert [b["image"]["id"] for b in graph.sent if b["type"] == "image"] == [upload.id]


def test_an_agents_file_is_refused_in_spanish(app: Flask, settings: Settings, db_pool: ConnectionPool,
                                              graph: FakeGraphAPI) -> None:
    _, carlos, case_id = carlos_has_the_case(app, settings, db_pool)

    fake = send_file(carlos, case_id, b"MZ\x90\x00 not a photo at all", "foto.jpg")
    assert fake.status_code == 400
    assert fake.get_json()["error"] == ("Solo puedes enviar una foto JPG o PNG, o un PDF. "
                                        "Ese archivo no es ninguno de esos.")
    big = send_file(carlos, case_id, png() + b"\x00" * (5 * 1024 * 1024), "grande.png")
    assert big.status_code == 400 and big.get_json()["error"] == "WhatsApp no acepta una imagen de más de 5 MB."

    with db_pool.connection() as conn:
        conn.execute("UPDATE contacts SET last_inbound_at = now() - interval '25 hours'")
    closed = send_file(carlos, case_id, png(), "caja.png")
    assert closed.status_code == 409 and closed.get_json()["window_closed"] is True
    assert closed.get_json()["error"].startswith("Pasaron más de 24 horas desde el último mensaje del cliente")
    run_jobs(settings)
    assert graph.uploads == []
    assert rows(db_pool, "SELECT count(*) AS n FROM media WHERE direction = 'out'")[0]["n"] == 0


def test_twilio_fetches_an_agents_file_from_a_public_signed_link(
        app: Flask, settings: Settings, db_pool: ConnectionPool, graph: FakeGraphAPI) -> None:
    client, carlos, case_id = carlos_has_the_case(app, settings, db_pool)
    photo = png()
    assert send_file(carlos, case_id, photo, "caja.png", caption="Así la recibimos").status_code == 202
    out = rows(db_pool, "SELECT id, tenant_id, filename FROM media WHERE direction = 'out'")[0]
    wamid = send_media(client, "image", {"id": "55", "mime_type": "image/png"})
    run_jobs(settings)
    inbound_id = int(media_row(db_pool, wamid)["id"])
    store_downloaded(settings, db_pool, inbound_id, png(), "image/png")

    link = media_links.public_url(settings, out["id"], out["tenant_id"], out["filename"], time.time())
    assert link.startswith(f"https://encargo.example/console/media/public/{out['id']}/caja.png?e=")
    params = message_params(Media("image", "image/png", caption="Así la recibimos", link=link))
    assert params == [{"media_url": [link], "body": "Así la recibimos"}]
    path = link.removeprefix("https://encargo.example")
    stranger = app.test_client()  # Twilio: no session
    answer = stranger.get(path)
    assert answer.status_code == 200 and answer.data == photo
    assert stranger.get(path[:-4] + "0000").status_code == 404
    # A customer's file is never served through a public link, even one signed like an agent's.
    inbound = media_links.public_url(settings, inbound_id, out["tenant_id"], "x.png", time.time())
    assert stranger.get(inbound.removeprefix("https://encargo.example")).status_code == 404


def test_on_twilio_an_agents_photo_goes_as_a_public_signed_link_twilio_can_fetch(
        settings: Settings, db_pool: ConnectionPool) -> None:
    with FakeTwilioAPI(auth_token="12345") as twilio:
        on_twilio = settings.with_overrides(
            whatsapp_provider="twilio", twilio_account_sid=DEFAULT_ACCOUNT_SID, twilio_auth_token="12345",
            twilio_whatsapp_number="whatsapp:+14155238886", twilio_api_base_url=twilio.url)
        application = create_app(on_twilio)
        try:
            client = application.test_client()
            form = {k: str(v) for k, v in load_fixture("twilio_inbound_text.json").items()}
            form.update(From="whatsapp:+50370000002", Body="quiero hablar con una persona", ProfileName="María")
            signed = twilio_webhook.sign("12345", "https://encargo.example/webhooks/twilio", form)  # the public URL
            assert post_twilio(client, form, signature=signed).status_code == 200
            run_jobs(on_twilio)
            case_id = int(rows(db_pool, "SELECT id FROM escalations ORDER BY id DESC LIMIT 1")[0]["id"])
            make_agent(db_pool, "Carlos Rivas", "carlos@example.com")
            carlos = logged_in(application, "carlos@example.com")
            claim(carlos, case_id)
            photo = png()
            assert send_file(carlos, case_id, photo, "caja.png", caption="Así la recibimos").status_code == 202
            run_jobs(on_twilio)

            (sent,) = [p for p in twilio.messages_to("+50370000002") if "MediaUrl" in p]
            assert sent["Body"] == "Así la recibimos"
            link = sent["MediaUrl"]
            assert link.startswith("https://encargo.example/console/media/public/") and "/caja.png?e=" in link
            fetched = application.test_client().get(link.removeprefix("https://encargo.example"))  # no session
            assert fetched.status_code == 200 and fetched.data == photo
            assert fetched.headers["Content-Type"] == "image/png"
        finally:
            application.extensions["db_pool"].close()
            application.extensions["redis"].close()
