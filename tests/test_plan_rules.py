"""Each company's own language model, and its plan's rules obeyed by the bot (issue 15, design 7.3).

Through the real path: a signed Meta webhook to the real Flask app, and ONE worker `Runtime` kept for the
whole test (as in a running worker: its caches live across messages, so a change must reach them through
`tenants:version`), the sandbox core, and OpenAI-compatible model servers faked on loopback, one per
company, each accepting only its company's key (a wrong key gets 401 and is not recorded). Plans are
rows; a test adds small plans of its own and removes them afterwards.
"""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import redis
from flask.testing import FlaskClient
from psycopg_pool import ConnectionPool

from config import Settings
from llm import analysis, costs, summary
from runtime import bot_sessions
from runtime.resources import Runtime, build_runtime
from storage import plans, tenant_admin, tenant_llm, usage
from storage.crypto import Vault
from tests.fakes.graph_api import FakeGraphAPI
from tests.fakes.openai_api import FakeOpenAI, Reply, json_reply
from tests.harness import post_meta, rows, run_jobs, text_payload
from tests.notifications_helpers import notification_settings, notifications, post_event, status_event
from web.app import create_app
from worker.main import EncargoWorker

ROOT = Path(__file__).resolve().parent.parent
DEMO_NUMBER = "106540352242922"  # the configured company's (TEST_ENV)
OTRA_NUMBER = "222333444555"
KEY_A, KEY_B = "sk-company-a", "sk-company-b"
JUAN, MARIA, ANA, PEDRO = "+50370000001", "+50370000002", "+50370000003", "+50370000004"
TUESDAY_10AM = datetime(2026, 1, 6, 10, 0, tzinfo=ZoneInfo("America/El_Salvador"))
UNSURE = "me mandaron algo?"  # the rules read track_package with low confidence: the model reads it too
READING = {"intent": "track_package", "confidence": 0.9, "tracking_code": None, "point": None, "weight_lbs": None}
CHANGE_SEEN_S = 1.1  # tenants:version is read at most once a second


@pytest.fixture
def lsettings(base_env: dict[str, str], core_url: str) -> Settings:
    """A deployment with no model of its own (LLM_PROVIDER none): only the companies' own settings call one."""
    return Settings.from_env({**base_env, "CORE_API_URL": core_url, "LLM_MAX_RETRIES": "0", "LLM_TIMEOUT_S": "2"})


@pytest.fixture
def vault(settings: Settings) -> Vault:
    return Vault(settings.phone_encryption_keys, settings.phone_hash_key)


@pytest.fixture
def model_a() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(api_key=KEY_A) as fake:
        yield fake


@pytest.fixture
def model_b() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(api_key=KEY_B) as fake:
        yield fake


class Desk:
    """Customers writing to the companies' numbers; one web app and one worker Runtime for the whole test."""

    def __init__(self, settings: Settings, pool: ConnectionPool) -> None:
        self.settings, self.pool = settings, pool
        self.app = create_app(settings)
        self.client: FlaskClient = self.app.test_client()
        self.rt: Runtime = build_runtime(settings, pool_size=2)

    def say(self, number: str, phone: str, text: str, at: datetime = TUESDAY_10AM) -> tuple[str, dict[str, Any]]:
        """Post one message, run the worker; (the replies' text, the routing stored with the message)."""
        wamid = f"wamid.PLAN{uuid.uuid4().hex}"
        payload = text_payload(phone.lstrip("+"), text, wamid, phone_number_id=number)
        payload["entry"][0]["changes"][0]["value"]["messages"][0]["timestamp"] = str(int(at.timestamp()))
        assert post_meta(self.client, payload).status_code == 200
        EncargoWorker([self.rt.queue], connection=self.rt.redis, runtime=self.rt).work(burst=True,
                                                                                       with_scheduler=False)
        event = rows(self.pool, "SELECT id, status FROM webhook_events WHERE event_id = %s", (wamid,))[0]
        assert event["status"] == "processed"
        sent = rows(self.pool, "SELECT body FROM messages WHERE webhook_event_id = %s AND direction = 'out'"
                               " ORDER BY id", (event["id"],))
        route = rows(self.pool, "SELECT route FROM messages WHERE webhook_event_id = %s AND direction = 'in'",
                     (event["id"],))[0]["route"]
        return "\n".join(r["body"] or "" for r in sent), route

    def close(self) -> None:
        self.client.__exit__(None, None, None)
        self.rt.close()
        self.app.extensions["db_pool"].close()
        self.app.extensions["redis"].close()


@pytest.fixture
def desk(lsettings: Settings, db_pool: ConnectionPool) -> Iterator[Desk]:
    d = Desk(lsettings, db_pool)
    yield d
    d.close()


def second_company(pool: ConnectionPool, vault: Vault, redis_conn: redis.Redis) -> int:
    tenant = tenant_admin.create_tenant(pool, vault, redis_conn, slug="otra", name="Otra Paquetería")
    tenant_admin.add_channel(pool, vault, redis_conn, "otra", provider="meta", number=OTRA_NUMBER)
    return tenant.id


def tenant_id(pool: ConnectionPool, slug: str) -> int:
    return int(rows(pool, "SELECT id FROM tenants WHERE slug = %s", (slug,))[0]["id"])


def own_model(pool: ConnectionPool, vault: Vault, redis_conn: redis.Redis, slug: str, fake: FakeOpenAI,
              key: str, model: str) -> None:
    tenant_llm.update(pool, vault, redis_conn, slug,
                      {"provider": "openai", "base_url": fake.base_url, "api_key": key, "model": model})


def admin(base_env: dict[str, str], *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "console.cli", *args], cwd=ROOT, env={**base_env, **extra},
                          capture_output=True, text=True, timeout=60, check=False)


def test_each_company_calls_its_own_model_with_its_own_key_until_its_budget_is_spent(
    desk: Desk, db_pool: ConnectionPool, vault: Vault, redis_conn: redis.Redis, model_a: FakeOpenAI,
    model_b: FakeOpenAI,
) -> None:
    otra = second_company(db_pool, vault, redis_conn)
    own_model(db_pool, vault, redis_conn, "demo", model_a, KEY_A, "modelo-a")
    own_model(db_pool, vault, redis_conn, "otra", model_b, KEY_B, "modelo-b")
    model_a.script("json", json_reply(READING), json_reply(READING))
    model_b.script("json", json_reply(READING), json_reply(READING))

    text, route = desk.say(DEMO_NUMBER, JUAN, UNSURE)
    assert "código de rastreo" in text and route["stage"] == "llm"
    text, route = desk.say(OTRA_NUMBER, JUAN, UNSURE)
    assert "código de rastreo" in text and route["stage"] == "llm"
    # each call reached its company's server with its company's key (a wrong key is refused unrecorded)
    assert [r["model"] for r in model_a.requests] == ["modelo-a"]
    assert [r["model"] for r in model_b.requests] == ["modelo-b"]
    assert "Otra Paquetería" in str(model_b.requests[0]["messages"]) and "Otra" not in str(model_a.requests)
    calls = rows(db_pool, "SELECT t.slug, c.model, c.outcome FROM llm_calls c JOIN tenants t ON t.id = c.tenant_id"
                          " ORDER BY c.id")
    assert calls == [{"slug": "demo", "model": "modelo-a", "outcome": "ok"},
                     {"slug": "otra", "model": "modelo-b", "outcome": "ok"}]

    # Otra's own monthly budget ($2.50, below Pro's $50) is spent: it answers with the rules alone from now on
    spent = costs.LlmCall("openai", "modelo-b", "answer", "v1", 10, 10, 100, 3.0, "ok")
    with db_pool.connection() as conn:
        costs.store(conn, tenant_id=otra, conversation_id=None, calls=[spent])
    tenant_llm.update(db_pool, vault, redis_conn, "otra", {"monthly_usd": "2.50"})
    time.sleep(CHANGE_SEEN_S)
    text, route = desk.say(OTRA_NUMBER, MARIA, UNSURE)
    assert "código de rastreo" in text and route["stage"] == "keyword"  # answered all the same
    assert len(model_b.requests) == 1
    text, route = desk.say(DEMO_NUMBER, MARIA, UNSURE)  # the other company still uses its model
    assert "código de rastreo" in text and route["stage"] == "llm" and len(model_a.requests) == 2
    with db_pool.connection() as conn:
        month = usage.current_month(conn, otra)
        assert [(o.limit, o.allowed, o.rule) for o in usage.overages(conn, otra, month)] == [
            ("llm_usd", Decimal("2.5"), "rules_only")]
        assert usage.overages(conn, tenant_id(db_pool, "demo"), month) == []

    # the budget back to the plan's ($50): the model again
    tenant_llm.update(db_pool, vault, redis_conn, "otra", {"monthly_usd": ""})
    time.sleep(CHANGE_SEEN_S)
    _, route = desk.say(OTRA_NUMBER, ANA, UNSURE)
    assert route["stage"] == "llm" and len(model_b.requests) == 2


def test_llm_settings_with_encargo_admin(base_env: dict[str, str], db_pool: ConnectionPool, vault: Vault) -> None:
    done = admin(base_env, "tenant-update", "--slug", "demo", "--llm-provider", "gemini", "--llm-model",
                 "gemini-2.5-flash", "--llm-api-key", "--llm-monthly-usd", "25",
                 ENCARGO_LLM_API_KEY="AIza-company-key")
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip() == "tenant demo updated: llm_api_key, llm_model, llm_monthly_usd, llm_provider"
    assert "AIza-company-key" not in done.stdout
    stored = tenant_llm.read(db_pool, vault, tenant_id(db_pool, "demo"))
    assert (stored.provider, stored.model, stored.api_key, stored.monthly_usd) == (
        "gemini", "gemini-2.5-flash", "AIza-company-key", Decimal("25"))
    sealed = rows(db_pool, "SELECT llm_api_key_encrypted FROM tenants WHERE slug = 'demo'")[0]
    assert "AIza" not in sealed["llm_api_key_encrypted"]  # encrypted at rest
    with db_pool.connection() as conn:
        assert plans.plan_of(conn, tenant_id(db_pool, "demo")).limit("llm_usd") == Decimal("25")
    assert tenant_llm.describe(db_pool, "demo")["api_key"] == "set"

    back = admin(base_env, "tenant-update", "--slug", "demo", "--llm-provider", "", "--clear-llm-api-key",
                 "--llm-monthly-usd", "")
    assert back.returncode == 0, back.stdout
    assert tenant_llm.describe(db_pool, "demo") == {"provider": None, "model": "gemini-2.5-flash", "api_key": None,
                                                    "base_url": None, "monthly_usd": None}
    for bad, why in ((("--llm-provider", "claude"), "unknown LLM provider"),
                     (("--llm-monthly-usd", "mucho"), "amount in dollars"),
                     (("--llm-base-url", "ftp://x"), "http(s) URL")):
        refused = admin(base_env, "tenant-update", "--slug", "demo", *bad)
        assert refused.returncode == 1 and why in refused.stdout


def test_a_plan_without_chatbot_hands_every_conversation_to_the_people_once_acknowledged(
    desk: Desk, base_env: dict[str, str], db_pool: ConnectionPool, vault: Vault, redis_conn: redis.Redis,
    model_a: FakeOpenAI,
) -> None:
    own_model(db_pool, vault, redis_conn, "demo", model_a, KEY_A, "modelo-a")
    assert "Transportes Express" in desk.say(DEMO_NUMBER, JUAN, "Hola")[0]  # Pro: the bot converses

    moved = admin(base_env, "plan-set", "--tenant", "demo", "--plan", "starter")
    assert moved.returncode == 0, moved.stdout
    time.sleep(CHANGE_SEEN_S)  # the running worker follows the new plan within about a second
    text, route = desk.say(DEMO_NUMBER, MARIA, UNSURE)
    assert text == ("¡Hola, Cliente! 👋 Recibimos tu mensaje. Alguien de nuestro equipo te va a responder pronto"
                    " por este chat.")
    assert route["stage"] == "people_only" and model_a.requests == []
    text, route = desk.say(DEMO_NUMBER, MARIA, "¿Me ayudan con mi paquete SV20260105007834?")
    assert text == "" and route["stage"] == "people_only"  # once per conversation: the team has the case
    cases = rows(db_pool, "SELECT e.reason, e.status, c.status AS conversation FROM escalations e"
                          " JOIN conversations c ON c.id = e.conversation_id")
    assert cases == [{"reason": "no_chatbot", "status": "waiting", "conversation": "escalated"}]
    # a customer who asks to stop the messages is opted out, and told so (no case for that)
    text, route = desk.say(DEMO_NUMBER, ANA, "ya no me manden mensajes")
    assert "Ya no te enviaremos notificaciones" in text and route["intent"] == "opt_out"
    assert rows(db_pool, "SELECT opted_out_at FROM contacts ORDER BY id")[-1]["opted_out_at"] is not None
    assert len(rows(db_pool, "SELECT id FROM escalations")) == 1

    assert admin(base_env, "plan-set", "--tenant", "demo", "--plan", "pro").returncode == 0
    time.sleep(CHANGE_SEEN_S)
    model_a.script("json", json_reply(READING))
    text, route = desk.say(DEMO_NUMBER, PEDRO, UNSURE)
    assert "código de rastreo" in text and route["stage"] == "llm"  # the bot and its model are back


def test_out_of_hours_the_acknowledgement_says_when_the_team_answers(
    desk: Desk, db_pool: ConnectionPool, redis_conn: redis.Redis,
) -> None:
    with db_pool.connection() as conn:
        plans.set_plan(conn, "demo", "starter", redis_conn)
    night = datetime(2026, 1, 6, 23, 30, tzinfo=ZoneInfo("America/El_Salvador"))  # a Tuesday, support closed
    text, route = desk.say(DEMO_NUMBER, JUAN, "hola, ¿dónde está mi paquete?", at=night)
    assert text.startswith("¡Hola, Cliente! 👋 Recibimos tu mensaje. Ahora estamos fuera de horario (atendemos ")
    assert text.endswith("); te respondemos mañana (miércoles) a las 8:00am por este chat.")
    case = rows(db_pool, "SELECT reason, status FROM escalations")
    assert case == [{"reason": "no_chatbot", "status": "callback"}]  # the team calls back when it opens
    assert desk.say(DEMO_NUMBER, JUAN, "gracias", at=night)[0] == ""


@pytest.fixture
def small_plans(db_pool: ConnectionPool) -> Iterator[None]:
    """Two plans allowing one bot conversation a month: one switches to rules only past it, one flags it."""
    with db_pool.connection() as conn:
        for code, rule in (("uno_reglas", "rules_only"), ("uno_aviso", "flag")):
            conn.execute("INSERT INTO plans (code, name, features, limits, overage) VALUES (%s, %s,"
                         " '{\"chatbot\": true, \"ai\": true}', '{\"bot_conversations\": 1, \"llm_usd\": null}', %s)",
                         (code, code, rule))
    yield
    with db_pool.connection() as conn:
        conn.execute("UPDATE tenants SET plan_code = 'pro' WHERE plan_code IN ('uno_reglas', 'uno_aviso')")
        conn.execute("DELETE FROM plans WHERE code IN ('uno_reglas', 'uno_aviso')")


def test_bot_conversations_over_the_plan_limit_follow_its_rule(
    small_plans: None, desk: Desk, base_env: dict[str, str], db_pool: ConnectionPool, vault: Vault,
    redis_conn: redis.Redis, model_a: FakeOpenAI,
) -> None:
    demo = tenant_id(db_pool, "demo")
    own_model(db_pool, vault, redis_conn, "demo", model_a, KEY_A, "modelo-a")
    with db_pool.connection() as conn:
        plans.set_plan(conn, "demo", "uno_reglas", redis_conn)
    model_a.script("json", *[json_reply(READING)] * 4)

    assert desk.say(DEMO_NUMBER, JUAN, UNSURE)[1]["stage"] == "llm"  # the month's first conversation
    assert desk.say(DEMO_NUMBER, JUAN, UNSURE)[1]["stage"] == "llm"  # the same 24-hour session: still one
    text, route = desk.say(DEMO_NUMBER, MARIA, UNSURE)  # the second: over the limit, rules only
    assert "código de rastreo" in text and route["stage"] == "keyword" and len(model_a.requests) == 2

    with db_pool.connection() as conn:
        plans.set_plan(conn, "demo", "uno_aviso", redis_conn)
        month = usage.current_month(conn, demo)
    # Redis lost the month's counter: it is counted again from the messages, so the quota is not fresh
    redis_conn.delete(bot_sessions.MONTH_KEY.format(tenant_id=demo, month=month))
    time.sleep(CHANGE_SEEN_S)
    text, route = desk.say(DEMO_NUMBER, ANA, UNSURE)  # the third, under the flag rule: the model, flagged
    assert "código de rastreo" in text and route["stage"] == "llm" and len(model_a.requests) == 3
    counter = redis_conn.get(bot_sessions.MONTH_KEY.format(tenant_id=demo, month=month))
    with db_pool.connection() as conn:
        start, end = month.bounds("America/El_Salvador")
        assert int(counter or 0) == usage.bot_conversations(conn, demo, start, end) == 3
        assert [(o.limit, o.allowed, o.used, o.rule) for o in usage.overages(conn, demo, month)] == [
            ("bot_conversations", Decimal(1), Decimal(3), "flag")]
    shown = admin(base_env, "usage", "--month", str(month), "--tenant", "demo", "--csv", "-")
    assert shown.returncode == 0 and shown.stdout.splitlines()[1].endswith(",uno_aviso,bot_conversations:flag")


ANALYSIS = {"conversation_id": "conv_x", "escalation_reason": "pidio_humano", "category": "reclamo",
            "was_necessary": True, "suggestion": "Pedir fotos del daño.", "priority": "media",
            "example_query": "mi paquete llegó dañado"}


def test_case_summaries_and_analyses_use_each_company_s_model(
    desk: Desk, lsettings: Settings, db_pool: ConnectionPool, vault: Vault, redis_conn: redis.Redis,
    model_a: FakeOpenAI, model_b: FakeOpenAI,
) -> None:
    second_company(db_pool, vault, redis_conn)
    tenant_admin.create_tenant(db_pool, vault, redis_conn, slug="chica", name="Paquetería Chica")
    tenant_admin.add_channel(db_pool, vault, redis_conn, "chica", provider="meta", number="999888777666")
    own_model(db_pool, vault, redis_conn, "demo", model_a, KEY_A, "modelo-a")
    own_model(db_pool, vault, redis_conn, "otra", model_b, KEY_B, "modelo-b")
    with db_pool.connection() as conn:  # a Starter company (no AI) that would otherwise use modelo-a's server
        plans.set_plan(conn, "chica", "starter", redis_conn)
    own_model(db_pool, vault, redis_conn, "chica", model_a, KEY_A, "modelo-a")
    complaint = "mi paquete llegó dañado, quiero poner un reclamo"  # the rules hand it over
    for number in (DEMO_NUMBER, OTRA_NUMBER, "999888777666"):
        desk.say(number, JUAN, complaint)
    assert model_a.requests == [] and model_b.requests == []
    assert len(rows(db_pool, "SELECT id FROM escalations")) == 3

    model_a.script("json", json_reply(ANALYSIS))
    model_b.script("json", json_reply(ANALYSIS))
    assert analysis.analyze_pending(lsettings, db_pool, redis_conn, min_age_s=0) == 2  # not the Starter one
    assert [r["model"] for r in model_a.requests] == ["modelo-a"] and [r["model"] for r in model_b.requests] == [
        "modelo-b"]
    analysed = rows(db_pool, "SELECT t.slug FROM escalation_analyses a JOIN tenants t ON t.id = a.tenant_id"
                             " ORDER BY t.slug")
    assert [r["slug"] for r in analysed] == ["demo", "otra"]

    summarizer = summary.summarizer_for(lsettings, redis_conn, db_pool)
    cases = {r["slug"]: r["case_number"] for r in rows(
        db_pool, "SELECT t.slug, e.case_number FROM escalations e JOIN tenants t ON t.id = e.tenant_id")}
    model_b.script("text", Reply(content="El cliente reporta un paquete dañado y quiere reclamar."))
    text = summarizer([("cliente", complaint)], {"case_number": cases["otra"]})
    assert text == "El cliente reporta un paquete dañado y quiere reclamar."
    assert len(model_b.requests) == 2 and "Otra Paquetería" in str(model_b.requests[-1]["messages"])
    assert summarizer([("cliente", complaint)], {"case_number": cases["chica"]}) is None  # Starter: rules
    assert len(model_a.requests) == 1
    costs_by = rows(db_pool, "SELECT t.slug, c.purpose FROM llm_calls c JOIN tenants t ON t.id = c.tenant_id"
                             " ORDER BY c.id")
    assert costs_by == [{"slug": "demo", "purpose": "analysis"}, {"slug": "otra", "purpose": "analysis"},
                        {"slug": "otra", "purpose": "summary"}]


def test_a_company_without_chatbot_still_sends_its_notifications(
    meta_settings: Settings, core_url: str, graph: FakeGraphAPI, db_pool: ConnectionPool, redis_conn: redis.Redis,
) -> None:
    """Starter has no chatbot, not no WhatsApp: the core's package events still reach the customers."""
    nsettings = notification_settings(meta_settings, core_url)
    with db_pool.connection() as conn:
        plans.set_plan(conn, "demo", "starter", redis_conn)
    with create_app(nsettings).test_client() as client:
        assert post_event(client, status_event("SV20260105007834", "ARRIVED_AT_DESTINATION")).status_code == 202
        run_jobs(nsettings)
    [body] = graph.messages_to(MARIA)
    assert body["type"] == "template" and body["template"]["name"] == "paquete_llego"
    assert [(n["kind"], n["status"]) for n in notifications(db_pool)] == [("arrived", "accepted")]
