"""What a `make run` left running: .run/pids.json, processes recognised through /proc, and who holds a port.

The supervisor records every process it starts (with a marker string from its
command line, so a reused pid is not mistaken for it); `--stop` and the check
for taken ports read that record back.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Mapping
from pathlib import Path

from scripts.run_environment import PORT_VARS, RUN_DIR, Ports, StartupError

PIDS_FILE = RUN_DIR / "pids.json"


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


def process_cmdline(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()


def alive_and_matches(pid: int, marker: str) -> bool:
    """The pid still runs the same program (not a reused pid)."""
    return marker in process_cmdline(pid)


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
