"""Plans and monthly usage per tenant (storage/plans.py, storage/usage.py, `encargo-admin usage`).

A month of rows for two tenants is written with the storage functions the
product writes them with (customer messages, bot replies, an agent's reply
through handoff.cases, notifications, model calls, escalations); each row's
`created_at` is then moved to the scenario's moment, since the product
stamps rows with the database clock. The usage CSV is compared with counts
the test computes itself from the rows, and with the figures the scenario was
built to give: sessions across a 24-hour boundary and across a month
boundary on the tenant's clock, and one tenant never counting another's rows.
"""

from __future__ import annotations

import csv
import io
import itertools
import subprocess
import sys
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import redis
from psycopg import Connection
from psycopg_pool import ConnectionPool
from rq import Queue

from channels.events import DeliveryStatus
from channels.outbound import OutboundMessage, Template, Text
from config import Settings
from handoff import agents, cases
from llm import costs
from notifications.templates import templates_for
from storage import contacts, conversations, escalations, messages, plans, tenant_admin, usage
from storage.crypto import Vault
from tests.fakes.openai_api import DEFAULT_KEY as OPENAI_KEY
from tests.fakes.openai_api import FakeOpenAI, json_reply
from tests.harness import rows
from tests.test_engine_flows import JUAN, MARIA, STRANGER, make_chat

ROOT = Path(__file__).resolve().parent.parent
SV = ZoneInfo("America/El_Salvador")  # UTC-6 all year
NOVEMBER = usage.Month(2026, 11)
PHONE_A, PHONE_B = "+50370000001", "+50370000002"
_ids = itertools.count(1)


def sv(day: str) -> datetime:
    """A moment on El Salvador's clock: sv('2026-11-01 21:00')."""
    return datetime.strptime(day, "%Y-%m-%d %H:%M").replace(tzinfo=SV)


def admin(base_env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "console.cli", *args], cwd=ROOT, env=base_env,
                          capture_output=True, text=True, timeout=60, check=False)


class Book:
    """Writes a tenant's rows as the product does, then sets each one's time to the scenario's."""

    def __init__(self, pool: ConnectionPool, settings: Settings, redis_conn: redis.Redis) -> None:
        self.pool = pool
        self.vault = Vault(settings.phone_encryption_keys, settings.phone_hash_key)
        self.desk = cases.Desk(settings, pool, redis_conn, Queue(connection=redis_conn))

    def customer_says(self, tenant_id: int, phone: str, at: datetime) -> int:
        """A customer's message (contact, open conversation, message); returns the conversation id."""
        with self.pool.connection() as conn, conn.transaction():
            contact = contacts.upsert_inbound(conn, self.vault, tenant_id=tenant_id, phone=phone, bsuid=None,
                                              profile_name="Cliente")
            conversation = conversations.open_for(conn, tenant_id=tenant_id, contact_id=contact.id)
            message_id = messages.insert_inbound(
                conn, tenant_id=tenant_id, conversation_id=conversation.id, channel="local",
                provider_message_id=f"wamid.{next(_ids)}", webhook_event_id=None, kind="text", body="hola",
                payload={}, correlation_id="usage-test")
            assert message_id is not None
            _at(conn, "messages", message_id, at)
            return conversation.id

    def send(self, tenant_id: int, conversation_id: int, at: datetime, message: OutboundMessage | None = None, *,
             key: str | None = None, outcome: DeliveryStatus = DeliveryStatus.DELIVERED) -> int:
        """An outbound message written pending, claimed, then taken by the provider (or failed)."""
        with self.pool.connection() as conn, conn.transaction():
            message_id = messages.create_outbound(
                conn, tenant_id=tenant_id, conversation_id=conversation_id, channel="local",
                idempotency_key=key or f"{next(_ids)}:0", message=message or Text("respuesta"),
                webhook_event_id=None, correlation_id="usage-test")
            assert message_id is not None
            return self._deliver(conn, message_id, at, outcome)

    def agent_reply(self, tenant_id: int, conversation_id: int, agent: agents.Agent, case_id: int, at: datetime,
                    message: OutboundMessage | None = None) -> int:
        """What handoff.cases writes when an agent answers (the message names its author)."""
        with self.pool.connection() as conn, conn.transaction():
            case = cases.load_case(conn, tenant_id, case_id)
            assert case.conversation_id == conversation_id
            message_id = cases.store_message(conn, self.desk, case, agent, message or Text("Hola, soy Ana"),
                                             f"console:{case_id}:reply:{next(_ids)}")
            assert message_id is not None
            return self._deliver(conn, message_id, at, DeliveryStatus.READ)

    def split_reply(self, parent_id: int, at: datetime) -> None:
        """A long reply that went out in two parts: the second part is a row of its own."""
        (parent,) = rows(self.pool, "SELECT * FROM messages WHERE id = %s", (parent_id,))
        with self.pool.connection() as conn:
            row = messages.OutboundRow(
                id=parent["id"], tenant_id=parent["tenant_id"], conversation_id=parent["conversation_id"],
                contact_id=0, channel=parent["channel"], idempotency_key=parent["idempotency_key"],
                status=parent["status"], attempts=1, message=Text("parte"), correlation_id=None)
            messages.add_extra_part(conn, row, 2, f"wamid.{next(_ids)}", Text("parte 2"), DeliveryStatus.SENT)
            conn.execute("UPDATE messages SET created_at = %s WHERE idempotency_key = %s",
                         (at, f"{parent['idempotency_key']}/part2"))

    def escalate(self, tenant_id: int, conversation_id: int, at: datetime) -> int:
        with self.pool.connection() as conn, conn.transaction():
            case = escalations.open_escalation(conn, tenant_id=tenant_id, conversation_id=conversation_id,
                                               case_number=f"C-{next(_ids)}", priority="normal",
                                               reason="human_agent", callback=False)
            assert case is not None
            _at(conn, "escalations", case.id, at)
            return case.id

    def llm(self, tenant_id: int, conversation_id: int, at: datetime, tokens_in: int, tokens_out: int,
            cost: float, outcome: str = "ok") -> None:
        call = costs.LlmCall("openai", "gpt-4o-mini", "route", "v1", tokens_in, tokens_out, 120, cost, outcome)
        with self.pool.connection() as conn, conn.transaction():
            costs.store(conn, tenant_id=tenant_id, conversation_id=conversation_id, calls=[call])
            conn.execute("UPDATE llm_calls SET created_at = %s WHERE id = (SELECT max(id) FROM llm_calls)", (at,))

    @staticmethod
    def _deliver(conn: Connection[Any], message_id: int, at: datetime, outcome: DeliveryStatus) -> int:
        assert messages.claim_for_sending(conn, message_id) is not None
        if outcome is DeliveryStatus.FAILED:
            messages.mark_failed(conn, message_id, "131026", "undeliverable")
        else:
            messages.mark_sent(conn, message_id, f"wamid.{next(_ids)}", outcome)
        _at(conn, "messages", message_id, at)
        return message_id


def _at(conn: Connection[Any], table: str, row_id: int, at: datetime) -> None:
    """The scenario's clock: the product stamps rows with now()."""
    conn.execute(f"UPDATE {table} SET created_at = %s WHERE id = %s", (at, row_id))  # noqa: S608 - test tables


def _tenant(pool: ConnectionPool, slug: str) -> int:
    return int(rows(pool, "SELECT id FROM tenants WHERE slug = %s", (slug,))[0]["id"])


@pytest.fixture
def month_of_rows(db_pool: ConnectionPool, settings: Settings, redis_conn: redis.Redis) -> dict[str, int]:
    """Two tenants' November (and its edges). Comments say what each row is for."""
    book = Book(db_pool, settings, redis_conn)
    demo = _tenant(db_pool, settings.tenant_slug)
    other = tenant_admin.create_tenant(db_pool, book.vault, redis_conn, slug="otra", name="Envíos Otra",
                                       timezone="America/Bogota").id  # UTC-5: its November starts an hour earlier
    # Customer A: a session opened on October 31st (local) runs into November 1st; the next opens 25 h later,
    # and the one after opens 24.5 h after that start although A wrote only 1.5 h before (sessions chain).
    a = book.customer_says(demo, PHONE_A, sv("2026-10-31 20:00"))
    book.send(demo, a, sv("2026-10-31 20:00"))  # an October reply
    book.customer_says(demo, PHONE_A, sv("2026-11-01 10:00"))  # in October's session: no new one
    book.send(demo, a, sv("2026-11-01 10:00"))
    book.customer_says(demo, PHONE_A, sv("2026-11-01 21:00"))  # session 1 of November
    long_reply = book.send(demo, a, sv("2026-11-01 21:00"))
    book.split_reply(long_reply, sv("2026-11-01 21:00"))  # its second part is no second reply
    book.send(demo, a, sv("2026-11-01 21:01"), outcome=DeliveryStatus.FAILED)  # never reached the customer
    book.customer_says(demo, PHONE_A, sv("2026-11-02 20:00"))  # 23 h later: same session
    book.customer_says(demo, PHONE_A, sv("2026-11-02 21:30"))  # 24.5 h after its start: session 2
    case = book.escalate(demo, a, sv("2026-11-02 21:31"))
    ana = _agent(db_pool, demo)
    book.agent_reply(demo, a, ana, case, sv("2026-11-02 21:40"))
    book.agent_reply(demo, a, ana, case, sv("2026-11-10 09:00"), Template("paquete_llego", "es"))  # out of window
    book.llm(demo, a, sv("2026-11-01 21:00"), 900, 120, 0.00021)
    book.llm(demo, a, sv("2026-11-02 21:30"), 0, 0, 0.0, "skipped")  # not a request
    book.llm(demo, a, sv("2026-10-31 20:00"), 800, 100, 0.5)  # October's
    # Notifications to A: a template while A's window is open (free), one after it closed, one in-window
    # free-form message (not a template), and a marketing template (categories from the mapping).
    book.send(demo, a, sv("2026-11-03 08:00"), Template("paquete_llego", "es"), key="notification:1:template")
    book.send(demo, a, sv("2026-11-05 08:00"), Template("reembolso_disponible", "es"),
              key="notification:2:template")
    book.send(demo, a, sv("2026-11-02 22:00"), Text("Tu paquete llegó"), key="notification:3:free_form")
    book.send(demo, a, sv("2026-11-06 08:00"), Template("promo_navidad", "es"), key="notification:4:template")
    # Customer B writes at 23:00 on November 30th (already December 1st in UTC), then at 01:00 on December 1st:
    # one November session, and December has B's message without a session of its own.
    b = book.customer_says(demo, PHONE_B, sv("2026-11-30 23:00"))
    book.send(demo, b, sv("2026-11-30 23:00"))
    book.customer_says(demo, PHONE_B, sv("2026-12-01 01:00"))
    book.send(demo, b, sv("2026-12-01 01:00"))
    # The other company: the same phone number is another customer there. 23:30 on October 31st in San
    # Salvador is already November 1st in Bogotá: a November session, which the message at noon continues.
    book.customer_says(other, PHONE_A, sv("2026-10-31 23:30"))
    o = book.customer_says(other, PHONE_A, sv("2026-11-01 12:00"))
    book.send(other, o, sv("2026-11-01 12:00"))
    book.escalate(other, o, sv("2026-11-01 12:01"))
    book.llm(other, o, sv("2026-11-01 12:00"), 1000, 200, 0.000123456)
    return {"demo": demo, "otra": other}


def _agent(pool: ConnectionPool, tenant_id: int) -> agents.Agent:
    with pool.connection() as conn:
        return agents.create_agent(conn, tenant_id=tenant_id, name="Ana Martínez", email="ana@demo.sv",
                                   role="agent", password="una clave larga")


CATEGORIES = {"paquete_llego": "UTILITY", "reembolso_disponible": "UTILITY", "promo_navidad": "MARKETING"}


def expected_from_rows(pool: ConnectionPool, tenant_id: int, month: usage.Month,
                       categories: dict[str, str]) -> dict[str, str]:
    """The figures counted here, from every row of the tenant, without storage/usage.py's queries."""
    (tenant,) = rows(pool, "SELECT slug, timezone FROM tenants WHERE id = %s", (tenant_id,))
    zone = ZoneInfo(tenant["timezone"])
    start = datetime(month.year, month.month, 1, tzinfo=zone)
    end = datetime(month.year + month.month // 12, month.month % 12 + 1, 1, tzinfo=zone)
    all_msgs = rows(pool, "SELECT m.*, c.contact_id FROM messages m JOIN conversations c ON c.id = m.conversation_id"
                          " WHERE m.tenant_id = %s ORDER BY m.created_at, m.id", (tenant_id,))
    inside = [m for m in all_msgs if start <= m["created_at"] < end]
    # sessions: walk every customer's whole history
    sessions, opened = 0, dict[int, datetime]()
    for m in all_msgs:
        if m["direction"] != "in":
            continue
        last = opened.get(m["contact_id"])
        if last is None or m["created_at"] - last >= timedelta(hours=24):
            opened[m["contact_id"]] = m["created_at"]
            sessions += start <= m["created_at"] < end
    went = [m for m in inside if m["direction"] == "out" and m["status"] in ("accepted", "sent", "delivered", "read")
            and "/part" not in m["idempotency_key"]]
    notes = [m for m in went if m["idempotency_key"].startswith("notification:")]
    templates: dict[str, int] = defaultdict(int)
    for m in went:
        if m["kind"] != "template":
            continue
        category = categories.get(m["payload"]["name"], "").lower() or "uncategorised"
        window = any(i["direction"] == "in" and i["contact_id"] == m["contact_id"]
                     and m["created_at"] - timedelta(hours=24) < i["created_at"] <= m["created_at"] for i in all_msgs)
        templates["utility_free" if category == "utility" and window else category] += 1
    esc = rows(pool, "SELECT created_at FROM escalations WHERE tenant_id = %s", (tenant_id,))
    calls = [c for c in rows(pool, "SELECT * FROM llm_calls WHERE tenant_id = %s", (tenant_id,))
             if start <= c["created_at"] < end]
    made = [c for c in calls if c["outcome"] != "skipped"]
    return {
        "tenant": tenant["slug"], "month": str(month), "bot_conversations": str(sessions),
        "customer_messages": str(sum(m["direction"] == "in" for m in inside)),
        "bot_replies": str(sum(m["agent_id"] is None for m in went) - len(notes)),
        "agent_replies": str(sum(m["agent_id"] is not None for m in went)),
        "notifications": str(len(notes)),
        "templates_utility": str(templates["utility"]), "templates_utility_free": str(templates["utility_free"]),
        "templates_marketing": str(templates["marketing"]),
        "templates_authentication": str(templates["authentication"]),
        "templates_uncategorised": str(templates["uncategorised"]),
        "escalations": str(sum(start <= e["created_at"] < end for e in esc)),
        "llm_calls": str(len(made)), "llm_tokens_in": str(sum(c["tokens_in"] for c in calls)),
        "llm_tokens_out": str(sum(c["tokens_out"] for c in calls)),
        "llm_usd": f"{sum((c['cost_usd'] for c in calls), Decimal(0)):.4f}",
    }


def test_month_usage_counts_the_rows(db_pool: ConnectionPool, month_of_rows: dict[str, int]) -> None:
    with db_pool.connection() as conn:
        demo = usage.month_usage(conn, month_of_rows["demo"], NOVEMBER, CATEGORIES)
        other = usage.month_usage(conn, month_of_rows["otra"], NOVEMBER, CATEGORIES)
        december = usage.month_usage(conn, month_of_rows["demo"], NOVEMBER.next(), CATEGORIES)
        october = usage.month_usage(conn, month_of_rows["demo"], usage.Month(2026, 10), CATEGORIES)
    # What the scenario was built to give.
    assert (demo.bot_conversations, demo.customer_messages) == (3, 5)  # A: 2 (chained), B: 1; Oct 31's is October's
    assert (demo.bot_replies, demo.agent_replies, demo.notifications) == (3, 2, 4)
    assert (demo.templates_utility, demo.templates_utility_free, demo.templates_marketing) == (2, 1, 1)
    assert (demo.templates_authentication, demo.templates_uncategorised, demo.escalations) == (0, 0, 1)
    assert (demo.llm_calls, demo.llm_tokens_in, demo.llm_tokens_out, demo.llm_usd) == (1, 900, 120, Decimal("0.00021"))
    assert (december.bot_conversations, december.customer_messages, december.bot_replies) == (0, 1, 1)
    assert (october.bot_conversations, october.customer_messages, october.llm_usd) == (1, 1, Decimal("0.5"))
    # The other company: its own customer, even with the same phone number, and its own calls.
    assert (other.tenant, other.bot_conversations, other.customer_messages, other.bot_replies) == ("otra", 1, 2, 1)
    assert (other.agent_replies, other.notifications, other.escalations, other.llm_calls) == (0, 0, 1, 1)
    assert other.llm_usd == Decimal("0.00012346")  # numeric(12, 8), as stored
    # Every figure against the test's own count from the rows.
    for tenant_id, figures in ((month_of_rows["demo"], demo), (month_of_rows["otra"], other)):
        shown = {k: f"{v:.4f}" if isinstance(v, Decimal) else str(v) for k, v in figures.figures().items()}
        assert shown == expected_from_rows(db_pool, tenant_id, NOVEMBER, CATEGORIES)


def test_usage_csv_matches_the_rows(base_env: dict[str, str], db_pool: ConnectionPool,
                                    month_of_rows: dict[str, int]) -> None:
    done = admin(base_env, "usage", "--month", "2026-11", "--csv", "-")
    assert done.returncode == 0, done.stderr
    table = list(csv.DictReader(io.StringIO(done.stdout)))
    assert [r["tenant"] for r in table] == ["demo", "otra"]
    header = done.stdout.splitlines()[0].split(",")
    assert header[:3] == ["tenant", "month", "bot_conversations"] and header[-2:] == ["plan", "over_limits"]
    for row in table:
        slug = row["tenant"]
        # the CLI takes the categories from notifications/templates.yaml, per tenant
        categories = {spec.name: spec.category for spec in templates_for(slug)}
        expected = expected_from_rows(db_pool, month_of_rows[slug], NOVEMBER, categories)
        assert {k: v for k, v in row.items() if k in expected} == expected
        assert row["plan"] == "pro" and row["over_limits"] == ""
    assert table[0]["templates_uncategorised"] == "1"  # promo_navidad is no approved template of demo
    assert table[1]["llm_usd"] == "0.0001"

    one = admin(base_env, "usage", "--month", "2026-11", "--tenant", "otra")
    assert one.returncode == 0, one.stderr
    lines = one.stdout.splitlines()
    assert lines[0].split()[:4] == ["tenant", "plan", "conv", "in"] and len(lines) == 2
    assert lines[1].split()[:4] == ["otra", "pro", "1", "2"]
    assert admin(base_env, "usage", "--month", "2026-13").returncode == 1
    assert admin(base_env, "usage", "--month", "2026-11", "--tenant", "nadie").returncode == 1


def test_plans_are_data_and_overages_follow_the_plan(base_env: dict[str, str], db_pool: ConnectionPool,
                                                     month_of_rows: dict[str, int]) -> None:
    with db_pool.connection() as conn:
        starter, pro, scale = plans.all_plans(conn)
        assert (starter.code, pro.code, scale.code) == ("starter", "pro", "scale")
        assert not starter.has("chatbot") and not starter.has("ai")
        assert pro.has("chatbot") and pro.has("ai") and pro.has("advanced_analytics") and pro.has("reports")
        assert not pro.has("api_access") and not pro.has("premium_answers")
        assert all(scale.has(f) for f in ("premium_answers", "api_access", "white_label", "executive_reports"))
        assert scale.limit("bot_conversations") is None and scale.prices["per_package_usd"] == Decimal("0.02")
        assert plans.plan_of(conn, month_of_rows["demo"]).code == "pro"  # the default: the chatbot
        assert usage.overages(conn, month_of_rows["otra"], NOVEMBER) == []

    listed = admin(base_env, "plans-list")
    assert listed.returncode == 0 and "pro (Pro): features advanced_analytics, ai, chatbot, reports;" in listed.stdout
    assert "per_package_usd=0.025" in listed.stdout and "packages_included=unlimited" in listed.stdout
    assert admin(base_env, "plan-set", "--tenant", "otra", "--plan", "gold").returncode == 1
    assert admin(base_env, "plan-set", "--tenant", "nadie", "--plan", "scale").returncode == 1
    moved = admin(base_env, "plan-set", "--tenant", "otra", "--plan", "starter")
    assert moved.returncode == 0 and moved.stdout.strip() == "otra: plan starter (Starter)"

    with db_pool.connection() as conn:
        over = usage.overages(conn, month_of_rows["otra"], NOVEMBER)
        assert [(o.limit, o.allowed, o.used, o.rule) for o in over] == [
            ("bot_conversations", Decimal(0), Decimal(1), "rules_only"),
            ("llm_usd", Decimal(0), Decimal("0.00012346"), "rules_only"),
        ]
        assert plans.plan_of(conn, month_of_rows["demo"]).code == "pro"  # the other tenant kept its plan
        assert usage.overages(conn, month_of_rows["demo"], NOVEMBER) == []
    done = admin(base_env, "usage", "--month", "2026-11", "--csv", "-")
    table = {r["tenant"]: r for r in csv.DictReader(io.StringIO(done.stdout))}
    assert (table["otra"]["plan"], table["otra"]["over_limits"]) == ("starter",
                                                                     "bot_conversations:rules_only llm_usd:rules_only")
    assert (table["demo"]["plan"], table["demo"]["over_limits"]) == ("pro", "")


def test_month_bounds_follow_the_tenant_clock() -> None:
    start, end = NOVEMBER.bounds("America/El_Salvador")
    assert (start, end) == (datetime(2026, 11, 1, 6, tzinfo=UTC), datetime(2026, 12, 1, 6, tzinfo=UTC))
    assert usage.Month(2026, 12).next() == usage.Month(2027, 1)
    assert str(usage.Month.parse(" 2026-03 ")) == "2026-03"
    for bad in ("2026-13", "2026-3", "26-03", "marzo"):
        with pytest.raises(ValueError, match="YYYY-MM"):
            usage.Month.parse(bad)


def test_the_plan_decides_whether_the_bot_calls_the_model(base_env: dict[str, str], core_url: str,
                                                          db_pool: ConnectionPool, openai_fake: FakeOpenAI) -> None:
    """Through the real path (signed webhook, worker, engine, the real SDK against the fake model)."""
    with_model = Settings.from_env({**base_env, "CORE_API_URL": core_url, "LLM_MAX_RETRIES": "0",
                                    "LLM_TIMEOUT_S": "2", "LLM_PROVIDER": "openai", "LLM_API_KEY": OPENAI_KEY,
                                    "LLM_BASE_URL": openai_fake.base_url})
    demo = _tenant(db_pool, with_model.tenant_slug)
    spent = costs.LlmCall("openai", "gpt-4o-mini", "answer", "v1", 10, 10, 100, 250.0, "ok")
    with db_pool.connection() as conn:  # this month's calls so far cost $250: over Pro's $50 and Scale's $200
        costs.store(conn, tenant_id=demo, conversation_id=None, calls=[spent])
    reading = {"intent": "track_package", "confidence": 0.9, "tracking_code": None, "point": None,
               "weight_lbs": None}
    for chat in make_chat(with_model, db_pool):
        # Pro's rule is rules_only: the rules answer (their reading of this text is track_package, 0.45)
        assert "código de rastreo" in chat.text(JUAN, "me mandaron algo?")
        assert openai_fake.requests == [] and _last_route(db_pool)["stage"] == "keyword"
        # Scale's rule is flag: the model is asked, and the operator sees the overage
        with db_pool.connection() as conn:
            plans.set_plan(conn, "demo", "scale")
        openai_fake.script("json", json_reply(reading))
        assert "código de rastreo" in chat.text(MARIA, "me mandaron algo?")
        assert len(openai_fake.requests) == 1 and _last_route(db_pool)["stage"] == "llm"
        with db_pool.connection() as conn:
            month = usage.current_month(conn, demo)
            assert [(o.limit, o.rule) for o in usage.overages(conn, demo, month)] == [("llm_usd", "flag")]
            # Starter has no chatbot, so no AI either, whatever was spent: the company's people answer
            plans.set_plan(conn, "demo", "starter")
        assert "Alguien de nuestro equipo" in chat.text(STRANGER, "me mandaron algo?")
        assert len(openai_fake.requests) == 1 and _last_route(db_pool)["stage"] == "people_only"
    assert [c["outcome"] for c in rows(db_pool, "SELECT outcome FROM llm_calls ORDER BY id")] == ["ok", "ok"]


def _last_route(pool: ConnectionPool) -> dict[str, Any]:
    return dict(rows(pool, "SELECT route FROM messages WHERE direction = 'in' ORDER BY id DESC LIMIT 1")[0]["route"])
