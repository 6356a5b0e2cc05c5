"""`encargo-worker --processes N`: keep N worker processes alive, replacing any that dies.

A worker process can die without asking anyone (SIGKILL, the OOM killer, a
crash in a C extension). The supervisor looks at its children every
POLL_S; a dead one is logged with how it ended and replaced after a back-off
that doubles while replacements keep dying young (RESTART_DELAYS_S), and is
reset once a process has lived STABLE_S. Every pass reports how many are
alive to Redis (runtime.presence), which `/readyz` shows; the log says when
the count changes.

Only a stop request (SIGTERM / SIGINT to the supervisor) ends it: the children
get SIGTERM (each finishes the job in hand), then the supervisor returns.

Failure policy: errors reporting to Redis are logged once per outage, never
raised; a child that cannot start is retried like one that died.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.process import BaseProcess

import redis

from runtime import presence

log = logging.getLogger(__name__)

POLL_S = 0.5
RESTART_DELAYS_S = (1.0, 2.0, 5.0, 10.0, 30.0)
STABLE_S = 60.0
STOP_TIMEOUT_S = 40.0  # longer than a job's timeout: each child finishes the job in hand


def describe_exit(code: int | None) -> str:
    """How a process ended, from its exit status (negative: the signal that killed it), for the logs."""
    if code is None:
        return "still running"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


@dataclass
class Slot:
    """One of the N places a worker process fills."""

    index: int
    process: BaseProcess | None = None
    started_at: float = 0.0
    quick_deaths: int = 0  # consecutive deaths within STABLE_S of starting
    restart_at: float | None = None


@dataclass
class WorkerPool:
    """Starts `size` processes running `target(index)` and keeps them alive until `stop` is set."""

    size: int
    target: Callable[[int], None]
    conn: redis.Redis | None = None
    slots: list[Slot] = field(default_factory=list)
    _presence_key: str = field(default_factory=presence.group_key)
    _reporting_failed: bool = False
    _last_alive: int = -1

    def run(self, stop: threading.Event) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.slots = [Slot(i) for i in range(self.size)]
        for slot in self.slots:
            self._start(ctx, slot)
        log.info("worker processes started: %s", self.size)
        try:
            while not stop.is_set():
                self._check(ctx)
                self._report()
                stop.wait(POLL_S)
        finally:
            self._stop_all()

    def alive(self) -> int:
        return sum(1 for slot in self.slots if slot.process is not None and slot.process.is_alive())

    def _start(self, ctx: multiprocessing.context.SpawnContext, slot: Slot) -> None:
        process = ctx.Process(target=self.target, args=(slot.index,), name=f"worker-{slot.index}", daemon=False)
        process.start()
        slot.process, slot.started_at, slot.restart_at = process, time.monotonic(), None

    def _check(self, ctx: multiprocessing.context.SpawnContext) -> None:
        now = time.monotonic()
        for slot in self.slots:
            process = slot.process
            if process is not None and not process.is_alive():
                process.join()
                lived = now - slot.started_at
                slot.quick_deaths = slot.quick_deaths + 1 if lived < STABLE_S else 1
                delay = RESTART_DELAYS_S[min(slot.quick_deaths, len(RESTART_DELAYS_S)) - 1]
                log.warning("worker process %s (pid %s) died: %s after %.0fs; starting a new one in %.0fs",
                            slot.index, process.pid, describe_exit(process.exitcode), lived, delay)
                slot.process, slot.restart_at = None, now + delay
            if slot.process is None and slot.restart_at is not None and now >= slot.restart_at:
                self._start(ctx, slot)
                log.info("worker process %s replaced (pid %s)", slot.index, slot.process.pid if slot.process else 0)

    def _report(self) -> None:
        alive = self.alive()
        if alive != self._last_alive:
            # below strength, and back to it after a loss, is worth a warning; the first start is not
            degraded = alive < self.size or self._last_alive not in (-1, self.size)
            log.log(logging.WARNING if degraded and self._last_alive != -1 else logging.INFO,
                    "worker processes alive: %s of %s", alive, self.size)
            self._last_alive = alive
        if self.conn is None:
            return
        try:
            presence.report(self.conn, self._presence_key, expected=self.size, alive=alive)
        except redis.RedisError as exc:
            if not self._reporting_failed:
                log.warning("cannot report live workers to redis: %s", type(exc).__name__)
            self._reporting_failed = True
            return
        self._reporting_failed = False

    def _stop_all(self) -> None:
        running = [slot.process for slot in self.slots if slot.process is not None and slot.process.is_alive()]
        for process in running:
            if process.pid:
                try:
                    os.kill(process.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for process in running:
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                log.warning("worker process (pid %s) did not stop in time; killing it", process.pid)
                process.kill()
                process.join()
        if self.conn is not None:
            try:
                presence.withdraw(self.conn, self._presence_key)
            except redis.RedisError:
                pass
