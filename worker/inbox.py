"""Customers' inboxes: one customer's messages one at a time, many customers per RQ job.

An RQ job per message costs about as much worker CPU in RQ's own bookkeeping
(dequeue, registries, executions, heartbeats, the per-customer RateLimit) as
answering the message. So a customer's messages wait in their own Redis list,
the inbox, and a few long-lived "drain" jobs take turns over the customers who
have something waiting, one message per turn:

- `inbox:<customer>`  list of "<event pk>:<correlation id>", oldest first;
- `inbox:held`        sorted set of customers with something waiting: score
                      +inf while the customer waits in `inbox:ready`, else the
                      time (Redis clock) the drain job holding it is killed by
                      RQ's timeout: its lease;
- `inbox:ready`       list of customers waiting for a drain job, in turn order;
- `inbox:drainers`    sorted set of drain jobs queued or running (job id ->
                      time after which the slot is free again).

The webhook puts a message in its customer's inbox and, if the customer was
not already waiting or held, the customer joins `inbox:ready` (one Lua call,
`deliver`); when a drain job is needed as well, the same call announces it on
`ingest:events` and the dispatcher (worker.dispatch) queues it, off the
acknowledgement path.
A drain job claims the first ready customer (taking a lease on it), handles the
oldest message of its inbox, and releases it: the message leaves the inbox
only then, and the customer goes back to the end of `inbox:ready` if more is
waiting. A customer is held by at most one drain job, so their messages run one
at a time, in order; different customers run in parallel. At most
`MESSAGE_DRAINERS` drain jobs exist; under load each takes hundreds of turns.
When nobody waits, a drain job lingers `MESSAGE_DRAIN_LINGER_S` (looking
again every POLL_S) before it gives its slot up: under a steady trickle the
same job takes the next message instead of a new RQ job being built for it.

Failure policy:
- a message whose handling raises is handed to its own RQ job with the usual
  back-off (`worker.enqueue.enqueue_event`), and the customer's later messages
  go on meanwhile: one failing message must not silence a customer for minutes;
- a drain job that dies (worker killed) leaves its message at the head of the
  inbox; its lease has run out by the time RQ notices the abandoned job and
  runs it again, and every claim first returns customers with run-out leases
  to `inbox:ready`. The scheduler's recovery pass does the same (`wake`), so a
  customer is never left held by a dead job;
- a drain job hands its slot to a fresh job after ITEMS_PER_JOB messages or
  half its timeout, so it never runs into the timeout and other jobs (status
  callbacks, notifications, delivery retries) get their turn in the queue; and
  as soon as its worker is asked to stop (a deploy): the message in hand is
  finished, the rest is left to the other workers (`STOPPING`).

All Lua runs with Redis's own clock (`TIME`), so worker clocks do not matter.
Keys are built inside the scripts from the customer hash: single Redis
instance only (no Redis Cluster), like the rest of the queue.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

import redis
from rq import Queue, Retry
from rq.timeouts import JobTimeoutException

from config import Settings
from observability import correlation
from storage import lua
from worker.enqueue import FAILED_TTL_S, INGEST_KEY, enqueue_event
from worker.inbound import process_message
from worker.runtime import Runtime

log = logging.getLogger(__name__)

INBOX_PREFIX = "inbox:"
HELD_KEY = "inbox:held"
READY_KEY = "inbox:ready"
DRAINERS_KEY = "inbox:drainers"

ITEMS_PER_JOB = 200
POLL_S = 0.02
# Set when this process's worker was asked to stop (worker.main.EncargoWorker): drain jobs hand over at once.
STOPPING = threading.Event()
SWEEP_LIMIT = 50
# A drain job that died is run again at once by RQ (its customers' leases have run out by then).
DRAIN_RETRY = Retry(max=3, interval=[0, 10, 60])

_PREFIX = f"local prefix = '{INBOX_PREFIX}'\n"
_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
"""
# Customers whose lease ran out (their drain job died) wait again, at the front of the turn order.
_SWEEP = f"""
local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, {SWEEP_LIMIT})
for i = #expired, 1, -1 do
  redis.call('ZADD', KEYS[1], 'inf', expired[i])
  redis.call('LPUSH', KEYS[2], expired[i])
end
"""
# ARGV[n], ARGV[n+1], ARGV[n+2]: the most drain jobs, a slot's life in seconds, a new job id.
# Returns the new job id when a slot was free (that job must be queued), else false.
_RESERVE = """
local function reserve(n)
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
  if redis.call('ZCARD', KEYS[3]) < tonumber(ARGV[n]) then
    redis.call('ZADD', KEYS[3], now + tonumber(ARGV[n + 1]), ARGV[n + 2])
    return ARGV[n + 2]
  end
  return false
end
"""
# KEYS[4]: the dispatcher's announcements; the reserved drain job is announced there.
_ANNOUNCE = """
local function announce(job_id)
  if job_id then
    redis.call('RPUSH', KEYS[4], cjson.encode({kind = 'drainer', job = job_id}))
  end
  return job_id
end
"""

# KEYS: held, ready, drainers, announcements; ARGV: customer, item, most drainers, slot life, new job id.
# A customer already waiting or held needs no new drain job: whoever holds them puts them back in turn.
_DELIVER = _PREFIX + _NOW + _RESERVE + _ANNOUNCE + """
redis.call('RPUSH', prefix .. ARGV[1], ARGV[2])
if redis.call('ZADD', KEYS[1], 'NX', 'inf', ARGV[1]) == 1 then
  redis.call('RPUSH', KEYS[2], ARGV[1])
  return announce(reserve(3))
end
return false
"""

# KEYS: held, ready, drainers; ARGV: this job's id, lease seconds, slot life, "1" to keep the slot.
# Returns {customer, item, lease} or false when nobody waits (the job's slot is then given up, unless kept).
_CLAIM = _PREFIX + _NOW + _SWEEP + """
while true do
  local customer = redis.call('LPOP', KEYS[2])
  if not customer then
    if ARGV[4] ~= '1' then
      redis.call('ZREM', KEYS[3], ARGV[1])
    end
    return false
  end
  local item = redis.call('LINDEX', prefix .. customer, 0)
  if item then
    redis.call('ZADD', KEYS[3], now + tonumber(ARGV[3]), ARGV[1])
    redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), customer)
    return {customer, item, redis.call('ZSCORE', KEYS[1], customer)}
  end
  redis.call('ZREM', KEYS[1], customer)
end
"""

# KEYS: held, ready; ARGV: customer, item, lease (as claimed).
# 1: more waits (back in the turn order), 0: inbox empty, -1: the lease was lost (nothing touched).
_RELEASE = _PREFIX + """
if redis.call('ZSCORE', KEYS[1], ARGV[1]) ~= ARGV[3] then
  return -1
end
local inbox = prefix .. ARGV[1]
if redis.call('LINDEX', inbox, 0) == ARGV[2] then
  redis.call('LPOP', inbox)
end
if redis.call('LLEN', inbox) == 0 then
  redis.call('ZREM', KEYS[1], ARGV[1])
  return 0
end
redis.call('ZADD', KEYS[1], 'inf', ARGV[1])
redis.call('RPUSH', KEYS[2], ARGV[1])
return 1
"""

# KEYS: held, ready, drainers; ARGV: old job id, most drainers, slot life, new job id.
_HAND_OVER = _NOW + _RESERVE + """
redis.call('ZREM', KEYS[3], ARGV[1])
return reserve(2)
"""

# KEYS: held, ready, drainers, announcements; ARGV: most drainers (1: only when there is none), slot life,
# new job id.
_WAKE = _NOW + _SWEEP + _RESERVE + _ANNOUNCE + """
if redis.call('LLEN', KEYS[2]) == 0 then
  return false
end
return announce(reserve(1))
"""

_KEYS = [HELD_KEY, READY_KEY, DRAINERS_KEY, INGEST_KEY]

_DELIVER_SCRIPT, _CLAIM_SCRIPT, _RELEASE_SCRIPT, _HAND_OVER_SCRIPT, _WAKE_SCRIPT = (
    lua.script(source) for source in (_DELIVER, _CLAIM, _RELEASE, _HAND_OVER, _WAKE))


@dataclass(frozen=True)
class Claim:
    customer: str
    item: str
    lease: bytes

    @property
    def event_pk(self) -> int:
        return int(self.item.split(":", 1)[0])

    @property
    def correlation_id(self) -> str:
        return self.item.split(":", 1)[1]


def inbox_key(customer: str) -> str:
    return INBOX_PREFIX + customer


def item_for(event_pk: int, correlation_id: str) -> str:
    return f"{event_pk}:{correlation_id}"


def slot_life_s(settings: Settings) -> int:
    """How long a drain job keeps its slot without claiming: time to wait in the queue plus one run."""
    return settings.job_timeout_s + 120


def _new_job_id() -> str:
    return "inbox-" + uuid.uuid4().hex[:20]


def _text(value: Any) -> str | None:
    if value is None or value is False:
        return None
    return value.decode() if isinstance(value, bytes) else str(value)


def deliver(conn: redis.Redis, settings: Settings, customer: str, event_pk: int, correlation_id: str) -> bool:
    """Put a message in its customer's inbox (one round trip); True when a drain job was announced for it.

    Raises redis errors (the event stays in PostgreSQL for the recovery loop).
    """
    job_id = _DELIVER_SCRIPT(keys=_KEYS, args=[customer, item_for(event_pk, correlation_id), settings.message_drainers,
                                               slot_life_s(settings), _new_job_id()], client=conn)
    return _text(job_id) is not None


def queue_drainers(queue: Queue, settings: Settings, job_ids: list[str], correlation_id: str) -> None:
    for job_id in job_ids:
        queue.enqueue_call("worker.jobs.drain_inbox", args=(correlation_id,), job_id=job_id,
                           timeout=settings.job_timeout_s, result_ttl=0, failure_ttl=FAILED_TTL_S,
                           retry=DRAIN_RETRY)


def holds(conn: redis.Redis, customer: str, event_pk: int, correlation_id: str) -> bool:
    """Whether the message still waits (or is being handled) in its customer's inbox."""
    return conn.lpos(inbox_key(customer), item_for(event_pk, correlation_id)) is not None


def wake(conn: redis.Redis, settings: Settings) -> bool:
    """Return customers held by dead drain jobs to the turn order; announce a drain job if customers wait and
    none exists (they all died for good). Returns whether one was announced."""
    # Only when no drain job at all is queued or running: a live one takes the waiting customers in turn.
    return _text(_WAKE_SCRIPT(keys=_KEYS, args=[1, slot_life_s(settings), _new_job_id()], client=conn)) is not None


def claim(conn: redis.Redis, job_id: str, *, lease_s: float, slot_life: int, keep_slot: bool = False) -> Claim | None:
    """The next customer in turn and their oldest message; None when nobody waits (the slot given up unless
    `keep_slot`)."""
    raw = _CLAIM_SCRIPT(keys=_KEYS[:3], args=[job_id, f"{lease_s:.3f}", slot_life, "1" if keep_slot else "0"],
                        client=conn)
    if not raw:
        return None
    customer, item, lease = raw
    return Claim(customer=_text(customer) or "", item=_text(item) or "", lease=lease)


def release(conn: redis.Redis, claimed: Claim) -> int:
    """1: more waits, 0: inbox empty, -1: the lease had run out (another job took the customer over)."""
    result = _RELEASE_SCRIPT(keys=_KEYS[:2], args=[claimed.customer, claimed.item, claimed.lease], client=conn)
    return int(result)


def drain(runtime: Runtime, job_id: str, *, items_per_job: int = ITEMS_PER_JOB) -> int:
    """The drain job's loop (see the module docstring); returns how many messages it handled."""
    settings = runtime.settings
    started = time.monotonic()
    killed_at = started + settings.job_timeout_s  # RQ's timeout: no lease may outlive it
    hand_over_at = started + settings.job_timeout_s / 2
    idle_until = started + settings.message_drain_linger_s
    done = 0
    while True:
        now = time.monotonic()
        if done >= items_per_job or now > hand_over_at or STOPPING.is_set():
            _hand_over(runtime, job_id)
            return done
        lingering = now < idle_until
        claimed = claim(runtime.redis, job_id, lease_s=max(0.1, killed_at - now), slot_life=slot_life_s(settings),
                        keep_slot=lingering)
        if claimed is None:
            if not lingering:
                return done  # the slot is given up: the next message announces a new drain job
            time.sleep(POLL_S)
            continue
        with correlation(claimed.correlation_id):
            try:
                process_message(runtime, claimed.event_pk)
            except JobTimeoutException:
                raise
            except Exception:  # noqa: BLE001 - one message must not stop its customer or the others
                log.exception("message failed in a drain job; retrying it on its own",
                              extra={"event_pk": claimed.event_pk})
                enqueue_event(runtime.queue, settings, kind="message", event_pk=claimed.event_pk, sealed=None,
                              conversation_hash=claimed.customer, correlation_id=claimed.correlation_id)
            if release(runtime.redis, claimed) < 0:
                log.warning("inbox lease ran out while the message was handled", extra={"event_pk": claimed.event_pk})
        done += 1
        idle_until = time.monotonic() + settings.message_drain_linger_s


def _hand_over(runtime: Runtime, job_id: str) -> None:
    """Give this job's slot to a fresh drain job at the back of the queue."""
    settings = runtime.settings
    new_id = _text(_HAND_OVER_SCRIPT(keys=_KEYS[:3], args=[job_id, settings.message_drainers, slot_life_s(settings),
                                                      _new_job_id()], client=runtime.redis))
    if new_id:
        queue_drainers(runtime.queue, settings, [new_id], "hand-over")
