"""The improvement loop (issue 16, design 12.3.2) through the real pipeline and the real console.

Customers write through the signed webhook; one RQ worker with one Runtime (kept between messages, as a
running worker is) answers; the company's admin works the "Mejoras" page of the real Flask app. A group of
messages the bot did not understand becomes an FAQ answer, and the next customer asking it in another
wording gets that answer; undoing it brings the old reply back. A phrase added for an intent routes the next
message of that company to it, and only that company's. A canned answer reaches the agents' list. Every
change is kept with who and when; another company's admin can neither see the groups nor undo the changes.
"""

from __future__ import annotations

import html
import re
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from psycopg_pool import ConnectionPool

from config import Settings
from handoff import agents
from runtime.resources import build_runtime
from storage import tenant_admin, tenant_changes
from storage.crypto import Vault
from tests.console_support import PASSWORD, TUESDAY_10AM, logged_in
from tests.console_support import session_csrf as csrf
from tests.harness import post_meta, rows
from web.app import create_app
from worker.main import EncargoWorker

NUMBER_A = "106540352242922"  # the configured tenant's number (tests/conftest.py)
NUMBER_B = "106540352299991"
NOWHERE = 987_654_321
NOT_UNDERSTOOD = "no entendí"
GUATEMALA = ("¿Hacen envíos a Guatemala?", "hacen envios para guatemala", "Envíos a GUATEMALA??",
             "¿envían a guatemala?")
GUATEMALA_NEXT = "¿ustedes hacen envíos hasta Guatemala?"
GUATEMALA_ANSWER = "Por ahora solo enviamos dentro de El Salvador 🇸🇻 Pronto te avisamos si abrimos Guatemala."
MERCADO = ("¿trabajan con mercado libre?", "¿ustedes trabajan con Mercado Libre?")
MERCADO_NEXT = "¿de casualidad trabajan con mercado libre?"


@dataclass
class Company:
    id: int
    number: str
    admin: agents.Agent
    agent: agents.Agent


@dataclass
class Stack:
    app: Flask
    work: Callable[[], None]
    a: Company
    b: Company


@pytest.fixture
def settings(base_env: dict[str, str], core_url: str) -> Settings:
    return Settings.from_env({**base_env, "CORE_API_URL": core_url,
                              "QUIET_HOURS_START": "00:00", "QUIET_HOURS_END": "00:00"})


def make_people(pool: ConnectionPool, tenant_id: int, domain: str, admin: str, agent: str, number: str) -> Company:
    with pool.connection() as conn:
        made = [agents.create_agent(conn, tenant_id=tenant_id, name=name, email=f"{role}@{domain}", role=role,
                                    password=PASSWORD) for role, name in (("admin", admin), ("agent", agent))]
    return Company(tenant_id, number, made[0], made[1])


@pytest.fixture
def stack(settings: Settings, db_pool: ConnectionPool, redis_conn: redis.Redis) -> Iterator[Stack]:
    """Company A (the configured tenant) and B (made as the operator makes it), each with an admin and an
    agent; the app; one worker Runtime kept for the whole test."""
    vault = Vault(settings.phone_encryption_keys, settings.phone_hash_key)
    b_tenant = tenant_admin.create_tenant(db_pool, vault, redis_conn, slug="cuscatlan",
                                          name="Envíos Rápidos Cuscatlán", core_api_url=settings.core_api_url)
    tenant_admin.add_channel(db_pool, vault, redis_conn, "cuscatlan", provider="meta", number=NUMBER_B)
    a_id = int(rows(db_pool, "SELECT id FROM tenants WHERE slug = %s", (settings.tenant_slug,))[0]["id"])
    a = make_people(db_pool, a_id, "primera.sv", "Alicia Admin", "Amanda Agente", NUMBER_A)
    b = make_people(db_pool, b_tenant.id, "cuscatlan.sv", "Bruno Bodega", "Benito Cuscateco", NUMBER_B)
    app = create_app(settings)
    rt = build_runtime(settings, pool_size=2)

    def work() -> None:
        EncargoWorker([rt.queue], connection=rt.redis, runtime=rt).work(burst=True, with_scheduler=False)

    try:
        yield Stack(app, work, a, b)
    finally:
        rt.close()
        app.extensions["db_pool"].close()
        app.extensions["redis"].close()


def ask(stack: Stack, number: str, text: str, phone: str) -> list[str]:
    """A new customer greets (the bot welcomes them with its menu), then asks `text`; the replies to `text`."""
    write(stack, number, "hola", phone)
    return write(stack, number, text, phone)


def write(stack: Stack, number: str, text: str, phone: str) -> list[str]:
    """A customer's message through the signed webhook and the kept worker; the bodies of the bot's replies."""
    pool: ConnectionPool = stack.app.extensions["db_pool"]
    last = rows(pool, "SELECT coalesce(max(id), 0) AS id FROM messages")[0]["id"]
    message = {"from": phone.lstrip("+"), "id": f"wamid.IMP{uuid.uuid4().hex}", "type": "text",
               "text": {"body": text}, "timestamp": str(int(TUESDAY_10AM.timestamp()))}
    body = {"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{"field": "messages", "value": {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550783881", "phone_number_id": number},
        "contacts": [{"wa_id": phone.lstrip("+"), "profile": {"name": "Clara Cliente"}}], "messages": [message]}}]}]}
    assert post_meta(stack.app.test_client(), body).status_code == 200
    stack.work()
    found = rows(pool, "SELECT body FROM messages WHERE direction = 'out' AND id > %s ORDER BY id", (last,))
    return [str(r["body"]) for r in found]


def routed(pool: ConnectionPool, tenant_id: int, text: str) -> str:
    """The intent the router gave the company's last message with `text`."""
    found = rows(pool, "SELECT route->>'intent' AS intent FROM messages WHERE tenant_id = %s AND direction = 'in'"
                       " AND body = %s ORDER BY id DESC LIMIT 1", (tenant_id, text))
    return str(found[0]["intent"])


def page(client: FlaskClient) -> str:
    answer = client.get("/console/improvements")
    assert answer.status_code == 200, answer.get_data(as_text=True)[:300]
    return html.unescape(answer.get_data(as_text=True))


def group_form(text: str, action: str, about: str) -> dict[str, str]:
    """The values a group's form carries on the page (the group whose text or examples mention `about`)."""
    for article in re.findall(r'<article class="card improvement-group".*?</article>', text, flags=re.S):
        if about.lower() not in article.lower():
            continue
        form = re.search(rf'<form method="post" class="improvement-{action}">(.*?)</form>', article, flags=re.S)
        assert form, action
        fields = dict(re.findall(r'<input (?:type="hidden" )?name="(\w+)"[^>]*?value="([^"]*)"', form.group(1)))
        return fields
    raise AssertionError(f"no group about {about!r} on the page")


def group_count(text: str, about: str) -> tuple[int, int]:
    """(this period, the period before) of the group that mentions `about`."""
    for article in re.findall(r'<article class="card improvement-group".*?</article>', text, flags=re.S):
        if about.lower() in article.lower():
            now = re.search(r"(\d+) en este periodo", article)
            before = re.search(r"(\d+) en el periodo anterior", article)
            assert now and before
            return int(now.group(1)), int(before.group(1))
    return 0, 0


def post(client: FlaskClient, path: str, **form: str) -> Any:
    return client.post(path, data={"csrf_token": csrf(client), **form})


def let_caches_look() -> None:
    """Processes look at tenants:version at most once a second."""
    time.sleep(tenant_changes.CHECK_INTERVAL_S + 0.1)


def test_an_unanswered_group_becomes_the_next_answer_and_undo_brings_the_old_reply_back(
        stack: Stack, db_pool: ConnectionPool) -> None:
    for n, text in enumerate(GUATEMALA):  # several customers, similar wordings: none understood
        replies = ask(stack, NUMBER_A, text, f"+5037100000{n}")
        assert any(NOT_UNDERSTOOD in r.lower() for r in replies), (text, replies)
    events = rows(db_pool, "SELECT data FROM events WHERE tenant_id = %s AND kind = 'not_understood'", (stack.a.id,))
    assert len(events) == len(GUATEMALA) and all(isinstance(e["data"]["message_event"], int) for e in events)
    assert not any("guatemala" in str(e["data"]).lower() for e in events)  # an id, never the text

    admin = logged_in(stack.app, stack.a.admin.email)
    shown = page(admin)
    assert group_count(shown, "guatemala") == (len(GUATEMALA), 0)
    for text in GUATEMALA:
        assert text in shown  # the examples, as the customers wrote them
    form = group_form(shown, "faq", "guatemala")
    assert "guatemala" in form["keywords"].lower()

    made = post(admin, "/console/improvements", action="faq", group_text=form["group_text"],
                question=form["question"], answer=GUATEMALA_ANSWER, keywords=form["keywords"])
    assert made.status_code == 302, made.get_data(as_text=True)[:300]
    assert "el asistente ya responde esa pregunta" in page(admin)

    let_caches_look()
    replies = ask(stack, NUMBER_A, GUATEMALA_NEXT, "+50371000009")  # another customer, another wording
    assert any(GUATEMALA_ANSWER in r for r in replies), replies
    assert not any(NOT_UNDERSTOOD in r.lower() for r in replies)
    assert group_count(page(admin), "guatemala")[0] == len(GUATEMALA)  # answered: the group did not grow

    change = rows(db_pool, "SELECT id, action, created_by, created_at, target, undone_at FROM improvement_changes"
                           " WHERE tenant_id = %s", (stack.a.id,))
    assert len(change) == 1 and change[0]["action"] == "faq" and change[0]["created_by"] == stack.a.admin.id
    assert change[0]["undone_at"] is None
    history = page(admin)
    row = re.search(rf'<tr data-change="{change[0]["id"]}".*?</tr>', history, flags=re.S)
    assert row and "Alicia Admin" in row.group(0) and "Deshacer" in row.group(0)
    assert change[0]["created_at"].astimezone().strftime("%Y") in row.group(0)

    undone = post(admin, f"/console/improvements/changes/{change[0]['id']}/undo")
    assert undone.status_code == 302
    assert "El asistente vuelve a responder como antes" in page(admin)
    let_caches_look()
    replies = ask(stack, NUMBER_A, GUATEMALA_NEXT, "+50371000010")
    assert any(NOT_UNDERSTOOD in r.lower() for r in replies) and not any(GUATEMALA_ANSWER in r for r in replies)
    assert group_count(page(admin), "guatemala")[0] == len(GUATEMALA) + 1

    versions = rows(db_pool, "SELECT version, origin, created_by, note, entries FROM tenant_faq_versions"
                             " WHERE tenant_id = %s ORDER BY version", (stack.a.id,))
    assert [v["origin"] for v in versions] == ["file", "console", "console"]  # where the company started, kept
    assert [v["note"] for v in versions[-2:]] == ["Mejoras: agregó una pregunta",
                                                  "Mejoras: deshizo una pregunta agregada"]
    with_it, without = versions[-2]["entries"], versions[-1]["entries"]  # undo: the entries as they were before
    assert [e for e in with_it if e["answer"] == GUATEMALA_ANSWER] == [with_it[-1]]
    assert without == with_it[:-1] and versions[-1]["created_by"] == stack.a.admin.id
    kept = rows(db_pool, "SELECT undone_by, undone_at FROM improvement_changes WHERE id = %s", (change[0]["id"],))
    assert kept[0]["undone_by"] == stack.a.admin.id and kept[0]["undone_at"] is not None
    again = post(admin, f"/console/improvements/changes/{change[0]['id']}/undo")
    assert again.status_code == 302 and "Ese cambio ya estaba deshecho." in page(admin)


def test_a_phrase_routes_the_next_message_to_its_intent_for_that_company_only(
        stack: Stack, db_pool: ConnectionPool) -> None:
    for n, text in enumerate(MERCADO):
        replies = ask(stack, NUMBER_A, text, f"+5037200000{n}")
        assert routed(db_pool, stack.a.id, text) == "out_of_scope"
        assert any(NOT_UNDERSTOOD in r.lower() for r in replies), (text, replies)
    admin = logged_in(stack.app, stack.a.admin.email)
    form = group_form(page(admin), "phrase", "mercado libre")
    assert form["phrase"] == "trabajan mercado libre"  # the group's words that say what it is about
    made = post(admin, "/console/improvements", action="phrase", group_text=form["group_text"],
                phrase=form["phrase"], intent="sales_lead")
    assert made.status_code == 302
    assert "el asistente ya entiende esa frase" in page(admin)
    let_caches_look()

    replies = ask(stack, NUMBER_A, MERCADO_NEXT, "+50372000009")
    assert routed(db_pool, stack.a.id, MERCADO_NEXT) == "sales_lead"
    assert not any(NOT_UNDERSTOOD in r.lower() for r in replies)
    other = ask(stack, NUMBER_B, MERCADO_NEXT, "+50372000019")  # company B: the same words, its own router
    assert routed(db_pool, stack.b.id, MERCADO_NEXT) == "out_of_scope"
    assert any(NOT_UNDERSTOOD in r.lower() for r in other)

    change = rows(db_pool, "SELECT id, target FROM improvement_changes WHERE tenant_id = %s", (stack.a.id,))[0]
    assert rows(db_pool, "SELECT tenant_id, intent FROM tenant_intent_phrases WHERE id = %s",
                (change["target"]["phrase_id"],)) == [{"tenant_id": stack.a.id, "intent": "sales_lead"}]
    assert post(admin, f"/console/improvements/changes/{change['id']}/undo").status_code == 302
    assert rows(db_pool, "SELECT id FROM tenant_intent_phrases") == []
    let_caches_look()
    ask(stack, NUMBER_A, MERCADO_NEXT, "+50372000029")
    assert routed(db_pool, stack.a.id, MERCADO_NEXT) == "out_of_scope"

    refused = post(admin, "/console/improvements", action="phrase", group_text="x", phrase="mercado libre",
                   intent="greeting")  # not an intent an admin may add to
    assert refused.status_code == 400 and "Elige qué quiere el cliente" in refused.get_data(as_text=True)


def test_a_canned_answer_reaches_the_agents_and_undo_removes_it(stack: Stack, db_pool: ConnectionPool) -> None:
    for n, text in enumerate(GUATEMALA[:2]):
        ask(stack, NUMBER_A, text, f"+5037300000{n}")
    admin = logged_in(stack.app, stack.a.admin.email)
    form = group_form(page(admin), "canned", "guatemala")
    made = post(admin, "/console/improvements", action="canned", group_text=form["group_text"],
                title="Envíos a Guatemala", body="Hola {nombre}, por ahora solo enviamos dentro de El Salvador.")
    assert made.status_code == 302
    agent = logged_in(stack.app, stack.a.agent.email)
    canned_page = html.unescape(agent.get("/console/canned").get_data(as_text=True))
    assert "Envíos a Guatemala" in canned_page and "solo enviamos dentro de El Salvador" in canned_page

    same = post(admin, "/console/improvements", action="canned", group_text=form["group_text"],
                title="Envíos a Guatemala", body="otro texto")  # never overwrites an answer the agents have
    again = html.unescape(same.get_data(as_text=True))
    assert same.status_code == 400 and "Ya hay una respuesta rápida con ese título" in again
    assert "otro texto</textarea>" in again  # the form again, open, with what the admin wrote
    assert len(rows(db_pool, "SELECT id FROM improvement_changes WHERE tenant_id = %s", (stack.a.id,))) == 1

    change = rows(db_pool, "SELECT id FROM improvement_changes WHERE tenant_id = %s", (stack.a.id,))[0]
    post(admin, f"/console/improvements/changes/{change['id']}/undo")
    assert "Envíos a Guatemala" not in html.unescape(agent.get("/console/canned").get_data(as_text=True))


def test_only_the_companys_admins_see_its_groups_and_undo_its_changes(stack: Stack, db_pool: ConnectionPool) -> None:
    ask(stack, NUMBER_B, "¿tienen bodega refrigerada para vacunas?", "+50374000001")
    ask(stack, NUMBER_A, GUATEMALA[0], "+50374000002")
    b_admin = logged_in(stack.app, stack.b.admin.email)
    assert "bodega refrigerada" in page(b_admin)
    form = group_form(page(b_admin), "canned", "bodega")
    post(b_admin, "/console/improvements", action="canned", group_text=form["group_text"], title="Bodega fría",
         body="No tenemos bodega refrigerada.")
    b_change = rows(db_pool, "SELECT id FROM improvement_changes WHERE tenant_id = %s", (stack.b.id,))[0]["id"]

    ask(stack, NUMBER_A, "quiero hablar con una persona", "+50374000003")  # a case: the message that led to it
    a_admin = logged_in(stack.app, stack.a.admin.email)
    shown = page(a_admin)
    assert "guatemala" in shown.lower()
    person = [a for a in re.findall(r'<article class="card improvement-group".*?</article>', shown, flags=re.S)
              if "hablar con una persona" in a]
    assert len(person) == 1 and "1 pasaron a un agente" in person[0] and "no entendidos" not in person[0]
    assert "bodega" not in shown.lower() and "Bruno" not in shown and "Bodega fría" not in shown
    mine = post(a_admin, f"/console/improvements/changes/{b_change}/undo")
    nobody = post(a_admin, f"/console/improvements/changes/{NOWHERE}/undo")
    assert mine.status_code == 404 and (mine.status_code, mine.get_data()) == (nobody.status_code, nobody.get_data())
    assert rows(db_pool, "SELECT undone_at FROM improvement_changes WHERE id = %s", (b_change,)) == [
        {"undone_at": None}]
    assert rows(db_pool, "SELECT title FROM canned_answers WHERE tenant_id = %s AND title = 'Bodega fría'",
                (stack.b.id,)) == [{"title": "Bodega fría"}]

    a_agent = logged_in(stack.app, stack.a.agent.email)  # not an admin: neither the page nor its actions
    assert a_agent.get("/console/improvements").status_code == 403
    assert post(a_agent, "/console/improvements", action="canned", group_text="x", title="t",
                body="b").status_code == 403
    assert post(a_agent, f"/console/improvements/changes/{b_change}/undo").status_code == 403
    assert "/console/improvements" not in a_agent.get("/console/canned").get_data(as_text=True)
    assert "/console/improvements" in a_admin.get("/console/canned").get_data(as_text=True)
