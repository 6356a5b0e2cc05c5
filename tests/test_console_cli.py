"""`encargo-admin` (console/cli.py) as an operator runs it, and the live event stream's wire format."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import redis
from psycopg_pool import ConnectionPool

from handoff import agents, live
from tests.harness import rows

ROOT = Path(__file__).resolve().parent.parent


def admin(base_env: dict[str, str], *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "console.cli", *args], cwd=ROOT, env={**base_env, **extra},
                          capture_output=True, text=True, timeout=60, check=False)


def test_create_the_first_admin(base_env: dict[str, str], db_pool: ConnectionPool) -> None:
    done = admin(base_env, "create-agent", "--email", "Ana@Empresa.sv", "--name", "Ana Martínez",
                 ENCARGO_AGENT_PASSWORD="una clave larga de admin")
    assert done.returncode == 0, done.stderr
    assert "agent ana@empresa.sv (admin) created" in done.stdout
    found = rows(db_pool, "SELECT name, email, role, password_hash FROM agents")
    assert [(a["name"], a["email"], a["role"]) for a in found] == [("Ana Martínez", "ana@empresa.sv", "admin")]
    assert found[0]["password_hash"].startswith("scrypt:")
    assert "una clave larga de admin" not in found[0]["password_hash"]
    with db_pool.connection() as conn:
        assert agents.authenticate(conn, "ana@empresa.sv", "una clave larga de admin") is not None
        assert agents.authenticate(conn, "ana@empresa.sv", "otra clave cualquiera") is None

    again = admin(base_env, "create-agent", "--email", "ana@empresa.sv", "--name", "Ana",
                  ENCARGO_AGENT_PASSWORD="una clave larga de admin")
    assert again.returncode == 1 and "Ya existe un agente con el correo ana@empresa.sv" in again.stdout
    short = admin(base_env, "create-agent", "--email", "b@empresa.sv", "--name", "B", ENCARGO_AGENT_PASSWORD="corta")
    assert short.returncode == 1 and "al menos 10 caracteres" in short.stdout
    no_password = admin(base_env, "create-agent", "--email", "c@empresa.sv", "--name", "C")
    assert no_password.returncode == 1 and "ENCARGO_AGENT_PASSWORD" in no_password.stdout


def test_demo_agent_for_make_run_is_created_once(base_env: dict[str, str], db_pool: ConnectionPool) -> None:
    env = {"CONSOLE_DEMO_PASSWORD": "demo-password-123", "PUBLIC_BASE_URL": "http://127.0.0.1:8000"}
    first = admin(base_env, "demo-agent", **env)
    assert first.returncode == 0, first.stderr
    assert "log in at http://127.0.0.1:8000/console as soporte@demo.encargo / demo-password-123" in first.stdout
    assert admin(base_env, "demo-agent", **env).returncode == 0
    assert rows(db_pool, "SELECT email, role FROM agents") == [{"email": "soporte@demo.encargo", "role": "admin"}]
    titles = [r["title"] for r in rows(db_pool, "SELECT title FROM canned_answers ORDER BY title")]
    assert titles == ["Buscando paquete", "Despedida", "Saludo"]

    link = admin(base_env, "reset-link", "--email", "soporte@demo.encargo", **env)
    assert link.returncode == 0 and link.stdout.startswith("http://127.0.0.1:8000/console/password/reset/")
    token = link.stdout.strip().rsplit("/", 1)[1]
    with db_pool.connection() as conn:
        assert agents.reset_is_valid(conn, token)


def test_live_events_reach_every_subscribed_stream(redis_conn: redis.Redis) -> None:
    received: list[str] = []

    def listen() -> None:
        for chunk in live.stream(redis_conn, 7, heartbeat_s=60, max_s=3):
            received.append(chunk)
            if chunk.startswith("event: escalation"):
                return

    listener = threading.Thread(target=listen)
    listener.start()
    deadline = time.monotonic() + 3
    while not received and time.monotonic() < deadline:
        time.sleep(0.05)
    live.publish(redis_conn, 8, "escalation", case_id=99)  # another tenant: not streamed here
    live.publish(redis_conn, 7, "escalation", case_id=5, priority="high")
    listener.join(timeout=5)
    assert received[0].startswith("retry: 2000")
    assert received[1:] == ['event: escalation\ndata: {"type":"escalation","case_id":5,"priority":"high"}\n\n']
