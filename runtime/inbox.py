"""Inboxes: every webhook event waits in one, and a few drain jobs take turns over them (the key family).

An RQ job per event costs about as much worker CPU in RQ's own bookkeeping
(dequeue, registries, executions, heartbeats, a per-customer RateLimit) as
handling the event. So events wait in Redis lists, the inboxes, and a few
long-lived "drain" jobs (worker.draining) take turns over the inboxes that
have something waiting, one event per turn:

- `inbox:<owner>`    list of "<event pk>:<correlation id>", oldest first. The
                     owner is a customer (the hash of `runtime.enqueue.conversation_hash`:
                     their messages run one at a time, in order) or one of
                     STATUS_LANES status lanes `status:<n>` (delivery receipts, by
                     provider message id: a message's receipts stay in order), or
                     `notices` (the provider's account notices, issue 17);
- `inbox:held`       sorted set of owners with something waiting: score +inf
                     while the owner waits in `inbox:ready`, else the time (Redis
                     clock) the drain job holding it is killed by RQ's timeout:
                     its lease;
- `inbox:ready`      list of owners waiting for a drain job, in turn order;
- `inbox:drainers`   sorted set of drain jobs queued or running (job id -> time
                     after which the slot is free again).

The webhook puts an event in its inbox with one Lua call (`deliver`); if the
owner was not already waiting or held, it joins `inbox:ready`, and if a drain
slot is free the same call reserves it and the caller queues the drain job
(`worker.jobs.drain_inbox`). There is one drain slot per live worker process
(the groups' reports of runtime.presence, summed inside the script; at least
one), so adding worker processes or hosts adds drain jobs with no setting to
change. A drain job claims the first ready owner (taking a lease on it),
handles the oldest event, and releases it: the event leaves the inbox only
then, and the owner goes back to the end of `inbox:ready` if more is waiting.
When nobody waits, a drain job lingers `MESSAGE_DRAIN_LINGER_S` before giving
its slot up, so a steady trickle needs no new RQ jobs.

Failure policy (the loop's side is in worker.draining):
- a drain job that dies leaves its event at the head of the inbox; every claim
  first returns owners with run-out leases to `inbox:ready`, and the
  scheduler's recovery pass does the same (`wake`), announcing a drain job when
  none is left;
- a reserved slot whose drain job was never queued (the caller died between the
  two) frees itself after `slot_life_s`.

All Lua runs with Redis's own clock (`TIME`), so worker clocks do not matter.
Keys are built inside the scripts: one Redis instance (not Redis Cluster),
like the rest of the queue (docs/SCALING.md).
"""

from __future__ import annotations

import uuid
import zlib
from dataclasses import dataclass
from typing import Any

import redis
from rq import Queue, Retry

from channels.events import AccountNotice, InboundEvent, StatusUpdate
from config import Settings
from runtime import lua
from runtime.enqueue import FAILED_TTL_S, conversation_hash
from runtime.presence import GROUPS_KEY
from storage.crypto import Vault

INBOX_PREFIX = "inbox:"
HELD_KEY = "inbox:held"
READY_KEY = "inbox:ready"
DRAINERS_KEY = "inbox:drainers"
STATUS_PREFIX = "status:"
STATUS_LANES = 8
# Account notices (issue 17: a template paused, then approved again) wait in one lane: applied in arrival order.
NOTICE_OWNER = "notices"

SWEEP_LIMIT = 50
# A drain job that died is run again at once by RQ (its owners' leases have run out by then).
DRAIN_RETRY = Retry(max=3, interval=[0, 10, 60])
DRAIN_JOB = "worker.jobs.drain_inbox"

_PREFIX = f"local prefix = '{INBOX_PREFIX}'\n"
_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
"""
# Owners whose lease ran out (their drain job died) wait again, at the front of the turn order.
_SWEEP = f"""
local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, {SWEEP_LIMIT})
for i = #expired, 1, -1 do
  redis.call('ZADD', KEYS[1], 'inf', expired[i])
  redis.call('LPUSH', KEYS[2], expired[i])
end
"""
# One drain slot per live worker process: the groups' reports (runtime.presence), at least one.
# ARGV[n]: the most drain jobs ("live" for that count), ARGV[n+1]: a slot's life in seconds, ARGV[n+2]: a new
# job id. Returns the new job id when a slot was free (the caller must queue that job), else false.
_RESERVE = f"""
local function live_workers()
  local total = 0
  for _, group in ipairs(redis.call('SMEMBERS', '{GROUPS_KEY}')) do
    total = total + (tonumber(redis.call('HGET', group, 'alive')) or 0)
  end
  return math.max(total, 1)
end
local function reserve(n)
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
  local most = ARGV[n] == 'live' and live_workers() or tonumber(ARGV[n])
  if redis.call('ZCARD', KEYS[3]) < most then
    redis.call('ZADD', KEYS[3], now + tonumber(ARGV[n + 1]), ARGV[n + 2])
    return ARGV[n + 2]
  end
  return false
end
"""

# KEYS: held, ready, drainers; ARGV: owner, item, "live", slot life, new job id.
# An owner already waiting or held needs no new drain job: whoever holds them puts them back in turn.
_DELIVER = _PREFIX + _NOW + _RESERVE + """
redis.call('RPUSH', prefix .. ARGV[1], ARGV[2])
if redis.call('ZADD', KEYS[1], 'NX', 'inf', ARGV[1]) == 1 then
  redis.call('RPUSH', KEYS[2], ARGV[1])
  return reserve(3)
end
return false
"""

# KEYS: held, ready, drainers; ARGV: this job's id, lease seconds, slot life, "1" to keep the slot.
# Returns {owner, item, lease} or false when nobody waits (the job's slot is then given up, unless kept).
_CLAIM = _PREFIX + _NOW + _SWEEP + """
while true do
  local owner = redis.call('LPOP', KEYS[2])
  if not owner then
    if ARGV[4] ~= '1' then
      redis.call('ZREM', KEYS[3], ARGV[1])
    end
    return false
  end
  local item = redis.call('LINDEX', prefix .. owner, 0)
  if item then
    redis.call('ZADD', KEYS[3], now + tonumber(ARGV[3]), ARGV[1])
    redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), owner)
    return {owner, item, redis.call('ZSCORE', KEYS[1], owner)}
  end
  redis.call('ZREM', KEYS[1], owner)
end
"""

# KEYS: held, ready; ARGV: owner, item, lease (as claimed).
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

# KEYS: held, ready, drainers; ARGV: old job id, slot life, new job id. The slot passes to the new job
# whatever the count: slots held by a dead host's jobs (until RQ runs those again, or they expire) must not
# stop the live drain jobs from going on.
_HAND_OVER = _NOW + """
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('ZADD', KEYS[3], now + tonumber(ARGV[2]), ARGV[3])
return ARGV[3]
"""

# KEYS: held, ready, drainers; ARGV: 1 (only when there is no drain job at all), slot life, new job id.
_WAKE = _NOW + _SWEEP + _RESERVE + """
if redis.call('LLEN', KEYS[2]) == 0 then
  return false
end
return reserve(1)
"""

_KEYS = [HELD_KEY, READY_KEY, DRAINERS_KEY]

_DELIVER_SCRIPT, _CLAIM_SCRIPT, _RELEASE_SCRIPT, _HAND_OVER_SCRIPT, _WAKE_SCRIPT = (
    lua.script(source) for source in (_DELIVER, _CLAIM, _RELEASE, _HAND_OVER, _WAKE))


@dataclass(frozen=True)
class Claim:
    owner: str
    item: str
    lease: bytes

    @property
    def event_pk(self) -> int:
        return int(self.item.split(":", 1)[0])

    @property
    def correlation_id(self) -> str:
        return self.item.split(":", 1)[1]

    @property
    def is_status(self) -> bool:
        return self.owner.startswith(STATUS_PREFIX)

    @property
    def is_notice(self) -> bool:
        return self.owner == NOTICE_OWNER


def owner_of(vault: Vault, event: InboundEvent) -> str:
    """The inbox an event waits in: its customer's, a receipt's status lane (by provider message id), or the
    notices' lane."""
    if isinstance(event, StatusUpdate):
        return f"{STATUS_PREFIX}{zlib.crc32(event.message_id.encode()) % STATUS_LANES}"
    if isinstance(event, AccountNotice):
        return NOTICE_OWNER
    customer = conversation_hash(vault, event)
    assert customer is not None
    return customer


def inbox_key(owner: str) -> str:
    return INBOX_PREFIX + owner


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


def deliver(conn: redis.Redis, queue: Queue, settings: Settings, owner: str, event_pk: int,
            correlation_id: str) -> bool:
    """Put a stored event in its inbox (one round trip) and queue a drain job if a slot was free for one.

    Returns whether a drain job was queued. Raises redis errors (the event stays in PostgreSQL for the
    recovery loop; a slot reserved for a job that could not be queued frees itself after `slot_life_s`).
    """
    job_id = _text(_DELIVER_SCRIPT(keys=_KEYS, args=[owner, item_for(event_pk, correlation_id), "live",
                                                     slot_life_s(settings), _new_job_id()], client=conn))
    if job_id is None:
        return False
    queue_drainer(queue, settings, job_id, correlation_id)
    return True


def queue_drainer(queue: Queue, settings: Settings, job_id: str, correlation_id: str) -> None:
    queue.enqueue_call(DRAIN_JOB, args=(correlation_id,), job_id=job_id, timeout=settings.job_timeout_s,
                       result_ttl=0, failure_ttl=FAILED_TTL_S, retry=DRAIN_RETRY)


def holds(conn: redis.Redis, owner: str, event_pk: int, correlation_id: str) -> bool:
    """Whether the event still waits (or is being handled) in its inbox."""
    return conn.lpos(inbox_key(owner), item_for(event_pk, correlation_id)) is not None


def wake(conn: redis.Redis, queue: Queue, settings: Settings) -> bool:
    """Return owners held by dead drain jobs to the turn order; queue a drain job if some wait and none exists
    (they all died for good). Returns whether one was queued."""
    # Only when no drain job at all is queued or running: a live one takes the waiting owners in turn.
    job_id = _text(_WAKE_SCRIPT(keys=_KEYS, args=[1, slot_life_s(settings), _new_job_id()], client=conn))
    if job_id is None:
        return False
    queue_drainer(queue, settings, job_id, "recovery")
    return True


def claim(conn: redis.Redis, job_id: str, *, lease_s: float, slot_life: int, keep_slot: bool = False) -> Claim | None:
    """The next owner in turn and their oldest event; None when nobody waits (the slot given up unless
    `keep_slot`)."""
    raw = _CLAIM_SCRIPT(keys=_KEYS, args=[job_id, f"{lease_s:.3f}", slot_life, "1" if keep_slot else "0"],
                        client=conn)
    if not raw:
        return None
    owner, item, lease = raw
    return Claim(owner=_text(owner) or "", item=_text(item) or "", lease=lease)


def release(conn: redis.Redis, claimed: Claim) -> int:
    """1: more waits, 0: inbox empty, -1: the lease had run out (another job took the owner over)."""
    result = _RELEASE_SCRIPT(keys=_KEYS[:2], args=[claimed.owner, claimed.item, claimed.lease], client=conn)
    return int(result)


def hand_over(conn: redis.Redis, queue: Queue, settings: Settings, job_id: str) -> None:
    """Give a drain job's slot to a fresh drain job at the back of the queue."""
    new_id = _text(_HAND_OVER_SCRIPT(keys=_KEYS, args=[job_id, slot_life_s(settings), _new_job_id()], client=conn))
    assert new_id is not None
    queue_drainer(queue, settings, new_id, "hand-over")
