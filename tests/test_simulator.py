"""The simulator: its JSON API, the page in a real Chromium, and scripts/chat.py.

The send endpoint POSTs the Meta-shaped webhook to its own server, so every
test here runs the app on a real threaded Werkzeug server on loopback; jobs
run in this process with a burst worker, against the real Redis and PostgreSQL.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from psycopg_pool import ConnectionPool

from channels.events import DeliveryStatus
from channels.outbound import Text
from config import Settings
from runtime.resources import build_runtime
from sandbox_core import BackgroundServer, create_sandbox_app
from storage import contacts, conversations, messages
from storage.crypto import Vault
from tests.browser import launch
from tests.harness import served
from web.app import create_app
from worker.main import EncargoWorker

ROOT = Path(__file__).resolve().parent.parent
COMPANY = "Transportes Express El Salvador"
PHONE = "+50370000001"


@pytest.fixture(scope="module")
def sandbox_core() -> Iterator[str]:
    """The logistics core the bot asks for points and packages: the sandbox core with its demo data."""
    with BackgroundServer(create_sandbox_app()) as core:
        yield core.url


@pytest.fixture
def settings(base_env: dict[str, str], sandbox_core: str) -> Settings:
    return Settings.from_env({**base_env, "CORE_API_URL": sandbox_core})


@pytest.fixture
def base_url(settings: Settings) -> Iterator[str]:
    """The whole app on a real HTTP server (threaded: the send endpoint calls its own webhook)."""
    with served(settings) as (_app, url):
        yield url


@pytest.fixture
def api(base_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=base_url, timeout=10) as client:
        yield client


@contextmanager
def burst_worker(settings: Settings) -> Iterator[Callable[[], None]]:
    """A function that runs every queued job in this process (call it as often as needed)."""
    rt = build_runtime(settings)

    def work() -> None:
        EncargoWorker([rt.queue], connection=rt.redis, runtime=rt).work(burst=True)

    try:
        yield work
    finally:
        rt.close()


def run_jobs(settings: Settings) -> None:
    with burst_worker(settings) as work:
        work()


def send(api: httpx.Client, **body: Any) -> dict[str, Any]:
    response = api.post("/simulator/api/send", json={"from": PHONE, **body})
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()
    return data


def conversation_of(api: httpx.Client, phone: str = PHONE, after: int = 0) -> list[dict[str, Any]]:
    response = api.get("/simulator/api/messages", params={"phone": phone, "after": after})
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()["messages"]
    return found


def bot_messages(found: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [m for m in found if m["direction"] == "out"]


# ---------- the JSON API ----------


def test_hola_goes_through_the_real_webhook_queue_and_worker(api: httpx.Client, settings: Settings) -> None:
    sent = send(api, name="Juan Pérez", text="Hola")
    assert sent["status"] == 200
    assert sent["message_id"].startswith("wamid.SIM") and len(sent["message_id"]) == len("wamid.SIM") + 32
    assert conversation_of(api) == []  # stored and queued, not yet handled: no contact until the worker runs

    run_jobs(settings)

    found = conversation_of(api)
    assert [m["direction"] for m in found] == ["in", "out", "out"]
    hola, welcome, menu = found
    assert (hola["kind"], hola["body"], hola["provider_message_id"]) == ("text", "Hola", sent["message_id"])
    assert welcome["kind"] == "text"
    assert COMPANY in welcome["body"] and "Juan" in welcome["body"]
    assert welcome["shown"]["body"] == welcome["payload"]["body"]
    assert menu["kind"] == "list"
    assert "📦 Rastrear paquete" in [row["title"] for row in menu["payload"]["rows"]]
    assert menu["shown"]["button_label"] == "Ver opciones"
    assert {m["status"] for m in (welcome, menu)} == {"delivered"}  # the local transport delivers at once
    assert [m["id"] for m in found] == sorted(m["id"] for m in found)
    fields = {"id", "direction", "kind", "body", "payload", "status", "created_at"}
    assert all(set(m) >= fields for m in found)

    assert conversation_of(api, after=found[-1]["id"]) == []
    assert [m["id"] for m in conversation_of(api, after=hola["id"])] == [welcome["id"], menu["id"]]
    # A '+' left unencoded in the query string arrives as a space: still the same customer.
    raw = api.get(f"/simulator/api/messages?phone={PHONE}&after=0")
    assert [m["id"] for m in raw.json()["messages"]] == [m["id"] for m in found]
    assert conversation_of(api, phone="+50370000009") == []


def test_the_webhook_body_is_meta_shaped_and_signed(api: httpx.Client, settings: Settings,
                                                     db_pool: ConnectionPool) -> None:
    sent = send(api, name="Ana", text="¿Dónde queda la sucursal?")
    with db_pool.connection() as conn:
        row = conn.execute(
            "SELECT provider, event_id, kind, payload_encrypted FROM webhook_events"
        ).fetchone()
    assert row is not None
    assert (row["provider"], row["event_id"], row["kind"]) == ("meta", sent["message_id"], "message")
    vault = Vault(settings.phone_encryption_keys, settings.phone_hash_key)
    event = json.loads(vault.decrypt(row["payload_encrypted"]))["event"]
    assert event["channel_number"] == settings.meta_phone_number_id
    assert (event["user_phone"], event["profile_name"]) == (PHONE, "Ana")
    assert event["text"] == "¿Dónde queda la sucursal?"
    message = event["raw"]["message"]
    assert message["from"] == "50370000001" and message["type"] == "text"
    assert message["timestamp"].isdigit() and abs(int(message["timestamp"]) - time.time()) < 60
    assert event["raw"]["contact"] == {"profile": {"name": "Ana"}, "wa_id": "50370000001"}
    assert event["raw"]["metadata"]["phone_number_id"] == settings.meta_phone_number_id


def test_replies_and_location_reach_the_bot(api: httpx.Client, settings: Settings) -> None:
    send(api, reply={"id": "menu_points", "title": "📍 Puntos y horarios", "type": "list"})
    send(api, reply={"id": "menu_track", "title": "Rastrear", "type": "button"})
    send(api, location={"latitude": 13.6929, "longitude": -89.2182, "name": "Centro"})
    run_jobs(settings)

    found = conversation_of(api)
    customer = [m for m in found if m["direction"] == "in"]
    assert [m["kind"] for m in customer] == ["list_reply", "button_reply", "location"]
    assert customer[0]["body"] == "📍 Puntos y horarios"
    assert customer[0]["payload"]["reply_id"] == "menu_points"
    # with the company number it was written to (the conversation's later messages leave from it)
    assert customer[1]["payload"] == {"reply_id": "menu_track", "reply_title": "Rastrear",
                                      "channel_number": settings.meta_phone_number_id}
    assert customer[2]["payload"]["latitude"] == pytest.approx(13.6929)
    assert customer[2]["payload"]["location_name"] == "Centro"
    answers = [m["body"] for m in bot_messages(found)]
    assert "Tenemos 5 puntos de servicio" in answers[0]  # the points, from the sandbox core
    assert "envíame el código de rastreo" in answers[1].lower()  # the bot acts on the option by its id
    assert answers[2].startswith("¡Gracias por tu ubicación!")


@pytest.mark.parametrize(
    ("body", "complaint"),
    [
        ({"text": "Hola"}, "number is required"),
        ({"from": "", "text": "Hola"}, "number is required"),
        ({"from": "12345", "text": "Hola"}, "not an international number"),
        ({"from": "+0503700000", "text": "Hola"}, "not an international number"),
        ({"from": "+5037000000100000", "text": "Hola"}, "not an international number"),
        ({"from": "+503 7000 abcd", "text": "Hola"}, "not an international number"),
        ({"from": 50370000001, "text": "Hola"}, "number is required"),
        ({"from": PHONE, "text": ""}, "non-empty"),
        ({"from": PHONE, "text": "   "}, "non-empty"),
        ({"from": PHONE, "text": "x" * 4097}, "at most 4096"),
        ({"from": PHONE}, "exactly one of"),
        ({"from": PHONE, "text": "Hola", "location": {"latitude": 1, "longitude": 2}}, "exactly one of"),
        ({"from": PHONE, "reply": {"id": "a", "title": "b", "type": "carousel"}}, "reply.type"),
        ({"from": PHONE, "reply": {"id": "", "title": "b", "type": "list"}}, "reply.id"),
        ({"from": PHONE, "location": {"latitude": 91, "longitude": 0}}, "location.latitude"),
        ({"from": PHONE, "location": {"latitude": 13.7, "longitude": "oeste"}}, "location.longitude"),
        ({"from": PHONE, "name": 7, "text": "Hola"}, "'name'"),
    ],
)
def test_send_rejects_bad_input(api: httpx.Client, db_pool: ConnectionPool, body: dict[str, Any],
                                complaint: str) -> None:
    response = api.post("/simulator/api/send", json=body)
    assert response.status_code == 400
    assert complaint in response.json()["error"]
    with db_pool.connection() as conn:
        assert conn.execute("SELECT count(*) AS n FROM webhook_events").fetchone() == {"n": 0}


def test_send_accepts_the_longest_text_and_formatted_numbers(api: httpx.Client) -> None:
    assert send(api, text="x" * 4096)["status"] == 200
    response = api.post("/simulator/api/send", json={"from": "503 7000-0002", "text": "Hola"})
    assert response.status_code == 200
    not_json = api.post("/simulator/api/send", content=b"Hola", headers={"Content-Type": "text/plain"})
    assert not_json.status_code == 400 and "JSON object" in not_json.json()["error"]


@pytest.mark.parametrize("query", ["", "?phone=", "?phone=abc", "?phone=%2B50370000001&after=x"])
def test_messages_rejects_bad_queries(api: httpx.Client, query: str) -> None:
    response = api.get("/simulator/api/messages" + query)
    assert response.status_code == 400
    assert response.json()["error"]


def test_reset_closes_the_conversation_and_forgets_dialog_state(
    api: httpx.Client, settings: Settings, db_pool: ConnectionPool, redis_conn: redis.Redis
) -> None:
    send(api, text="Hola")
    send(api, text="Hola", **{"from": "+50370000002"})
    run_jobs(settings)
    first = conversation_of(api)[0]["conversation_id"]
    other = conversation_of(api, phone="+50370000002")[0]["conversation_id"]
    phone_hash = Vault(settings.phone_encryption_keys, settings.phone_hash_key).lookup_hash(PHONE)
    engine_keys = set(redis_conn.keys("dialog:*"))
    assert len(engine_keys) == 2  # the dialog engine keeps each customer's session: dialog:<conversation hash>
    redis_conn.set(f"dialog:{phone_hash}", "{}")
    redis_conn.set(f"dialog:1:{phone_hash[:32]}:slots", "{}")
    redis_conn.set("dialog:someone-else", "{}")

    response = api.post("/simulator/api/reset", json={"from": PHONE})
    assert response.status_code == 200
    assert response.json() == {"closed_conversations": [first], "deleted_keys": 3}
    with db_pool.connection() as conn:
        statuses = {r["id"]: r["status"] for r in conn.execute("SELECT id, status FROM conversations")}
    assert statuses == {first: "closed", other: "bot"}
    left = set(redis_conn.keys("dialog:*"))
    assert b"dialog:someone-else" in left and len(left) == 2  # and the other customer's session

    assert api.post("/simulator/api/reset", json={"from": PHONE}).json()["closed_conversations"] == []
    assert api.post("/simulator/api/reset", json={"from": "nope"}).status_code == 400

    send(api, text="Hola")
    run_jobs(settings)
    again = conversation_of(api, after=conversation_of(api)[2]["id"])
    assert again[0]["conversation_id"] != first
    assert again[1]["body"].startswith("¡Hola de nuevo")  # a new conversation, the same (known) customer


def test_a_split_reply_is_shown_part_by_part_in_order(api: httpx.Client, settings: Settings,
                                                      db_pool: ConnectionPool) -> None:
    """A reply too long for one WhatsApp message: each part shows its own piece, right after the first."""
    vault = Vault(settings.phone_encryption_keys, settings.phone_hash_key)
    long_text = ("Primera parte. " * 200).strip() + "\n\n" + ("Segunda parte. " * 200).strip()
    assert len(long_text) > 4096
    with db_pool.connection() as conn:
        tenant = conn.execute("SELECT id FROM tenants").fetchone()
        assert tenant is not None
        contact = contacts.upsert_inbound(conn, vault, tenant_id=tenant["id"], phone=PHONE, bsuid=None,
                                          profile_name=None)
        conv = conversations.open_for(conn, tenant_id=tenant["id"], contact_id=contact.id)
        common = {"tenant_id": tenant["id"], "conversation_id": conv.id, "channel": "local",
                  "webhook_event_id": None, "correlation_id": None}
        long_id = messages.create_outbound(conn, idempotency_key="9:0", message=Text(long_text), **common)
        next_id = messages.create_outbound(conn, idempotency_key="9:1", message=Text("Y algo más"), **common)
        assert long_id is not None and next_id is not None
        row = messages.claim_for_sending(conn, long_id)
        assert row is not None
        messages.add_extra_part(conn, row, 1, "local.part1", row.message, DeliveryStatus.DELIVERED)

    found = conversation_of(api)
    assert [m["id"] for m in found] == [long_id, next_id, next_id + 1]
    first, following, part = found
    assert sorted(found, key=lambda m: m["order"]) == [first, part, following]
    assert first["shown"]["body"].startswith("Primera parte.") and "Segunda" not in first["shown"]["body"]
    assert part["shown"]["body"].startswith("Segunda parte.")
    assert len(first["shown"]["body"]) <= 4096 and len(part["shown"]["body"]) <= 4096
    assert following["shown"]["body"] == "Y algo más"


def test_the_page_is_served_only_when_the_simulator_is_enabled(settings: Settings) -> None:
    enabled = create_app(settings)
    disabled = create_app(settings.with_overrides(simulator_enabled=False))
    try:
        page = enabled.test_client().get("/simulator")
        assert page.status_code == 200
        html = page.get_data(as_text=True)
        assert "/simulator/static/simulator.js" in html and "+50370000009" in html and COMPANY in html
        assert enabled.test_client().get("/simulator/static/simulator.css").status_code == 200
        assert disabled.test_client().get("/simulator").status_code == 404
        sent = disabled.test_client().post("/simulator/api/send", json={"from": PHONE, "text": "x"})
        assert sent.status_code == 404
    finally:
        for app in (enabled, disabled):
            app.extensions["db_pool"].close()
            app.extensions["redis"].close()


# ---------- scripts/chat.py ----------


def test_chat_script_talks_through_the_api(base_url: str, settings: Settings, tmp_path: Path) -> None:
    """The terminal client: lines are sent, replies printed, a number picks a list row; EOF exits with 0."""
    (tmp_path / "in.txt").write_text("Hola\n2\n", encoding="utf-8")
    command = [sys.executable, str(ROOT / "scripts" / "chat.py"), "--from", PHONE, "--name", "Juan",
               "--url", base_url]
    with (tmp_path / "in.txt").open("rb") as stdin, (tmp_path / "out.txt").open("wb") as stdout, \
            (tmp_path / "err.txt").open("wb") as stderr:
        proc = subprocess.Popen(command, stdin=stdin, stdout=stdout, stderr=stderr)
        deadline = time.monotonic() + 60
        with burst_worker(settings) as work:
            while proc.poll() is None and time.monotonic() < deadline:
                work()
                time.sleep(0.2)
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
    out = (tmp_path / "out.txt").read_text(encoding="utf-8")
    err = (tmp_path / "err.txt").read_text(encoding="utf-8")
    assert proc.returncode == 0, err
    assert COMPANY in out and "Juan" in out
    assert "  1. 📦 Rastrear paquete — Con tu código SV…" in out
    assert "→ 📍 Puntos y horarios" in out
    assert "Tenemos 5 puntos de servicio" in out
    assert "✓✓ entregado" in out
    assert "Traceback" not in err


# ---------- the page, in Chromium ----------


@pytest.mark.browser
def test_page_in_chromium(base_url: str, settings: Settings) -> None:
    from playwright.sync_api import Page, expect, sync_playwright

    def wait_with_worker(page: Page, work: Callable[[], None], selector: str, text: str) -> None:
        """Run queued jobs until `text` shows up in `selector` (the page polls every 700 ms, no reload)."""
        target = page.locator(selector, has_text=text)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            work()
            try:
                expect(target.first).to_be_visible(timeout=500)
                return
            except AssertionError:
                continue
        expect(target.first).to_be_visible(timeout=1)

    with sync_playwright() as pw, burst_worker(settings) as work:
        browser = launch(pw)
        try:
            page = browser.new_page(viewport={"width": 390, "height": 844}, device_scale_factor=1)
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(base_url + "/simulator")
            expect(page.locator("#number")).to_have_value(PHONE)
            page.fill("#name", "Juan")
            page.fill("#text", "Hola")
            page.click("#send")
            expect(page.locator(".row.me.pending", has_text="Hola")).to_be_visible()

            wait_with_worker(page, work, ".row.bot .text", COMPANY)
            expect(page.locator(".row.bot strong", has_text=COMPANY)).to_be_visible()  # *bold* rendered
            expect(page.locator(".row.me.pending")).to_have_count(0)
            expect(page.locator(".row.me .text")).to_have_text(["Hola"])
            list_button = page.locator(".row.bot .list-button")
            expect(list_button).to_have_text("☰ Ver opciones")
            expect(page.locator(".row.bot .status").first).to_have_text("✓✓ entregado")

            list_button.click()
            expect(page.locator("#sheet")).to_be_visible()
            page.locator(".sheet-row", has_text="Puntos y horarios").click()
            expect(page.locator("#sheet")).to_be_hidden()
            wait_with_worker(page, work, ".row.bot .text", "Tenemos 5 puntos")
            expect(page.locator(".row.me:not(.pending) .text").last).to_have_text("📍 Puntos y horarios")
            expect(page.locator(".row.me .reply-tag").last).to_have_text("☰ opción de lista")
            shot = ROOT / "docs" / "simulator.png"
            if not shot.exists() or os.environ.get("UPDATE_SCREENSHOTS") == "1":  # the README's picture
                page.locator("#chat").evaluate("chat => { chat.scrollTop = 0; }")
                page.screenshot(path=str(shot))

            # Customer text is never HTML: tags stay visible text, markup only from *bold*.
            page.fill("#text", "<b>hack</b> <img src=x onerror=alert(1)> *negrita*")
            page.keyboard.press("Enter")
            wait_with_worker(page, work, ".row.me:not(.pending) .text", "<b>hack</b>")
            mine = page.locator(".row.me:not(.pending) .text").last
            expect(mine).to_have_text("<b>hack</b> <img src=x onerror=alert(1)> negrita")
            expect(mine.locator("strong")).to_have_text("negrita")
            assert page.locator("#chat b, #chat img").count() == 0

            page.click("#location-toggle")
            page.fill("#loc-name", "Mi casa")
            page.click("#loc-send")
            wait_with_worker(page, work, ".row.me:not(.pending) .location-name", "Mi casa")
            link = page.locator(".row.me .location-link").last
            expect(link).to_have_attribute("href", "https://www.openstreetmap.org/?mlat=13.6929&mlon=-89.2182"
                                                   "#map=17/13.6929/-89.2182")
            wait_with_worker(page, work, ".row.bot .text", "Gracias por tu ubicación")
            assert errors == []
        finally:
            browser.close()
