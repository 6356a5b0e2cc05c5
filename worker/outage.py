"""Redis going away under a worker: wait for it with back-off and say so once per outage.

rq retries a lost connection inside its dequeue loop (a log line per attempt)
and leaves its work loop when Redis fails elsewhere. This module keeps, per
process, whether Redis is away, so the log says it twice per outage, whoever
noticed: "redis unreachable" when it goes, "redis reachable again" when it is
back.
- `STATE.went_away(exc)` / `STATE.came_back()`: the two lines, each once;
- `RetryLines`: a filter for rq's logger that turns its per-attempt lines
  (and its "quitting" traceback for a lost connection) into `went_away`;
- `wait_for_redis`: PING with back-off until Redis answers or a stop is asked.

Failure policy: nothing here raises; Redis errors are what it waits out.
"""

from __future__ import annotations

import logging
import threading
import time

import redis

log = logging.getLogger(__name__)

FIRST_DELAY_S = 0.5
MAX_DELAY_S = 10.0
_LOST = (redis.ConnectionError, redis.TimeoutError)


class Outage:
    """Whether this process saw Redis go away and not come back yet."""

    def __init__(self) -> None:
        self.down_since: float | None = None
        self._lock = threading.Lock()

    def went_away(self, exc: BaseException) -> None:
        with self._lock:
            if self.down_since is not None:
                return
            self.down_since = time.monotonic()
        log.error("redis unreachable (%s); the worker waits for it", type(exc).__name__)

    def came_back(self) -> None:
        if self.down_since is None:  # the usual case: no lock taken
            return
        with self._lock:
            since, self.down_since = self.down_since, None
        if since is not None:
            log.warning("redis reachable again after %.0fs; the worker resumes", time.monotonic() - since)


STATE = Outage()


class RetryLines(logging.Filter):
    """For rq's logger: its lines about a lost Redis connection become one `went_away`."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args if isinstance(record.args, tuple) else ()
        exc = record.exc_info[1] if record.exc_info else None
        lost = exc if isinstance(exc, _LOST) else next((a for a in args if isinstance(a, _LOST)), None)
        if lost is None and isinstance(record.msg, str) and "Redis connection timeout" in record.msg:
            lost = redis.TimeoutError("timeout")
        if lost is None:
            return True
        STATE.went_away(lost)
        return False


def wait_for_redis(conn: redis.Redis, stop: threading.Event) -> bool:
    """True once Redis answers PING; False when `stop` is set first."""
    delay = FIRST_DELAY_S
    while not stop.is_set():
        try:
            conn.ping()
        except redis.RedisError as exc:
            STATE.went_away(exc)
            stop.wait(delay)
            delay = min(delay * 2, MAX_DELAY_S)
            continue
        STATE.came_back()
        return True
    return False
