"""Shared by the console tests: a customer who writes through the real webhook, agents, the console's desk."""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import redis
from flask import Flask
from flask.testing import FlaskClient
from psycopg_pool import ConnectionPool
from rq import Queue

from config import Settings
from handoff import agents
from handoff.agents import Agent
from handoff.cases import Desk
from tests.harness import post_meta, rows, run_jobs

TZ = ZoneInfo("America/El_Salvador")
TUESDAY_10AM = datetime(2026, 1, 6, 10, 0, tzinfo=TZ)
TUESDAY_NIGHT = datetime(2026, 1, 6, 23, 30, tzinfo=TZ)
MARIA = "+50370000002"
PASSWORD = "correct horse battery"


class Customer:
    """A customer's WhatsApp: `send` posts one signed Meta webhook and runs the worker."""

    def __init__(self, client: FlaskClient, settings: Settings, pool: ConnectionPool, phone: str = MARIA,
                 name: str = "María López") -> None:
        self.client, self.settings, self.pool, self.phone, self.name = client, settings, pool, phone, name

    def send(self, text: str | None = None, *, at: datetime = TUESDAY_10AM,
             reply: tuple[str, str] | None = None, run: bool = True) -> str:
        message_id = f"wamid.CONSOLE{uuid.uuid4().hex}"
        message: dict[str, Any] = {"from": self.phone.lstrip("+"), "id": message_id,
                                   "timestamp": str(int(at.timestamp()))}
        if reply is not None:
            message.update(type="interactive", interactive={
                "type": "button_reply", "button_reply": {"id": reply[0], "title": reply[1]}})
        else:
            message.update(type="text", text={"body": text or ""})
        body = {"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{
            "field": "messages", "value": {
                "messaging_product": "whatsapp",
                "metadata": {"display_phone_number": "15550783881", "phone_number_id": "106540352242922"},
                "contacts": [{"wa_id": self.phone.lstrip("+"), "profile": {"name": self.name}}],
                "messages": [message]}}]}]}
        assert post_meta(self.client, body).status_code == 200
        if run:
            run_jobs(self.settings)
        return message_id

    def escalate(self, text: str = "quiero hablar con una persona", at: datetime = TUESDAY_10AM) -> int:
        """Ask for a person; returns the id of the case (escalation) the bot opened."""
        self.send(text, at=at)
        found = rows(self.pool, "SELECT e.id FROM escalations e JOIN conversations c ON c.id = e.conversation_id"
                                " JOIN contacts ct ON ct.id = c.contact_id WHERE ct.profile_name = %s"
                                " ORDER BY e.id DESC LIMIT 1", (self.name,))
        assert found, "the bot did not escalate"
        return int(found[0]["id"])

    def received(self) -> list[str]:
        """Everything sent to this customer, oldest first (message bodies as stored)."""
        found = rows(self.pool, "SELECT m.body FROM messages m JOIN conversations c ON c.id = m.conversation_id"
                                " JOIN contacts ct ON ct.id = c.contact_id WHERE ct.profile_name = %s"
                                " AND m.direction = 'out' ORDER BY m.id", (self.name,))
        return [str(r["body"]) for r in found]


def make_agent(pool: ConnectionPool, name: str, email: str, *, role: str = "agent",
               tenant_id: int | None = None) -> Agent:
    with pool.connection() as conn:
        if tenant_id is None:
            tenant_id = int(rows(pool, "SELECT id FROM tenants ORDER BY id LIMIT 1")[0]["id"])
        return agents.create_agent(conn, tenant_id=tenant_id, name=name, email=email, role=role, password=PASSWORD)


def other_tenant(pool: ConnectionPool) -> int:
    with pool.connection() as conn:
        row = conn.execute("INSERT INTO tenants (slug, name) VALUES ('otra', 'Otra Empresa') RETURNING id").fetchone()
    assert row is not None
    return int(row["id"])


def desk_for(settings: Settings, pool: ConnectionPool, conn: redis.Redis) -> Desk:
    return Desk(settings=settings, pool=pool, redis=conn, queue=Queue(settings.queue_name, connection=conn))


def log_in(page: Any, base_url: str, email: str) -> None:
    """Log a Playwright page in to the console as `email` (password PASSWORD) and wait for the live feed."""
    from playwright.sync_api import expect

    page.goto(base_url + "/console/login")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    expect(page.locator("body[data-live=on]")).to_have_count(1)


def logged_in(app: Flask, email: str, password: str = PASSWORD) -> FlaskClient:
    """A test client of `app` with an open console session for `email` (through the login form and its token)."""
    client = app.test_client()
    page = client.get("/console/login").get_data(as_text=True)
    token = re.search(r'name="csrf-token" content="([^"]+)"', page)
    assert token, "the login page carries no CSRF token"
    answer = client.post("/console/login", data={"email": email, "password": password, "csrf_token": token.group(1)})
    assert answer.status_code == 302, answer.get_data(as_text=True)
    return client


def session_csrf(client: FlaskClient) -> str:
    """The CSRF token of the client's console session: what its forms and API calls send."""
    with client.session_transaction("/console") as session:
        return str(session["csrf"])
