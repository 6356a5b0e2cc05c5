"""The drain job's loop: take turns over the inboxes with something waiting (runtime.inbox).

A drain job claims the next owner in turn, handles the oldest event of their
inbox (a customer message: worker.inbound; a delivery receipt: worker.statuses; an
account notice: worker.notices) and releases the owner. It hands its slot to a fresh drain job after
ITEMS_PER_JOB events or half its timeout, so it never runs into RQ's timeout
and other jobs (notifications, delivery retries) get their turn in the queue;
and as soon as its worker is asked to stop (a deploy, `STOPPING`): the event in
hand is finished, the rest is left to the other workers.

Failure policy: an event whose handling raises is handed to its own RQ job with
the usual back-off (`runtime.enqueue.enqueue_event`) and the owner's later
events go on meanwhile: one failing message must not silence a customer for
minutes. A drain job that dies leaves its event at the head of the inbox, for
the next claim once the lease has run out.
"""

from __future__ import annotations

import logging
import threading
import time

from rq.timeouts import JobTimeoutException

from observability import correlation
from runtime import inbox
from runtime.enqueue import enqueue_event, enqueue_status_later
from runtime.inbox import Claim
from runtime.resources import Runtime
from worker import inbound, notices, statuses

log = logging.getLogger(__name__)

ITEMS_PER_JOB = 200
POLL_S = 0.02
# Set when this process's worker was asked to stop (worker.main.EncargoWorker): drain jobs hand over at once.
STOPPING = threading.Event()


def drain(rt: Runtime, job_id: str, *, items_per_job: int = ITEMS_PER_JOB, timeout_s: float | None = None) -> int:
    """The drain job's loop; returns how many events it handled. `timeout_s`: the job's RQ timeout (default:
    this process's JOB_TIMEOUT_S)."""
    settings = rt.settings
    timeout = timeout_s or settings.job_timeout_s
    started = time.monotonic()
    killed_at = started + timeout  # RQ's timeout: no lease may outlive it
    hand_over_at = started + timeout / 2
    idle_until = started + settings.message_drain_linger_s
    done = 0
    while True:
        now = time.monotonic()
        if done >= items_per_job or now > hand_over_at or STOPPING.is_set():
            inbox.hand_over(rt.redis, rt.queue, settings, job_id)
            return done
        lingering = now < idle_until
        claimed = inbox.claim(rt.redis, job_id, lease_s=max(0.1, killed_at - now),
                              slot_life=inbox.slot_life_s(settings), keep_slot=lingering)
        if claimed is None:
            if not lingering:
                return done  # the slot is given up: the next event reserves a new drain job
            time.sleep(POLL_S)
            continue
        with correlation(claimed.correlation_id):
            _handle(rt, claimed)
            if inbox.release(rt.redis, claimed) < 0:
                log.warning("inbox lease ran out while the event was handled", extra={"event_pk": claimed.event_pk})
        done += 1
        idle_until = time.monotonic() + settings.message_drain_linger_s


def _handle(rt: Runtime, claimed: Claim) -> None:
    """One event; a failure hands it to its own RQ job with back-off."""
    kind = "status" if claimed.is_status else "notice" if claimed.is_notice else "message"
    try:
        if claimed.is_status:
            statuses.process_status(rt, claimed.event_pk)
        elif claimed.is_notice:
            notices.process_notice(rt, claimed.event_pk)
        else:
            inbound.process_message(rt, claimed.event_pk)
    except JobTimeoutException:
        raise
    except statuses.UnknownMessage:  # the receipt came before our send was stored: a later try finds it
        enqueue_status_later(rt.queue, rt.settings, claimed.event_pk, claimed.correlation_id)
    except Exception:  # noqa: BLE001 - one event must not stop its owner or the others
        log.exception("event failed in a drain job; retrying it on its own", extra={"event_pk": claimed.event_pk})
        _retry_alone(rt, claimed, kind)


def _retry_alone(rt: Runtime, claimed: Claim, kind: str) -> None:
    enqueue_event(rt.queue, rt.settings, kind=kind, event_pk=claimed.event_pk, sealed=None,
                  conversation_hash=claimed.owner if kind == "message" else None,
                  correlation_id=claimed.correlation_id)
