"""Test setup: real Redis and PostgreSQL on loopback, started once per run.

Both servers are private throw-away instances on free ports under a temporary
directory (scripts/devservices.py installs them first when missing). The
schema is migrated once; every test starts from empty tables and an empty
Redis database. Nothing here reads ../shared: fixtures are copied into
tests/fixtures.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis
from cryptography.fernet import Fernet
from flask import Flask
from flask.testing import FlaskClient
from psycopg_pool import ConnectionPool

from config import Settings
from core_api_client import CoreClient
from sandbox_core.app import create_sandbox_app
from sandbox_core.server import BackgroundServer
from scripts import devservices
from storage.db import open_pool
from storage.migrate import apply_migrations
from storage.tenants import ensure_configured_tenant
from tests.dialog_support import Say, talk
from tests.fakes.graph_api import DEFAULT_TOKEN as GRAPH_TOKEN
from tests.fakes.graph_api import FakeGraphAPI
from tests.fakes.openai_api import FakeOpenAI
from web.app import create_app

FIXTURES = Path(__file__).parent / "fixtures"

# Fixed test secrets: the Meta app secret and Twilio token are the ones of the published vectors.
TEST_ENV = {
    "ENCARGO_ENV": "test",
    "PHONE_ENCRYPTION_KEY": Fernet.generate_key().decode(),
    "PHONE_HASH_KEY": "test-phone-hash-key",
    "META_APP_SECRET": "test-app-secret",
    "META_VERIFY_TOKEN": "test-verify-token",
    "META_PHONE_NUMBER_ID": "106540352242922",
    "TWILIO_AUTH_TOKEN": "12345",
    "TWILIO_WHATSAPP_NUMBER": "whatsapp:+14155238886",
    # The configured tenant's secret for /internal/events, stored (encrypted) in its row by ensure_configured_tenant.
    "INTERNAL_EVENTS_SECRET": "test-internal-events-secret-0123456789abcdef",
    "WHATSAPP_PROVIDER": "local",
    "LOG_LEVEL": "WARNING",
    # A drain job would wait half a second for more messages at the end of every burst run; tests/test_inbox.py
    # covers the lingering itself.
    "MESSAGE_DRAIN_LINGER_S": "0",
}


@pytest.fixture(scope="session")
def services() -> Iterator[dict[str, str]]:
    devservices.ensure_installed()
    base = Path(tempfile.mkdtemp(prefix="encargo-test-"))
    os.chmod(base, 0o755)  # noqa: S103 - the private PostgreSQL runs as the postgres user when we are root
    redis_srv = devservices.start_redis(base / "redis", devservices.free_port(), persistent=False)
    try:
        pg_srv = devservices.start_postgres(base / "pg", devservices.free_port())
    except Exception:
        redis_srv.stop()
        raise
    try:
        apply_migrations(pg_srv.url)
        yield {"redis_url": redis_srv.url, "database_url": pg_srv.url, "base": str(base),
               "redis_port": str(redis_srv.port), "pg_port": str(pg_srv.port)}
    finally:
        redis_srv.stop()
        pg_srv.stop()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def base_env(services: dict[str, str]) -> dict[str, str]:
    """The environment a process of the system under test gets (web, worker, scripts)."""
    return {**TEST_ENV, "DATABASE_URL": services["database_url"], "REDIS_URL": services["redis_url"],
            "MEDIA_STORE_URL": f"file:{services['base']}/media"}  # issue 17: the files of the session's tests


@pytest.fixture
def settings(base_env: dict[str, str]) -> Settings:
    return Settings.from_env(base_env)


@pytest.fixture(scope="session")
def db_pool(services: dict[str, str]) -> Iterator[ConnectionPool]:
    pool = open_pool(services["database_url"], max_size=10, name="tests")
    pool.wait(timeout=30)
    yield pool
    pool.close()


@pytest.fixture
def redis_conn(services: dict[str, str]) -> Iterator[redis.Redis]:
    conn = redis.Redis.from_url(services["redis_url"])
    yield conn
    conn.close()


def _truncate_all(database_url: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        tables = [
            row[0]
            for row in conn.execute(
                # plans are reference data seeded by a migration (0012), kept like the migrations' own record
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
                " AND tablename NOT IN ('schema_migrations', 'plans')"
            )
        ]
        if tables:
            conn.execute("TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " RESTART IDENTITY CASCADE")


@pytest.fixture(autouse=True)
def clean_state(request: pytest.FixtureRequest) -> Iterator[None]:
    """Empty tables and Redis before each test that uses the real services, then seed the tenant."""
    if "services" not in request.fixturenames and not any(
        name in request.fixturenames for name in ("settings", "db_pool", "redis_conn", "base_env")
    ):
        yield
        return
    services = request.getfixturevalue("services")
    _truncate_all(services["database_url"])
    redis.Redis.from_url(services["redis_url"]).flushdb()
    pool = request.getfixturevalue("db_pool")
    ensure_configured_tenant(pool, request.getfixturevalue("settings"))
    yield


@pytest.fixture
def graph() -> Iterator[FakeGraphAPI]:
    """Meta's Graph API, faked on loopback (tests/fakes/graph_api.py)."""
    fake = FakeGraphAPI().start()
    yield fake
    fake.stop()


@pytest.fixture
def meta_settings(settings: Settings, graph: FakeGraphAPI) -> Settings:
    """Settings that send through the Meta transport to the fake Graph API."""
    return settings.with_overrides(whatsapp_provider="meta", meta_access_token=GRAPH_TOKEN,
                                   meta_graph_base_url=graph.url, simulator_enabled=False)


@pytest.fixture(scope="module")
def core_url() -> Iterator[str]:
    """The demo logistics core (sandbox) on loopback, one per test module so state changes stay local."""
    with BackgroundServer(create_sandbox_app()) as server:
        yield server.url


@pytest.fixture
def core(core_url: str) -> Iterator[CoreClient]:
    with CoreClient(core_url, timeout_s=5, retry_delay_s=0.01) as client:
        yield client


@pytest.fixture
def app(settings: Settings) -> Iterator[Flask]:
    """The real Flask app built from the test module's `settings`."""
    application = create_app(settings)
    yield application
    application.extensions["db_pool"].close()
    application.extensions["redis"].close()


@pytest.fixture
def client(app: Flask) -> Iterator[FlaskClient]:
    """The app through Flask's test client."""
    with app.test_client() as test_client:
        yield test_client


@pytest.fixture
def openai_fake() -> Iterator[FakeOpenAI]:
    """An OpenAI-compatible chat-completions server on loopback, scripted per test (tests/fakes/openai_api.py)."""
    with FakeOpenAI() as fake:
        yield fake


def load_fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def fixture_bytes(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


@pytest.fixture
def say(core_url: str, redis_conn: redis.Redis) -> Iterator[Say]:
    """One message to the dialog (tests/dialog_support.py): real router, dialog and services, sandbox core."""
    yield from talk(core_url, redis_conn)
