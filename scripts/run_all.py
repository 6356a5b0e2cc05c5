"""`make run`: the whole system on one machine, in one terminal.

Starts a private Redis and PostgreSQL (data under .run/, through
scripts/devservices.py), applies migrations, then runs the sandbox core, the
web server (gunicorn), the RQ worker and the scheduler as child processes with
the environment from .run/env (the real environment wins). Every child line is
printed with the child's name in front. Ctrl-C or SIGTERM stops the children,
then PostgreSQL and Redis, and exits 0; a child that dies on its own stops
everything and the exit status is 1.

    python -m scripts.run_all                  # everything (make run)
    python -m scripts.run_all --only worker    # one process, services assumed up (make worker)
    python -m scripts.run_all --exec CMD ...   # any command with .run/env loaded (make chat)
    python -m scripts.run_all --stop           # stop what an earlier run left running (make stop)
    python -m scripts.run_all --clean          # --stop, then delete .run (make clean-run)

Ports: ENCARGO_WEB_PORT (8000), ENCARGO_CORE_PORT (8100), ENCARGO_REDIS_PORT
(6390), ENCARGO_POSTGRES_PORT (5440). Setting one also points the matching URL
(PUBLIC_BASE_URL, CORE_API_URL, REDIS_URL, DATABASE_URL) at it, unless that URL
is set in the real environment.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import tomllib
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, NoReturn

if __package__ in (None, ""):  # run as `python scripts/run_all.py`: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scripts import devservices  # noqa: E402
from scripts.bootstrap_env import ensure_env_file, merged_environment  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
RUN_DIR = ROOT / ".run"
ENV_FILE = RUN_DIR / "env"
PIDS_FILE = RUN_DIR / "pids.json"
BIN_DIR = Path(sys.executable).parent  # the venv's bin/ when started as .venv/bin/python
# PostgreSQL's data when we are root and the postgres user cannot reach .run (a clone under /root).
FALLBACK_PG_BASE = Path("/var/lib/encargo")

STOP_TIMEOUT_S = 25.0  # an RQ worker finishes its current job on SIGTERM (JOB_TIMEOUT_S is 30 by default)
START_TIMEOUT_S = 120.0  # until /healthz answers; ENCARGO_START_TIMEOUT overrides


class StartupError(RuntimeError):
    """Something stops `make run` from starting; the message says what to do."""


class Interrupted(Exception):
    """Ctrl-C or SIGTERM arrived while starting up."""


# --- environment and ports ------------------------------------------------------------------


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
    # issue 7: the sandbox core pushes its package status events to our /internal/events, signed with our secret.
    if env.get("INTERNAL_EVENTS_SECRET"):
        env.setdefault("SANDBOX_CORE_EVENTS_SECRET", env["INTERNAL_EVENTS_SECRET"])
        web_url = env.get("PUBLIC_BASE_URL") or f"http://127.0.0.1:{ports.web}"
        env.setdefault("SANDBOX_CORE_EVENTS_URL", web_url.rstrip("/") + "/internal/events")
    # The venv's console scripts (gunicorn, rq, encargo-*) for children that start others by name.
    path = env.get("PATH", os.defpath)
    if str(bindir) not in path.split(os.pathsep):
        env["PATH"] = os.pathsep.join([str(bindir), path])
    return env, ports


# --- the processes --------------------------------------------------------------------------


@dataclass(frozen=True)
class ProcessSpec:
    name: str
    command: list[str]
    module: str  # the project module it needs (checked before starting)
    marker: str  # a string in its /proc cmdline, to recognise it again for `--stop`


def project_scripts(pyproject: Path = ROOT / "pyproject.toml") -> dict[str, str]:
    with pyproject.open("rb") as handle:
        scripts: dict[str, str] = tomllib.load(handle)["project"]["scripts"]
    return scripts


def entry_point_spec(name: str, script: str, bindir: Path = BIN_DIR) -> ProcessSpec:
    """Run a console script of pyproject.toml; straight from its module when not installed (yet)."""
    target = project_scripts()[script]
    module, _, func = target.partition(":")
    exe = bindir / script
    if exe.exists():
        return ProcessSpec(name, [str(exe)], module, script)
    code = f"import sys; from {module} import {func}; sys.exit({func}())"
    return ProcessSpec(name, [sys.executable, "-c", code], module, module)


def _gunicorn_has_option(flag: str) -> bool:
    try:
        from gunicorn.config import KNOWN_SETTINGS  # type: ignore[import-untyped]
    except ImportError:
        return False
    return any(flag in (setting.cli or ()) for setting in KNOWN_SETTINGS)


def web_spec(ports: Ports, bindir: Path = BIN_DIR) -> ProcessSpec:
    exe = bindir / "gunicorn"
    gunicorn = [str(exe)] if exe.exists() else [sys.executable, "-m", "gunicorn"]
    # gunicorn writes no access log unless --access-logfile is given; errors go to stderr.
    command = [
        *gunicorn, "app:app",
        "--bind", f"127.0.0.1:{ports.web}",
        "--worker-class", "gthread", "--workers", "2", "--threads", "8",
        "--timeout", "30", "--graceful-timeout", "10",
    ]
    # gunicorn >= 25 opens a control socket at one fixed path (~/.gunicorn/gunicorn.ctl) that
    # every gunicorn of the user shares (tests start their own); this one needs none.
    if _gunicorn_has_option("--no-control-socket"):
        command.append("--no-control-socket")
    return ProcessSpec("web", command, "app", "gunicorn")


def process_specs(ports: Ports, bindir: Path = BIN_DIR) -> list[ProcessSpec]:
    """The long-running children, in start order (the core first: the others call it)."""
    return [
        entry_point_spec("sandbox-core", "encargo-sandbox-core", bindir),
        web_spec(ports, bindir),
        entry_point_spec("worker", "encargo-worker", bindir),
        entry_point_spec("scheduler", "encargo-scheduler", bindir),
    ]


def module_exists(module: str, root: Path = ROOT) -> bool:
    base = root.joinpath(*module.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


# --- ports in use ---------------------------------------------------------------------------


def port_is_free(port: int) -> bool:
    """True when nothing listens on 127.0.0.1:port (TIME_WAIT leftovers do not count)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def process_cmdline(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()


def port_owner(port: int) -> tuple[int, str] | None:
    """(pid, command line) of the process listening on a TCP port, from /proc; None when unknown."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            if len(parts) > 9 and parts[3] == "0A" and int(parts[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(f"socket:[{parts[9]}]")
    if not inodes:
        return None
    for proc_dir in Path("/proc").iterdir():
        if not proc_dir.name.isdigit():
            continue
        try:
            fds = list((proc_dir / "fd").iterdir())
        except OSError:
            continue  # gone, or another user's process
        for fd in fds:
            try:
                link = os.readlink(fd)
            except OSError:
                continue  # closed meanwhile
            if link in inodes:
                pid = int(proc_dir.name)
                return pid, process_cmdline(pid)
    return None


def check_ports_free(ports: Ports, recorded: Mapping[str, Mapping[str, object]] | None = None) -> None:
    """Raise StartupError naming the port, the process holding it and what to do."""
    recorded = recorded or {}
    recorded_pids = {entry.get("pid") for entry in recorded.values()}
    supervisor = recorded.get("supervisor", {})
    supervisor_pid = supervisor.get("pid")
    supervisor_alive = isinstance(supervisor_pid, int) and alive_and_matches(supervisor_pid, "run_all")
    for name, var in PORT_VARS.items():
        port = getattr(ports, name)
        if port_is_free(port):
            continue
        owner = port_owner(port)
        if owner:
            pid, cmdline = owner
            who = f"pid {pid} ({cmdline[:120] or '?'})"
            if pid in recorded_pids and supervisor_alive:
                hint = f"`make run` is running (pid {supervisor_pid}): stop it first (Ctrl-C or `make stop`)"
            elif pid in recorded_pids:
                hint = "it was left running by an earlier `make run`: run `make stop`"
            else:
                hint = f"stop it (kill {pid})"
        else:
            who, hint = "another process", "stop it (`ss -ltnp` shows which)"
        raise StartupError(f"port {port} (for {name}) is already in use by {who}; {hint}, or set {var}")


# --- output ---------------------------------------------------------------------------------

_COLORS = {"run": "1", "redis": "31", "postgres": "34", "migrate": "35",
           "sandbox-core": "33", "web": "32", "worker": "36", "scheduler": "95"}


class Console:
    """Writes lines prefixed with the name of the process they come from; thread-safe."""

    def __init__(self, stream: IO[str] | None = None, *, color: bool | None = None, width: int = 12) -> None:
        self.stream = stream if stream is not None else sys.stdout
        if color is None:
            color = self.stream.isatty() and "NO_COLOR" not in os.environ
        self.color = color
        self.width = width
        self._lock = threading.Lock()

    def prefix(self, name: str) -> str:
        label = f"{name:<{self.width}} |"
        if self.color:
            label = f"\033[{_COLORS.get(name, '37')}m{label}\033[0m"
        return label + " "

    def line(self, name: str, text: str) -> None:
        prefix = self.prefix(name)
        lines = text.rstrip("\n").split("\n") or [""]
        with self._lock:
            for item in lines:
                self.stream.write(prefix + item.rstrip("\r") + "\n")
            self.stream.flush()


def describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


# --- child processes ------------------------------------------------------------------------

_PR_SET_PDEATHSIG = 1
_prctl: Callable[..., int] | None
try:
    _prctl = ctypes.CDLL(None, use_errno=True).prctl
except (OSError, AttributeError):  # not Linux
    _prctl = None


def _die_with_parent() -> None:
    """In the child before exec: get SIGTERM if the supervisor dies without cleaning up (kill -9)."""
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass
class ProcessGroup:
    """Children in their own sessions (the terminal's Ctrl-C reaches only the supervisor)."""

    console: Console
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    _pumps: list[threading.Thread] = field(default_factory=list)

    def start(self, name: str, command: list[str], env: Mapping[str, str], cwd: Path = ROOT) -> int:
        proc = subprocess.Popen(
            command, env=dict(env), cwd=cwd, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            start_new_session=True, preexec_fn=_die_with_parent,
        )
        self.procs[name] = proc
        assert proc.stdout is not None
        pump = threading.Thread(target=self._pump, args=(name, proc.stdout), name=f"out-{name}", daemon=True)
        pump.start()
        self._pumps.append(pump)
        return proc.pid

    def _pump(self, name: str, pipe: IO[bytes]) -> None:
        with pipe:
            for raw in iter(pipe.readline, b""):
                self.console.line(name, raw.decode("utf-8", errors="replace"))

    def first_exited(self) -> tuple[str, int] | None:
        for name, proc in self.procs.items():
            code = proc.poll()
            if code is not None:
                return name, code
        return None

    def running(self) -> list[str]:
        return [name for name, proc in self.procs.items() if proc.poll() is None]

    def stop_all(self, timeout: float = STOP_TIMEOUT_S, force: threading.Event | None = None) -> None:
        """SIGTERM to each child (last started first), SIGKILL to whatever is left after `timeout`."""
        for proc in reversed(list(self.procs.values())):
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while self.running() and time.monotonic() < deadline and not (force and force.is_set()):
            time.sleep(0.1)
        for name, proc in self.procs.items():
            if proc.poll() is None:
                self.console.line("run", f"{name} did not stop in time; killing it")
            # Also whatever the child left in its group (a gunicorn worker, an RQ work horse).
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        for pump in self._pumps:
            pump.join(timeout=2)


class StopFlag:
    """Set by SIGINT/SIGTERM/SIGHUP; a second signal asks to stop without waiting."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.force = threading.Event()
        self.signal_name = ""

    def install(self) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, self._handle)

    def _handle(self, signum: int, _frame: object) -> None:
        if self.event.is_set():
            self.force.set()
            return
        self.signal_name = signal.Signals(signum).name
        self.event.set()

    @property
    def requested(self) -> bool:
        return self.event.is_set()

    def check(self) -> None:
        if self.event.is_set():
            raise Interrupted


def supervise(
    group: ProcessGroup,
    stop: StopFlag,
    ready: Callable[[], bool],
    on_ready: Callable[[], None],
    *,
    ready_timeout: float = START_TIMEOUT_S,
    ready_what: str = "the web server",
    poll_s: float = 0.2,
) -> int:
    """Watch the children until a signal (0) or until one dies / never gets ready (1)."""
    deadline = time.monotonic() + ready_timeout
    announced = False
    next_check = 0.0
    while not stop.requested:
        dead = group.first_exited()
        if dead is not None:
            name, code = dead
            reason = describe_exit(code)
            group.console.line("run", f"{name} exited unexpectedly ({reason}); stopping everything")
            return 1
        now = time.monotonic()
        if not announced and now >= next_check:
            if ready():
                on_ready()
                announced = True
            elif now > deadline:
                group.console.line("run", f"{ready_what} was not ready within {ready_timeout:.0f}s; stopping")
                return 1
            next_check = time.monotonic() + 0.5
        stop.event.wait(poll_s)
    group.console.line("run", f"{stop.signal_name or 'stop requested'}: stopping")
    return 0


def run_step(name: str, command: list[str], env: Mapping[str, str], console: Console, stop: StopFlag) -> int:
    """A one-off child (migrations) with prefixed output; stopped if a signal arrives."""
    group = ProcessGroup(console)
    group.start(name, command, env)
    proc = group.procs[name]
    while proc.poll() is None and not stop.requested:
        stop.event.wait(0.1)
    group.stop_all(timeout=10)
    stop.check()
    return proc.returncode


def start_timeout(env: Mapping[str, str]) -> float:
    raw = env.get("ENCARGO_START_TIMEOUT", "").strip()
    try:
        return float(raw) if raw else START_TIMEOUT_S
    except ValueError:
        raise StartupError(f"ENCARGO_START_TIMEOUT={raw!r} is not a number of seconds") from None


def http_ok(url: str, timeout: float = 1.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - our own http:// URL
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError, ValueError):
        return False


# --- what a run leaves on disk --------------------------------------------------------------


class PidRecord:
    """.run/pids.json: what this run started, so `--stop` can end it after a crash of the supervisor."""

    def __init__(self, path: Path = PIDS_FILE) -> None:
        self.path = path
        self.entries: dict[str, dict[str, object]] = {}

    def add(self, name: str, pid: int, marker: str) -> None:
        self.entries[name] = {"pid": pid, "marker": marker}
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps(self.entries, indent=1))
        os.replace(tmp, self.path)

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)

    @staticmethod
    def load(path: Path = PIDS_FILE) -> dict[str, dict[str, object]]:
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}


def alive_and_matches(pid: int, marker: str) -> bool:
    """The pid still runs the same program (not a reused pid)."""
    return marker in process_cmdline(pid)


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


# --- commands -------------------------------------------------------------------------------


def _load_environment() -> tuple[dict[str, str], Ports, list[str]]:
    RUN_DIR.mkdir(parents=True, exist_ok=True)
    os.chmod(RUN_DIR, 0o755)  # noqa: S103 - PostgreSQL runs as the postgres user when we are root
    file_values, added = ensure_env_file(ENV_FILE)
    env, ports = process_environment(file_values, os.environ)
    return env, ports, added


def _prime_sudo() -> None:
    """As a sudo user with missing packages, ask for the password now (devservices uses `sudo -n`)."""
    if os.geteuid() == 0 or not shutil.which("sudo") or not sys.stdin.isatty():
        return
    if shutil.which("redis-server") and devservices.postgres_bindir() is not None:
        return
    print("run: redis-server/PostgreSQL are missing; sudo may ask for your password to install them")
    subprocess.run(["sudo", "-v"], check=False)


def _banner(ports: Ports, env: Mapping[str, str], console: Console) -> None:
    web = f"http://127.0.0.1:{ports.web}"
    lines = [
        "Encargo is running:",
        f"  simulator     {web}/simulator",
        f"  console       {web}/console      (agent {env.get('CONSOLE_DEMO_EMAIL', 'soporte@demo.encargo')},"
        " password CONSOLE_DEMO_PASSWORD in .run/env)",
        f"  health        {web}/healthz      readiness {web}/readyz",
        f"  sandbox core  http://127.0.0.1:{ports.core}"
        + ("   (send Authorization: Bearer $CORE_API_KEY, see .run/env)" if env.get("CORE_API_KEY") else ""),
        f"  redis         {env.get('REDIS_URL', '')}",
        f"  postgresql    {env.get('DATABASE_URL', '')}",
        "Chat from another terminal as a customer:",
        "  make chat                      (FROM=+50370000001 by default)",
        "  .venv/bin/python -m scripts.run_all --exec .venv/bin/python scripts/chat.py --from +50370000001",
        "Ctrl-C stops everything.",
    ]
    if port_is_free(ports.core):
        lines.insert(5, f"  (nothing listens on port {ports.core} yet: is the sandbox core starting?)")
    console.line("run", "\n".join(lines))


def run(console: Console) -> int:
    stop = StopFlag()
    stop.install()
    try:
        env, ports, added = _load_environment()
    except StartupError as exc:
        console.line("run", f"error: {exc}")
        return 2
    if added:
        console.line("run", f"wrote {ENV_FILE.relative_to(ROOT)}: {', '.join(added)}")
    specs = process_specs(ports)
    missing = [f"{spec.name} ({spec.module})" for spec in specs if not module_exists(spec.module)]
    if missing:
        console.line("run", f"error: not written yet: {', '.join(missing)}")
        return 1
    try:
        check_ports_free(ports, PidRecord.load())
        _prime_sudo()
        devservices.ensure_installed()
    except (StartupError, devservices.ServiceError) as exc:
        console.line("run", f"error: {exc}")
        return 0 if stop.requested else 1

    record = PidRecord()
    record.add("supervisor", os.getpid(), "run_all")
    services: list[devservices.RunningService] = []
    group = ProcessGroup(console)
    code = 1
    try:
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
        stop.check()
        migrate = entry_point_spec("migrate", "encargo-migrate")
        status = run_step("migrate", migrate.command, env, console, stop)
        if status != 0:
            raise StartupError(f"migrations failed ({describe_exit(status)})")
        # issue 6: a demo agent for the support console (prints how to log in)
        run_step("console", [sys.executable, "-m", "console.cli", "demo-agent"], env, console, stop)
        for spec in specs:
            stop.check()
            record.add(spec.name, group.start(spec.name, spec.command, env), spec.marker)
        health = f"http://127.0.0.1:{ports.web}/healthz"
        timeout = start_timeout(env)
        code = supervise(
            group, stop, lambda: http_ok(health), lambda: _banner(ports, env, console),
            ready_timeout=timeout, ready_what=f"{health}",
        )
    except Interrupted:
        console.line("run", f"{stop.signal_name}: stopping")
        code = 0
    except (StartupError, devservices.ServiceError) as exc:
        console.line("run", f"error: {exc}")
        code = 0 if stop.requested else 1
    finally:
        if group.procs:
            console.line("run", f"stopping {', '.join(group.procs)}")
            group.stop_all(force=stop.force)
        for service in reversed(services):
            console.line("run", f"stopping {service.name}")
            service.stop()
        record.clear()
    console.line("run", "stopped" if code == 0 else f"stopped (exit status {code})")
    return code


def exec_with_env(command: list[str]) -> NoReturn:
    env, _ports, _added = _load_environment()
    os.execvpe(command[0], command, env)  # noqa: S606 - replaces this process by design


def exec_only(name: str) -> NoReturn:
    env, ports, _added = _load_environment()
    specs = {spec.name: spec for spec in process_specs(ports)}
    spec = specs[name]
    if not module_exists(spec.module):
        raise SystemExit(f"run: {spec.module} is not written yet")
    os.chdir(ROOT)
    os.execvpe(spec.command[0], spec.command, env)  # noqa: S606 - replaces this process by design


_STOP_ORDER = ["supervisor", "scheduler", "worker", "web", "sandbox-core", "postgres", "redis"]


def _wait_gone(pids: list[tuple[int, str]], timeout: float) -> list[tuple[int, str]]:
    deadline = time.monotonic() + timeout
    while True:
        left = [(pid, marker) for pid, marker in pids if alive_and_matches(pid, marker)]
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.2)


def stop_leftovers(console: Console, path: Path = PIDS_FILE) -> int:
    """End what an earlier run recorded in .run/pids.json: its supervisor first, which stops the rest."""
    entries = PidRecord.load(path)
    stopped = 0
    for name in sorted(entries, key=lambda n: _STOP_ORDER.index(n) if n in _STOP_ORDER else 0):
        entry = entries[name]
        pid, marker = entry.get("pid"), entry.get("marker")
        if not isinstance(pid, int) or not isinstance(marker, str) or not alive_and_matches(pid, marker):
            continue
        console.line("run", f"stopping {name} (pid {pid})")
        # PostgreSQL's fast shutdown is SIGINT; the others stop cleanly on SIGTERM.
        sig = signal.SIGINT if name == "postgres" else signal.SIGTERM
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        timeout = STOP_TIMEOUT_S + 35 if name == "supervisor" else STOP_TIMEOUT_S
        if _wait_gone([(pid, marker)], timeout):
            console.line("run", f"{name} (pid {pid}) did not stop; killing it")
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        stopped += 1
    path.unlink(missing_ok=True)
    if not stopped:
        console.line("run", "nothing from an earlier `make run` is running")
    return 0


def clean(console: Console) -> int:
    stop_leftovers(console)
    link = RUN_DIR / "postgres"
    if link.is_symlink():
        shutil.rmtree(link.resolve(), ignore_errors=True)
    shutil.rmtree(RUN_DIR, ignore_errors=True)
    console.line("run", f"deleted {RUN_DIR}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="run the whole Encargo system locally (make run)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--only", choices=["sandbox-core", "web", "worker", "scheduler"],
                      help="run one process with .run/env loaded; Redis/PostgreSQL must be up")
    mode.add_argument("--exec", nargs=argparse.REMAINDER, metavar="CMD",
                      help="run CMD with .run/env loaded (the rest of the line)")
    mode.add_argument("--stop", action="store_true", help="stop what an earlier run left running")
    mode.add_argument("--clean", action="store_true", help="--stop, then delete .run")
    args = parser.parse_args(argv)
    console = Console()
    if args.only:
        exec_only(args.only)
    if args.exec is not None:
        if not args.exec:
            parser.error("--exec needs a command")
        exec_with_env(args.exec)
    if args.stop:
        return stop_leftovers(console)
    if args.clean:
        return clean(console)
    return run(console)


if __name__ == "__main__":
    sys.exit(main())
