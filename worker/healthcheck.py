"""Container health checks for the worker and the scheduler: `python -m worker.healthcheck worker|scheduler`.

A container's check runs inside that container, so "this host" is the
container (same hostname, same /tmp):

- `worker`: a group of this host (`workers:group:<hostname>:<pid>`, reported
  every ~2 s by the `encargo-worker` supervisor, expiring after
  runtime.presence.REPORT_TTL_S) says at least one worker process is alive.
  Needs REDIS_URL (the container's settings).
- `scheduler`: the scheduler's heartbeat file, touched every
  HEARTBEAT_INTERVAL_S by a job of the scheduler's own loop (`beat`,
  registered by `register_heartbeat`), is younger than HEARTBEAT_STALE_S. A
  scheduler that is not the leader still beats: it is alive, only idle.
  The file is `encargo-scheduler.alive` in the temporary directory
  (`tempfile.gettempdir()`: TMPDIR, else /tmp).

Exit status follows Docker's HEALTHCHECK contract: 0 healthy, 1 unhealthy
(one line on stderr says why). Failure policy: every error (Redis down, a bad
setting, no heartbeat) is an unhealthy answer, never a traceback.
"""

from __future__ import annotations

import socket
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import redis

from config import ConfigError, Settings
from runtime import presence

if TYPE_CHECKING:
    from apscheduler.schedulers.base import BaseScheduler

HEARTBEAT_NAME = "encargo-scheduler.alive"
HEARTBEAT_INTERVAL_S = 10
# Unhealthy after three missed beats: one beat delayed by busy job threads is not a dead scheduler.
HEARTBEAT_STALE_S = 3 * HEARTBEAT_INTERVAL_S
REDIS_TIMEOUT_S = 3.0


def heartbeat_path() -> Path:
    """Where the scheduler of this host beats (the temporary directory, read again on every call)."""
    return Path(tempfile.gettempdir()) / HEARTBEAT_NAME


def beat() -> None:
    """The scheduler is alive: touch the heartbeat file. Errors are raised (APScheduler logs a failed job)."""
    heartbeat_path().touch()


def register_heartbeat(scheduler: BaseScheduler) -> None:
    """Add the heartbeat job to an APScheduler scheduler: first beat as soon as it starts, then every interval."""
    scheduler.add_job(beat, "interval", seconds=HEARTBEAT_INTERVAL_S, id="heartbeat", max_instances=1,
                      coalesce=True, next_run_time=datetime.now(UTC))


def scheduler_problem(now: float | None = None) -> str | None:
    """Why this host's scheduler is not healthy, or None when its heartbeat is fresh."""
    path = heartbeat_path()
    try:
        age = (time.time() if now is None else now) - path.stat().st_mtime
    except FileNotFoundError:
        return f"no heartbeat yet ({path})"
    if age > HEARTBEAT_STALE_S:
        return f"last heartbeat {age:.0f} s ago (stale after {HEARTBEAT_STALE_S} s)"
    return None


def live_workers(conn: redis.Redis, hostname: str) -> int:
    """Worker processes alive in the groups of `hostname` that still report (expired groups count nothing)."""
    prefix = f"{presence.GROUP_PREFIX}{hostname}:"
    keys = sorted(k.decode() if isinstance(k, bytes) else str(k) for k in conn.smembers(presence.GROUPS_KEY))
    mine = [key for key in keys if key.startswith(prefix)]
    if not mine:
        return 0
    with conn.pipeline(transaction=False) as pipe:
        for key in mine:
            pipe.hget(key, "alive")
        found = pipe.execute()
    return sum(int(alive) for alive in found if alive is not None)


def worker_problem(settings: Settings) -> str | None:
    """Why this host's `encargo-worker` is not healthy, or None when it reports a live worker process."""
    hostname = socket.gethostname()
    conn = redis.Redis.from_url(settings.redis_url, socket_timeout=REDIS_TIMEOUT_S,
                                socket_connect_timeout=REDIS_TIMEOUT_S)
    try:
        alive = live_workers(conn, hostname)
    except redis.RedisError as exc:
        return f"Redis did not answer ({type(exc).__name__})"
    finally:
        conn.close()
    if alive < 1:
        return f"no live worker process reported by host {hostname}"
    return None


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args == ["scheduler"]:
        problem = scheduler_problem()
    elif args == ["worker"]:
        try:
            settings = Settings.from_env()
        except ConfigError as exc:
            problem = f"bad setting: {exc}"
        else:
            problem = worker_problem(settings)
    else:
        print("usage: python -m worker.healthcheck worker|scheduler", file=sys.stderr)  # noqa: T201
        return 1
    if problem is not None:
        print(f"unhealthy {args[0]}: {problem}", file=sys.stderr)  # noqa: T201 - what `docker inspect` shows
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
