"""The `worker` process: an RQ worker on the Encargo queue.

Worker class: `EncargoWorker`, a `SimpleWorker` (jobs run in the worker
process, no fork per job). rq's default Worker forks a work-horse for every
job, which costs a few milliseconds each and throws away warm connection
pools (PostgreSQL, HTTP keep-alive to the provider); our jobs are short and
I/O bound, so several non-forking worker processes (`--processes`, default 4
per 2 cores) give more throughput. The price is that a job cannot be killed
mid-flight by the parent; rq's SIGALRM timeout still bounds it. A worker that
dies leaves its job "abandoned": after the job's timeout plus a short grace
the next maintenance pass (every WORKER_MAINTENANCE_INTERVAL_S) retries it.
On SIGTERM (a deploy) the worker finishes the job in hand and exits; a drain
job of customers' messages (worker/inbox.py) stops after the message in hand
and leaves the rest to the other workers.

Failed jobs stay in rq's FailedJobRegistry for 7 days:
`rq info --url $REDIS_URL` and `python -m worker.failed` list them.
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import os
import signal
from typing import Any

from rq import SimpleWorker
from rq.job import Job
from rq.utils import now as utcnow

from chatbot.router import route
from config import Settings, settings_or_exit
from observability import configure_logging, init_sentry
from worker import inbox, runtime
from worker.dispatch import dispatch_pending, start_dispatcher

log = logging.getLogger(__name__)


class EncargoWorker(SimpleWorker):
    """SimpleWorker whose abandoned-job detection waits timeout + grace, not timeout + 60 s."""

    heartbeat_grace_s = 10

    def work(self, burst: bool = False, *args: Any, **kwargs: Any) -> bool:
        """In burst mode (tests, one-off runs) first queue what the webhook announced."""
        if burst:
            while dispatch_pending(runtime.current()):
                pass
        return bool(super().work(burst, *args, **kwargs))

    def heartbeat(self, timeout: int | None = None, pipeline: Any = None) -> None:
        """At most one stand-alone heartbeat a second.

        rq sends three per job on its own (before and after dequeuing, after the job), each a round trip of
        three commands: at dozens of jobs a second that is a tenth of a job's cost. The worker's key lives
        worker_ttl + 60 s (> 75 s), so a second between heartbeats is harmless. Heartbeats that ride in a
        job's pipeline, or carry their own timeout, always go out.
        """
        last = self.last_heartbeat
        if pipeline is None and timeout is None and last is not None and (utcnow() - last).total_seconds() < 1.0:
            return
        super().heartbeat(timeout, pipeline)

    def handle_warm_shutdown_request(self) -> None:
        """A drain job in progress finishes the message in hand and leaves the rest to the other workers."""
        inbox.STOPPING.set()
        super().handle_warm_shutdown_request()  # type: ignore[no-untyped-call]

    def get_heartbeat_ttl(self, job: Job, working_time: float = 0.0) -> int:
        if job.timeout == -1:
            return int(super().get_heartbeat_ttl(job, working_time))
        return int(job.timeout or 180) + self.heartbeat_grace_s


def run_worker(settings: Settings, *, burst: bool = False, name: str | None = None) -> bool:
    """Run one worker in this process until stopped (or the queue is empty, with burst)."""
    rt = runtime.build_runtime(settings)
    runtime.configure(rt)
    # Load the router's spaCy tables and lexicon now (~3 s) rather than on a customer's first message.
    route("hola")
    EncargoWorker.heartbeat_grace_s = settings.job_heartbeat_grace_s
    worker = EncargoWorker(
        [rt.queue], connection=rt.redis, name=name,
        maintenance_interval=settings.worker_maintenance_interval_s,
        # An idle worker blocks on the queue for worker_ttl - 15 s; waking at the maintenance interval
        # is what lets it notice (and retry) the job of a worker that died.
        worker_ttl=settings.worker_maintenance_interval_s + 15,
    )
    try:
        return bool(worker.work(burst=burst, logging_level=settings.log_level, with_scheduler=True))
    finally:
        rt.close()


def _child(settings: Settings, index: int) -> None:
    configure_logging(f"worker-{index}", settings.log_level)
    init_sentry(settings.sentry_dsn, settings.env)
    run_worker(settings)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Encargo RQ worker")
    parser.add_argument("--processes", type=int, default=int(os.environ.get("WORKER_PROCESSES", "4")))
    parser.add_argument("--burst", action="store_true", help="exit when the queue is empty")
    args = parser.parse_args(argv)
    settings = settings_or_exit("encargo-worker")
    configure_logging("worker", settings.log_level)
    init_sentry(settings.sentry_dsn, settings.env)
    if args.processes <= 1 or args.burst:
        if not args.burst:
            dispatcher_rt = runtime.build_runtime(settings, pool_size=1)
            start_dispatcher(dispatcher_rt)
        run_worker(settings, burst=args.burst)
        return
    dispatcher_rt = runtime.build_runtime(settings, pool_size=1)
    _thread, stop_dispatcher = start_dispatcher(dispatcher_rt)
    ctx = multiprocessing.get_context("spawn")
    children = [ctx.Process(target=_child, args=(settings, i), daemon=False) for i in range(args.processes)]
    for child in children:
        child.start()
    log.info("worker processes started", extra={"count": len(children)})

    def stop(signum: int, _frame: Any) -> None:
        stop_dispatcher.set()
        for child in children:
            if child.pid and child.is_alive():
                os.kill(child.pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for child in children:
        child.join()


if __name__ == "__main__":
    main()
