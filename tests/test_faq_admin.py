"""Each company's FAQ and policies as versioned data its admin edits in the console (issue 15).

End to end: the customer writes through the signed webhook, one RQ worker with one Runtime (kept between
messages, as a running worker is) answers, and the company's admin edits the FAQ through the real Flask app.
The worker's FAQ cache watches `tenants:version`, so an edit is the very next answer without a restart; every
save is a new version; a restore writes a new version with the earlier content. Company A's admin can neither
read nor change company B's versions (404), and B's customers never get A's answer. A company starts from its
faq_data/<slug>.yaml (at start-up and when the operator creates it); one without a file starts empty, and the
bot says it does not have that information and offers a person.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from psycopg_pool import ConnectionPool

from config import Settings
from handoff import agents
from runtime.resources import build_runtime
from storage import faq_versions, tenant_admin, tenant_changes
from storage.crypto import Vault
from storage.faq_content import FAQ_DIR, read_file, same_content
from tests.browser import launch
from tests.console_support import PASSWORD, TUESDAY_10AM, logged_in
from tests.console_support import session_csrf as csrf
from tests.harness import post_meta, rows, served
from web.app import create_app
from worker.main import EncargoWorker

ROOT = Path(__file__).resolve().parent.parent
NUMBER_A = "106540352242922"  # the configured tenant's number (tests/conftest.py)
NUMBER_B, NUMBER_NEW = "106540352299991", "106540352299992"
NOWHERE = 987_654_321
HOME = "¿entregan a domicilio?"
DEMO_HOME = "Por ahora trabajamos de punto a punto"
NEW_HOME = "Sí: desde este mes llevamos tu paquete hasta tu casa en San Salvador por $3.00 🏠"


@dataclass
class Company:
    id: int
    slug: str
    number: str
    admin: agents.Agent


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


def make_admin(pool: ConnectionPool, tenant_id: int, email: str, name: str, role: str = "admin") -> agents.Agent:
    with pool.connection() as conn:
        return agents.create_agent(conn, tenant_id=tenant_id, name=name, email=email, role=role, password=PASSWORD)


@pytest.fixture
def stack(settings: Settings, db_pool: ConnectionPool, redis_conn: redis.Redis) -> Iterator[Stack]:
    """Company A (the configured tenant, faq_data/demo.yaml) and B (created by the operator as "cuscatlan",
    faq_data/cuscatlan.yaml), each with an admin; the app; one worker Runtime kept for the whole test."""
    vault = Vault(settings.phone_encryption_keys, settings.phone_hash_key)
    b_tenant = tenant_admin.create_tenant(db_pool, vault, redis_conn, slug="cuscatlan",
                                          name="Envíos Rápidos Cuscatlán", core_api_url=settings.core_api_url)
    tenant_admin.add_channel(db_pool, vault, redis_conn, "cuscatlan", provider="meta", number=NUMBER_B)
    a_id = int(rows(db_pool, "SELECT id FROM tenants WHERE slug = %s", (settings.tenant_slug,))[0]["id"])
    a = Company(a_id, settings.tenant_slug, NUMBER_A, make_admin(db_pool, a_id, "admin@primera.sv", "Alicia Admin"))
    b = Company(b_tenant.id, "cuscatlan", NUMBER_B,
                make_admin(db_pool, b_tenant.id, "admin@cuscatlan.sv", "Bruno Bodega"))
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


def write(stack: Stack, number: str, text: str, phone: str = "+50370000031", *,
          reply: tuple[str, str] | None = None) -> list[str]:
    """A customer's message to the company behind `number`, through the webhook and the kept worker;
    the bodies of the bot's replies to it."""
    pool: ConnectionPool = stack.app.extensions["db_pool"]
    last = rows(pool, "SELECT coalesce(max(id), 0) AS id FROM messages")[0]["id"]
    message: dict[str, Any] = {"from": phone.lstrip("+"), "id": f"wamid.FAQ{uuid.uuid4().hex}",
                               "timestamp": str(int(TUESDAY_10AM.timestamp()))}
    if reply is not None:
        message.update(type="interactive", interactive={
            "type": "button_reply", "button_reply": {"id": reply[0], "title": reply[1]}})
    else:
        message.update(type="text", text={"body": text})
    body = {"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{"field": "messages", "value": {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550783881", "phone_number_id": number},
        "contacts": [{"wa_id": phone.lstrip("+"), "profile": {"name": "Clara Cliente"}}], "messages": [message]}}]}]}
    assert post_meta(stack.app.test_client(), body).status_code == 200
    stack.work()
    found = rows(pool, "SELECT body FROM messages WHERE direction = 'out' AND id > %s ORDER BY id", (last,))
    return [str(r["body"]) for r in found]


def form_version(page: str) -> int:
    found = re.search(r'name="base" value="(\d+)"', page)
    assert found, "the page carries no version"
    return int(found.group(1))


def post_faq(client: FlaskClient, **form: str) -> Any:
    """A POST of the FAQ page's forms, made from the version the page shows now."""
    page = client.get("/console/faq")
    assert page.status_code == 200, page.get_data(as_text=True)[:300]
    base = str(form_version(page.get_data(as_text=True)))
    return client.post("/console/faq", data={"csrf_token": csrf(client), "base": base, **form})


def versions(pool: ConnectionPool, tenant_id: int) -> list[dict[str, Any]]:
    return rows(pool, "SELECT id, version, origin, created_by, note, entries, policies FROM tenant_faq_versions"
                      " WHERE tenant_id = %s ORDER BY version", (tenant_id,))


def let_caches_look() -> None:
    """Processes look at tenants:version at most once a second."""
    time.sleep(tenant_changes.CHECK_INTERVAL_S + 0.1)


def edit_home(client: FlaskClient, answer: str) -> None:
    saved = post_faq(client, action="edit", entry="entrega_domicilio", question="¿Entregan a domicilio?",
                     answer=answer, keywords="domicilio, a la casa, hasta la casa, delivery")
    assert saved.status_code == 302, saved.get_data(as_text=True)[:500]


# -- the edit is the next answer -------------------------------------------------------------------------


def test_the_admins_edit_is_the_next_answer_without_restarting_the_worker(stack: Stack,
                                                                          db_pool: ConnectionPool) -> None:
    assert any(DEMO_HOME in body for body in write(stack, NUMBER_A, HOME))  # the cache now holds the file's FAQ
    admin = logged_in(stack.app, stack.a.admin.email)
    edit_home(admin, NEW_HOME)
    page = admin.get("/console/faq").get_data(as_text=True)
    assert "Guardado. El asistente ya responde con la versión 2." in page and NEW_HOME in page

    let_caches_look()
    replies = write(stack, NUMBER_A, HOME)
    assert any(NEW_HOME in body for body in replies), replies
    assert not any(DEMO_HOME in body for body in replies)

    stored = versions(db_pool, stack.a.id)
    assert [(v["version"], v["origin"], v["created_by"]) for v in stored] == [
        (1, "file", None), (2, "console", stack.a.admin.id)]
    home = [e for e in stored[1]["entries"] if e["id"] == "entrega_domicilio"]
    assert home[0]["answer"] == NEW_HOME and stored[1]["policies"] == stored[0]["policies"]
    assert any(e["answer"].startswith(DEMO_HOME) for e in stored[0]["entries"])  # never changed in place


def test_an_added_entry_and_a_changed_policy_are_answered(stack: Stack) -> None:
    admin = logged_in(stack.app, stack.a.admin.email)
    added = post_faq(admin, action="add", question="¿Tienen parqueo en los puntos?",
                     answer="Sí: todos nuestros puntos tienen parqueo gratis para clientes 🚗",
                     keywords="parqueo, estacionamiento, parquear, donde dejo el carro")
    assert added.status_code == 302, added.get_data(as_text=True)[:500]
    page = admin.get("/console/faq").get_data(as_text=True)
    fields = {f: re.search(rf'name="{f}"[^>]*>([^<]*)</textarea>', page) for f in ("requirements", "refund")}
    assert all(fields.values())
    policies = {"requirements": "📋 Solo necesitas tu *DUI* y el paquete bien empacado.",
                "refund": "💰 Tu reembolso lo cobras en *cualquier punto* con tu DUI."}
    saved = post_faq(admin, action="policies", **policies)
    assert saved.status_code == 302, saved.get_data(as_text=True)[:500]

    let_caches_look()
    replies = write(stack, NUMBER_A, "hay parqueo?")
    assert any("parqueo gratis para clientes" in b for b in replies), replies
    preview = admin.get("/console/faq", query_string={"probar": "hay parqueo?"}).get_data(as_text=True)
    assert "El asistente respondería con «¿Tienen parqueo en los puntos?»" in preview  # what the bot just said
    assert '<p class="faq-bubble">Sí: todos nuestros puntos tienen parqueo gratis para clientes 🚗</p>' in preview
    replies = write(stack, NUMBER_A, "como cobro mi reembolso", phone="+50370000032")
    assert any("*cualquier punto*" in b for b in replies), replies


def test_the_preview_shows_what_the_customer_would_read(stack: Stack) -> None:
    admin = logged_in(stack.app, stack.a.admin.email)
    long_answer = "\n\n".join(f"Párrafo {n}: en nuestros puntos guardamos tu paquete con cuidado y te avisamos." for n
                                in range(1, 5))
    saved = post_faq(admin, action="add", question="¿Cómo guardan mi paquete?", answer=long_answer,
                     keywords="guardan, bodega")
    assert saved.status_code == 302

    def tried(text: str) -> str:
        return admin.get("/console/faq", query_string={"probar": text}).get_data(as_text=True)

    cut = tried("en que bodega guardan mi paquete")
    assert "El asistente respondería con «¿Cómo guardan mi paquete?»" in cut
    assert "Párrafo 1" in cut and "Párrafo 4" not in cut.split('id="faq-try"')[1].split("</form>")[0]
    assert "¿Quieres más detalles?" in cut and '<span class="badge">Sí</span>' in cut
    for nothing in ("quiero una pizza", "suchitoto"):
        assert "Ninguna pregunta frecuente coincide." in tried(nothing)
    assert "Probar una pregunta" in admin.get("/console/faq").get_data(as_text=True)


# -- versions: history and restore -----------------------------------------------------------------------


def test_restoring_an_earlier_version_writes_a_new_one_with_its_content(stack: Stack,
                                                                       db_pool: ConnectionPool) -> None:
    admin = logged_in(stack.app, stack.a.admin.email)
    edit_home(admin, NEW_HOME)
    removed = post_faq(admin, action="delete", entry="cambiar_destino")
    assert removed.status_code == 302
    page = admin.get("/console/faq").get_data(as_text=True)
    assert "¿Puedo cambiar el destino de un paquete que ya envié?" not in page.split("<h2>Historial</h2>")[0]
    history = page.split("<h2>Historial</h2>")[1]
    assert "Quitó «¿Puedo cambiar el destino de un paquete que ya envié?»" in history
    assert "Editó «¿Entregan a domicilio?»" in history and "Alicia Admin" in history
    assert "Archivo inicial" in history and "Primera versión: 15 preguntas y las políticas." in history

    first = versions(db_pool, stack.a.id)[0]
    shown = admin.get(f"/console/faq/versions/{first['id']}").get_data(as_text=True)
    assert DEMO_HOME in shown and "Restaurar esta versión" in shown
    restored = admin.post(f"/console/faq/versions/{first['id']}/restore", data={"csrf_token": csrf(admin)})
    assert restored.status_code == 302
    assert "Versión 1 restaurada como versión 4." in admin.get("/console/faq").get_data(as_text=True)

    stored = versions(db_pool, stack.a.id)
    assert [(v["version"], v["origin"]) for v in stored] == [(1, "file"), (2, "console"), (3, "console"),
                                                             (4, "restore")]
    assert (stored[3]["entries"], stored[3]["policies"]) == (stored[0]["entries"], stored[0]["policies"])
    assert stored[3]["note"] == "Restauró la versión 1"
    let_caches_look()
    assert any(DEMO_HOME in b for b in write(stack, NUMBER_A, HOME))

    again = admin.post(f"/console/faq/versions/{first['id']}/restore", data={"csrf_token": csrf(admin)})
    assert again.status_code == 302 and len(versions(db_pool, stack.a.id)) == 4  # the same content: no new version
    assert "es igual a la actual" in admin.get("/console/faq").get_data(as_text=True)


# -- isolation -------------------------------------------------------------------------------------------


def test_one_companys_admin_cannot_read_or_change_anothers_faq(stack: Stack, db_pool: ConnectionPool) -> None:
    b_admin = logged_in(stack.app, stack.b.admin.email)
    b_page = b_admin.get("/console/faq").get_data(as_text=True)
    b_own = read_file("cuscatlan").entries[0].answer
    assert b_own[:40] in b_page.replace("&#39;", "'")
    b_versions = versions(db_pool, stack.b.id)
    assert len(b_versions) == 1 and b_versions[0]["origin"] == "file"

    a_admin = logged_in(stack.app, stack.a.admin.email)
    a_page = a_admin.get("/console/faq").get_data(as_text=True)
    assert b_own[:40] not in a_page.replace("&#39;", "'")
    b_version = b_versions[0]["id"]
    for path in (f"/console/faq/versions/{b_version}", f"/console/faq/versions/{b_version}/restore"):
        method = "GET" if path.endswith(str(b_version)) else "POST"
        nowhere = path.replace(str(b_version), str(NOWHERE))
        data = {"csrf_token": csrf(a_admin)}
        theirs = a_admin.open(path, method=method, data=data)
        nobodys = a_admin.open(nowhere, method=method, data=data)
        assert theirs.status_code == 404 and theirs.get_data() == nobodys.get_data(), path
    # an entry only B has is not one of A's entries: editing or removing it is 404 and leaves B's FAQ alone
    added = post_faq(b_admin, action="add", question="¿Tienen bodega en Cuscatlán?", answer="Sí, en Cojutepeque.",
                     keywords="bodega")
    assert added.status_code == 302
    b_versions = versions(db_pool, stack.b.id)
    only_b = next(e["id"] for e in b_versions[-1]["entries"] if e["question"] == "¿Tienen bodega en Cuscatlán?")
    for action in ("delete", "edit"):
        refused = post_faq(a_admin, action=action, entry=only_b, question="¿Tienen bodega?", answer="No.", keywords="")
        assert refused.status_code == 404, action
    assert versions(db_pool, stack.b.id) == b_versions  # nothing of B moved
    assert "Cojutepeque" not in a_admin.get("/console/faq").get_data(as_text=True)


def test_company_bs_customers_never_get_company_as_answer(stack: Stack) -> None:
    admin = logged_in(stack.app, stack.a.admin.email)
    edit_home(admin, NEW_HOME)
    let_caches_look()
    a_replies = write(stack, NUMBER_A, HOME)
    b_replies = write(stack, NUMBER_B, HOME)  # the same customer, the same question, to B's number
    assert any(NEW_HOME in b for b in a_replies)
    assert b_replies and not any(NEW_HOME in b for b in b_replies), b_replies
    b_home = next(e.answer for e in read_file("cuscatlan").entries if "domicilio" in " ".join(e.keywords))
    assert any(b_home[:40] in b for b in b_replies), b_replies


def test_only_the_companys_admins_reach_the_pages(stack: Stack, db_pool: ConnectionPool) -> None:
    admin = logged_in(stack.app, stack.a.admin.email)
    assert "Preguntas frecuentes</a>" in admin.get("/console").get_data(as_text=True)
    admin.get("/console/faq")  # the company's file becomes its version 1
    version = versions(db_pool, stack.a.id)
    for role in ("agent", "supervisor"):
        person = make_admin(db_pool, stack.a.id, f"{role}@primera.sv", f"Persona {role}", role=role)
        client = logged_in(stack.app, person.email)
        assert client.get("/console/faq").status_code == 403
        queue = client.get("/console")
        assert queue.status_code == 200 and "Preguntas frecuentes" not in queue.get_data(as_text=True)
        posted = client.post("/console/faq", data={"csrf_token": csrf(client), "action": "delete",
                                                   "entry": "entrega_domicilio", "base": "1"})
        assert posted.status_code == 403
        assert client.get(f"/console/faq/versions/{version[0]['id']}").status_code == 403
        restore = client.post(f"/console/faq/versions/{version[0]['id']}/restore", data={"csrf_token": csrf(client)})
        assert restore.status_code == 403
    assert versions(db_pool, stack.a.id) == version
    anonymous = stack.app.test_client().get("/console/faq")
    assert anonymous.status_code == 302 and "/console/login" in anonymous.headers["Location"]


# -- the form's checks -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("question", "answer", "keywords", "message"), [
    ("", "Sí, con gusto.", "a", "Escribe la pregunta, como la haría un cliente."),
    ("   ", "Sí, con gusto.", "", "Escribe la pregunta, como la haría un cliente."),
    ("¿Venden cajas?", "", "cajas", "Escribe la respuesta que recibirá el cliente."),
    ("¿Venden cajas?", "x" * 1501, "cajas", "La respuesta es muy larga: máximo 1500 caracteres."),
    ("¿" + "a" * 200 + "?", "Sí.", "", "La pregunta es muy larga: máximo 200 caracteres."),
    ("¿Entregan a domicilio?", "Sí.", "", "Ya hay una pregunta igual: edítala en vez de agregar otra."),
    ("¿Venden cajas?", "Sí.", "c" * 61, "Cada palabra clave puede tener hasta 60 caracteres"),
])
def test_an_unusable_entry_is_refused_with_a_clear_message(stack: Stack, db_pool: ConnectionPool, question: str,
                                                           answer: str, keywords: str, message: str) -> None:
    admin = logged_in(stack.app, stack.a.admin.email)
    admin.get("/console/faq")  # the company's file becomes its version 1
    before = versions(db_pool, stack.a.id)
    refused = post_faq(admin, action="add", question=question, answer=answer, keywords=keywords)
    assert refused.status_code == 400
    assert message in refused.get_data(as_text=True)
    assert versions(db_pool, stack.a.id) == before


def test_a_form_made_from_an_older_version_does_not_undo_a_newer_one(stack: Stack, db_pool: ConnectionPool) -> None:
    alicia = logged_in(stack.app, stack.a.admin.email)
    other = make_admin(db_pool, stack.a.id, "otra@primera.sv", "Olga Otra")
    olga = logged_in(stack.app, other.email)
    stale = form_version(alicia.get("/console/faq").get_data(as_text=True))
    edit_home(olga, NEW_HOME)
    late = alicia.post("/console/faq", data={"csrf_token": csrf(alicia), "base": str(stale), "action": "delete",
                                             "entry": "entrega_domicilio"})
    assert late.status_code == 409 and "Alguien más guardó cambios" in late.get_data(as_text=True)
    assert [v["version"] for v in versions(db_pool, stack.a.id)] == [1, 2]
    unchanged = post_faq(alicia, action="edit", entry="entrega_domicilio", question="¿Entregan a domicilio?",
                         answer=NEW_HOME, keywords="domicilio, a la casa, hasta la casa, delivery")
    assert unchanged.status_code == 302 and len(versions(db_pool, stack.a.id)) == 2  # nothing changed: no version


# -- where a company's FAQ starts ------------------------------------------------------------------------


def test_start_up_stores_each_companys_file_once_and_follows_an_unedited_file(
        stack: Stack, db_pool: ConnectionPool, redis_conn: redis.Redis, tmp_path: Path) -> None:
    assert faq_versions.seed_all(db_pool, redis_conn) == [stack.a.slug]  # B was seeded when it was created
    assert faq_versions.seed_all(db_pool, redis_conn) == []
    with db_pool.connection() as conn:
        first = faq_versions.current(conn, stack.a.id)
    assert first is not None and same_content(first.data, read_file("demo"))

    # a deployment that edits its file (nobody edited in the console): the file's new text is the next version
    changed = (FAQ_DIR / "demo.yaml").read_text(encoding="utf-8").replace(DEMO_HOME, "Ahora sí llevamos a domicilio")
    (tmp_path / "demo.yaml").write_text(changed, encoding="utf-8")
    (tmp_path / "cuscatlan.yaml").write_text((FAQ_DIR / "cuscatlan.yaml").read_text(encoding="utf-8"), "utf-8")
    assert faq_versions.seed_all(db_pool, redis_conn, tmp_path) == [stack.a.slug]
    # an admin's edit wins from then on: a file change no longer replaces it
    edit_home(logged_in(stack.app, stack.a.admin.email), NEW_HOME)
    (tmp_path / "demo.yaml").write_text(changed.replace("Ahora sí", "Desde hoy"), encoding="utf-8")
    assert faq_versions.seed_all(db_pool, redis_conn, tmp_path) == []
    assert [v["origin"] for v in versions(db_pool, stack.a.id)] == ["file", "file", "console"]

    # a malformed file is reported and skipped, never half-stored
    (tmp_path / "cuscatlan.yaml").write_text("policies: {}\nfaq:\n  - id: roto\n", encoding="utf-8")
    assert faq_versions.seed_all(db_pool, redis_conn, tmp_path) == []


def test_a_new_company_without_a_file_starts_empty_and_the_bot_offers_a_person(
        stack: Stack, settings: Settings, db_pool: ConnectionPool, redis_conn: redis.Redis) -> None:
    vault = Vault(settings.phone_encryption_keys, settings.phone_hash_key)
    new = tenant_admin.create_tenant(db_pool, vault, redis_conn, slug="paqueteria-nueva", name="Paquetería Nueva",
                                     core_api_url=settings.core_api_url)
    tenant_admin.add_channel(db_pool, vault, redis_conn, "paqueteria-nueva", provider="meta", number=NUMBER_NEW)
    assert versions(db_pool, new.id) == []
    admin = make_admin(db_pool, new.id, "admin@nueva.sv", "Nora Nueva")
    page = logged_in(stack.app, admin.email).get("/console/faq").get_data(as_text=True)
    assert "Todavía no hay preguntas" in page and "Todavía no hay versiones guardadas." in page

    let_caches_look()
    replies = write(stack, NUMBER_NEW, "qué necesito para enviar un paquete?", phone="+50370000041")
    assert replies == ["Esa información no la tengo a la mano 🙏 ¿Quieres que te comunique con un asesor?\n"
                       "[Sí, con un asesor]\n[No, gracias]"], replies
    write(stack, NUMBER_NEW, "", phone="+50370000041", reply=("human_yes", "Sí, con un asesor"))
    case = rows(db_pool, "SELECT reason FROM escalations WHERE tenant_id = %s", (new.id,))
    assert [c["reason"] for c in case] == ["no_information"]
    assert any("no la tengo" in b for b in write(stack, NUMBER_NEW, "aceptan tarjeta?", phone="+50370000042"))
    declined = write(stack, NUMBER_NEW, "", phone="+50370000042", reply=("more_no", "No, gracias"))
    assert declined == ["¿Te ayudo con algo más? 😊"], declined
    assert len(rows(db_pool, "SELECT id FROM escalations WHERE tenant_id = %s", (new.id,))) == 1


def test_the_operators_cli_stores_a_new_companys_file_and_says_so(base_env: dict[str, str],
                                                                   db_pool: ConnectionPool) -> None:
    def admin(*args: str) -> str:
        done = subprocess.run([sys.executable, "-m", "console.cli", *args], cwd=ROOT, capture_output=True,
                              text=True, env={**os.environ, **base_env}, timeout=60, check=False)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    said = admin("tenant-create", "--slug", "cuscatlan", "--name", "Envíos Rápidos Cuscatlán")
    assert "its FAQ and policies start from faq_data/cuscatlan.yaml" in said
    said = admin("tenant-create", "--slug", "acme", "--name", "Acme Envíos")
    assert "its FAQ and policies start empty" in said
    made = {r["slug"]: r["n"] for r in rows(
        db_pool, "SELECT t.slug, count(v.id) AS n FROM tenants t LEFT JOIN tenant_faq_versions v ON v.tenant_id = t.id"
                 " WHERE t.slug IN ('cuscatlan', 'acme') GROUP BY t.slug")}
    assert made == {"cuscatlan": 1, "acme": 0}
    stored = rows(db_pool, "SELECT v.entries, v.policies FROM tenant_faq_versions v"
                           " JOIN tenants t ON t.id = v.tenant_id WHERE t.slug = 'cuscatlan'")[0]
    assert (stored["policies"], stored["entries"]) == read_file("cuscatlan").to_json()


def test_timestamps_are_shown_on_the_companys_clock(stack: Stack, db_pool: ConnectionPool) -> None:
    admin = logged_in(stack.app, stack.a.admin.email)
    edit_home(admin, NEW_HOME)
    stored = rows(db_pool, "SELECT created_at FROM tenant_faq_versions WHERE tenant_id = %s ORDER BY version DESC"
                           " LIMIT 1", (stack.a.id,))[0]["created_at"]
    local = stored.astimezone(TUESDAY_10AM.tzinfo).strftime("%d/%m/%Y %H:%M")
    assert local in admin.get("/console/faq").get_data(as_text=True)
    assert isinstance(stored, datetime)


# -- the page in a real browser --------------------------------------------------------------------------


@pytest.mark.browser
def test_the_admin_edits_restores_and_adds_in_chromium(settings: Settings, db_pool: ConnectionPool) -> None:
    from playwright.sync_api import expect, sync_playwright

    a_id = int(rows(db_pool, "SELECT id FROM tenants WHERE slug = %s", (settings.tenant_slug,))[0]["id"])
    make_admin(db_pool, a_id, "admin@primera.sv", "Alicia Admin")
    with served(settings) as (_app, base_url), sync_playwright() as pw:
        browser = launch(pw)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(base_url + "/console/login")
            page.fill("input[name=email]", "admin@primera.sv")
            page.fill("input[name=password]", PASSWORD)
            page.click("button[type=submit]")
            page.click("nav >> text=Preguntas frecuentes")
            expect(page.locator("h1")).to_have_text("Preguntas frecuentes")
            expect(page.locator("article.faq-entry")).to_have_count(15)
            expect(page.locator("tr.faq-version")).to_have_count(1)

            home = page.locator("article.faq-entry[data-entry=entrega_domicilio]")
            home.locator("summary").click()
            home.locator("textarea[name=answer]").fill("")
            home.locator("button[type=submit]", has_text="Guardar cambios").click()
            expect(page.locator(".error")).to_have_text("Escribe la respuesta que recibirá el cliente.")
            home = page.locator("article.faq-entry[data-entry=entrega_domicilio]")
            expect(home.locator("details")).to_have_attribute("open", "")  # the form stays open to fix it
            home.locator("textarea[name=answer]").fill(NEW_HOME)
            home.locator("button[type=submit]", has_text="Guardar cambios").click()
            expect(page.locator(".flash")).to_have_text("Guardado. El asistente ya responde con la versión 2.")
            expect(page.locator("article.faq-entry[data-entry=entrega_domicilio] .faq-answer")).to_have_text(NEW_HOME)
            newest = page.locator("tr.faq-version").first
            expect(newest).to_contain_text("Editó «¿Entregan a domicilio?»")
            expect(newest).to_contain_text("Alicia Admin")

            page.locator("tr.faq-version[data-version='1']").get_by_role("button", name="Restaurar").click()
            expect(page.locator(".flash")).to_have_text(
                "Versión 1 restaurada como versión 3. El asistente ya responde con ella.")
            expect(page.locator("article.faq-entry[data-entry=entrega_domicilio] .faq-answer")).to_contain_text(
                DEMO_HOME)
            expect(page.locator("tr.faq-version")).to_have_count(3)

            new = page.locator("#faq-new")
            new.locator("input[name=question]").fill("¿Tienen parqueo en los puntos?")
            new.locator("textarea[name=answer]").fill("Sí: todos nuestros puntos tienen parqueo gratis 🚗")
            new.locator("input[name=keywords]").fill("parqueo, estacionamiento")
            new.get_by_role("button", name="Agregar pregunta").click()
            expect(page.locator("article.faq-entry")).to_have_count(16)
            expect(page.locator("article.faq-entry").last).to_contain_text("Palabras clave: parqueo, estacionamiento")

            page.fill("#faq-try input[name=probar]", "hay parqueo o estacionamiento?")
            page.get_by_role("button", name="Probar").click()
            expect(page.locator(".faq-preview")).to_contain_text("El asistente respondería con «¿Tienen parqueo")
            expect(page.locator(".faq-bubble")).to_have_text("Sí: todos nuestros puntos tienen parqueo gratis 🚗")

            page.locator("tr.faq-version").first.get_by_role("link", name="Ver").click()
            expect(page.locator("h1")).to_have_text("Versión 4 (la actual)")
            expect(page.locator(".card").first).to_contain_text("Agregó «¿Tienen parqueo en los puntos?»")
            assert not errors, errors
        finally:
            browser.close()
    assert [r["origin"] for r in versions(db_pool, a_id)] == ["file", "console", "restore", "console"]
