"""`make run`'s environment: .run/env, the ports, and what every child process gets.

.run/env is written on the first run (scripts/bootstrap_env.py); the real
environment wins over it. Ports: ENCARGO_WEB_PORT (8000), ENCARGO_CORE_PORT
(8100), ENCARGO_REDIS_PORT (6390), ENCARGO_POSTGRES_PORT (5440). Setting one
also points the matching URL (PUBLIC_BASE_URL, CORE_API_URL, REDIS_URL,
DATABASE_URL) at it, unless that URL is set in the real environment.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from scripts.bootstrap_env import ensure_env_file, merged_environment

ROOT = Path(__file__).resolve().parent.parent
RUN_DIR = ROOT / ".run"
DEMO_DATA = (ROOT / "sandbox_core" / "data" / "core_demo.json", ROOT / "sandbox_core" / "data" / "core_demo2.json")
ENV_FILE = RUN_DIR / "env"
BIN_DIR = Path(sys.executable).parent  # the venv's bin/ when started as .venv/bin/python

START_TIMEOUT_S = 120.0  # until /healthz answers; ENCARGO_START_TIMEOUT overrides


class StartupError(RuntimeError):
    """Something stops `make run` from starting; the message says what to do."""


@dataclass(frozen=True)
class Ports:
    web: int = 8000
    core: int = 8100
    redis: int = 6390
    postgres: int = 5440


PORT_VARS = {
    "web": "ENCARGO_WEB_PORT",
    "core": "ENCARGO_CORE_PORT",
    "redis": "ENCARGO_REDIS_PORT",
    "postgres": "ENCARGO_POSTGRES_PORT",
}

# The URL each port variable points at our own service (used when that port variable is set).
_DERIVED_URLS: dict[str, tuple[str, str]] = {
    "web": ("PUBLIC_BASE_URL", "http://127.0.0.1:{port}"),
    "core": ("CORE_API_URL", "http://127.0.0.1:{port}"),
    "redis": ("REDIS_URL", "redis://127.0.0.1:{port}/0"),
    "postgres": ("DATABASE_URL", "postgresql://encargo@127.0.0.1:{port}/encargo"),
}


def read_ports(env: Mapping[str, str]) -> Ports:
    values: dict[str, int] = {}
    for name, var in PORT_VARS.items():
        raw = env.get(var, "").strip()
        if not raw:
            continue
        if not raw.isdigit() or not 1 <= int(raw) <= 65535:
            raise StartupError(f"{var}={raw!r} is not a port number (1..65535)")
        values[name] = int(raw)
    return Ports(**values)


def process_environment(
    file_values: Mapping[str, str], environ: Mapping[str, str], bindir: Path = BIN_DIR
) -> tuple[dict[str, str], Ports]:
    """The environment every child gets, and the ports: real environment > port variables > .run/env."""
    combined = merged_environment(file_values, environ)
    ports = read_ports(combined)
    # The sandbox core listens where CORE_API_URL points (sandbox_core/server.py reads SANDBOX_CORE_PORT).
    derived: dict[str, str] = {"SANDBOX_CORE_PORT": str(ports.core)}
    for name, var in PORT_VARS.items():
        if combined.get(var, "").strip():
            url_var, pattern = _DERIVED_URLS[name]
            derived[url_var] = pattern.format(port=getattr(ports, name))
    env = {**file_values, **derived, **environ}
    env.setdefault("PYTHONUNBUFFERED", "1")  # children write to a pipe: no block buffering
    env["WEB_BIND"] = f"127.0.0.1:{ports.web}"  # `make run`'s web port (ENCARGO_WEB_PORT), never another address
    # issue 7: the sandbox core pushes its package status events to our /internal/events, signed with our secret.
    if env.get("INTERNAL_EVENTS_SECRET"):
        env.setdefault("SANDBOX_CORE_EVENTS_SECRET", env["INTERNAL_EVENTS_SECRET"])
        web_url = env.get("PUBLIC_BASE_URL") or f"http://127.0.0.1:{ports.web}"
        env.setdefault("SANDBOX_CORE_EVENTS_URL", web_url.rstrip("/") + "/internal/events")
    # issue 15: the sandbox core plays both demo companies, each selected by its own API key.
    if env.get("CORE_API_KEY") and env.get("DEMO2_CORE_API_KEY") and not env.get("SANDBOX_CORE_COMPANIES"):
        env["SANDBOX_CORE_COMPANIES"] = json.dumps(demo_companies(env))
    # The venv's console scripts (gunicorn, rq, encargo-*) for children that start others by name.
    path = env.get("PATH", os.defpath)
    if str(bindir) not in path.split(os.pathsep):
        env["PATH"] = os.pathsep.join([str(bindir), path])
    return env, ports


def demo_companies(env: Mapping[str, str]) -> list[dict[str, str]]:
    """The two demo companies as SANDBOX_CORE_COMPANIES lists them (sandbox_core/companies.py): each its data,
    its API key, the secret its events are signed with and the tenant slug they name."""
    return [
        {"data": env.get("SANDBOX_CORE_DATA") or str(DEMO_DATA[0]), "api_key": env["CORE_API_KEY"],
         "events_secret": env.get("SANDBOX_CORE_EVENTS_SECRET", ""),
         "events_key_id": env.get("TENANT_SLUG") or "demo"},
        {"data": str(DEMO_DATA[1]), "api_key": env["DEMO2_CORE_API_KEY"],
         "events_secret": env.get("DEMO2_EVENTS_SECRET", ""),
         "events_key_id": env.get("DEMO2_TENANT_SLUG") or "cuscatlan"},
    ]


def load_environment() -> tuple[dict[str, str], Ports, list[str]]:
    """Create .run (and .run/env with what is missing); the children's environment, the ports, the names added."""
    RUN_DIR.mkdir(parents=True, exist_ok=True)
    os.chmod(RUN_DIR, 0o755)  # noqa: S103 - PostgreSQL runs as the postgres user when we are root
    file_values, added = ensure_env_file(ENV_FILE)
    env, ports = process_environment(file_values, os.environ)
    return env, ports, added


def start_timeout(env: Mapping[str, str]) -> float:
    raw = env.get("ENCARGO_START_TIMEOUT", "").strip()
    try:
        return float(raw) if raw else START_TIMEOUT_S
    except ValueError:
        raise StartupError(f"ENCARGO_START_TIMEOUT={raw!r} is not a number of seconds") from None
