"""Isolation proven on the console and its API: every route, walked with another company's ids.

Two companies share one deployment, each with its own number, agents (admin, supervisor, agent), customers,
conversations and cases (opened through the real webhook and worker), notes, tags, a callback and canned
answers; one customer writes to both. Logged in as company A's admin, the walk enumerates `app.url_map`
(so a route added later is walked too) and:

- calls every route with an object id in its path (GET and POST, with a valid CSRF token and B's ids in the
  body as well) with B's ids: the answer is 404 and exactly the answer for an id that exists nowhere (never
  200, a redirect to B's data, a 403 that confirms B's object exists, or 500), and B's rows are unchanged;
- calls the routes that take ids in the form or query (deleting a canned answer, (de)activating an agent,
  assigning or taking over A's own case, the transcript's `after`, the search's agent filter) with B's ids:
  404 or the answer an id that exists nowhere gets, and never B's data;
- reads every page and API answer A can GET and finds none of B's names, phones, case numbers, notes, tags,
  canned answers, agents or message text;
- fails for a route whose parameters it does not know how to fill, and for an id-free route nobody has
  classified here (so a new route is a test failure until it is walked).

A's search finds nothing of B (phone, name, case number, tag, message text), and A's live stream never
carries B's events. The console has no export route for agents: usage exports are the operator's
(`/operator/usage.csv`, `encargo-admin usage`). The operator's area (/operator) sees every company by design
and has its own login: the walk calls each of its routes with A's admin's session and gets the operator's
login (pages) or 403 (anything else), never an answer (tests/test_operator_area.py walks them too).
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from typing import Any, cast

import pytest
from flask import Flask
from flask.testing import FlaskClient
from psycopg_pool import ConnectionPool
from werkzeug.routing import Rule

from config import Settings
from console import canned, improvement_actions
from console.case_queue import STATUS_FILTERS
from handoff import agents
from notifications import tenant_templates
from storage import faq_versions, tenant_admin, tenant_hours
from storage.crypto import Vault
from storage.faq_content import FaqEntry
from tests.console_support import PASSWORD, TUESDAY_10AM, TUESDAY_NIGHT, logged_in
from tests.harness import post_meta, rows, run_jobs
from web.app import create_app

NUMBER_B = "106540352299991"
NOWHERE = 987_654_321  # an id no object has
SHARED_PHONE, SHARED_NAME = "+50370000001", "Samuel Compartido"
B_ENTRY = "llegan_suchitoto"  # an FAQ entry only B has

# Path parameters that carry an object id, and which of B's objects fills them.
ID_PARAMETERS = {"case_id": "case", "version_id": "faq_version", "template_id": "template",
                 "change_id": "improvement_change", "media_id": "media"}
# Path parameters that are not object ids (each walked as said here).
NOT_IDS = {
    "filename": "a static file of the code (scripts, styles): the same for every company",
    "token": "a one-time reset secret, not an id: only its holder's inbox has it (tests/test_agents_per_tenant.py)",
    "name": "the file name closing an agent's file's public link: the id and the signature decide, not the name",
    "provider_media_id": "development only: the simulator's stand-in for Meta's media ids (random, in Redis for an "
                         "hour, behind the local transport's bearer token), no company's row",
    "wamid": "development only: the simulator's own customer's copy of a file they sent, by their message's id",
}
# Routes without an object id in their path: what each one is, and how the walk covers it.
ID_FREE = {
    "console.queue": "page: read",
    "console.api_queue": "API: read",
    "console.search_page": "page: read; B's phone, name, case number, tag, text and agent id find nothing",
    "console.canned_page": "page: read; deleting B's canned answer is 404",
    "console.agents_page": "page: read; (de)activating B's agent is 404",
    "console.hours_page": "page: read; removing B's holiday is 404 (B's hours: test_company_rules.py)",
    "console.templates_page": "page: read (A's own templates; B's template ids are walked by template_edit)",
    "console.faq_page": "page: read; editing or removing an FAQ entry only B has is 404",
    "console.improvements_page": "page: read; none of B's unanswered messages, groups or changes",
    "console.improvements_make": "makes a change for A's own company only: no id in the form; B's FAQ, phrases and "
                                 "canned answers unchanged (snapshot)",
    "console.dashboard": "page: read; always the agent's own company, whatever the query names "
                         "(test_the_dashboard_ignores_another_companys_name_or_id_in_its_query)",
    "console.report_page": "page: read (admins only); a `tenant` in the query other than A's own is 404, as a "
                           "company nobody has (tests/test_monthly_report.py)",
    "console.report_csv": "the report as CSV: read; `tenant=<B>` is 404 as on the page",
    "console.api_events": "the live stream: never carries B's events (test_the_live_stream_never_carries_...)",
    "console.api_send_file": "an agent's file for the customer of the case in the form: B's case is 404 as a case "
                             "nobody has (test_ids_in_forms_and_queries_never_reach_another_company)",
    "console.login": "page: the login form (no data)",
    "console.login_submit": "login: by address and password (tests/test_agents_per_tenant.py)",
    "console.logout": "ends A's own session",
    "console.change_password": "A's own password",
    "console.forgot_password": "same answer for every address (tests/test_agents_per_tenant.py)",
    "console.reset_password": "by a one-time secret sent to the account's own inbox (test_agents_per_tenant.py)",
    "health.healthz": "no tenant data",
    "health.readyz": "no tenant data",
    "health.bench_noop": "benchmark no-op, no tenant data",
    "webhooks.meta_verify": "Meta's subscription check, no tenant data",
    "webhooks.meta_receive": "routed by phone_number_id (tests/test_tenants.py)",
    "webhooks.twilio_receive": "routed by To (tests/test_tenants.py)",
    "internal_events.receive_event": "routed by the signing key id (tests/test_tenants.py)",
    "simulator.page": "development only (off in production): plays any customer by design",
    "simulator.companies": "development only: the demo companies the simulator can write to",
    "simulator.send": "development only: plays any customer by design",
    "simulator.messages": "development only: the simulator's own phone",
    "simulator.reset": "development only: the simulator's own phone",
    "simulator.send_media": "development only: plays any customer by design",
    "simulator_files.media_info": "development only: the simulator as Meta's media host, for the local transport",
    "simulator_files.media_bytes": "development only: the simulator as Meta's media host, for the local transport",
    "simulator_files.customer_file": "development only: the simulator's own phone",
}
STREAMS = {"console.api_events"}
# The operator's area: every tenant by design, behind the operator's own login (console/operators.py).
OPERATOR_AREA = "operator."
# Id-free routes whose GET answer is read for B's data (the others hold no tenant data or are not reads).
READ_PAGES = ("console.queue", "console.api_queue", "console.search_page", "console.canned_page",
              "console.agents_page", "console.change_password", "console.faq_page", "console.hours_page",
              "console.templates_page", "console.improvements_page", "console.dashboard",
              "console.report_page", "console.report_csv")


@pytest.fixture
def settings(base_env: dict[str, str], core_url: str) -> Settings:
    return Settings.from_env({**base_env, "CORE_API_URL": core_url})


def write(client: FlaskClient, settings: Settings, number: str, phone: str, name: str, text: str | None = None, *,
        at: datetime = TUESDAY_10AM, reply: tuple[str, str] | None = None, photo: str | None = None) -> None:
    """A customer's WhatsApp message to the company behind `number`, through the webhook and the worker."""
    message: dict[str, Any] = {"from": phone.lstrip("+"), "id": f"wamid.ISO{uuid.uuid4().hex}",
                               "timestamp": str(int(at.timestamp()))}
    if reply is not None:
        message.update(type="interactive", interactive={
            "type": "button_reply", "button_reply": {"id": reply[0], "title": reply[1]}})
    elif photo is not None:  # Meta's media id of a photo
        message.update(type="image", image={"id": photo, "mime_type": "image/jpeg"})
    else:
        message.update(type="text", text={"body": text or ""})
    body = {"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{"field": "messages", "value": {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550783881", "phone_number_id": number},
        "contacts": [{"wa_id": phone.lstrip("+"), "profile": {"name": name}}], "messages": [message]}}]}]}
    assert post_meta(client, body).status_code == 200
    run_jobs(settings)


def case_of(pool: ConnectionPool, tenant_id: int, name: str) -> dict[str, Any]:
    found = rows(pool, "SELECT e.id, e.case_number, e.conversation_id, e.status FROM escalations e"
                       " JOIN conversations c ON c.id = e.conversation_id JOIN contacts ct ON ct.id = c.contact_id"
                       " WHERE e.tenant_id = %s AND ct.profile_name = %s ORDER BY e.id DESC LIMIT 1",
                 (tenant_id, name))
    assert found, f"{name} has no case at tenant {tenant_id}"
    return found[0]


def csrf(client: FlaskClient) -> str:
    match = re.search(r'name="csrf-token" content="([^"]+)"', client.get("/console/login").get_data(as_text=True))
    assert match
    return match.group(1)


def api(client: FlaskClient, method: str, path: str, **body: Any) -> Any:
    with client.session_transaction("/console") as session:
        token = session["csrf"]
    answer = client.open(path, method=method, json=body, headers={"X-CSRF-Token": token})
    assert answer.status_code < 300, (path, answer.status_code, answer.get_data(as_text=True))
    return answer.get_json()


@dataclass
class Company:
    id: int
    admin: agents.Agent
    supervisor: agents.Agent
    agent: agents.Agent
    cases: dict[str, dict[str, Any]] = field(default_factory=dict)
    canned_id: int = 0
    message_ids: list[int] = field(default_factory=list)
    faq_versions: list[int] = field(default_factory=list)  # ids of the company's FAQ versions
    template_ids: list[int] = field(default_factory=list)  # its notification templates (seeded from the YAML)
    holiday_id: int = 0
    improvement_changes: list[int] = field(default_factory=list)  # changes made on its "Mejoras" page
    media_ids: list[int] = field(default_factory=list)  # its customers' files (issue 17)


@dataclass
class World:
    app: Flask
    a: Company
    b: Company
    b_markers: list[str]


def make_agents(pool: ConnectionPool, tenant_id: int, prefix: str, names: tuple[str, str, str]) -> Company:
    made = []
    with pool.connection() as conn:
        for role, name in zip(("admin", "supervisor", "agent"), names, strict=True):
            made.append(agents.create_agent(conn, tenant_id=tenant_id, name=name, role=role, password=PASSWORD,
                                            email=f"{role}@{prefix}.sv"))
    return Company(tenant_id, admin=made[0], supervisor=made[1], agent=made[2])


@pytest.fixture
def world(settings: Settings, db_pool: ConnectionPool) -> Iterator[World]:
    """Company A (the configured one) and B (made as the operator makes it), each with agents, customers,
    cases through the webhook and worker, a callback, notes, tags and canned answers."""
    import redis

    redis_conn = redis.Redis.from_url(settings.redis_url)
    vault = Vault(settings.phone_encryption_keys, settings.phone_hash_key)
    b_tenant = tenant_admin.create_tenant(db_pool, vault, redis_conn, slug="cuscatlan",
                                          name="Envíos Rápidos Cuscatlán", bot_name="Brisa",
                                          core_api_url=settings.core_api_url)
    tenant_admin.add_channel(db_pool, vault, redis_conn, "cuscatlan", provider="meta", number=NUMBER_B)
    a_id = int(rows(db_pool, "SELECT id FROM tenants WHERE slug = %s", (settings.tenant_slug,))[0]["id"])
    a = make_agents(db_pool, a_id, "primera", ("Alicia Admin", "Arturo Supervisor", "Amanda Agente"))
    b = make_agents(db_pool, b_tenant.id, "cuscatlan", ("Bruno Bodega", "Berta Supervisora", "Benito Cuscateco"))
    app = create_app(settings)
    try:
        client = app.test_client()
        number_a = settings.meta_phone_number_id
        write(client, settings, number_a, "+50370000002", "Ana Primeriza", "quiero hablar con una persona")
        write(client, settings, NUMBER_B, "+50370000091", "Beatriz Cuscatleca", "mi paquete de cuscatlan no llega")
        write(client, settings, NUMBER_B, "+50370000091", "Beatriz Cuscatleca", "quiero hablar con una persona")
        write(client, settings, NUMBER_B, "+50370000091", "Beatriz Cuscatleca", photo="9911")
        for number in (number_a, NUMBER_B):
            write(client, settings, number, SHARED_PHONE, SHARED_NAME, "quiero hablar con una persona",
                at=TUESDAY_NIGHT)
            write(client, settings, number, SHARED_PHONE, SHARED_NAME, reply=("console:callback", "📞 Que me llamen"),
                at=TUESDAY_NIGHT)
        a.cases = {"chat": case_of(db_pool, a.id, "Ana Primeriza"), "callback": case_of(db_pool, a.id, SHARED_NAME)}
        b.cases = {"chat": case_of(db_pool, b.id, "Beatriz Cuscatleca"),
                   "callback": case_of(db_pool, b.id, SHARED_NAME)}
        assert b.cases["callback"]["status"] == "callback"
        with db_pool.connection() as conn:
            a.canned_id = canned.add(conn, a.id, "Respuesta de la primera", "Hola {nombre}")
            b.canned_id = canned.add(conn, b.id, "Respuesta de Cuscatlán", "Saludos desde Cuscatlán, {nombre}")
            b_faq = faq_versions.answering(conn, b.id)  # B's own entry on top of its faq_data/cuscatlan.yaml
            own = FaqEntry(B_ENTRY, "¿Llegan hasta Suchitoto? (cuscatlan)", "Sí, Benito lleva los de Cuscatlán.",
                           ("suchitoto",))
            faq_versions.save(conn, redis_conn, b.id, replace(b_faq, entries=(*b_faq.entries, own)),
                              origin="console", created_by=b.admin.id)
        b.faq_versions = [int(r["id"]) for r in rows(db_pool, "SELECT id FROM tenant_faq_versions"
                                                              " WHERE tenant_id = %s", (b.id,))]
        assert len(b.faq_versions) == 2  # its file, then its own entry

        # B's own notification templates and a holiday (its admin's "Plantillas" and "Horario")
        tenant_templates.seed(db_pool, redis_conn, b.id, "cuscatlan")
        b.template_ids = [int(r["id"]) for r in rows(db_pool, "SELECT id FROM notification_templates"
                                                              " WHERE tenant_id = %s", (b.id,))]
        tenant_hours.add_holiday(db_pool, redis_conn, b.id, date(2026, 8, 6), "Fiesta de Cuscatlán")
        b.holiday_id = int(rows(db_pool, "SELECT id FROM tenant_holidays WHERE tenant_id = %s", (b.id,))[0]["id"])

        # B's admin turns a group of its unanswered messages into a phrase and a canned answer ("Mejoras")
        with db_pool.connection() as conn:
            b.improvement_changes = [
                improvement_actions.add_phrase(conn, redis_conn, tenant_id=b.id, agent_id=b.admin.id,
                                               group_text="mi paquete de cuscatlan no llega", intent="complaint",
                                               phrase="paquete cuscatlan no llega"),
                improvement_actions.add_canned(conn, tenant_id=b.id, agent_id=b.admin.id,
                                               group_text="mi paquete de cuscatlan no llega",
                                               title="Demora en Cuscatlán", body="Benito revisa tu paquete.")]

        # B's team works its case through its own console session
        b_client = logged_in(app, b.agent.email)
        chat_b = b.cases["chat"]["id"]
        api(b_client, "POST", f"/console/api/cases/{chat_b}/claim")
        api(b_client, "POST", f"/console/api/cases/{chat_b}/reply", text="Le escribe Benito de cuscatlan")
        api(b_client, "POST", f"/console/api/cases/{chat_b}/notes", body="nota privada de cuscatlan")
        api(b_client, "POST", f"/console/api/cases/{chat_b}/tags", tag="solo-cuscatlan")
        run_jobs(settings)
        a.message_ids = [int(r["id"]) for r in rows(db_pool, "SELECT id FROM messages WHERE tenant_id = %s", (a.id,))]
        b.message_ids = [int(r["id"]) for r in rows(db_pool, "SELECT id FROM messages WHERE tenant_id = %s", (b.id,))]
        b.media_ids = [int(r["id"]) for r in rows(db_pool, "SELECT id FROM media WHERE tenant_id = %s", (b.id,))]
        assert b.media_ids
        markers = ["Beatriz", "Cuscatleca", "70000091", "7000-0091", "7000 0091", "cuscatlan", "Cuscatlán",
                   "Bruno", "Berta", "Benito", *(c["case_number"] for c in b.cases.values())]
        yield World(app=app, a=a, b=b, b_markers=markers)
    finally:
        app.extensions["db_pool"].close()
        app.extensions["redis"].close()
        redis_conn.close()


def url(rule: Rule, object_id: int, parameter: str = "case_id") -> str:
    names = {"name": "foto.jpg"} if "name" in rule.arguments else {}  # a file's public link ends with a name
    built = rule.build({parameter: object_id, **names}, append_unknown=False)
    assert built is not None
    return built[1]


def snapshot(pool: ConnectionPool, tenant_id: int) -> dict[str, Any]:
    """Everything of a company the console can change."""
    tables = {
        "escalations": "SELECT id, status, taken_by, resolved_by, callback_due_at FROM escalations",
        "conversations": "SELECT id, status FROM conversations",
        "messages": "SELECT id, status, agent_id FROM messages",
        "notes": "SELECT id, body FROM agent_notes",
        "tags": "SELECT escalation_id, tag FROM case_tags",
        "events": "SELECT id, action FROM handoff_events",
        "canned": "SELECT id, title, body FROM canned_answers",
        "agents": "SELECT id, email, active, password_hash FROM agents",
        "faq": "SELECT id, version, policies::text, entries::text FROM tenant_faq_versions",
        "templates": "SELECT id, name, body, params, buttons::text, enabled FROM notification_templates",
        "holidays": "SELECT id, day, name FROM tenant_holidays",
        "improvements": "SELECT id, summary, target::text, undone_by, undone_at FROM improvement_changes",
        "phrases": "SELECT id, intent, phrase FROM tenant_intent_phrases",
        "hours": "SELECT id, support_hours::text, quiet_hours_start, quiet_hours_end, reminder_days"
                 " FROM (SELECT *, id AS tenant_id FROM tenants) t",
    }
    return {name: rows(pool, f"{sql} WHERE tenant_id = %s ORDER BY 1, 2", (tenant_id,))  # noqa: S608
            for name, sql in tables.items()}


def leaks(text: str, markers: list[str]) -> list[str]:
    return [m for m in markers if m.lower() in text.lower()]


def body_with(ids: dict[str, int]) -> dict[str, Any]:
    """A body for any console action, every id field filled from `ids`."""
    return {"agent_id": ids["agent"], "from_agent_id": ids["agent"], "text": "hola", "body": "nota",
            "reason": "listo", "tag": "solo-cuscatlan", "outcome": "no_answer", "name": "x", "values": {},
            "client_key": uuid.uuid4().hex}


def call(client: FlaskClient, method: str, path: str, body: dict[str, Any]) -> tuple[int, str]:
    with client.session_transaction("/console") as session:
        token = session["csrf"]
    if method == "GET":
        answer = client.get(path, headers={"Accept": "application/json"})
    else:
        answer = client.open(path, method=method, json=body, headers={"X-CSRF-Token": token})
    return answer.status_code, answer.get_data(as_text=True)


def agent_kept_out(client: FlaskClient, rule: Rule, methods: list[str]) -> list[str]:
    """An operator route called with an agent's session (B's slug where it takes one): the operator's login
    for a page, 403 for anything else; nothing of any company in the answer."""
    built = rule.build({"slug": "cuscatlan"}, append_unknown=False)
    assert built is not None
    path, seen = built[1], []
    for method in methods:
        if rule.endpoint in ("operator.login", "operator.login_submit", "operator.logout"):
            continue  # the operator's own login form and logout: no company's data (test_operator_area.py)
        with client.session_transaction("/console") as session:
            token = session["csrf"]
        answer = client.open(path, method=method, data={"csrf_token": token, "status": "suspended"},
                             headers={"X-CSRF-Token": token})
        if method == "GET":
            assert answer.status_code == 302, (path, answer.status_code)
            assert answer.headers["Location"].startswith("/operator/login"), (path, answer.headers["Location"])
        else:
            assert answer.status_code == 403, (method, path, answer.status_code)
        seen.append(f"{method} {rule.rule}")
    return seen


def test_every_route_answers_404_for_another_companys_ids(world: World, db_pool: ConnectionPool) -> None:
    app, a, b = world.app, world.a, world.b
    before = snapshot(db_pool, b.id)
    client = logged_in(app, a.admin.email)
    b_cases = [int(c["id"]) for c in b.cases.values()]
    b_objects = {"case": b_cases, "faq_version": b.faq_versions, "template": b.template_ids,
                 "improvement_change": b.improvement_changes, "media": b.media_ids}
    walked, unknown, unclassified, operator_walked = [], [], [], []
    for rule in app.url_map.iter_rules():
        methods = sorted((rule.methods or set()) - {"HEAD", "OPTIONS"})
        params = set(rule.arguments)
        if rule.endpoint.startswith(OPERATOR_AREA):
            operator_walked.extend(agent_kept_out(client, rule, methods))
            continue
        if params - set(ID_PARAMETERS) - set(NOT_IDS):
            unknown.append(f"{rule.rule} ({', '.join(sorted(params - set(ID_PARAMETERS) - set(NOT_IDS)))})")
            continue
        if not params & set(ID_PARAMETERS):
            if rule.endpoint not in ID_FREE and not rule.endpoint.endswith("static"):
                unclassified.append(f"{rule.rule} ({rule.endpoint})")
            continue
        parameter = next(p for p in sorted(params) if p in ID_PARAMETERS)
        for method in methods:
            for b_case in b_objects[ID_PARAMETERS[parameter]]:
                path, nowhere = url(rule, b_case, parameter), url(rule, NOWHERE, parameter)
                status, text = call(client, method, path, body_with({"agent": b.agent.id}))
                baseline = call(client, method, nowhere, body_with({"agent": NOWHERE}))
                assert status == 404, (method, path, status, text[:300])
                assert (status, text) == baseline, (method, path, "answers differently from an id nobody has")
                assert not leaks(text, world.b_markers), (method, path, leaks(text, world.b_markers))
                walked.append(f"{method} {rule.rule}")
    assert not unknown, f"routes with parameters the isolation walk cannot fill: {unknown}"
    assert not unclassified, f"id-free routes the isolation walk does not know (add them to ID_FREE): {unclassified}"
    assert len(walked) >= 2 * 15  # every case route, for both of B's cases
    assert len(operator_walked) >= 10  # the operator's pages and actions, none of them open to an agent
    assert rows(db_pool, "SELECT status FROM tenants WHERE id = %s", (b.id,)) == [{"status": "active"}]
    assert snapshot(db_pool, b.id) == before  # nothing of B moved


def test_ids_in_forms_and_queries_never_reach_another_company(world: World, db_pool: ConnectionPool) -> None:
    app, a, b = world.app, world.a, world.b
    before = snapshot(db_pool, b.id)
    client = logged_in(app, a.admin.email)
    with client.session_transaction("/console") as session:
        token = session["csrf"]

    for field_name, b_id in (("delete", b.canned_id),):
        answer = client.post("/console/canned", data={field_name: b_id, "csrf_token": token})
        assert answer.status_code == 404, answer.get_data(as_text=True)[:300]
    for active in ("0", "1"):
        answer = client.post("/console/agents", data={"agent_id": b.agent.id, "active": active, "csrf_token": token})
        nowhere = client.post("/console/agents", data={"agent_id": NOWHERE, "active": active, "csrf_token": token})
        assert answer.status_code == 404 and answer.get_data() == nowhere.get_data()
    answer = client.post("/console/hours", data={"action": "holiday_remove", "holiday_id": b.holiday_id,
                                                 "csrf_token": token})
    nowhere = client.post("/console/hours", data={"action": "holiday_remove", "holiday_id": NOWHERE,
                                                  "csrf_token": token})
    assert answer.status_code == 404 and answer.get_data() == nowhere.get_data()
    for action in ("edit", "delete"):  # an FAQ entry only B has, in A's FAQ form
        form = {"action": action, "question": "¿Llegan?", "answer": "Sí.", "keywords": "", "csrf_token": token}
        base = re.search(r'name="base" value="(\d+)"', client.get("/console/faq").get_data(as_text=True))
        assert base
        answer = client.post("/console/faq", data={**form, "base": base.group(1), "entry": B_ENTRY})
        nowhere = client.post("/console/faq", data={**form, "base": base.group(1), "entry": "nadie_la_tiene"})
        assert answer.status_code == 404 and answer.get_data() == nowhere.get_data()

    # "Mejoras": a change made on A's page is A's own, even with B's group text and B's canned answer's title
    made = client.post("/console/improvements", data={
        "action": "canned", "group_text": "mi paquete de cuscatlan no llega", "title": "Demora en Cuscatlán",
        "body": "Revisamos tu paquete.", "csrf_token": token})
    assert made.status_code == 302
    assert rows(db_pool, "SELECT tenant_id FROM canned_answers WHERE title = 'Demora en Cuscatlán' ORDER BY id") == [
        {"tenant_id": b.id}, {"tenant_id": a.id}]

    # An agent's file for B's case (issue 17): as for a case nobody has, and nothing stored
    def file_for(case_id: int) -> Any:
        from io import BytesIO

        return client.post("/console/api/files", headers={"X-CSRF-Token": token}, content_type="multipart/form-data",
                           data={"case_id": str(case_id), "file": (BytesIO(b"%PDF-1.4\n%%EOF\n"), "guia.pdf")})
    for b_case in (c["id"] for c in b.cases.values()):
        answer, nowhere = file_for(b_case), file_for(NOWHERE)
        assert answer.status_code == 404 and answer.get_data() == nowhere.get_data()
    assert rows(db_pool, "SELECT count(*) AS n FROM media WHERE direction = 'out'") == [{"n": 0}]

    # A's own case, with B's agent as the assignee or as the holder to take over from: as for nobody's id
    mine = a.cases["chat"]["id"]
    for route, body in (("assign", {"agent_id": b.agent.id}), ("assign", {"agent_id": b.admin.id}),
                        ("takeover", {"from_agent_id": b.agent.id})):
        with_b = call(client, "POST", f"/console/api/cases/{mine}/{route}", body)
        unknown = call(client, "POST", f"/console/api/cases/{mine}/{route}", {k: NOWHERE for k in body})
        assert with_b == unknown and with_b[0] in (400, 404, 409), (route, with_b)
    # the transcript after one of B's messages holds only A's messages
    for b_message in (min(b.message_ids), max(b.message_ids)):
        status, text = call(client, "GET", f"/console/api/cases/{mine}?after={b_message}", {})
        assert status == 200 and not leaks(text, world.b_markers)
        shown = {m["id"] for m in json.loads(text)["messages"]}
        assert shown <= set(a.message_ids) and not shown & set(b.message_ids)
    # the search's agent filter with B's agent finds nothing
    for who in (b.agent.id, b.admin.id):
        page = client.get(f"/console/search?agent={who}").get_data(as_text=True)
        assert not leaks(page, world.b_markers) and "/console/cases/" not in page
    # the monthly report and its CSV for B's company: 404, as for a company nobody has
    for path in ("/console/report", "/console/report.csv"):
        answer = client.get(path, query_string={"tenant": "cuscatlan"})
        nowhere = client.get(path, query_string={"tenant": "nadie-la-tiene"})
        assert answer.status_code == 404 and answer.get_data() == nowhere.get_data(), path
    assert snapshot(db_pool, b.id) == before


def test_every_page_and_api_answer_of_a_holds_nothing_of_b(world: World) -> None:
    app, a = world.app, world.a
    for email in (a.admin.email, a.supervisor.email, a.agent.email):
        client = logged_in(app, email)
        for rule in app.url_map.iter_rules():
            if rule.endpoint in STREAMS or rule.arguments or "GET" not in (rule.methods or set()):
                continue
            if not rule.rule.startswith("/console"):
                continue
            status, text = call(client, "GET", rule.rule, {})
            assert status < 500 and not leaks(text, world.b_markers), (email, rule.rule, leaks(text, world.b_markers))
        for status_filter in STATUS_FILTERS:
            status, text = call(client, "GET", f"/console/api/queue?status={status_filter}", {})
            assert not leaks(text, world.b_markers)
        for case in a.cases.values():  # A's own cases, the shared customer's included
            for path in (f"/console/cases/{case['id']}", f"/console/api/cases/{case['id']}",
                         f"/console/api/cases/{case['id']}/team"):
                status, text = call(client, "GET", path, {})
                assert status == 200 and not leaks(text, world.b_markers), (path, leaks(text, world.b_markers))
    assert set(READ_PAGES) <= {r.endpoint for r in app.url_map.iter_rules()}


@pytest.mark.parametrize("query", ["Beatriz", "cuscatleca", "7000-0091", "+503 7000 0091", "50370000091",
                                   "solo-cuscatlan", "#solo-cuscatlan", "paquete de cuscatlan", "nota privada",
                                   "Benito"])
def test_a_search_finds_nothing_of_another_company(world: World, query: str) -> None:
    client = logged_in(world.app, world.a.admin.email)
    for q in (query, *(c["case_number"] for c in world.b.cases.values())):
        for status in ("", "open", "resolved", "returned"):
            page = client.get("/console/search", query_string={"q": q, "status": status}).get_data(as_text=True)
            assert "/console/cases/" not in page, (q, status)
            assert not leaks(page, [m for m in world.b_markers if m.lower() not in q.lower()]), q


def test_the_shared_customers_phone_finds_only_this_companys_case(world: World) -> None:
    client = logged_in(world.app, world.a.admin.email)
    for typed in ("7000-0001", "+503 7000 0001", SHARED_NAME):
        page = client.get("/console/search", query_string={"q": typed}).get_data(as_text=True)
        found = set(re.findall(r"/console/cases/(\d+)", page))
        assert found == {str(world.a.cases["callback"]["id"])}, (typed, found)
        assert world.b.cases["callback"]["case_number"] not in page


def test_the_live_stream_never_carries_another_companys_events(world: World, settings: Settings) -> None:
    app, a, b = world.app, world.a, world.b
    watcher = logged_in(app, a.supervisor.email)
    stream = watcher.get("/console/api/events", buffered=False)
    assert stream.status_code == 200
    chunks: Iterator[bytes] = iter(cast(Iterable[bytes], stream.response))
    assert next(chunks).decode().startswith("retry:")  # subscribed from here on
    try:
        # B: a customer writes (the worker publishes), B's agent types and notes, B's admin assigns
        write(app.test_client(), settings, NUMBER_B, "+50370000091", "Beatriz Cuscatleca", "sigo esperando")
        b_client = logged_in(app, b.admin.email)
        chat_b = b.cases["chat"]["id"]
        api(b_client, "POST", f"/console/api/cases/{chat_b}/typing")
        api(b_client, "POST", f"/console/api/cases/{chat_b}/notes", body="otra nota de cuscatlan")
        api(b_client, "POST", f"/console/api/cases/{b.cases['callback']['id']}/assign", agent_id=b.supervisor.id)
        # then A: its own admin types; that event must be the first one A's stream carries
        a_client = logged_in(app, a.admin.email)
        api(a_client, "POST", f"/console/api/cases/{a.cases['chat']['id']}/typing")
        events = []
        for raw in chunks:
            chunk = raw.decode()
            if chunk.startswith("event:"):
                events.append(json.loads(chunk.split("data: ", 1)[1]))
                if events[-1]["type"] == "typing":
                    break
    finally:
        stream.close()
    b_cases = {c["id"] for c in b.cases.values()}
    assert events and all(e.get("case_id") not in b_cases for e in events), events
    assert events[-1] == {"type": "typing", "case_id": a.cases["chat"]["id"], "agent": "Alicia Admin",
                          "agent_id": a.admin.id}
    assert not leaks(json.dumps(events), world.b_markers)


def test_the_dashboard_ignores_another_companys_name_or_id_in_its_query(world: World) -> None:
    """The "Panel" counts A's own rows for A's people: B's slug or id in the query changes nothing, and none of
    B's names appear (B's figures are the operator's, at /operator/dashboard)."""
    for email in (world.a.admin.email, world.a.agent.email):
        client = logged_in(world.app, email)
        own = client.get("/console/dashboard?rango=7d").get_data(as_text=True)
        assert not leaks(own, world.b_markers)
        figures = re.findall(r'<strong class="figure-value">([^<]*)<|<desc id="[^"]+">([^<]*)<', own)
        assert len(figures) > 10
        for query in ("company=cuscatlan", f"tenant={world.b.id}", f"tenant_id={world.b.id}",
                      f"company={world.b.id}"):
            answer = client.get(f"/console/dashboard?rango=7d&{query}")
            seen = re.findall(r'<strong class="figure-value">([^<]*)<|<desc id="[^"]+">([^<]*)<',
                              answer.get_data(as_text=True))
            assert answer.status_code == 200 and seen == figures, query
