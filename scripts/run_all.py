"""`make run`: the whole system on one machine, in one terminal.

Starts a private Redis and PostgreSQL (data under .run/, through
scripts/devservices.py), applies migrations, then runs the sandbox core, the
web server (gunicorn), the RQ worker and the scheduler as child processes with
the environment from .run/env (the real environment wins). Every child line is
printed with the child's name in front. Ctrl-C or SIGTERM stops the children,
then PostgreSQL and Redis, and exits 0; a child that dies on its own is
started again after a back-off that grows while it keeps crashing (the rest
keeps running); the exit status is 1 only when the web server never answers.

    python -m scripts.run_all                  # everything (make run)
    python -m scripts.run_all --only worker    # one process, services assumed up (make worker)
    python -m scripts.run_all --exec CMD ...   # any command with .run/env loaded (make chat)
    python -m scripts.run_all --stop           # stop what an earlier run left running (make stop)
    python -m scripts.run_all --clean          # --stop, then delete .run (make clean-run)

This module is the supervisor's sequence and its command line; the parts live in
    scripts/run_environment.py  .run/env, the ports (ENCARGO_*_PORT) and the children's environment
    scripts/run_record.py       .run/pids.json, processes recognised through /proc, ports in use
    scripts/run_services.py     Redis and PostgreSQL, migrations, the demo agent
    scripts/run_commands.py     the command line of each child
    scripts/run_children.py     starting, prefixing, watching and stopping the children
    scripts/run_banner.py       what is printed once the web server answers
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import NoReturn

if __package__ in (None, ""):  # run as `python scripts/run_all.py`: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scripts import devservices  # noqa: E402
from scripts.run_banner import print_banner  # noqa: E402
from scripts.run_children import (  # noqa: E402
    STOP_TIMEOUT_S,
    Console,
    Interrupted,
    ProcessGroup,
    StopFlag,
    supervise,
)
from scripts.run_commands import module_exists, process_specs  # noqa: E402
from scripts.run_environment import ENV_FILE, ROOT, RUN_DIR, StartupError, load_environment, start_timeout  # noqa: E402
from scripts.run_record import PIDS_FILE, PidRecord, alive_and_matches, check_ports_free  # noqa: E402
from scripts.run_services import (  # noqa: E402
    ensure_services_installed,
    prepare_database,
    start_services,
    stop_services,
)


def http_ok(url: str, timeout: float = 1.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - our own http:// URL
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError, ValueError):
        return False


# --- commands -------------------------------------------------------------------------------


def run(console: Console) -> int:
    stop = StopFlag()
    stop.install()
    try:
        env, ports, added = load_environment()
    except StartupError as exc:
        console.line("run", f"error: {exc}")
        return 2
    if added:
        console.line("run", f"wrote {ENV_FILE.relative_to(ROOT)}: {', '.join(added)}")
    specs = process_specs()
    missing = [f"{spec.name} ({spec.module})" for spec in specs if not module_exists(spec.module)]
    if missing:
        console.line("run", f"error: not written yet: {', '.join(missing)}")
        return 1
    try:
        check_ports_free(ports, PidRecord.load())
        ensure_services_installed()
    except (StartupError, devservices.ServiceError) as exc:
        console.line("run", f"error: {exc}")
        return 0 if stop.requested else 1

    record = PidRecord()
    record.add("supervisor", os.getpid(), "run_all")
    services: list[devservices.RunningService] = []
    group = ProcessGroup(console)
    code = 1
    try:
        start_services(ports, console, stop, record, services)
        prepare_database(env, console, stop)
        for spec in specs:
            stop.check()
            record.add(spec.name, group.start(spec.name, spec.command, env), spec.marker)
        health = f"http://127.0.0.1:{ports.web}/healthz"
        timeout = start_timeout(env)
        markers = {spec.name: spec.marker for spec in specs}
        code = supervise(
            group, stop, lambda: http_ok(health), lambda: print_banner(ports, env, console),
            ready_timeout=timeout, ready_what=f"{health}",
            on_restart=lambda name, pid: record.add(name, pid, markers[name]),
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
        stop_services(services, console)
        record.clear()
    console.line("run", "stopped" if code == 0 else f"stopped (exit status {code})")
    return code


def exec_with_env(command: list[str]) -> NoReturn:
    env, _ports, _added = load_environment()
    os.execvpe(command[0], command, env)  # noqa: S606 - replaces this process by design


def exec_only(name: str) -> NoReturn:
    env, _ports, _added = load_environment()
    specs = {spec.name: spec for spec in process_specs()}
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
