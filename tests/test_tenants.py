"""Tenants are data (issue 15): created with `encargo-admin`, routed by their own numbers, suspended and resumed
without a restart, and their secrets re-encrypted when the key rotates.

Everything runs for real: the CLI as a subprocess, the Flask app, a worker process (its tenant cache is the one
under test) or a burst worker, PostgreSQL and Redis; Meta's Graph API is the fake on loopback.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
from cryptography.fernet import Fernet
from flask.testing import FlaskClient
from psycopg_pool import ConnectionPool

from config import Settings
from storage import secret_rotation, tenant_admin, tenant_changes, webhook_events
from storage.crypto import DecryptionError, Vault
from storage.tenants import TenantError, ensure_configured_tenant, events_key
from tests.fakes.graph_api import FakeGraphAPI
from tests.harness import (
    ROOT,
    post_meta,
    post_twilio,
    rows,
    run_jobs,
    start_worker,
    stop,
    text_payload,
    wait_for,
    worker_env,
)
from tests.notifications_helpers import post_event, status_event
from web.app import create_app

ACME_NUMBER = "222333444555"  # the second company's Meta phone_number_id
ACME_EVENTS_SECRET = "acme-events-secret-0123456789abcdef-xyz"


def admin(base_env: dict[str, str], *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`python -m console.cli ...` as the operator runs it (encargo-admin)."""
    return subprocess.run([sys.executable, "-m", "console.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, **base_env, **env}, timeout=60, check=False)


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def said(graph: FakeGraphAPI, phone: str) -> str:
    """The text bodies a customer got."""
    return "\n".join(m["text"]["body"] for m in graph.messages_to(phone) if m.get("type") == "text")


def events(pool: ConnectionPool) -> list[dict[str, Any]]:
    return rows(pool, "SELECT e.status, e.error, t.slug FROM webhook_events e LEFT JOIN tenants t"
                      " ON t.id = e.tenant_id ORDER BY e.id")


@pytest.fixture
def client(meta_settings: Settings) -> Iterator[FlaskClient]:
    with create_app(meta_settings).test_client() as c:
        yield c


def test_a_tenant_created_with_the_cli_answers_its_number_suspends_and_resumes_without_a_restart(
    client: FlaskClient, base_env: dict[str, str], graph: FakeGraphAPI, db_pool: ConnectionPool, core_url: str,
) -> None:
    worker = start_worker(worker_env(base_env, graph, CORE_API_URL=core_url))
    try:
        # Before the tenant exists its number is nobody's: acknowledged, stored unroutable, not answered.
        # The running worker now holds "no tenant" for this number in its cache.
        assert post_meta(client, text_payload("50370001001", "Hola", "wamid.T1", phone_number_id=ACME_NUMBER)
                         ).status_code == 200
        wait_for(lambda: events(db_pool)[-1]["status"] == "unroutable", 30, "the first event to be finished")
        assert events(db_pool) == [{"status": "unroutable", "error": "no tenant for the receiving number",
                                    "slug": None}]

        ok(admin(base_env, "tenant-create", "--slug", "acme", "--name", "Acme Envíos", "--bot-name", "Eva"))
        graph.add_number(ACME_NUMBER, "acme-meta-access-token")  # Meta knows only Acme's own token for its number
        ok(admin(base_env, "channel-add", "--slug", "acme", "--provider", "meta", "--number", ACME_NUMBER,
                 "--waba-id", "100200300", "--secret", ENCARGO_CHANNEL_SECRET="acme-meta-access-token"))
        time.sleep(tenant_changes.CHECK_INTERVAL_S)  # the bound: a worker reads the version once a second

        assert post_meta(client, text_payload("50370001001", "Hola", "wamid.T2", phone_number_id=ACME_NUMBER)
                         ).status_code == 200
        wait_for(lambda: graph.messages_to("+50370001001"), 30, "the new tenant's answer")
        assert "Soy Eva, asistente virtual de *Acme Envíos*." in said(graph, "+50370001001")  # its bot's name
        wait_for(lambda: events(db_pool)[-1]["status"] in webhook_events.FINISHED, 30, "the event to be finished")
        acme = rows(db_pool, "SELECT id FROM tenants WHERE slug = 'acme'")[0]["id"]
        assert events(db_pool)[-1] == {"status": "processed", "error": None, "slug": "acme"}
        for table in ("contacts", "conversations", "messages"):
            assert {r["tenant_id"] for r in rows(db_pool, f"SELECT tenant_id FROM {table}")} == {acme}, table  # noqa: S608

        ok(admin(base_env, "tenant-suspend", "--slug", "acme"))
        time.sleep(tenant_changes.CHECK_INTERVAL_S)
        answered = len(graph.messages_to("+50370001001"))
        assert post_meta(client, text_payload("50370001001", "¿Dónde está mi paquete?", "wamid.T3",
                                              phone_number_id=ACME_NUMBER)).status_code == 200
        wait_for(lambda: events(db_pool)[-1]["status"] in webhook_events.FINISHED, 30, "the suspended tenant's event")
        assert events(db_pool)[-1] == {"status": "unroutable", "error": "tenant suspended", "slug": "acme"}
        assert len(graph.messages_to("+50370001001")) == answered

        ok(admin(base_env, "tenant-resume", "--slug", "acme"))
        time.sleep(tenant_changes.CHECK_INTERVAL_S)
        assert post_meta(client, text_payload("50370001001", "Hola otra vez", "wamid.T4",
                                              phone_number_id=ACME_NUMBER)).status_code == 200
        wait_for(lambda: len(graph.messages_to("+50370001001")) > answered, 30, "the answer after resuming")
        wait_for(lambda: events(db_pool)[-1]["status"] in webhook_events.FINISHED, 30, "the event to be finished")
        assert events(db_pool)[-1] == {"status": "processed", "error": None, "slug": "acme"}
    finally:
        stop(worker)


def test_each_number_routes_to_its_own_tenant_on_both_providers(
    client: FlaskClient, meta_settings: Settings, db_pool: ConnectionPool, base_env: dict[str, str],
    graph: FakeGraphAPI,
) -> None:
    ok(admin(base_env, "tenant-create", "--slug", "acme", "--name", "Acme Envíos", "--greeting",
             "Bienvenido a Acme: dime tu código y te digo dónde va."))
    ok(admin(base_env, "channel-add", "--slug", "acme", "--provider", "meta", "--number", ACME_NUMBER))
    ok(admin(base_env, "channel-add", "--slug", "acme", "--provider", "twilio", "--number", "whatsapp:+15005550006"))
    post_meta(client, text_payload("50370002001", "Hola", "wamid.A"))  # the configured tenant's number
    post_meta(client, text_payload("50370002002", "Hola", "wamid.B", phone_number_id=ACME_NUMBER))
    twilio = {"MessageSid": "SM" + "1" * 32, "AccountSid": "AC" + "0" * 32, "From": "whatsapp:+50370002003",
              "To": "whatsapp:+15005550006", "Body": "Hola", "NumMedia": "0", "ProfileName": "Cliente"}
    assert post_twilio(client, twilio).status_code == 200
    post_meta(client, text_payload("50370002004", "Hola", "wamid.C", phone_number_id="999000999"))
    run_jobs(meta_settings)
    by_event = rows(db_pool, """
        SELECT e.event_id, e.status, e.error, t.slug,
               (SELECT array_agg(DISTINCT m.tenant_id) FROM messages m WHERE m.webhook_event_id = e.id) AS rows_of
        FROM webhook_events e LEFT JOIN tenants t ON t.id = e.tenant_id ORDER BY e.id""")
    ids = {r["slug"]: r["id"] for r in rows(db_pool, "SELECT id, slug FROM tenants")}
    assert [(r["event_id"], r["status"], r["error"], r["slug"], r["rows_of"]) for r in by_event] == [
        ("wamid.A", "processed", None, "demo", [ids["demo"]]),
        ("wamid.B", "processed", None, "acme", [ids["acme"]]),
        (twilio["MessageSid"], "processed", None, "acme", [ids["acme"]]),
        ("wamid.C", "unroutable", "no tenant for the receiving number", None, None),
    ]
    # each company greets in its own words
    assert "Soy el asistente virtual de *Transportes Express El Salvador*." in said(graph, "+50370002001")
    assert "👋 Bienvenido a Acme: dime tu código y te digo dónde va." in said(graph, "+50370002002")
    assert "Transportes Express" not in said(graph, "+50370002002")


def test_a_suspended_tenants_core_events_are_refused_until_it_resumes(
    meta_settings: Settings, db_pool: ConnectionPool, base_env: dict[str, str],
) -> None:
    ok(admin(base_env, "tenant-create", "--slug", "acme", "--name", "Acme Envíos", "--events-secret",
             ENCARGO_EVENTS_SECRET=ACME_EVENTS_SECRET))
    ok(admin(base_env, "tenant-suspend", "--slug", "acme"))
    event = status_event("SV20260105007834", "ARRIVED_AT_DESTINATION", event_id="acme-1")
    with create_app(meta_settings).test_client() as client:
        refused = post_event(client, event, secret=ACME_EVENTS_SECRET, key_id="acme")
        assert refused.status_code == 403
        assert refused.get_json()["error"] == "tenant_suspended"
        # a wrong signature still reads 401: who is suspended is told only to the tenant's own key
        assert post_event(client, event, secret="x" * 40, key_id="acme").status_code == 401
        assert rows(db_pool, "SELECT id FROM core_events") == []
        ok(admin(base_env, "tenant-resume", "--slug", "acme"))
        assert post_event(client, event, secret=ACME_EVENTS_SECRET, key_id="acme").status_code == 202
    assert [r["slug"] for r in rows(db_pool, "SELECT t.slug FROM core_events e JOIN tenants t"
                                             " ON t.id = e.tenant_id")] == ["acme"]
    # accepted, then the tenant is suspended before a worker gets to it: dropped, nobody is notified
    ok(admin(base_env, "tenant-suspend", "--slug", "acme"))
    run_jobs(meta_settings)
    assert rows(db_pool, "SELECT state, error FROM core_events") == [{"state": "failed", "error": "tenant suspended"}]
    assert rows(db_pool, "SELECT id FROM notification_log") == []


def test_the_cli_takes_secrets_from_the_environment_and_never_prints_them(
    db_pool: ConnectionPool, base_env: dict[str, str], settings: Settings,
) -> None:
    ok(admin(base_env, "tenant-create", "--slug", "acme", "--name", "Acme Envíos", "--core-url",
             "https://core.acme.example", "--core-api-key", ENCARGO_CORE_API_KEY="acme-core-key-123"))
    ok(admin(base_env, "channel-add", "--slug", "acme", "--provider", "meta", "--number", ACME_NUMBER, "--secret",
             ENCARGO_CHANNEL_SECRET="acme-meta-access-token"))
    # no secret in the environment and no terminal: refused, nothing half-done
    missing = admin(base_env, "channel-add", "--slug", "acme", "--provider", "meta", "--number", "1", "--secret")
    assert missing.returncode == 1
    assert "ENCARGO_CHANNEL_SECRET" in missing.stdout
    taken = admin(base_env, "channel-add", "--slug", "demo", "--provider", "meta", "--number", ACME_NUMBER)
    assert (taken.returncode, "already a channel" in taken.stdout) == (1, True)
    assert admin(base_env, "tenant-create", "--slug", "acme", "--name", "Otra").returncode == 1
    assert admin(base_env, "tenant-update", "--slug", "nadie", "--name", "X").returncode == 1
    assert admin(base_env, "tenant-update", "--slug", "acme", "--timezone", "Mars/Olympus").returncode == 1

    listing = ok(admin(base_env, "tenant-list"))
    assert "acme  active  'Acme Envíos'" in listing
    assert f"meta {ACME_NUMBER}  secret set, not verified" in listing
    assert "meta 106540352242922" in listing  # the configured tenant's channel, from META_PHONE_NUMBER_ID
    assert "acme-core-key-123" not in listing and "acme-meta-access-token" not in listing
    stored = json.dumps(rows(db_pool, "SELECT * FROM tenants"), default=str) + json.dumps(
        rows(db_pool, "SELECT * FROM tenant_channels"), default=str)
    assert "acme-core-key-123" not in stored and "acme-meta-access-token" not in stored
    vault = Vault(settings.phone_encryption_keys, settings.phone_hash_key)
    assert tenant_admin.channel_secret(db_pool, vault, "meta", ACME_NUMBER) == "acme-meta-access-token"

    ok(admin(base_env, "tenant-update", "--slug", "acme", "--greeting", "¡Hola! Soy Eva.", "--bot-name", "Eva"))
    acme = tenant_admin.list_tenants(db_pool)[0]
    assert (acme.tenant.slug, acme.tenant.bot_name, acme.tenant.greeting, acme.core_api_url,
            acme.has_core_api_key) == ("acme", "Eva", "¡Hola! Soy Eva.", "https://core.acme.example", True)
    ok(admin(base_env, "channel-remove", "--slug", "acme", "--provider", "meta", "--number", ACME_NUMBER))
    assert tenant_admin.list_tenants(db_pool)[0].channels == []


def test_the_configured_tenant_comes_from_the_old_variables(db_pool: ConnectionPool, settings: Settings) -> None:
    configured = settings.with_overrides(tenant_name="Encomiendas Uno", meta_access_token="env-meta-token",
                                         core_api_key="env-core-key")
    tenant_id = ensure_configured_tenant(db_pool, configured)
    vault = Vault(settings.phone_encryption_keys, settings.phone_hash_key)
    [demo] = [t for t in tenant_admin.list_tenants(db_pool) if t.tenant.id == tenant_id]
    assert (demo.tenant.slug, demo.tenant.name, demo.tenant.status) == ("demo", "Encomiendas Uno", "active")
    assert [(c.provider, c.number) for c in demo.channels] == [("meta", "106540352242922"),
                                                               ("twilio", "+14155238886")]
    assert tenant_admin.channel_secret(db_pool, vault, "meta", "106540352242922") == "env-meta-token"
    assert tenant_admin.channel_secret(db_pool, vault, "twilio", "whatsapp:+14155238886") == "12345"
    key = events_key(db_pool, vault, "demo")
    assert key is not None and key.secret == settings.internal_events_secret
    # a suspended configured tenant stays suspended across restarts (start-up does not resume it)
    tenant_admin.set_status(db_pool, None, "demo", "suspended")
    ensure_configured_tenant(db_pool, configured)
    assert tenant_admin.list_tenants(db_pool)[0].tenant.status == "suspended"
    # the configured number taken by another tenant: start-up says so instead of stealing it
    tenant_admin.remove_channel(db_pool, None, "demo", provider="meta", number="106540352242922")
    tenant_admin.create_tenant(db_pool, vault, None, slug="acme", name="Acme")
    tenant_admin.add_channel(db_pool, vault, None, "acme", provider="meta", number="106540352242922")
    with pytest.raises(TenantError, match="belongs to another tenant"):
        ensure_configured_tenant(db_pool, configured)


def test_rotating_the_key_keeps_everything_readable_after_the_old_key_is_removed(
    client: FlaskClient, meta_settings: Settings, db_pool: ConnectionPool, base_env: dict[str, str],
) -> None:
    old_key = base_env["PHONE_ENCRYPTION_KEY"]
    new_key = Fernet.generate_key().decode()
    # Rows sealed with the old key: the configured tenant (events secret, channel secrets), a tenant with every
    # secret, a customer's phone and a webhook event.
    ok(admin(base_env, "tenant-create", "--slug", "acme", "--name", "Acme", "--core-api-key", "--events-secret",
             ENCARGO_CORE_API_KEY="acme-core-key", ENCARGO_EVENTS_SECRET=ACME_EVENTS_SECRET))
    ok(admin(base_env, "channel-add", "--slug", "acme", "--provider", "meta", "--number", ACME_NUMBER, "--secret",
             ENCARGO_CHANNEL_SECRET="acme-meta-access-token"))
    post_meta(client, text_payload("50370003001", "Hola", "wamid.R1", phone_number_id=ACME_NUMBER))
    run_jobs(meta_settings)
    new_only = Vault((new_key,), meta_settings.phone_hash_key)
    sealed_before = _all_tokens(db_pool)
    assert len(sealed_before) >= 6
    with pytest.raises(DecryptionError):
        new_only.decrypt(sealed_before[0][2])

    out = ok(admin(base_env, "rotate-secrets", PHONE_ENCRYPTION_KEY=f"{new_key},{old_key}"))
    assert "tenant_channels.secret_encrypted: 2 re-encrypted" in out
    assert "contacts.phone_encrypted: 1 re-encrypted" in out

    # The old key is gone: every token reads with the new key alone, through the code that reads each of them.
    for table, column, token in _all_tokens(db_pool):
        assert new_only.decrypt(token), f"{table}.{column}"
    assert tenant_admin.channel_secret(db_pool, new_only, "meta", ACME_NUMBER) == "acme-meta-access-token"
    key = events_key(db_pool, new_only, "acme")
    assert key is not None and key.secret == ACME_EVENTS_SECRET
    stored = rows(db_pool, "SELECT payload_encrypted FROM webhook_events")[0]["payload_encrypted"]
    assert webhook_events.unseal(new_only, stored).message_id == "wamid.R1"
    # and the system keeps working with the new key only
    rotated = {**base_env, "PHONE_ENCRYPTION_KEY": new_key}
    ok(admin(rotated, "tenant-list"))
    settings_new = meta_settings.with_overrides(phone_encryption_keys=(new_key,))
    with create_app(settings_new).test_client() as rotated_client:
        post_meta(rotated_client, text_payload("50370003001", "Gracias", "wamid.R2", phone_number_id=ACME_NUMBER))
    run_jobs(settings_new)
    assert [r["status"] for r in rows(db_pool, "SELECT status FROM webhook_events ORDER BY id")] == [
        "processed", "processed"]
    assert len(rows(db_pool, "SELECT id FROM contacts")) == 1  # found again by its phone, decrypted with the new key


def _all_tokens(pool: ConnectionPool) -> list[tuple[str, str, str]]:
    found = []
    for table, column in secret_rotation.ENCRYPTED_COLUMNS:
        for row in rows(pool, f"SELECT {column} AS token FROM {table} WHERE {column} IS NOT NULL"):  # noqa: S608
            found.append((table, column, row["token"]))
    return found
