"""The processes under test: private services, gunicorn, workers, the sandbox core, and their environment.

- `Stack` starts private Redis and PostgreSQL in a temporary directory, migrates,
  seeds the tenant (or N tenants, each with its own Meta number: `seed_tenants`), starts
  the processes under test (gunicorn, `worker.main`, the sandbox core, any other command)
  and stops everything it started in `close()`; use it as a context manager.
- `bench_env` is the environment of a process under test (production-like, Meta provider);
  the caller's configuration variables (`_CONFIG_VARS`) do not leak into it.
- `stop_process` stops a process and its process group; `http_get_status` is a loopback GET.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.common import APP_SECRET, GRAPH_TOKEN, PHONE_NUMBER_ID, ROOT, log
from config import Settings, env_name
from web.server import gunicorn_command

QUEUE_NAME = "encargo"

# Variables of config.Settings (and gunicorn's, and the sandbox core's) that the caller's environment (e.g.
# .run/env under `make bench`) must not leak into the processes under test: the benchmark sets its own.
_CONFIG_VARS = frozenset({env_name(field) for field in Settings.model_fields}) | {
    "GUNICORN_CMD_ARGS", "WEB_CONCURRENCY", "SANDBOX_CORE_PORT", "SANDBOX_CORE_HOST", "SANDBOX_CORE_DATA",
    "SANDBOX_CORE_EVENTS_URL", "SANDBOX_CORE_EVENTS_SECRET",
}


def bench_env(redis_url: str, database_url: str, **extra: str) -> dict[str, str]:
    """The environment of a process under test: production-like, Meta provider, warnings only."""
    from cryptography.fernet import Fernet

    env = {k: v for k, v in os.environ.items() if k not in _CONFIG_VARS}
    env.update({
        "ENCARGO_ENV": "production",  # no simulator, as deployed
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "PHONE_ENCRYPTION_KEY": Fernet.generate_key().decode(),
        "PHONE_HASH_KEY": "bench-phone-hash-key",
        "WHATSAPP_PROVIDER": "meta",
        "META_APP_SECRET": APP_SECRET,
        "META_VERIFY_TOKEN": "bench-verify-token",
        "META_ACCESS_TOKEN": GRAPH_TOKEN,
        "META_PHONE_NUMBER_ID": PHONE_NUMBER_ID,
        # ingest runs without workers: nothing is sent, and a closed port makes sure of it
        "META_GRAPH_BASE_URL": "http://127.0.0.1:9",
        "META_THROUGHPUT_MPS": "1000",
        "CORE_API_URL": "http://127.0.0.1:9",  # the pipeline benchmark starts the sandbox core and sets it
        "LOG_LEVEL": "WARNING",
        "CONSOLE_SESSION_SECRET": "bench-console-session-secret-0123456789abcdef",
        "INTERNAL_EVENTS_SECRET": "bench-internal-events-secret-0123456789abcdef",
        "PYTHONUNBUFFERED": "1",
    })
    env.update(extra)
    return env


def stop_process(proc: subprocess.Popen[bytes] | None, name: str, timeout: float = 20.0) -> None:
    """SIGTERM, wait, then SIGKILL the process group this benchmark created for it (by its id)."""
    if proc is None:
        return
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            log(f"{name} did not stop within {timeout:.0f}s; killing its process group")
    # children (gunicorn workers, worker processes) left behind by a master that died: same session
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)


def _tail(path: Path, chars: int = 3000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return ""


def http_get_status(port: int, path: str, timeout: float = 2.0) -> int:
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        return conn.getresponse().status
    finally:
        conn.close()


def tenant_numbers(count: int) -> list[str]:
    """The Meta phone_number_ids of the benchmark's `count` tenants: the configured PHONE_NUMBER_ID, then one
    made up per extra tenant (`Stack.seed_tenants` gives them out in this order)."""
    return [PHONE_NUMBER_ID, *(f"1099{i:011d}" for i in range(1, count))]


def _terminate(signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


class Stack:
    """Everything one benchmark run starts; `close()` stops it all (use `with Stack() as stack:`)."""

    def __init__(self, keep: bool = False) -> None:
        self.keep = keep
        self.base = Path(tempfile.mkdtemp(prefix="encargo-bench-"))
        os.chmod(self.base, 0o755)  # noqa: S103 - the private PostgreSQL runs as the postgres user when root
        self._services: list[Any] = []
        self._procs: list[tuple[str, subprocess.Popen[bytes]]] = []
        self._closers: list[Callable[[], None]] = []
        self.redis_url = ""
        self.database_url = ""
        self.pids: dict[str, int] = {}

    def __enter__(self) -> Stack:
        # `kill <benchmark>` (SIGTERM) unwinds like Ctrl-C, so close() stops everything the run started.
        signal.signal(signal.SIGTERM, _terminate)
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # services
    def start_services(self) -> None:
        from scripts import devservices
        from storage.migrate import apply_migrations

        devservices.ensure_installed()
        redis_srv = devservices.start_redis(self.base / "redis", devservices.free_port(), persistent=False)
        self._services.append(redis_srv)
        pg_srv = devservices.start_postgres(self.base / "pg", devservices.free_port())
        self._services.append(pg_srv)
        self.redis_url, self.database_url = redis_srv.url, pg_srv.url
        self.pids["redis"] = redis_srv.process.pid
        self.pids["postgres"] = pg_srv.process.pid
        apply_migrations(self.database_url)
        log(f"services up in {self.base}: redis :{redis_srv.port}, postgres :{pg_srv.port}")

    def seed_tenant(self, env: dict[str, str]) -> int:
        from config import Settings
        from storage.db import open_pool
        from storage.tenants import ensure_configured_tenant

        pool = open_pool(self.database_url, max_size=1, name="bench-seed")
        try:
            pool.wait(timeout=30)
            return ensure_configured_tenant(pool, Settings.from_env(env))
        finally:
            pool.close()

    def seed_tenants(self, env: dict[str, str], count: int) -> list[str]:
        """The configured tenant plus `count - 1` more, as an operator adds them (storage.tenant_admin): each
        with its own Meta phone_number_id, whose access token is the one the fake Graph API accepts, and the
        same logistics core (URL and key) as the configured tenant. Returns the receiving numbers, the
        configured tenant's first."""
        import redis

        from config import Settings
        from storage.crypto import Vault
        from storage.db import open_pool
        from storage.tenant_admin import add_channel, create_tenant

        self.seed_tenant(env)
        settings = Settings.from_env(env)
        vault = Vault(settings.phone_encryption_keys, settings.phone_hash_key)
        numbers = tenant_numbers(count)
        pool = open_pool(self.database_url, max_size=1, name="bench-seed")
        conn = redis.Redis.from_url(self.redis_url)
        try:
            pool.wait(timeout=30)
            for i, number in enumerate(numbers[1:], start=1):
                slug = f"bench-{i:03d}"
                create_tenant(pool, vault, conn, slug=slug, name=f"Paquetería Bench {i:03d}",
                              core_api_url=settings.core_api_url or None, core_api_key=settings.core_api_key or None)
                add_channel(pool, vault, conn, slug, provider="meta", number=number, secret=GRAPH_TOKEN,
                            waba_id=f"bench-waba-{i:03d}")
        finally:
            pool.close()
            conn.close()
        if count > 1:
            log(f"{count} tenants, each with its own Meta number")
        return numbers

    # processes
    def spawn(self, name: str, args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        log_path = self.base / f"{name}.log"
        with open(log_path, "ab") as out:
            proc = subprocess.Popen(args, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        self._procs.append((name, proc))
        self.pids[name] = proc.pid
        return proc

    def log_tail(self, name: str) -> str:
        return _tail(self.base / f"{name}.log")

    def start_gunicorn(self, env: dict[str, str], *, workers: int = 2, threads: int = 8) -> int:
        from scripts import devservices

        port = devservices.free_port()
        # gunicorn as deployed (web/gunicorn_conf.py), at the size asked for; only its log is quieter.
        env = {**env, "WEB_BIND": f"127.0.0.1:{port}", "WEB_WORKERS": str(workers), "WEB_THREADS": str(threads)}
        proc = self.spawn("web", [*gunicorn_command(), "--log-level", "warning"], env)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {proc.returncode}:\n{self.log_tail('web')}")
            with contextlib.suppress(OSError):
                if http_get_status(port, "/readyz") == 200:
                    log(f"gunicorn up on :{port} ({workers} gthread workers x {threads} threads)")
                    return port
            time.sleep(0.1)
        raise RuntimeError(f"gunicorn did not become ready on :{port}:\n{self.log_tail('web')}")

    def start_workers(self, env: dict[str, str], processes: int, name: str = "workers") -> subprocess.Popen[bytes]:
        """`python -m worker.main --processes K` (the production entry point), ready when K workers registered."""
        import redis
        from rq import Queue, Worker

        proc = self.spawn(name, [sys.executable, "-m", "worker.main", "--processes", str(processes)], env)
        conn = redis.Redis.from_url(self.redis_url)
        try:
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline:
                if proc.poll() is not None:
                    raise RuntimeError(f"worker.main exited with {proc.returncode}:\n{self.log_tail(name)}")
                if len(Worker.all(connection=conn, queue=Queue(QUEUE_NAME, connection=conn))) >= processes:
                    log(f"{processes} worker processes registered")
                    return proc
                time.sleep(0.1)
        finally:
            conn.close()
        raise RuntimeError(f"{processes} workers did not register:\n{self.log_tail(name)}")

    def start_core(self, env: dict[str, str]) -> str | None:
        """The sandbox logistics core (`python -m sandbox_core.server`), as `make run` starts it; None if absent."""
        from scripts import devservices

        if not (ROOT / "sandbox_core" / "server.py").exists():
            return None
        port = devservices.free_port()
        proc = self.spawn("core", [sys.executable, "-m", "sandbox_core.server"],
                          {**env, "SANDBOX_CORE_PORT": str(port), "SANDBOX_CORE_HOST": "127.0.0.1"})
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                log(f"sandbox core exited with {proc.returncode}; running without it:\n{self.log_tail('core')}")
                return None
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
                log(f"sandbox core up on :{port}")
                return f"http://127.0.0.1:{port}"
            time.sleep(0.1)
        log("sandbox core did not listen within 30 s; running without it")
        return None

    def stop(self, proc: subprocess.Popen[bytes], timeout: float = 25.0) -> None:
        for i, (name, p) in enumerate(self._procs):
            if p is proc:
                stop_process(p, name, timeout)
                del self._procs[i]
                self.pids.pop(name, None)
                return
        stop_process(proc, "process", timeout)

    def on_close(self, closer: Callable[[], None]) -> None:
        self._closers.append(closer)

    def close(self) -> None:
        for closer in reversed(self._closers):
            try:
                closer()
            except Exception as exc:  # noqa: BLE001 - keep stopping the rest
                log(f"cleanup step failed: {exc!r}")
        self._closers.clear()
        for name, proc in reversed(self._procs):
            stop_process(proc, name)
        self._procs.clear()
        for service in reversed(self._services):
            try:
                service.stop()
            except Exception as exc:  # noqa: BLE001
                log(f"stopping {service.name} failed: {exc!r}")
        self._services.clear()
        if self.keep:
            log(f"kept {self.base}")
        else:
            shutil.rmtree(self.base, ignore_errors=True)
