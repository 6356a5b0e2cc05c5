"""How stored core events reach the workers: a Redis list drained in batches by a few RQ jobs.

Key family: `notifications:events` (list of `core_events` ids waiting) and
`notifications:drainers` (how many drain jobs are queued or running).

A burst of thousands of events at once (a truck unloaded at a point) would
otherwise be thousands of RQ jobs, and RQ's own bookkeeping costs about as much
CPU per job as the notification itself. So `announce` pushes the event id on
the list and queues a drain job only while fewer than MAX_DRAINERS are queued
or running; each drain job pops BATCH ids at a time until the list is empty.

Failure policy: an event whose processing raises stays `queued` in PostgreSQL;
so does one popped by a worker that died. The scheduler's recovery queues such
events one job each (`notifications.jobs.handle_core_event`, with RQ's retries)
once no drainer is working. The drainer count expires (DRAINERS_TTL_S) when its
jobs died without decrementing it. Redis errors in `announce` are raised (the
event stays `received` and recovery queues it).
"""

from __future__ import annotations

import logging
import time

import redis
from rq import Queue

from config import Settings
from observability import correlation
from runtime.resources import Runtime

log = logging.getLogger(__name__)

PENDING_KEY = "notifications:events"
DRAINERS_KEY = "notifications:drainers"
MAX_DRAINERS = 4
BATCH = 20
DRAINERS_TTL_S = 120


def announce(conn: redis.Redis, queue: Queue, settings: Settings, pks: list[int], correlation_id: str) -> None:
    """Put stored events on the list and make sure a drain job will take them. Raises redis errors."""
    if not pks:
        return
    conn.rpush(PENDING_KEY, *pks)
    _start_drainer(conn, queue, settings, correlation_id)


def _start_drainer(conn: redis.Redis, queue: Queue, settings: Settings, correlation_id: str) -> bool:
    pipe = conn.pipeline()
    pipe.incr(DRAINERS_KEY)
    pipe.expire(DRAINERS_KEY, DRAINERS_TTL_S)
    count = int(pipe.execute()[0])
    if count > MAX_DRAINERS:
        conn.decr(DRAINERS_KEY)
        return False
    _enqueue_drainer(queue, settings, correlation_id)
    return True


def _enqueue_drainer(queue: Queue, settings: Settings, correlation_id: str) -> None:
    queue.enqueue_call("notifications.queueing.drain_events", args=(correlation_id,),
                       timeout=settings.job_timeout_s, result_ttl=0, failure_ttl=7 * 24 * 3600)


def drainers_busy(conn: redis.Redis) -> bool:
    """Whether drain jobs are queued or running, or events wait on the list (recovery leaves them alone)."""
    return bool(int(conn.get(DRAINERS_KEY) or 0) > 0 or conn.llen(PENDING_KEY))


def drain_events(rt: Runtime, correlation_id: str) -> int:
    """RQ job: process waiting events BATCH at a time; returns how many.

    It stops when the list is empty, or after half the job timeout, handing its drainer
    slot to a fresh job (a job never runs into its timeout).
    """
    from notifications.jobs import send_and_follow_up
    from notifications.processing import process_event

    with correlation(correlation_id):
        deadline = time.monotonic() + rt.settings.job_timeout_s / 2
        done = 0
        handed_over = False
        try:
            while True:
                if time.monotonic() > deadline and rt.redis.llen(PENDING_KEY):
                    _enqueue_drainer(rt.queue, rt.settings, correlation_id)
                    handed_over = True
                    break
                raw = rt.redis.lpop(PENDING_KEY, BATCH)
                rt.redis.expire(DRAINERS_KEY, DRAINERS_TTL_S)
                if not raw:
                    break
                for item in raw if isinstance(raw, list) else [raw]:
                    pk = int(item)
                    try:
                        for log_id in process_event(rt, pk):
                            send_and_follow_up(rt, log_id)
                    except Exception:  # noqa: BLE001 - one event must not stop the batch; recovery retries it
                        log.exception("core event failed in a batch; recovery will retry it",
                                      extra={"core_event_pk": pk})
                    done += 1
        finally:
            if not handed_over:
                rt.redis.decr(DRAINERS_KEY)
        if not handed_over and rt.redis.llen(PENDING_KEY):  # pushed while we were leaving: take it
            _start_drainer(rt.redis, rt.queue, rt.settings, correlation_id)
        return done
