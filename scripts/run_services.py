"""`make run`'s services: a private Redis and PostgreSQL (data under .run/), migrations and the demo agent.

Redis and PostgreSQL are installed and started through scripts/devservices.py;
as root, when the postgres user cannot reach .run (a clone under /root),
PostgreSQL's data lives under FALLBACK_PG_BASE and .run/postgres links to it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from scripts import devservices
from scripts.run_children import Console, StopFlag, run_step
from scripts.run_commands import entry_point_spec
from scripts.run_environment import RUN_DIR, Ports, StartupError
from scripts.run_record import PidRecord
from worker.pool import describe_exit

# PostgreSQL's data when we are root and the postgres user cannot reach .run (a clone under /root).
FALLBACK_PG_BASE = Path("/var/lib/encargo")


def _traversable(path: Path) -> bool:
    resolved = path.resolve()
    return all(p.stat().st_mode & 0o001 for p in (resolved, *resolved.parents))


def postgres_data_dir(run_dir: Path = RUN_DIR, console: Console | None = None) -> Path:
    """.run/postgres, or (as root, when the postgres user cannot reach .run, e.g. under /root)
    a directory under FALLBACK_PG_BASE that .run/postgres links to."""
    link = run_dir / "postgres"
    if link.is_symlink():
        return link.resolve()
    if os.geteuid() != 0 or link.exists() or _traversable(run_dir):
        return link
    digest = hashlib.sha256(str(run_dir.resolve()).encode()).hexdigest()[:12]
    target = FALLBACK_PG_BASE / f"{digest}-postgres"
    target.mkdir(parents=True, exist_ok=True)
    os.chmod(target.parent, 0o755)  # noqa: S103 - the postgres user must traverse it
    link.symlink_to(target)
    if console:
        console.line("run", f"the postgres user cannot reach {run_dir}; PostgreSQL data is in {target}")
    return target


def postmaster_pid(data_dir: Path) -> int | None:
    try:
        first = (data_dir / "pgdata" / "postmaster.pid").read_text().splitlines()[0]
        return int(first)
    except (OSError, ValueError, IndexError):
        return None


def _prime_sudo() -> None:
    """As a sudo user with missing packages, ask for the password now (devservices uses `sudo -n`)."""
    if os.geteuid() == 0 or not shutil.which("sudo") or not sys.stdin.isatty():
        return
    if shutil.which("redis-server") and devservices.postgres_bindir() is not None:
        return
    print("run: redis-server/PostgreSQL are missing; sudo may ask for your password to install them")
    subprocess.run(["sudo", "-v"], check=False)


def ensure_services_installed() -> None:
    """redis-server and PostgreSQL installed (raises devservices.ServiceError when they cannot be); Tesseract too
    when it can be (optional: without it photo OCR is off, and the worker says so when it starts)."""
    _prime_sudo()
    devservices.ensure_installed()
    devservices.ensure_ocr()


def start_services(
    ports: Ports, console: Console, stop: StopFlag, record: PidRecord, services: list[devservices.RunningService]
) -> None:
    """Redis, then PostgreSQL; each is recorded and appended to `services` as soon as it runs, so that
    the caller stops what did start also when this raises (Interrupted, devservices.ServiceError)."""
    stop.check()
    console.line("run", f"starting Redis on 127.0.0.1:{ports.redis} (data in .run/redis)")
    redis_srv = devservices.start_redis(RUN_DIR / "redis", ports.redis, persistent=True)
    services.append(redis_srv)
    record.add("redis", redis_srv.process.pid, "redis-server")
    stop.check()
    pg_dir = postgres_data_dir(RUN_DIR, console)
    console.line("run", f"starting PostgreSQL on 127.0.0.1:{ports.postgres} (data in .run/postgres)")
    pg_srv = devservices.start_postgres(pg_dir, ports.postgres)
    services.append(pg_srv)
    record.add("postgres", postmaster_pid(pg_dir) or pg_srv.process.pid, "postgres")


def prepare_database(env: Mapping[str, str], console: Console, stop: StopFlag) -> None:
    """Apply the migrations (StartupError when they fail), then create the support console's demo agent, the
    demo operator and the second demo company."""
    stop.check()
    migrate = entry_point_spec("migrate", "encargo-migrate")
    status = run_step("migrate", migrate.command, env, console, stop)
    if status != 0:
        raise StartupError(f"migrations failed ({describe_exit(status)})")
    # issue 6: a demo agent for the support console (prints how to log in)
    run_step("console", [sys.executable, "-m", "console.cli", "demo-agent"], env, console, stop)
    # issue 15: a demo operator for the operator's area (/operator)
    run_step("operator", [sys.executable, "-m", "console.cli", "demo-operator"], env, console, stop)
    # issue 15: the second demo company, with its own number, core key and events secret (scripts/run_tenants.py)
    run_step("tenants", [sys.executable, "-m", "scripts.run_tenants"], env, console, stop)


def stop_services(services: list[devservices.RunningService], console: Console) -> None:
    """PostgreSQL, then Redis (the reverse of the start order)."""
    for service in reversed(services):
        console.line("run", f"stopping {service.name}")
        service.stop()
