"""CPU accounting from /proc: how much CPU each process tree used, and how busy the rest of the machine was.

- `cpu_by_component` reads /proc to say how much CPU each named process tree used.
- `CpuMeter` measures that for each component during a run, plus the "foreign" CPU: the
  machine's busy time minus this benchmark's own process tree (other people's work on a shared machine).
- `foreign_load_pct` samples that foreign share; `wait_for_quiet` waits (bounded) until it is low.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from bench.common import log

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
