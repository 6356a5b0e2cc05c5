"""`make run`'s child processes: start them, print their lines with their names, watch and stop them.

Children run in their own sessions (the terminal's Ctrl-C reaches only the
supervisor) and get SIGTERM if the supervisor dies without cleaning up. The
first SIGINT/SIGTERM/SIGHUP asks to stop; a second one stops without waiting.
A child that exits on its own is started again after a back-off that grows
while it keeps crashing soon after starting (RESTART_DELAYS_S); only a signal
stops everything.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from scripts.run_environment import ROOT, START_TIMEOUT_S
from worker.pool import describe_exit

STOP_TIMEOUT_S = 25.0  # an RQ worker finishes its current job on SIGTERM (JOB_TIMEOUT_S is 30 by default)
RESTART_DELAYS_S = (1.0, 2.0, 5.0, 10.0, 30.0)  # after the 1st, 2nd, ... crash in a row
STABLE_S = 60.0  # a child that ran this long before crashing starts again from the first delay


class Interrupted(Exception):
    """Ctrl-C or SIGTERM arrived while starting up."""


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
    _commands: dict[str, tuple[list[str], dict[str, str], Path]] = field(default_factory=dict)

    def start(self, name: str, command: list[str], env: Mapping[str, str], cwd: Path = ROOT) -> int:
        self._commands[name] = (list(command), dict(env), cwd)
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

    def restart(self, name: str) -> int:
        """Start child `name` again with the command it was started with; returns its new pid."""
        command, env, cwd = self._commands[name]
        return self.start(name, command, env, cwd)

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


@dataclass
class _Crashes:
    """A child's crashes in a row, and when it may start again."""

    in_a_row: int = 0
    started_at: float = field(default_factory=time.monotonic)
    restart_at: float | None = None


def supervise(
    group: ProcessGroup,
    stop: StopFlag,
    ready: Callable[[], bool],
    on_ready: Callable[[], None],
    *,
    ready_timeout: float = START_TIMEOUT_S,
    ready_what: str = "the web server",
    poll_s: float = 0.2,
    on_restart: Callable[[str, int], None] | None = None,
    restart_delays: tuple[float, ...] = RESTART_DELAYS_S,
) -> int:
    """Watch the children until a signal (0) or until the web server never gets ready (1).

    A child that exits is started again after a back-off (logged), growing while it keeps crashing within
    STABLE_S of starting; `on_restart(name, pid)` hears of each new process.
    """
    deadline = time.monotonic() + ready_timeout
    announced = False
    next_check = 0.0
    crashes = {name: _Crashes() for name in group.procs}
    while not stop.requested:
        now = time.monotonic()
        for name, proc in list(group.procs.items()):
            state = crashes.setdefault(name, _Crashes())
            code = proc.poll()
            if code is not None and state.restart_at is None:
                lived = now - state.started_at
                state.in_a_row = state.in_a_row + 1 if lived < STABLE_S else 1
                delay = restart_delays[min(state.in_a_row, len(restart_delays)) - 1]
                again = f" ({state.in_a_row} times in a row)" if state.in_a_row > 1 else ""
                group.console.line("run", f"{name} exited unexpectedly ({describe_exit(code)}){again}; "
                                          f"restarting it in {delay:g}s")
                state.restart_at = now + delay
            elif code is not None and state.restart_at is not None and now >= state.restart_at:
                pid = group.restart(name)
                state.started_at, state.restart_at = time.monotonic(), None
                group.console.line("run", f"{name} restarted (pid {pid})")
                if on_restart is not None:
                    on_restart(name, pid)
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
