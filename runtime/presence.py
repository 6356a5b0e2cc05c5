"""How many worker processes are alive: every `encargo-worker` reports its live and expected count.

- `workers:group:<host>:<pid>`  hash {expected, alive}, expiring REPORT_TTL_S after the last report;
- `workers:groups`              set of the group keys that reported (a reader drops the expired ones).

A supervisor reports every second or so (worker.pool); `/readyz` sums the
groups (web.health). A group that stops reporting (its host died) disappears
from the sum within REPORT_TTL_S, with Redis's own clock deciding.

Failure policy: `report` raises redis errors (the reporting loop logs them);
`counts` raises them too (the caller shows the workers as unknown).
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass

import redis

GROUPS_KEY = "workers:groups"
GROUP_PREFIX = "workers:group:"
REPORT_TTL_S = 10


@dataclass(frozen=True)
class WorkerCounts:
    expected: int
    alive: int


def group_key(group: str | None = None) -> str:
    """This process's group key unless `group` is given (host and pid: unique while it runs)."""
    return GROUP_PREFIX + (group or f"{socket.gethostname()}:{os.getpid()}")


def report(conn: redis.Redis, key: str, *, expected: int, alive: int) -> None:
    """Record this group's counts for the next REPORT_TTL_S seconds (one round trip)."""
    with conn.pipeline(transaction=False) as pipe:
        pipe.hset(key, mapping={"expected": expected, "alive": alive})
        pipe.expire(key, REPORT_TTL_S)
        pipe.sadd(GROUPS_KEY, key)
        pipe.execute()


def withdraw(conn: redis.Redis, key: str) -> None:
    """This group stopped on purpose: it no longer counts."""
    with conn.pipeline(transaction=False) as pipe:
        pipe.delete(key)
        pipe.srem(GROUPS_KEY, key)
        pipe.execute()


def counts(conn: redis.Redis) -> WorkerCounts | None:
    """The sum over the groups still reporting; None when none reports."""
    keys = sorted(k.decode() if isinstance(k, bytes) else str(k) for k in conn.smembers(GROUPS_KEY))
    if not keys:
        return None
    with conn.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.hmget(key, "expected", "alive")
        found = pipe.execute()
    expected = alive = 0
    gone = []
    for key, (exp, live) in zip(keys, found, strict=True):
        if exp is None or live is None:
            gone.append(key)
            continue
        expected += int(exp)
        alive += int(live)
    if gone:
        conn.srem(GROUPS_KEY, *gone)
    if expected == 0 and alive == 0 and len(gone) == len(keys):
        return None
    return WorkerCounts(expected=expected, alive=alive)
