"""Replies leave from the tenant's own number with the tenant's own credentials (issue 15).

Each company's customer is answered (and read-marked) from the number they wrote to, with that channel's
token; a Twilio company sends as its own subaccount (or through its Messaging Service); a notification and an
agent's message go out on the conversation's channel; the send throttle is per business number; a changed
token is used without a restart. Everything runs through the signed webhook, the worker and the fakes of
Meta's Graph API and Twilio on loopback; the single-company path is the rest of the suite (the configured
tenant's channel is the deployment's own transport).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
import redis
from flask.testing import FlaskClient
from psycopg_pool import ConnectionPool

from channels.outbound import Recipient, Text
from config import Settings
from handoff import cases
from notifications import ledger, recipients, sending
from runtime import delivery, throttle
from runtime.resources import build_runtime
from storage import tenant_admin, tenant_changes
from storage.crypto import Vault
from storage.tenants import Tenant
from tests.console_support import desk_for, make_agent
from tests.fakes.graph_api import DEFAULT_TOKEN, FakeGraphAPI
from tests.fakes.twilio_api import DEFAULT_ACCOUNT_SID, FakeTwilioAPI
from tests.harness import post_meta, post_twilio, rows, run_jobs, text_payload
from web.app import create_app

DEMO_NUMBER = "106540352242922"  # the configured tenant's (TEST_ENV), no token of its own: the deployment's
ACME_NUMBER, ACME_TOKEN = "222333444555", "acme-meta-access-token"
CUSCA_NUMBER, CUSCA_TOKEN = "333444555666", "cuscatlan-meta-access-token"
DEMO2_NUMBER, DEMO2_TOKEN = "444555666777", "demo-second-number-token"
SUB_SID, SUB_TOKEN = "AC" + "5" * 32, "sur-subaccount-auth-token"
SUR_NUMBER = "+15005550006"
SERVICE_SID = "MG" + "7" * 32
CUSTOMER = "+50370004001"  # a customer of several companies
TUESDAY_10AM = datetime(2026, 1, 6, 10, 0, tzinfo=ZoneInfo("America/El_Salvador"))


@pytest.fixture
def twilio() -> Iterator[FakeTwilioAPI]:
    fake = FakeTwilioAPI(auth_token="12345").start()
    yield fake
    fake.stop()


@pytest.fixture
def tsettings(meta_settings: Settings, twilio: FakeTwilioAPI, core_url: str) -> Settings:
    """A Meta deployment that also knows Twilio's API (its parent account) and the sandbox core."""
    return meta_settings.with_overrides(twilio_account_sid=DEFAULT_ACCOUNT_SID, twilio_api_base_url=twilio.url,
                                        core_api_url=core_url)


@pytest.fixture
def client(tsettings: Settings) -> Iterator[FlaskClient]:
    with create_app(tsettings).test_client() as c:
        yield c


@pytest.fixture
def vault(settings: Settings) -> Vault:
    return Vault(settings.phone_encryption_keys, settings.phone_hash_key)


def company(pool: ConnectionPool, vault: Vault, redis_conn: redis.Redis, slug: str, name: str,
            *channels: dict[str, str]) -> Tenant:
    tenant = tenant_admin.create_tenant(pool, vault, redis_conn, slug=slug, name=name)
    for channel in channels:
        tenant_admin.add_channel(pool, vault, redis_conn, slug, **channel)
    return tenant


def meta_companies(graph: FakeGraphAPI, pool: ConnectionPool, vault: Vault, redis_conn: redis.Redis
                   ) -> tuple[Tenant, Tenant]:
    graph.add_number(ACME_NUMBER, ACME_TOKEN)
    graph.add_number(CUSCA_NUMBER, CUSCA_TOKEN)
    acme = company(pool, vault, redis_conn, "acme", "Acme Envíos",
                   {"provider": "meta", "number": ACME_NUMBER, "secret": ACME_TOKEN})
    cusca = company(pool, vault, redis_conn, "cuscatlan", "Envíos Rápidos Cuscatlán",
                    {"provider": "meta", "number": CUSCA_NUMBER, "secret": CUSCA_TOKEN})
    return acme, cusca


def write(client: FlaskClient, number: str, text: str, wamid: str, phone: str = CUSTOMER) -> None:
    payload = text_payload(phone.lstrip("+"), text, wamid, phone_number_id=number)
    payload["entry"][0]["changes"][0]["value"]["messages"][0]["timestamp"] = str(int(TUESDAY_10AM.timestamp()))
    assert post_meta(client, payload).status_code == 200


def test_each_company_answers_from_its_own_number_with_its_own_token(
    client: FlaskClient, tsettings: Settings, graph: FakeGraphAPI, db_pool: ConnectionPool, vault: Vault,
    redis_conn: redis.Redis,
) -> None:
    acme, cusca = meta_companies(graph, db_pool, vault, redis_conn)
    write(client, ACME_NUMBER, "Hola", "wamid.ACME1")
    write(client, CUSCA_NUMBER, "Hola", "wamid.CUSCA1")
    write(client, DEMO_NUMBER, "Hola", "wamid.DEMO1")
    run_jobs(tsettings)

    sends = graph.sends_to(CUSTOMER)
    assert {(s.phone_number_id, s.token) for s in sends} == {
        (ACME_NUMBER, ACME_TOKEN), (CUSCA_NUMBER, CUSCA_TOKEN), (DEMO_NUMBER, DEFAULT_TOKEN)}
    greetings = {s.phone_number_id: s.body["text"]["body"] for s in sends if s.body.get("type") == "text"}
    assert "Acme Envíos" in greetings[ACME_NUMBER] and "Cuscatlán" in greetings[CUSCA_NUMBER]
    # the read receipt of each message went to the number it came in on, with that number's token
    assert sorted(graph.read_receipt_numbers) == sorted([ACME_NUMBER, CUSCA_NUMBER, DEMO_NUMBER])
    receipts = [r for r in graph.received if isinstance(r["body"], dict) and r["body"].get("status") == "read"]
    assert {(r["path"].split("/")[2], r["headers"]["Authorization"]) for r in receipts} == {
        (ACME_NUMBER, f"Bearer {ACME_TOKEN}"), (CUSCA_NUMBER, f"Bearer {CUSCA_TOKEN}"),
        (DEMO_NUMBER, f"Bearer {DEFAULT_TOKEN}")}
    # every reply is stored under its own company, sent, and the number each message came in on is kept
    stored = rows(db_pool, "SELECT tenant_id, direction, status, channel, payload->>'channel_number' AS number"
                           " FROM messages ORDER BY id")
    assert {r["status"] for r in stored if r["direction"] == "out"} == {"accepted"}
    assert {r["channel"] for r in stored} == {"meta"}
    assert {(r["tenant_id"], r["number"]) for r in stored if r["direction"] == "in"} == {
        (acme.id, ACME_NUMBER), (cusca.id, CUSCA_NUMBER), (1, DEMO_NUMBER)}
    # the throttle's buckets are per business number
    keys = {k.decode() for k in redis_conn.scan_iter("throttle:*")}
    assert {throttle.throughput_key(n) for n in (ACME_NUMBER, CUSCA_NUMBER, DEMO_NUMBER)} <= keys
    assert {throttle.pair_key(n, CUSTOMER) for n in (ACME_NUMBER, CUSCA_NUMBER, DEMO_NUMBER)} <= keys


def test_one_numbers_throughput_limit_does_not_hold_back_another_company(
    client: FlaskClient, tsettings: Settings, graph: FakeGraphAPI, db_pool: ConnectionPool, vault: Vault,
    redis_conn: redis.Redis,
) -> None:
    meta_companies(graph, db_pool, vault, redis_conn)
    # Acme's number has spent its second's messages: its replies wait (retried later), Cuscatlán's go out.
    [_pair, acme_number] = delivery.send_buckets(tsettings, ACME_NUMBER, CUSTOMER, throughput_burst=80)
    seconds, _micros = redis_conn.time()
    redis_conn.hset(acme_number.key, mapping={"tokens": -10 * tsettings.meta_throughput_mps, "ts": seconds + 1})
    write(client, ACME_NUMBER, "Hola", "wamid.ACME2")
    write(client, CUSCA_NUMBER, "Hola", "wamid.CUSCA2")
    run_jobs(tsettings)

    assert {s.phone_number_id for s in graph.sends_to(CUSTOMER)} == {CUSCA_NUMBER}
    held = rows(db_pool, "SELECT DISTINCT m.status, m.error_code FROM messages m JOIN tenants t ON t.id = m.tenant_id"
                         " WHERE m.direction = 'out' AND t.slug = 'acme'")
    assert held == [{"status": "pending", "error_code": "throttled"}]


def test_a_twilio_company_sends_as_its_own_subaccount(
    client: FlaskClient, tsettings: Settings, twilio: FakeTwilioAPI, db_pool: ConnectionPool, vault: Vault,
    redis_conn: redis.Redis,
) -> None:
    twilio.add_account(SUB_SID, SUB_TOKEN)
    company(db_pool, vault, redis_conn, "sur", "Envíos del Sur",
            {"provider": "twilio", "number": f"whatsapp:{SUR_NUMBER}", "account_sid": SUB_SID, "secret": SUB_TOKEN})
    form = {"MessageSid": "SM" + "1" * 32, "AccountSid": SUB_SID, "From": f"whatsapp:{CUSTOMER}",
            "To": f"whatsapp:{SUR_NUMBER}", "Body": "Hola", "NumMedia": "0", "ProfileName": "Cliente"}
    assert post_twilio(client, form, token=SUB_TOKEN).status_code == 200  # Twilio signs as the subaccount
    run_jobs(tsettings)

    sends = twilio.sends_to(CUSTOMER)
    assert sends and {(account, params["From"]) for account, params in sends} == {(SUB_SID, f"whatsapp:{SUR_NUMBER}")}
    own = [r for r in twilio.received if r["path"].startswith(f"/2010-04-01/Accounts/{SUB_SID}/")]
    assert own and all(r["headers"]["Authorization"] == "Basic " + _basic(SUB_SID, SUB_TOKEN) for r in own)
    stored = rows(db_pool, "SELECT DISTINCT channel, status FROM messages WHERE direction = 'out'")
    assert stored == [{"channel": "twilio", "status": "accepted"}]


def test_a_twilio_channel_without_its_own_token_sends_through_its_messaging_service_as_the_parent(
    client: FlaskClient, tsettings: Settings, twilio: FakeTwilioAPI, db_pool: ConnectionPool, vault: Vault,
    redis_conn: redis.Redis,
) -> None:
    twilio.add_account(SUB_SID, SUB_TOKEN)
    company(db_pool, vault, redis_conn, "sur", "Envíos del Sur",
            {"provider": "twilio", "number": SUR_NUMBER, "account_sid": SUB_SID,
             "messaging_service_sid": SERVICE_SID})
    form = {"MessageSid": "SM" + "2" * 32, "AccountSid": SUB_SID, "From": f"whatsapp:{CUSTOMER}",
            "To": f"whatsapp:{SUR_NUMBER}", "Body": "Hola", "NumMedia": "0", "ProfileName": "Cliente"}
    assert post_twilio(client, form).status_code == 200
    run_jobs(tsettings)

    sends = twilio.sends_to(CUSTOMER)
    assert sends and all(account == SUB_SID and params["MessagingServiceSid"] == SERVICE_SID
                         and "From" not in params for account, params in sends)
    # the deployment's (parent account's) credentials, acting on the subaccount
    own = [r for r in twilio.received if r["path"].startswith(f"/2010-04-01/Accounts/{SUB_SID}/")]
    assert own and all(r["headers"]["Authorization"] == "Basic " + _basic(DEFAULT_ACCOUNT_SID, "12345")
                       for r in own)


def test_a_notification_goes_out_on_the_channel_the_customer_wrote_to_with_its_token(
    client: FlaskClient, tsettings: Settings, graph: FakeGraphAPI, db_pool: ConnectionPool, vault: Vault,
    redis_conn: redis.Redis,
) -> None:
    """The configured company (it has the templates) gets a second number with its own token; its customer
    wrote to that one, so the notification leaves from it (not from the company's first number, nor from
    another company's)."""
    meta_companies(graph, db_pool, vault, redis_conn)
    graph.add_number(DEMO2_NUMBER, DEMO2_TOKEN)
    tenant_admin.add_channel(db_pool, vault, redis_conn, "demo", provider="meta", number=DEMO2_NUMBER,
                             secret=DEMO2_TOKEN)
    write(client, DEMO2_NUMBER, "Hola", "wamid.DEMO2")
    run_jobs(tsettings)
    before = len(graph.sends_to(CUSTOMER))
    values = {"customer_name": "María", "tracking_code": "SV20260105007834", "point_name": "Santa Ana",
              "point_address": "Calle Libertad", "point_hours": "lun-vie 8:00–18:00", "amount_due": "$0.00",
              "point_id": "santa_ana"}
    with db_pool.connection() as conn:
        contact_id = recipients.contact_for_phone(conn, vault, 1, CUSTOMER)
        log_id = ledger.create(conn, tenant_id=1, core_event_id="evt-demo2-1", core_event_pk=None,
                               tracking_code="SV20260105007834", contact_id=contact_id, kind="arrived",
                               role="recipient", package_status="ARRIVED_AT_DESTINATION", dedupe_key="demo2-1",
                               template_name=None, values_encrypted=vault.encrypt(json.dumps(values)),
                               send_after=None)
    assert log_id is not None
    rt = build_runtime(tsettings.with_overrides(quiet_hours_start="00:00", quiet_hours_end="00:00"), pool_size=2)
    try:
        assert sending.send(rt, log_id).result == "sent"
    finally:
        rt.close()

    [sent] = graph.sends_to(CUSTOMER)[before:]
    assert (sent.phone_number_id, sent.token) == (DEMO2_NUMBER, DEMO2_TOKEN)
    assert "SV20260105007834" in sent.body["interactive"]["body"]["text"]  # inside the window: free-form
    [note] = rows(db_pool, "SELECT status, channel FROM notification_log WHERE id = %s", (log_id,))
    assert note == {"status": "accepted", "channel": "meta"}


def test_an_agents_reply_goes_out_on_the_conversations_channel(
    client: FlaskClient, tsettings: Settings, graph: FakeGraphAPI, db_pool: ConnectionPool, vault: Vault,
    redis_conn: redis.Redis,
) -> None:
    acme, _cusca = meta_companies(graph, db_pool, vault, redis_conn)
    write(client, ACME_NUMBER, "quiero hablar con una persona", "wamid.ACME3")
    run_jobs(tsettings)
    [case] = rows(db_pool, "SELECT id FROM escalations WHERE tenant_id = %s", (acme.id,))
    agent = make_agent(db_pool, "Ana Acme", "ana@acme.example", tenant_id=acme.id)
    desk = desk_for(tsettings, db_pool, redis_conn)
    before = len(graph.sends_to(CUSTOMER))

    cases.claim(desk, agent, case["id"])
    cases.reply(desk, agent, case["id"], "Ya reviso tu paquete.")
    run_jobs(tsettings)  # the delivery jobs the console queued

    agent_sends = graph.sends_to(CUSTOMER)[before:]
    assert len(agent_sends) == 2  # the greeting on claiming, then the reply
    assert {(s.phone_number_id, s.token) for s in agent_sends} == {(ACME_NUMBER, ACME_TOKEN)}
    assert agent_sends[-1].body["text"]["body"] == "Ya reviso tu paquete."


def test_a_new_token_is_used_without_a_restart_and_the_transport_is_kept_meanwhile(
    tsettings: Settings, graph: FakeGraphAPI, db_pool: ConnectionPool, vault: Vault, redis_conn: redis.Redis,
) -> None:
    acme, _cusca = meta_companies(graph, db_pool, vault, redis_conn)
    rt = build_runtime(tsettings, pool_size=2)
    try:
        first = rt.senders.sender(acme.id, "meta", ACME_NUMBER)
        assert rt.senders.sender(acme.id, "meta", ACME_NUMBER).transport is first.transport  # cached
        assert rt.senders.sender(1, "meta", DEMO_NUMBER).transport is rt.transport  # the single-company case

        graph.add_number(ACME_NUMBER, "acme-rotated-token")
        tenant_admin.remove_channel(db_pool, redis_conn, "acme", provider="meta", number=ACME_NUMBER)
        tenant_admin.add_channel(db_pool, vault, redis_conn, "acme", provider="meta", number=ACME_NUMBER,
                                 secret="acme-rotated-token")
        time.sleep(tenant_changes.CHECK_INTERVAL_S)
        rotated = rt.senders.sender(acme.id, "meta", ACME_NUMBER)
        assert rotated.transport is not first.transport
        rotated.transport.send(Recipient(phone=CUSTOMER), Text("Hola"), reference="rotation-1")
    finally:
        rt.close()
    [sent] = graph.sends_to(CUSTOMER)
    assert (sent.phone_number_id, sent.token) == (ACME_NUMBER, "acme-rotated-token")


def _basic(user: str, password: str) -> str:
    import base64

    return base64.b64encode(f"{user}:{password}".encode()).decode()
