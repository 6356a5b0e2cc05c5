"""POST /internal/events: signature, replay window, schema errors, idempotency, durable storage (issue 7)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
from flask.testing import FlaskClient
from psycopg_pool import ConnectionPool

from config import Settings
from sandbox_core.app import create_sandbox_app
from sandbox_core.server import BackgroundServer
from storage.crypto import Vault
from storage.tenants import ensure_configured_tenant, set_events_secret
from tests.harness import rows, run_jobs
from tests.notifications_helpers import SECRET, notification_settings, post_event, status_event
from web.app import create_app


@pytest.fixture
def nsettings(settings: Settings, core_url: str) -> Settings:
    return notification_settings(settings, core_url)


@pytest.fixture
def client(nsettings: Settings) -> Iterator[FlaskClient]:
    app = create_app(nsettings)
    with app.test_client() as c:
        yield c


def _core_events(pool: ConnectionPool) -> list[dict[str, object]]:
    return rows(pool, "SELECT event_id, type, tracking_code, status, state FROM core_events ORDER BY id")


def test_a_signed_event_is_stored_queued_and_answered_202(client: FlaskClient, db_pool: ConnectionPool) -> None:
    response = post_event(client, status_event("SV20260105007834", "ARRIVED_AT_DESTINATION", event_id="e-1"))
    assert response.status_code == 202
    assert response.get_json() == {"event_id": "e-1", "status": "accepted"}
    assert _core_events(db_pool) == [{"event_id": "e-1", "type": "package.status_changed",
                                      "tracking_code": "SV20260105007834", "status": "ARRIVED_AT_DESTINATION",
                                      "state": "queued"}]


def test_the_same_event_twice_is_acknowledged_and_notifies_once(
    client: FlaskClient, db_pool: ConnectionPool, nsettings: Settings
) -> None:
    event = status_event("SV20260105007834", "ARRIVED_AT_DESTINATION", event_id="e-dup")
    first, second = post_event(client, event), post_event(client, event)
    assert (first.status_code, second.status_code) == (202, 202)
    assert second.get_json() == {"event_id": "e-dup", "status": "duplicate"}
    run_jobs(nsettings)
    assert len(_core_events(db_pool)) == 1
    assert len(rows(db_pool, "SELECT id FROM notification_log")) == 1
    assert len(rows(db_pool, "SELECT id FROM messages WHERE direction = 'out'")) == 1


@pytest.mark.parametrize(
    ("headers_case", "message"),
    [
        ("wrong_secret", "does not match"),
        ("no_signature", "headers are required"),
        ("stale", "replay refused"),
        ("future", "replay refused"),
        ("tampered", "does not match"),
    ],
)
def test_bad_signatures_and_replays_are_refused_and_nothing_is_stored(
    client: FlaskClient, db_pool: ConnectionPool, headers_case: str, message: str
) -> None:
    event = status_event("SV20260105007834", "ARRIVED_AT_DESTINATION")
    raw = json.dumps(event).encode()
    now = int(time.time())
    if headers_case == "wrong_secret":
        response = post_event(client, raw, secret="another-secret")
    elif headers_case == "no_signature":
        response = post_event(client, raw, signature="")
    elif headers_case == "stale":
        response = post_event(client, raw, timestamp=now - 301)
    elif headers_case == "future":
        response = post_event(client, raw, timestamp=now + 301)
    else:
        from notifications.events import sign

        response = post_event(client, raw.replace(b"ARRIVED", b"RETURNE"),
                              signature=sign(SECRET, str(now), raw), timestamp=now)
    assert response.status_code == 401
    assert message in response.get_json()["message"]
    assert _core_events(db_pool) == []


def test_a_replay_within_five_minutes_is_accepted_once(client: FlaskClient, db_pool: ConnectionPool) -> None:
    event = status_event("SV20260105007834", "ARRIVED_AT_DESTINATION", event_id="e-old")
    assert post_event(client, event, timestamp=int(time.time()) - 290).status_code == 202
    assert post_event(client, event, timestamp=int(time.time()) - 10).get_json()["status"] == "duplicate"
    assert len(_core_events(db_pool)) == 1


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"status": "arrived"}, "status", "does not match"),
        ({"type": "package.lost"}, "type", "is not one of"),
        ({"tracking_code": 12345}, "tracking_code", "is not of type"),
        ({"occurred_at": "yesterday at noon"}, "occurred_at", "ISO 8601"),
        ({"occurred_at": "2026-01-06T09:40:00"}, "occurred_at", "UTC offset"),
        ({"recipient_phone": "+50370000002"}, None, "Additional properties are not allowed"),
    ],
)
def test_an_invalid_event_gets_a_400_saying_what_is_wrong(
    client: FlaskClient, db_pool: ConnectionPool, change: dict[str, object], field: str | None, words: str
) -> None:
    event: dict[str, object] = {**status_event("SV20260105007834", "ARRIVED_AT_DESTINATION"), **change}
    response = post_event(client, {k: v for k, v in event.items() if v is not None})
    assert response.status_code == 400
    body = response.get_json()
    assert body["error"] == "invalid_event"
    assert words in body["message"]
    assert body.get("field") == field
    assert _core_events(db_pool) == []


def test_a_status_event_without_status_and_a_non_json_body_are_refused(client: FlaskClient) -> None:
    event = status_event("SV20260105007834", "ARRIVED_AT_DESTINATION")
    del event["status"]
    response = post_event(client, event)
    assert response.status_code == 400
    assert "'status' is a required property" in response.get_json()["message"]
    response = post_event(client, b"not json")
    assert response.status_code == 400
    assert response.get_json()["message"] == "body must be a JSON object"


def test_without_a_configured_secret_every_event_is_refused(settings: Settings, core_url: str,
                                                            db_pool: ConnectionPool) -> None:
    unconfigured = notification_settings(settings, core_url, internal_events_secret="")
    ensure_configured_tenant(db_pool, unconfigured)  # what encargo-migrate does with this environment
    app = create_app(unconfigured)
    with app.test_client() as c:
        response = post_event(c, status_event("SV20260105007834", "ARRIVED_AT_DESTINATION"))
    assert response.status_code == 401
    assert "INTERNAL_EVENTS_SECRET" in response.get_json()["message"]


@pytest.mark.parametrize("key_id", ["", "demo"])
def test_a_status_change_in_the_sandbox_core_reaches_the_customer(
    settings: Settings, db_pool: ConnectionPool, key_id: str
) -> None:
    """The sandbox core signs its events exactly as /internal/events checks them (make run's demo path),
    naming its tenant in X-Encargo-Key-Id or not."""
    with BackgroundServer(create_sandbox_app()) as plain_core:
        nsettings = notification_settings(settings, plain_core.url)
        with BackgroundServer(create_app(nsettings)) as web:
            sandbox = create_sandbox_app(events_url=f"{web.url}/internal/events", events_secret=SECRET,
                                         events_key_id=key_id)
            with BackgroundServer(sandbox) as core, sandbox.test_client() as control:
                nsettings = nsettings.with_overrides(core_api_url=core.url)
                response = control.post("/sandbox/packages/SV20260106012345/status",
                                        json={"status": "ARRIVED_AT_DESTINATION"})
                assert response.status_code == 200
                assert response.get_json()["event_delivered"] is True
                run_jobs(nsettings)
                logged = control.get("/api/notifications/log").get_json()["notifications"]
    sent = rows(db_pool, "SELECT kind, body, status FROM messages WHERE direction = 'out'")
    assert len(sent) == 1
    assert sent[0]["kind"] == "template"
    assert sent[0]["body"].startswith("¡Hola María! 👋 Tu paquete SV20260106012345 llegó y está listo para retirar "
                                      "en Santa Ana - Punto Principal (Calle Libertad esq. 10ª Av. Norte).")
    assert "Monto a pagar: $0.00 (no pagas nada)" in sent[0]["body"]
    assert [(n["tracking_code"], n["type"], n["recipient_role"], n["mode"]) for n in logged] == [
        ("SV20260106012345", "arrived", "recipient", "template")]


def test_make_run_points_the_sandbox_core_events_at_internal_events() -> None:
    from scripts.bootstrap_env import FIXED_VALUES, missing_values
    from scripts.run_environment import process_environment

    file_values = {**FIXED_VALUES, **missing_values(FIXED_VALUES)}
    env, _ = process_environment(file_values, {})
    assert env["SANDBOX_CORE_EVENTS_URL"] == "http://127.0.0.1:8000/internal/events"
    assert env["SANDBOX_CORE_EVENTS_SECRET"] == env["INTERNAL_EVENTS_SECRET"] != ""
    env, _ = process_environment(file_values, {"ENCARGO_WEB_PORT": "9000"})
    assert env["SANDBOX_CORE_EVENTS_URL"] == "http://127.0.0.1:9000/internal/events"


def test_the_openapi_contract_matches_the_schema_the_endpoint_enforces() -> None:
    from pathlib import Path

    import yaml

    from notifications.events import EVENT_SCHEMA, parse

    spec = yaml.safe_load((Path(__file__).parent.parent / "docs" / "openapi.yaml").read_text(encoding="utf-8"))
    documented = spec["components"]["schemas"]["PackageEvent"]
    assert sorted(documented["properties"]) == sorted(EVENT_SCHEMA["properties"])
    assert documented["required"] == EVENT_SCHEMA["required"]
    examples = spec["paths"]["/internal/events"]["post"]["requestBody"]["content"]["application/json"]["examples"]
    for example in examples.values():
        assert parse(json.dumps(example["value"]).encode()).tracking_code == example["value"]["tracking_code"]


def test_the_sandbox_core_records_a_repeated_report_once() -> None:
    """The bot retries its report until accepted; the core keys it on notification_id."""
    core = create_sandbox_app()
    report = {"tracking_code": "SV20260106012345", "channel": "whatsapp", "type": "arrived",
              "sent_at": "2026-01-06T10:00:00-06:00", "notification_id": "encargo-7", "mode": "template"}
    with core.test_client() as client:
        first = client.post("/api/notifications/log", json=report)
        second = client.post("/api/notifications/log", json=report)
        bad = client.post("/api/notifications/log", json={**report, "mode": 3})
        logged = client.get("/api/notifications/log").get_json()["notifications"]
    assert (first.status_code, second.status_code) == (201, 201)
    assert first.get_json() == second.get_json()
    assert bad.status_code == 400
    assert [(n["notification_id"], n["mode"]) for n in logged] == [("encargo-7", "template")]


# --- issue 12: hostile requests, and each tenant signs its own events ------------------------------


@pytest.mark.parametrize("timestamp", ["²", "١٢٣٤٥٦٧٨٩٠", "9" * 5000, "1e9", "-5", " 1767714000"])
def test_a_timestamp_that_is_not_ascii_unix_seconds_gets_a_400(client: FlaskClient, db_pool: ConnectionPool,
                                                                timestamp: str) -> None:
    response = post_event(client, status_event("SV20260105007834", "ARRIVED_AT_DESTINATION"), timestamp=timestamp)
    assert response.status_code == 400
    assert response.get_json()["error"] == "invalid_header"
    assert "ASCII digits" in response.get_json()["message"]
    assert _core_events(db_pool) == []


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "application/xml", ""])
def test_a_body_that_is_not_declared_json_gets_a_415(client: FlaskClient, db_pool: ConnectionPool,
                                                     content_type: str) -> None:
    response = post_event(client, status_event("SV20260105007834", "ARRIVED_AT_DESTINATION"),
                          content_type=content_type)
    assert response.status_code == 415
    assert response.get_json()["error"] == "unsupported_media_type"
    assert _core_events(db_pool) == []


@pytest.mark.parametrize("body", [
    b"[" * 20_000 + b"]" * 20_000,
    b'{"event_id": "e-deep", "refund": ' + b'{"amount": ' * 40 + b"1" + b"}" * 41,
    b'{"event_id": "e-big", "refund": {"amount": ' + b"9" * 5000 + b"}}",
])
def test_deep_nesting_and_huge_numbers_get_a_400_not_a_500(client: FlaskClient, db_pool: ConnectionPool,
                                                           body: bytes) -> None:
    response = post_event(client, body)
    assert response.status_code == 400
    assert response.get_json()["error"] == "invalid_event"
    assert _core_events(db_pool) == []


@pytest.fixture
def tenant_b(db_pool: ConnectionPool, settings: Settings) -> str:
    """A second company with its own events secret."""
    with db_pool.connection() as conn:
        conn.execute("INSERT INTO tenants (slug, name) VALUES ('otra', 'Otra Encomienda')")
    vault = Vault(settings.phone_encryption_keys, settings.phone_hash_key)
    assert set_events_secret(db_pool, vault, "otra", "secret-of-tenant-b-0123456789abcdef")
    return "secret-of-tenant-b-0123456789abcdef"


def test_each_tenant_signs_its_own_events(client: FlaskClient, db_pool: ConnectionPool, tenant_b: str) -> None:
    event = status_event("SV20260105007834", "ARRIVED_AT_DESTINATION", event_id="e-a")
    # tenant B's secret cannot post for tenant A (the configured tenant), named or not
    assert post_event(client, event, secret=tenant_b).status_code == 401
    assert post_event(client, event, secret=tenant_b, key_id="demo").status_code == 401
    # nor can A's secret post as B
    assert post_event(client, event, key_id="otra").status_code == 401
    assert _core_events(db_pool) == []
    # each with its own secret: stored for its own tenant
    assert post_event(client, event).get_json() == {"event_id": "e-a", "status": "accepted"}
    assert post_event(client, event, secret=tenant_b, key_id="otra").get_json() == {"event_id": "e-a",
                                                                                     "status": "accepted"}
    stored = rows(db_pool, "SELECT t.slug FROM core_events e JOIN tenants t ON t.id = e.tenant_id ORDER BY e.id")
    assert [r["slug"] for r in stored] == ["demo", "otra"]


def test_an_event_naming_another_tenant_is_refused(client: FlaskClient, db_pool: ConnectionPool,
                                                   tenant_b: str) -> None:
    naming_a = status_event("SV20260105007834", "ARRIVED_AT_DESTINATION", tenant="demo")
    response = post_event(client, naming_a, secret=tenant_b, key_id="otra")
    assert response.status_code == 403
    assert response.get_json()["error"] == "forbidden"
    assert response.get_json()["field"] == "tenant"
    naming_nobody = status_event("SV20260105007834", "ARRIVED_AT_DESTINATION", tenant="nobody")
    assert post_event(client, naming_nobody).status_code == 403
    assert _core_events(db_pool) == []
    naming_itself = status_event("SV20260105007834", "ARRIVED_AT_DESTINATION", tenant="otra", event_id="e-own")
    assert post_event(client, naming_itself, secret=tenant_b, key_id="otra").status_code == 202
    assert post_event(client, status_event("SV20260105007834", "ARRIVED_AT_DESTINATION", tenant="demo")
                      ).status_code == 202


def test_an_unknown_key_id_is_refused(client: FlaskClient, db_pool: ConnectionPool) -> None:
    for key_id in ("nadie", "x" * 500):
        response = post_event(client, status_event("SV20260105007834", "ARRIVED_AT_DESTINATION"), key_id=key_id)
        assert response.status_code == 401
        assert "unknown key id" in response.get_json()["message"]
    assert _core_events(db_pool) == []


def test_the_events_secret_is_encrypted_at_rest(db_pool: ConnectionPool) -> None:
    stored = rows(db_pool, "SELECT events_secret_encrypted FROM tenants WHERE slug = 'demo'")[0]
    assert stored["events_secret_encrypted"]
    assert SECRET not in stored["events_secret_encrypted"]
