"""Two companies side by side, as `make run` seeds them: each answers from its own logistics core.

The sandbox core plays both demo companies (each selected by its own API key, each signing its events
with its own secret); the first company is the configured tenant, the second is written by `make run`'s
seeding (scripts/run_tenants.py) with its own number, core key and events secret. The customer
+50370000001 is a customer of both and writes to each through the simulator's API, over the real
webhook, queue and RQ worker, against the real Redis and PostgreSQL.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from psycopg_pool import ConnectionPool

from channels.local_transport import LOCAL_OUTBOX_CHANNEL
from config import Settings
from runtime.cores import TenantCores
from runtime.resources import build_runtime
from sandbox_core import BackgroundServer, create_sandbox_app
from sandbox_core.companies import CompanyConfig
from sandbox_core.state import load_data
from scripts.run_environment import DEMO_DATA
from scripts.run_tenants import seed_second_company
from storage import tenant_admin, tenant_changes
from storage.crypto import Vault
from tests.browser import launch
from tests.conftest import TEST_ENV
from tests.harness import served
from worker.main import EncargoWorker

ROOT = Path(__file__).resolve().parent.parent
SHARED = "+50370000001"
DATA = {1: load_data(DEMO_DATA[0]), 2: load_data(DEMO_DATA[1])}
NAMES = {1: "Transportes Express El Salvador", 2: "Envíos Rápidos Cuscatlán"}
SLUGS = {1: "demo", 2: "cuscatlan"}
NUMBER_TWO = "100000000000002"
KEYS = {1: "core-key-company-one", 2: "core-key-company-two"}
SECRET_TWO = "events-secret-of-company-two-0123456789"
CODE = re.compile(r"SV\d{14}")


def codes(company: int) -> set[str]:
    return {p["tracking_code"] for p in DATA[company]["packages"]}


def shared_codes(company: int) -> set[str]:
    return {p["tracking_code"] for p in DATA[company]["packages"]
            if SHARED in (p["sender"]["phone"], p["recipient"]["phone"])}


class Later:
    """A WSGI app set after its server is listening (the core must know the bot's URL for its events)."""

    app: Any = None

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        assert self.app is not None, "the sandbox core is not set up yet"
        answer: Iterable[bytes] = self.app(environ, start_response)
        return answer


@pytest.fixture(scope="module")
def core_server() -> Iterator[tuple[Later, str]]:
    later = Later()
    with BackgroundServer(later) as server:
        yield later, server.url


@pytest.fixture
def settings(base_env: dict[str, str], core_server: tuple[Later, str]) -> Settings:
    """Company 1 is the configured tenant; quiet hours off (the test runs at any hour)."""
    return Settings.from_env({**base_env, "CORE_API_URL": core_server[1], "CORE_API_KEY": KEYS[1],
                              "QUIET_HOURS_START": "00:00", "QUIET_HOURS_END": "00:00"})


@pytest.fixture
def stack(settings: Settings, core_server: tuple[Later, str], db_pool: ConnectionPool,
          redis_conn: redis.Redis) -> Iterator[tuple[httpx.Client, Callable[[], None]]]:
    """The second company seeded as `make run` does, the app on loopback, the two-company sandbox core
    pushing its events to the app, and a function running the queued jobs with a real RQ worker."""
    vault = Vault(settings.phone_encryption_keys, settings.phone_hash_key)
    env = {"DEMO2_TENANT_SLUG": SLUGS[2], "DEMO2_PHONE_NUMBER_ID": NUMBER_TWO,
           "DEMO2_CORE_API_KEY": KEYS[2], "DEMO2_EVENTS_SECRET": SECRET_TWO}
    seed_second_company(db_pool, vault, redis_conn, settings, env)
    later, _ = core_server
    with served(settings) as (_app, url):
        events = f"{url}/internal/events"
        later.app = create_sandbox_app(companies=[
            CompanyConfig(DEMO_DATA[0], KEYS[1], events, TEST_ENV["INTERNAL_EVENTS_SECRET"], SLUGS[1]),
            CompanyConfig(DEMO_DATA[1], KEYS[2], events, SECRET_TWO, SLUGS[2]),
        ])
        rt = build_runtime(settings)

        def work() -> None:
            EncargoWorker([rt.queue], connection=rt.redis, runtime=rt).work(burst=True)

        try:
            with httpx.Client(base_url=url, timeout=10) as api:
                yield api, work
        finally:
            rt.close()
            later.app = None


def say(api: httpx.Client, work: Callable[[], None], company: int, text: str) -> list[dict[str, Any]]:
    """Write to a company as the shared customer; the bot's replies to this message."""
    before = view(api, company)
    last = before[-1]["id"] if before else 0
    sent = api.post("/simulator/api/send", json={"from": SHARED, "company": SLUGS[company], "text": text})
    assert sent.status_code == 200, sent.text
    work()
    return [m for m in view(api, company, after=last) if m["direction"] == "out"]


def view(api: httpx.Client, company: int, after: int = 0) -> list[dict[str, Any]]:
    """The simulator's view of the shared customer's chat with one company."""
    found = api.get("/simulator/api/messages", params={"phone": SHARED, "company": SLUGS[company], "after": after})
    assert found.status_code == 200, found.text
    messages: list[dict[str, Any]] = found.json()["messages"]
    return messages


def words(replies: list[dict[str, Any]]) -> str:
    return "\n".join(json.dumps(m["payload"], ensure_ascii=False) for m in replies)


def test_the_seeding_is_idempotent_and_gives_the_second_company_its_own_core(
        settings: Settings, db_pool: ConnectionPool, redis_conn: redis.Redis) -> None:
    vault = Vault(settings.phone_encryption_keys, settings.phone_hash_key)
    env = {"DEMO2_CORE_API_KEY": KEYS[2], "DEMO2_EVENTS_SECRET": SECRET_TWO}
    first = seed_second_company(db_pool, vault, redis_conn, settings, env)
    again = seed_second_company(db_pool, vault, redis_conn, settings, env)
    assert "created" in first and "updated" in again
    listed = {entry.tenant.slug: entry for entry in tenant_admin.list_tenants(db_pool)}
    assert set(listed) == {SLUGS[1], SLUGS[2]}
    two = listed[SLUGS[2]]
    assert two.tenant.name == NAMES[2] and two.has_core_api_key and two.has_events_secret
    assert [(c.provider, c.number) for c in two.channels] == [("meta", NUMBER_TWO)]
    cores = TenantCores(settings, db_pool, redis_conn, vault)
    one_access, two_access = cores.access(listed[SLUGS[1]].tenant.id), cores.access(two.tenant.id)
    assert (one_access.api_key, two_access.api_key) == (KEYS[1], KEYS[2])
    assert one_access.base_url.rstrip("/") == two_access.base_url.rstrip("/") == str(settings.core_api_url).rstrip("/")
    # A change of the tenant's core is seen without a restart (the tenants' version moved).
    tenant_admin.update_tenant(db_pool, vault, redis_conn, SLUGS[2], {"core_api_key": "a-rotated-key"})
    time.sleep(tenant_changes.CHECK_INTERVAL_S + 0.1)  # the version is read at most once a second
    assert cores.access(two.tenant.id).api_key == "a-rotated-key"


def test_make_runs_seeding_step_creates_then_keeps_the_second_company(base_env: dict[str, str],
                                                                       settings: Settings,
                                                                       db_pool: ConnectionPool) -> None:
    """`python -m scripts.run_tenants`, as scripts/run_services.py runs it at every start of `make run`."""
    env = {**os.environ, **base_env, "CORE_API_URL": str(settings.core_api_url), "CORE_API_KEY": KEYS[1],
           "DEMO2_TENANT_SLUG": SLUGS[2], "DEMO2_PHONE_NUMBER_ID": NUMBER_TWO, "DEMO2_CORE_API_KEY": KEYS[2],
           "DEMO2_EVENTS_SECRET": SECRET_TWO}
    outputs = []
    for _ in range(2):
        done = subprocess.run([sys.executable, "-m", "scripts.run_tenants"], env=env, cwd=ROOT, capture_output=True,
                              text=True, timeout=60, check=False)
        assert done.returncode == 0, done.stderr
        outputs.append(done.stdout)
    assert f"{NAMES[2]} ({SLUGS[2]}) created, number {NUMBER_TWO}" in outputs[0]
    assert f"{NAMES[2]} ({SLUGS[2]}) updated, number {NUMBER_TWO}" in outputs[1]
    listed = {entry.tenant.slug: entry for entry in tenant_admin.list_tenants(db_pool)}
    assert [(c.provider, c.number) for c in listed[SLUGS[2]].channels] == [("meta", NUMBER_TWO)]
    assert listed[SLUGS[2]].tenant.bot_name == "Chepito"

    taken = {**env, "DEMO2_PHONE_NUMBER_ID": str(settings.meta_phone_number_id)}  # company 1's number
    refused = subprocess.run([sys.executable, "-m", "scripts.run_tenants"], env={**taken, "DEMO2_TENANT_SLUG": "otra"},
                             cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
    assert refused.returncode == 1 and "already a channel of a tenant" in refused.stderr


def test_each_company_answers_its_shared_customer_from_its_own_core(
        stack: tuple[httpx.Client, Callable[[], None]]) -> None:
    api, work = stack
    for company in (1, 2):
        hello = words(say(api, work, company, "Hola"))
        assert NAMES[company] in hello and NAMES[3 - company] not in hello

    for company in (1, 2):
        mine = words(say(api, work, company, "¿ya llegó mi encargo?"))
        shown = set(CODE.findall(mine))
        assert shown and shown <= shared_codes(company), (company, shown)
        assert not shown & codes(3 - company)

    for company in (1, 2):  # the other company's tracking code is unknown here
        other = sorted(shared_codes(3 - company))[0]
        answer = words(say(api, work, company, other))
        assert "No encontré ningún paquete" in answer and other in answer

    for company in (1, 2):
        points = words(say(api, work, company, "¿dónde están ubicados?"))
        own = [p["name"] for p in DATA[company]["points"]]
        assert any(name.split(" - ")[0] in points for name in own)
        assert not any(p["name"] in points for p in DATA[3 - company]["points"])

    one, two = view(api, 1), view(api, 2)
    assert not {m["id"] for m in one} & {m["id"] for m in two}  # two chats, never mixed
    assert NAMES[2] not in words(one) and NAMES[1] not in words(two)


def test_a_notification_from_company_twos_core_comes_from_company_twos_number(
        stack: tuple[httpx.Client, Callable[[], None]], core_server: tuple[Later, str],
        redis_conn: redis.Redis) -> None:
    api, work = stack
    say(api, work, 2, "Hola")  # the customer's window with company 2 is open: a free-form notice
    one_before, two_before = view(api, 1), view(api, 2)
    code = "SV20260106508720"  # company 2's, the shared customer receives it
    notices = redis_conn.pubsub(ignore_subscribe_messages=True)
    notices.subscribe(LOCAL_OUTBOX_CHANNEL)
    moved = httpx.post(f"{core_server[1]}/sandbox/packages/{code}/status", timeout=10,
                       json={"status": "ARRIVED_AT_DESTINATION"}, headers={"Authorization": f"Bearer {KEYS[2]}"})
    assert moved.status_code == 200 and moved.json()["event_delivered"] is True
    work()
    told = [m for m in view(api, 2, after=two_before[-1]["id"]) if m["direction"] == "out"]
    assert len(told) == 1 and code in words(told)
    assert view(api, 1, after=one_before[-1]["id"] if one_before else 0) == []
    sent_from = []
    deadline = time.monotonic() + 2.0  # (an ignored subscribe confirmation also reads as None)
    while time.monotonic() < deadline:
        notice = notices.get_message(timeout=0.2)
        if notice is not None:
            sent_from.append(json.loads(notice["data"])["number"])
    notices.close()
    assert sent_from and set(sent_from) == {NUMBER_TWO}


def test_the_simulator_page_lists_both_companies(stack: tuple[httpx.Client, Callable[[], None]]) -> None:
    api, _work = stack
    page = api.get("/simulator")
    assert page.status_code == 200
    for company in (1, 2):
        assert f'<option value="{SLUGS[company]}" data-name="{NAMES[company]}">{NAMES[company]}</option>' in page.text
    listed = api.get("/simulator/api/companies").json()["companies"]
    assert [(c["slug"], c["name"]) for c in listed] == [(SLUGS[1], NAMES[1]), (SLUGS[2], NAMES[2])]
    assert listed[1]["number"] == NUMBER_TWO
    unknown = api.post("/simulator/api/send", json={"from": SHARED, "company": "nadie", "text": "Hola"})
    assert unknown.status_code == 400 and "nadie" in unknown.json()["error"]


def test_the_simulator_page_switches_company_in_chromium(stack: tuple[httpx.Client, Callable[[], None]]) -> None:
    from playwright.sync_api import expect, sync_playwright

    api, work = stack
    with sync_playwright() as pw:
        browser = launch(pw)
        try:
            page = browser.new_page(viewport={"width": 390, "height": 844})
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(str(api.base_url).rstrip("/") + "/simulator")
            expect(page.locator("#company-name")).to_have_text(NAMES[1])
            page.select_option("#company-pick", SLUGS[2])
            expect(page.locator("#company-name")).to_have_text(NAMES[2])
            page.fill("#number", SHARED)
            page.fill("#text", "Hola")
            page.click("#send")
            greeting = page.locator(".row.bot .text", has_text=NAMES[2])
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and greeting.count() == 0:
                work()
                page.wait_for_timeout(500)
            expect(greeting.first).to_be_visible()
            page.select_option("#company-pick", SLUGS[1])  # the same customer, the other company's chat
            expect(page.locator("#company-name")).to_have_text(NAMES[1])
            expect(page.locator(".row")).to_have_count(0)
            assert page.title() == f"Simulador WhatsApp · {NAMES[1]}"
            assert errors == []
        finally:
            browser.close()
