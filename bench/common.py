"""Shared benchmark machinery: private services, the processes under test, a loopback load generator.

- `Stack` starts private Redis and PostgreSQL in a temporary directory, migrates,
  seeds the tenant, and stops everything it started (gunicorn, workers, fakes,
  services) in `close()`; use it as a context manager.
- `LoadGenerator` is a single-threaded `selectors` HTTP/1.1 client over
  persistent loopback connections, sending pre-built request bytes: a Python
  client light enough to share 2 cores with the server. Closed loop
  (`closed_loop`: N connections, max throughput) and open loop (`open_loop`:
  requests scheduled by the wall clock at a fixed rate, latency counted from
  the *scheduled* time so a stalled server cannot hide its stalls).
- `WebhookFactory` builds signed Meta text webhooks, each with a unique message id,
  spread over many customers.
- `rq_noop_baseline` measures RQ's own ceiling: jobs that do nothing, on the same
  worker class (`worker.main.EncargoWorker`) and number of worker processes.
- `cpu_by_component` reads /proc to say how much CPU each process tree used.

Run as a script, `python -m bench.common noop-worker ...` is the no-op worker
process (used by `rq_noop_baseline`); without arguments it does nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import hmac
import json
import math
import multiprocessing
import os
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `python bench/ingest.py` (make bench) puts bench/, not the root, on sys.path
    sys.path.insert(0, str(ROOT))

RESULTS_DIR = ROOT / "bench" / "results"
APP_SECRET = "bench-app-secret"  # noqa: S105 - a throw-away secret of the benchmark
PHONE_NUMBER_ID = "106540352242922"
GRAPH_TOKEN = "bench-meta-access-token"  # noqa: S105 - the fake Graph API's token
QUEUE_NAME = "encargo"
NOOP_QUEUE = "bench-noop"

# Variables of config.Settings (and gunicorn's) that the caller's environment (e.g. .run/env under
# `make bench`) must not leak into the processes under test: the benchmark sets its own.
_CONFIG_VARS = (
    "ENCARGO_ENV", "DATABASE_URL", "REDIS_URL", "PHONE_ENCRYPTION_KEY", "PHONE_HASH_KEY", "WHATSAPP_PROVIDER",
    "META_APP_SECRET", "META_VERIFY_TOKEN", "META_ACCESS_TOKEN", "META_PHONE_NUMBER_ID", "META_GRAPH_BASE_URL",
    "META_GRAPH_API_VERSION", "META_THROUGHPUT_MPS", "TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN",
    "TWILIO_WHATSAPP_NUMBER", "PUBLIC_BASE_URL", "SENTRY_DSN", "LOG_LEVEL", "QUEUE_NAME", "JOB_TIMEOUT_S",
    "SIMULATOR_ENABLED", "WORKER_PROCESSES", "GUNICORN_CMD_ARGS", "WEB_CONCURRENCY", "TENANT_SLUG",
    "TENANT_NAME", "TENANT_TIMEZONE", "SEND_TIMEOUT_S", "RECOVERY_MIN_AGE_S", "RECOVERY_INTERVAL_S",
    "JOB_HEARTBEAT_GRACE_S", "WORKER_MAINTENANCE_INTERVAL_S", "CORE_API_URL", "CORE_API_KEY", "CORE_API_TIMEOUT_S",
    "CONSOLE_SESSION_SECRET", "INTERNAL_EVENTS_SECRET", "RATE_LIMIT_PER_MINUTE", "RATE_LIMIT_PER_HOUR",
    "RATE_LIMIT_PER_DAY", "SANDBOX_CORE_PORT", "SANDBOX_CORE_HOST",
    "SANDBOX_CORE_DATA", "SANDBOX_CORE_EVENTS_URL", "SANDBOX_CORE_EVENTS_SECRET",
)


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- statistics ----------------------------------------------------------------------------


def percentile(values: Iterable[float], p: float) -> float:
    """The p-th percentile (0..100) with linear interpolation between ranks; nan for no values."""
    data = sorted(values)
    if not data:
        return math.nan
    if len(data) == 1:
        return data[0]
    rank = (len(data) - 1) * p / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(data) - 1)
    return data[low] + (data[high] - data[low]) * (rank - low)


def latency_summary_ms(latencies_s: list[float]) -> dict[str, float]:
    if not latencies_s:
        return {"p50": math.nan, "p95": math.nan, "p99": math.nan, "max": math.nan, "mean": math.nan}
    return {
        "p50": round(percentile(latencies_s, 50) * 1000, 2),
        "p95": round(percentile(latencies_s, 95) * 1000, 2),
        "p99": round(percentile(latencies_s, 99) * 1000, 2),
        "max": round(max(latencies_s) * 1000, 2),
        "mean": round(sum(latencies_s) / len(latencies_s) * 1000, 2),
    }


def median(values: Iterable[float]) -> float:
    return percentile(values, 50)


def fmt(value: Any, digits: int = 1) -> str:
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.{digits}f}"
    return str(value)


def table(headers: list[str], rows: list[list[Any]]) -> str:
    """A Markdown table (readable in a terminal and pasteable into docs/BENCHMARKS.md)."""
    cells = [[fmt(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    lines = ["| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |",
             "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    lines += ["| " + " | ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) + " |" for row in cells]
    return "\n".join(lines)


def write_results(name: str, data: dict[str, Any]) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    path.write_text(json.dumps(data, indent=2, default=str), encoding="utf-8")
    return path


def tree_state() -> dict[str, Any]:
    """Which code was measured: the commit and how many files differ from it (other work in progress)."""
    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            return ""

    return {"commit": git("rev-parse", "--short", "HEAD"),
            "changed_files": len([line for line in git("status", "--porcelain").splitlines() if line.strip()])}


def machine_info() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem_gb = 0.0
    with contextlib.suppress(OSError, ValueError, IndexError):
        mem_gb = int(Path("/proc/meminfo").read_text().split()[1]) / 1024 / 1024
    return {"cpus": os.cpu_count(), "cpu_model": model, "mem_gb": round(mem_gb, 1),
            "python": sys.version.split()[0], "loadavg_at_start": os.getloadavg(), "tree": tree_state()}


# --- CPU accounting from /proc ---------------------------------------------------------------

_CLK_TCK = os.sysconf("SC_CLK_TCK")


def _proc_table() -> dict[int, tuple[int, float]]:
    """pid -> (ppid, cpu seconds used so far: user + system)."""
    out: dict[int, tuple[int, float]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            raw = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = raw[raw.rfind(")") + 2:].split()
        # after "pid (comm) ": state ppid ... utime(14th field overall = index 11 here) stime(index 12)
        out[int(entry)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / _CLK_TCK)
    return out


def cpu_by_component(roots: dict[str, int], self_only: Iterable[str] = ()) -> dict[str, float]:
    """CPU seconds used so far by each named process and its descendants (self_only: the process alone)."""
    procs = _proc_table()
    children: dict[int, list[int]] = {}
    for pid, (ppid, _cpu) in procs.items():
        children.setdefault(ppid, []).append(pid)
    alone = set(self_only)
    result: dict[str, float] = {}
    for name, root in roots.items():
        total, stack = 0.0, [root]
        while stack:
            pid = stack.pop()
            if pid in procs:
                total += procs[pid][1]
            if name not in alone:
                stack.extend(children.get(pid, ()))
        result[name] = total
    return result


def cpu_delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {k: round(after.get(k, 0.0) - v, 3) for k, v in before.items()}


def machine_busy_s() -> float:
    """CPU seconds all CPUs spent busy since boot (user, nice, system, irq, softirq, steal)."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[:8])
    return (user + nice + system + irq + softirq + steal) / _CLK_TCK


class CpuMeter:
    """CPU used by each component during a measurement, and by everything else on the machine.

    "foreign" is the machine's busy time minus this benchmark's own process tree: other people's
    tests on a shared machine. A run with much foreign CPU measured the neighbours, not us.
    """

    def __init__(self, roots: dict[str, int], self_only: Iterable[str] = ()) -> None:
        self.roots = roots
        self.self_only = tuple(self_only)
        self.cores = os.cpu_count() or 1

    def _own(self) -> float:
        return cpu_by_component({"own": os.getpid()})["own"]

    def start(self) -> None:
        self.t0 = time.monotonic()
        self.c0 = cpu_by_component(self.roots, self.self_only)
        self.busy0, self.own0 = machine_busy_s(), self._own()

    def stop(self) -> dict[str, Any]:
        wall = max(time.monotonic() - self.t0, 1e-9)
        components = cpu_delta(self.c0, cpu_by_component(self.roots, self.self_only))
        foreign = max(0.0, (machine_busy_s() - self.busy0) - (self._own() - self.own0))
        return {"components": components, "wall_s": round(wall, 3),
                "foreign_cpu_s": round(foreign, 3),
                "foreign_pct": round(100 * foreign / (self.cores * wall), 1),
                "busy_pct": round(100 * (sum(components.values()) + foreign) / (self.cores * wall), 1)}


def foreign_load_pct(seconds: float = 1.0) -> float:
    """The share of the machine (%) used by processes outside this benchmark during `seconds`."""
    meter = CpuMeter({})
    meter.start()
    time.sleep(seconds)
    return float(meter.stop()["foreign_pct"])


def wait_for_quiet(threshold_pct: float = 10.0, max_wait_s: float = 60.0) -> float:
    """Wait (bounded) until other processes use less than `threshold_pct` of the machine; the last reading."""
    deadline = time.monotonic() + max_wait_s
    load = foreign_load_pct()
    warned = False
    while load > threshold_pct and time.monotonic() < deadline:
        if not warned:
            log(f"other processes use {load:.0f}% of the machine; waiting up to {max_wait_s:.0f}s for quiet")
            warned = True
        load = foreign_load_pct()
    return load


# --- processes under test ----------------------------------------------------------------------


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
        args = [sys.executable, "-m", "gunicorn", "app:app", "--bind", f"127.0.0.1:{port}",
                "--worker-class", "gthread", "--workers", str(workers), "--threads", str(threads),
                "--timeout", "30", "--graceful-timeout", "10", "--log-level", "warning", "--no-control-socket"]
        proc = self.spawn("web", args, env)
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


# --- requests ----------------------------------------------------------------------------------


class WebhookFactory:
    """Signed Meta text webhooks, each with a unique message id, round-robin over `customers` numbers.

    `next()` returns (request bytes, message id). Message n goes to customer n % customers and carries
    texts[(n // customers) % len(texts)], so one customer never sends the same text twice in a row.
    The no-op path gets the same body and headers, so both endpoints read exactly the same bytes.
    """

    def __init__(self, port: int, path: str, *, customers: int = 500, phone_prefix: str = "5037",
                 id_prefix: str = "wamid.BENCH", secret: str = APP_SECRET,
                 texts: tuple[str, ...] = ("Hola", "Buenos días", "Buenas tardes", "Hola, buenas")) -> None:
        from tests.harness import text_payload

        self.path = path
        self.port = port
        self.secret = secret.encode()
        self.id_prefix = id_prefix
        self.phones = [f"{phone_prefix}{n:07d}" for n in range(1, customers + 1)]
        self._templates = [json.dumps(text_payload("{{PHONE}}", text, "{{MSGID}}", phone_number_id=PHONE_NUMBER_ID,
                                                   name="Cliente Bench"), separators=(",", ":"), ensure_ascii=False)
                           for text in texts]
        self.count = 0

    def next(self) -> tuple[bytes, str]:
        n = self.count
        self.count += 1
        message_id = f"{self.id_prefix}{n:09d}"
        customers = len(self.phones)
        template = self._templates[(n // customers) % len(self._templates)]
        body = template.replace("{{PHONE}}", self.phones[n % customers]).replace("{{MSGID}}", message_id).encode()
        signature = "sha256=" + hmac.new(self.secret, body, hashlib.sha256).hexdigest()
        head = (f"POST {self.path} HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
                f"X-Hub-Signature-256: {signature}\r\n\r\n").encode()
        return head + body, message_id


# --- the load generator ------------------------------------------------------------------------


class _Conn:
    """One persistent HTTP/1.1 connection; a request is sent whole, the response parsed incrementally."""

    __slots__ = ("sock", "buf", "t_ref", "t_sent", "tag", "keep_alive")

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.sock.settimeout(None)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()
        self.t_ref = 0.0
        self.t_sent = 0.0
        self.tag = ""
        self.keep_alive = True

    def send(self, raw: bytes, t_ref: float, tag: str) -> None:
        self.buf = bytearray()
        self.t_ref, self.tag = t_ref, tag
        self.t_sent = time.monotonic()
        self.sock.sendall(raw)

    def read(self) -> int | None:
        """Consume what arrived; the status once the response is complete, else None. EOF raises."""
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionResetError("connection closed by the server")
        self.buf += chunk
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            return None
        head = bytes(self.buf[:end]).lower()
        if b"\r\ntransfer-encoding: chunked" in head:
            if not self.buf.endswith(b"0\r\n\r\n"):
                return None
        else:
            length = 0
            at = head.find(b"\r\ncontent-length:")
            if at >= 0:
                line_end = head.find(b"\r\n", at + 2)
                length = int(head[at + 17: line_end if line_end > 0 else len(head)].strip())
            if len(self.buf) < end + 4 + length:
                return None
        self.keep_alive = b"\r\nconnection: close" not in head and head.startswith(b"http/1.1")
        return int(self.buf[9:12])

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


@dataclass
class LoadResult:
    mode: str
    target: str
    offered_rate: float | None
    duration_s: float
    started: float = 0.0  # monotonic
    finished: float = 0.0
    sent: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)  # seconds, responses with status 200
    errors: Counter[str] = field(default_factory=Counter)
    ok_ids: list[str] = field(default_factory=list)
    scheduled: dict[str, float] = field(default_factory=dict)  # message id -> scheduled (open) / sent (closed)
    max_send_lag_s: float = 0.0
    client_cpu_s: float = 0.0

    @property
    def ok(self) -> int:
        return self.statuses.get(200, 0)

    @property
    def wall_s(self) -> float:
        return max(self.finished - self.started, 1e-9)

    @property
    def rate(self) -> float:
        return self.ok / self.wall_s

    def summary(self) -> dict[str, Any]:
        return {
            "mode": self.mode, "target": self.target, "offered_rate": self.offered_rate,
            "duration_s": self.duration_s, "wall_s": round(self.wall_s, 3), "sent": self.sent, "ok": self.ok,
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "errors": dict(self.errors), "rate": round(self.rate, 1),
            "latency_ms": latency_summary_ms(self.latencies),
            "max_send_lag_ms": round(self.max_send_lag_s * 1000, 2),
            "client_cpu_pct": round(100 * self.client_cpu_s / self.wall_s, 1),
        }


class LoadGenerator:
    """A single-threaded selectors loop over persistent loopback connections (see the module docstring)."""

    def __init__(self, port: int, *, keep_ids: bool = False) -> None:
        self.port = port
        self.keep_ids = keep_ids

    def _open(self, sel: selectors.BaseSelector, result: LoadResult) -> _Conn | None:
        try:
            conn = _Conn(self.port)
        except OSError as exc:
            result.errors[f"connect:{type(exc).__name__}"] += 1
            return None
        sel.register(conn.sock, selectors.EVENT_READ, conn)
        return conn

    @staticmethod
    def _drop(sel: selectors.BaseSelector, conn: _Conn) -> None:
        with contextlib.suppress(KeyError, ValueError):
            sel.unregister(conn.sock)
        conn.close()

    def _send(self, sel: selectors.BaseSelector, conn: _Conn, raw: bytes, t_ref: float, tag: str,
              result: LoadResult) -> bool:
        result.sent += 1
        if self.keep_ids:
            result.scheduled[tag] = t_ref
        try:
            conn.send(raw, t_ref, tag)
        except OSError as exc:
            result.errors[f"send:{type(exc).__name__}"] += 1
            result.statuses[-1] += 1
            self._drop(sel, conn)
            return False
        result.max_send_lag_s = max(result.max_send_lag_s, conn.t_sent - t_ref)
        return True

    def _on_readable(self, sel: selectors.BaseSelector, conn: _Conn, result: LoadResult,
                     busy: set[_Conn]) -> tuple[bool, _Conn | None]:
        """(response complete?, the connection to use next: the same, a fresh one, or None)."""
        if conn not in busy:  # an idle connection became readable: the server closed it (keep-alive timeout)
            self._drop(sel, conn)
            return False, self._open(sel, result)
        try:
            status = conn.read()
        except OSError as exc:
            busy.discard(conn)
            result.errors[f"recv:{type(exc).__name__}"] += 1
            result.statuses[-1] += 1
            self._drop(sel, conn)
            return True, self._open(sel, result)
        if status is None:
            return False, conn
        now = time.monotonic()
        busy.discard(conn)
        result.statuses[status] += 1
        if status == 200:
            result.latencies.append(now - conn.t_ref)
            if self.keep_ids:
                result.ok_ids.append(conn.tag)
        result.finished = now
        if conn.keep_alive:
            return True, conn
        self._drop(sel, conn)
        return True, self._open(sel, result)

    def closed_loop(self, factory: WebhookFactory, *, concurrency: int, duration_s: float,
                    target: str = "") -> LoadResult:
        """Each of `concurrency` connections sends its next request as soon as the previous answer arrived."""
        result = LoadResult("closed", target or factory.path, None, duration_s)
        sel = selectors.DefaultSelector()
        conns = [c for c in (self._open(sel, result) for _ in range(concurrency)) if c is not None]
        busy: set[_Conn] = set()
        cpu0 = time.process_time()
        result.started = time.monotonic()
        deadline = result.started + duration_s
        hard_deadline = deadline + 15.0
        for conn in conns:
            raw, tag = factory.next()
            if self._send(sel, conn, raw, time.monotonic(), tag, result):
                busy.add(conn)
        try:
            while busy and time.monotonic() < hard_deadline:
                for key, _ in sel.select(timeout=0.5):
                    conn = key.data
                    done, nxt = self._on_readable(sel, conn, result, busy)
                    if done and nxt is not None and time.monotonic() < deadline:
                        raw, tag = factory.next()
                        if self._send(sel, nxt, raw, time.monotonic(), tag, result):
                            busy.add(nxt)
        finally:
            result.errors["unanswered"] += len(busy)
            result.statuses[-1] += len(busy)
            for key in list(sel.get_map().values()):
                self._drop(sel, key.data)
            sel.close()
        if not result.errors["unanswered"]:
            del result.errors["unanswered"]
        result.client_cpu_s = time.process_time() - cpu0
        return result

    def open_loop(self, factory: WebhookFactory, *, rate: float, duration_s: float, connections: int = 16,
                  max_connections: int = 128, target: str = "") -> LoadResult:
        """Request i is due at start + i/rate; latency is counted from that due time (no coordinated omission).

        A request finding no idle connection opens one (up to `max_connections`), else waits in a
        backlog, its clock running.
        """
        result = LoadResult("open", target or factory.path, rate, duration_s)
        sel = selectors.DefaultSelector()
        idle: deque[_Conn] = deque(c for c in (self._open(sel, result) for _ in range(connections)) if c is not None)
        busy: set[_Conn] = set()
        backlog: deque[tuple[float, bytes, str]] = deque()
        total = int(round(rate * duration_s))
        interval = 1.0 / rate
        cpu0 = time.process_time()
        result.started = time.monotonic()
        hard_deadline = result.started + duration_s + 30.0
        i = 0

        def dispatch(due: float, raw: bytes, tag: str) -> None:
            conn: _Conn | None = None
            while idle and conn is None:
                conn = idle.popleft()
            if conn is None and len(busy) + len(idle) < max_connections:
                conn = self._open(sel, result)
            if conn is None:
                backlog.append((due, raw, tag))
                return
            if self._send(sel, conn, raw, due, tag, result):
                busy.add(conn)

        try:
            while (i < total or busy or backlog) and time.monotonic() < hard_deadline:
                now = time.monotonic()
                while i < total and result.started + i * interval <= now:
                    raw, tag = factory.next()
                    dispatch(result.started + i * interval, raw, tag)
                    i += 1
                timeout = max(0.0, result.started + i * interval - time.monotonic()) if i < total else 0.5
                for key, _ in sel.select(timeout=timeout):
                    conn = key.data
                    if conn not in busy:  # idle and readable: the server closed it
                        with contextlib.suppress(ValueError):
                            idle.remove(conn)
                    done, nxt = self._on_readable(sel, conn, result, busy)
                    if nxt is None:
                        continue
                    if not done and nxt is conn:
                        continue  # partial response
                    if backlog:
                        due, raw, tag = backlog.popleft()
                        if self._send(sel, nxt, raw, due, tag, result):
                            busy.add(nxt)
                    else:
                        idle.append(nxt)
        finally:
            result.errors["unanswered"] += len(busy) + len(backlog)
            result.statuses[-1] += len(busy) + len(backlog)
            for key in list(sel.get_map().values()):
                self._drop(sel, key.data)
            sel.close()
        if not result.errors["unanswered"]:
            del result.errors["unanswered"]
        if result.finished < result.started:
            result.finished = time.monotonic()
        result.client_cpu_s = time.process_time() - cpu0
        return result


# --- RQ's own ceiling: no-op jobs ----------------------------------------------------------------


def noop_job() -> None:
    """A job that does nothing (the RQ baseline)."""


def run_noop_worker(queue_name: str, ready_key: str, go_key: str) -> None:
    """One no-op worker process: EncargoWorker built as `worker.main.run_worker` builds it, burst mode.

    Waits for `go_key` so that all K processes start together (their imports are not measured).
    """
    import redis
    from rq import Queue

    from config import Settings
    from observability import configure_logging
    from worker.main import EncargoWorker
    from worker.runtime import redis_from_settings

    settings = Settings.from_env()
    configure_logging("bench-noop-worker", settings.log_level)
    conn = redis_from_settings(settings)
    EncargoWorker.heartbeat_grace_s = settings.job_heartbeat_grace_s
    worker = EncargoWorker([Queue(queue_name, connection=conn)], connection=conn,
                           maintenance_interval=settings.worker_maintenance_interval_s,
                           worker_ttl=settings.worker_maintenance_interval_s + 15)
    # EncargoWorker.work(burst=True) may first do project work (e.g. dispatch announced events) through the
    # process's runtime: build that runtime now, outside the measured window.
    with contextlib.suppress(Exception):
        from worker import runtime as worker_runtime

        worker_runtime.current()
    control = redis.Redis.from_url(settings.redis_url)
    control.incr(ready_key)
    deadline = time.monotonic() + 120
    while not control.exists(go_key):
        if time.monotonic() > deadline:
            raise SystemExit("no go signal within 120 s")
        time.sleep(0.002)
    worker.work(burst=True, logging_level=settings.log_level, with_scheduler=True)


def rq_noop_baseline(stack: Stack, env: dict[str, str], processes: int, jobs: int, *,
                     rate_limited: bool = False, customers: int = 500, tag: str = "") -> dict[str, Any]:
    """jobs/s of K EncargoWorker processes running `noop_job` (options as production's message jobs).

    rate_limited: also give each job the RateLimit(customer, concurrency=1) production message jobs carry.
    """
    import redis
    from rq import Queue
    from rq.rate_limit import RateLimit
    from rq.registry import FailedJobRegistry, StartedJobRegistry

    from worker.enqueue import FAILED_TTL_S

    conn = redis.Redis.from_url(stack.redis_url)
    run = f"{tag or 'noop'}{int(time.time() * 1000)}"
    queue_name = f"{NOOP_QUEUE}-{run}"
    queue = Queue(queue_name, connection=conn)
    ready_key, go_key = f"bench:{run}:ready", f"bench:{run}:go"
    t_enqueue = time.monotonic()
    for n in range(jobs):
        queue.enqueue_call(noop_job, job_id=f"{run}-{n:07d}", timeout=30, result_ttl=0, failure_ttl=FAILED_TTL_S,
                           rate_limit=RateLimit(key=f"{run}:c{n % customers}", concurrency=1) if rate_limited
                           else None)
    enqueue_s = time.monotonic() - t_enqueue
    procs = []
    for i in range(processes):
        procs.append(stack.spawn(f"{run}-w{i}", [sys.executable, "-m", "bench.common", "noop-worker",
                                                 "--queue", queue_name, "--ready-key", ready_key,
                                                 "--go-key", go_key], env))
    try:
        deadline = time.monotonic() + 90
        while int(conn.get(ready_key) or 0) < processes:
            if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                raise RuntimeError("no-op workers did not start:\n" + stack.log_tail(f"{run}-w0"))
            time.sleep(0.05)
        time.sleep(0.2)  # let each process reach its polling loop
        started = StartedJobRegistry(queue_name, connection=conn)
        meter = CpuMeter({"redis": stack.pids["redis"], **{f"worker{i}": p.pid for i, p in enumerate(procs)}})
        meter.start()
        conn.set(go_key, 1)
        t0 = time.monotonic()
        deadline = t0 + 300
        t_end = None
        while time.monotonic() < deadline:
            remaining = conn.llen(queue.key)
            if remaining == 0 and started.count == 0 and (
                    not rate_limited or not conn.keys(f"rq:rl:{run}:c*:rate_limited")):
                t_end = time.monotonic()
                break
            time.sleep(0.005)
        if t_end is None:
            raise RuntimeError(f"no-op jobs did not drain within 300 s ({conn.llen(queue.key)} left)")
        cpu = meter.stop()
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                log("a no-op worker did not exit after the burst")
        failed = FailedJobRegistry(queue_name, connection=conn).count
        leftover = sum(1 for _ in conn.scan_iter(match=f"rq:job:{run}-*", count=1000))
    finally:
        for p in procs:
            stack.stop(p, timeout=10)
        conn.close()
    elapsed = t_end - t0
    worker_cpu = sum(v for k, v in cpu["components"].items() if k.startswith("worker"))
    return {"processes": processes, "jobs": jobs, "rate_limited": rate_limited, "elapsed_s": round(elapsed, 3),
            "jobs_per_s": round(jobs / elapsed, 1), "failed": failed, "job_hashes_left": leftover,
            "enqueue_s": round(enqueue_s, 2),
            "cpu_ms_per_job": {"workers": round(1000 * worker_cpu / jobs, 3),
                               "redis": round(1000 * cpu["components"]["redis"] / jobs, 3)},
            "busy_pct": cpu["busy_pct"], "foreign_pct": cpu["foreign_pct"]}


# --- the fake Graph API in its own process ------------------------------------------------------


def _graph_fake_main(conn: Any, access_token: str, phone_number_id: str, parent_pid: int) -> None:
    """Child process: FakeGraphAPI (keep-alive, no rate-limit scan) serving commands over a Pipe."""
    from tests.fakes.graph_api import FakeGraphAPI, _GraphHandler

    class KeepAliveHandler(_GraphHandler):
        # Meta keeps connections alive; http.server's default HTTP/1.0 would close each one. With keep-alive
        # the handler's two writes (headers, body) must not wait for a delayed ACK (40 ms): no Nagle.
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

    class BenchGraphAPI(FakeGraphAPI):
        handler_class = KeepAliveHandler

        def _check_rate_limits(self, number: str, body: dict[str, Any]) -> None:
            # The fake scans every accepted message on each send even with both limits off: O(n) per send.
            if self._throughput_mps is None and self._pair_limit is None:
                return
            super()._check_rate_limits(number, body)

        def take(self) -> tuple[list[tuple[str | None, str, float]], int, int]:
            with self.lock:
                accepted, self.accepted = self.accepted, []
                received, self.received = len(self.received), []
                receipts, self.read_receipts = len(self.read_receipts), []
            records = [(a.body.get("biz_opaque_callback_data"),
                        hashlib.sha1(json.dumps(a.body, sort_keys=True).encode(), usedforsecurity=False).hexdigest(),
                        a.received_at) for a in accepted]
            return records, received, receipts

    fake = BenchGraphAPI(access_token=access_token, phone_number_id=phone_number_id).start()
    conn.send(fake.url)
    try:
        deadline = time.monotonic() + 4 * 3600
        while time.monotonic() < deadline:
            if os.getppid() != parent_pid:
                break
            if not conn.poll(1.0):
                continue
            try:
                command = conn.recv()
            except EOFError:
                break
            if command == "count":
                with fake.lock:
                    conn.send(len(fake.accepted))
            elif command == "take":
                conn.send(fake.take())
            elif command == "stop":
                conn.send("stopped")
                break
    finally:
        fake.stop()


class GraphFakeProcess:
    """The FakeGraphAPI in a separate process (it does not share the load generator's GIL)."""

    def __init__(self, access_token: str = GRAPH_TOKEN, phone_number_id: str = PHONE_NUMBER_ID) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._conn, child_conn = ctx.Pipe()
        self.process = ctx.Process(target=_graph_fake_main, args=(child_conn, access_token, phone_number_id,
                                                                  os.getpid()), daemon=True, name="fake-graph")
        self.process.start()
        if not self._conn.poll(60):
            raise RuntimeError("the fake Graph API did not start")
        self.url: str = self._conn.recv()

    @property
    def pid(self) -> int:
        assert self.process.pid is not None
        return self.process.pid

    def _ask(self, command: str, timeout: float = 60) -> Any:
        self._conn.send(command)
        if not self._conn.poll(timeout):
            raise RuntimeError(f"the fake Graph API did not answer {command!r}")
        return self._conn.recv()

    def count(self) -> int:
        return int(self._ask("count"))

    def take(self) -> tuple[list[tuple[str | None, str, float]], int, int]:
        """(accepted messages since the last take as (reference, body digest, arrival), requests, read receipts)."""
        result: tuple[list[tuple[str | None, str, float]], int, int] = self._ask("take")
        return result

    def stop(self) -> None:
        if self.process.is_alive():
            with contextlib.suppress(Exception):
                self._ask("stop", timeout=10)
            self.process.join(timeout=10)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(timeout=5)


@contextlib.contextmanager
def timed(label: str) -> Iterator[None]:
    t0 = time.monotonic()
    yield
    log(f"{label}: {time.monotonic() - t0:.1f}s")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="benchmark helpers (used by bench/ingest.py and bench/pipeline.py)")
    sub = parser.add_subparsers(dest="command")
    noop = sub.add_parser("noop-worker", help="one RQ no-op worker process (started by rq_noop_baseline)")
    noop.add_argument("--queue", required=True)
    noop.add_argument("--ready-key", required=True)
    noop.add_argument("--go-key", required=True)
    args = parser.parse_args(argv)
    if args.command == "noop-worker":
        run_noop_worker(args.queue, args.ready_key, args.go_key)
    else:
        print("bench/common.py holds shared helpers; run bench/ingest.py or bench/pipeline.py")


if __name__ == "__main__":
    main()
