"""From the webhook's announcement to the queue, off the acknowledgement path.

The webhook stores an event in PostgreSQL and announces it with one RPUSH on
`ingest:events` (a fraction of a millisecond); putting it on the queue costs
more Redis round trips and is done here instead: a customer message goes to
its customer's inbox (worker.inbox, one round trip for a whole batch), a
status callback becomes an RQ job of its own. One dispatcher is active at a
time (a Redis lease), so announcements are queued in arrival order and a
customer's messages keep their order. The dispatcher runs as a thread of
every `encargo-worker` process group; the others stand by.

Failure policy: an announcement popped by a dispatcher that dies before
queueing it is not lost: its event is still `received` in PostgreSQL and the
scheduler's recovery loop queues it (worker.recovery). Errors are logged,
never raised out of the loop.
"""

from __future__ import annotations

import json
import logging
import threading

import redis

from storage import webhook_events
from worker import inbox
from worker.enqueue import enqueue_event
from worker.leader import Leader
from worker.runtime import Runtime

log = logging.getLogger(__name__)

INGEST_KEY = "ingest:events"
LEASE_KEY = "dispatcher:leader"
BATCH = 200


def announce(conn: redis.Redis, *, event_pk: int, kind: str, conversation_hash: str | None,
             correlation_id: str) -> None:
    """Tell the dispatcher a stored event waits to be queued. Raises redis errors."""
    conn.rpush(INGEST_KEY, json.dumps({"pk": event_pk, "kind": kind, "conv": conversation_hash,
                                       "cid": correlation_id}))


def dispatch_pending(runtime: Runtime, *, block_s: float = 0.0) -> int:
    """Queue every announced event (waiting up to `block_s` for the first); returns how many."""
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
    messages = [(a["conv"], int(a["pk"]), a["cid"]) for a in announced if a["kind"] == "message"]
    drainers = inbox.deliver(conn, runtime.settings, messages)
    inbox.queue_drainers(runtime.queue, runtime.settings, drainers, "dispatcher")
    for a in announced:
        if a["kind"] != "message":
            enqueue_event(runtime.queue, runtime.settings, kind=a["kind"], event_pk=a["pk"], sealed=None,
                          conversation_hash=None, correlation_id=a["cid"])
    if announced:
        webhook_events.mark_queued(runtime.pool, [int(a["pk"]) for a in announced])
    return len(announced)


def run_dispatcher(runtime: Runtime, stop: threading.Event, *, lease_s: float = 10.0) -> None:
    """Loop until `stop` is set: while holding the lease, turn announcements into jobs."""
    leader = Leader(runtime.redis, lease_s=lease_s, key=LEASE_KEY)
    try:
        while not stop.is_set():
            if not leader.holds():
                stop.wait(lease_s / 3)
                continue
            try:
                dispatch_pending(runtime, block_s=min(1.0, lease_s / 3))
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
