"""From the announcements on `ingest:events` to RQ jobs, off the acknowledgement path.

Building an RQ job costs a few Redis round trips; the webhook should not wait
for them. So the webhook announces what needs a job with one command, and
this dispatcher queues the jobs:
- a status callback: stored in PostgreSQL, announced with one RPUSH; queued
  here as its own job;
- a customer message goes straight into its customer's inbox (worker.inbox);
  when that needs a new drain job, the same Lua call announces the job and it
  is queued here.
One dispatcher is active at a time (a Redis lease), so announcements are queued
in arrival order. The dispatcher runs as a thread of every `encargo-worker`
process group; the others stand by.

Failure policy: an announcement popped by a dispatcher that dies before
queueing it is not lost: a status stays `received` in PostgreSQL and the
scheduler's recovery loop queues it (worker.recovery); a drain job's slot
expires and recovery announces a new one (`worker.inbox.wake`). Errors are
logged, never raised out of the loop.
"""

from __future__ import annotations

import json
import logging
import threading

import redis

from storage import webhook_events
from worker import inbox
from worker.enqueue import INGEST_KEY, enqueue_event
from worker.leader import Leader
from worker.runtime import Runtime

log = logging.getLogger(__name__)

LEASE_KEY = "dispatcher:leader"
BATCH = 200


def announce(conn: redis.Redis, *, event_pk: int, kind: str, correlation_id: str) -> None:
    """Tell the dispatcher a stored status callback waits to be queued. Raises redis errors."""
    conn.rpush(INGEST_KEY, json.dumps({"pk": event_pk, "kind": kind, "cid": correlation_id}))


def dispatch_pending(runtime: Runtime, *, block_s: float = 0.0) -> int:
    """Queue a job for every announcement (waiting up to `block_s` for the first); returns how many."""
    conn = runtime.redis
    if block_s > 0:
        first = conn.blpop([INGEST_KEY], timeout=block_s)
        items = [first[1]] if first else []
    else:
        items = []
    while True:
        more = conn.lpop(INGEST_KEY, BATCH)
        if not more:
            break
        items.extend(more if isinstance(more, list) else [more])
        if len(items) >= BATCH:
            break
    announced = [json.loads(raw) for raw in items]
    inbox.queue_drainers(runtime.queue, runtime.settings, [a["job"] for a in announced if a["kind"] == "drainer"],
                         "dispatcher")
    events = [a for a in announced if a["kind"] != "drainer"]
    for a in events:
        enqueue_event(runtime.queue, runtime.settings, kind=a["kind"], event_pk=a["pk"], sealed=None,
                      # "conv": a message announced by a web process of the previous release (before inboxes)
                      conversation_hash=a.get("conv"), correlation_id=a["cid"])
    webhook_events.mark_queued(runtime.pool, [int(a["pk"]) for a in events])
    return len(announced)


def run_dispatcher(runtime: Runtime, stop: threading.Event, *, lease_s: float = 10.0) -> None:
    """Loop until `stop` is set: while holding the lease, turn announcements into jobs."""
    leader = Leader(runtime.redis, lease_s=lease_s, key=LEASE_KEY)
    redis_lost = False
    try:
        while not stop.is_set():
            if not leader.holds():  # False while Redis is away, too
                stop.wait(lease_s / 3)
                continue
            try:
                dispatch_pending(runtime, block_s=min(1.0, lease_s / 3))
                redis_lost = False
            except (redis.ConnectionError, redis.TimeoutError) as exc:  # one line per outage (holds() is False)
                if not redis_lost:
                    log.warning("dispatcher paused: redis unavailable (%s)", type(exc).__name__)
                redis_lost = True
                stop.wait(1.0)
            except Exception:  # noqa: BLE001 - the loop must survive Redis/PostgreSQL blips; recovery covers losses
                log.exception("dispatcher pass failed")
                stop.wait(1.0)
    finally:
        leader.release()


def start_dispatcher(runtime: Runtime) -> tuple[threading.Thread, threading.Event]:
    stop = threading.Event()
    thread = threading.Thread(target=run_dispatcher, args=(runtime, stop), name="dispatcher", daemon=True)
    thread.start()
    return thread, stop
