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
job (worker/draining.py) stops after the event in hand and leaves the rest
to the other workers. Every job gets this process's `Runtime` as its first
argument (`RuntimeJob`): nothing looks it up globally.

Nothing else ends a worker: when Redis goes away, rq's loop stops, and
`run_worker` waits for Redis with back-off (one log line per outage) and
starts a new loop. With `--processes N` this process supervises N worker
processes (worker.pool): one that dies is replaced with back-off, and the
live count is reported to Redis (runtime.presence) for `/readyz` and for the
number of drain slots (runtime.inbox). Exit status: 0 after a stop request, 1 if it ever ends without
one (so a supervisor such as `make run` or systemd sees the failure).

Failed jobs stay in rq's FailedJobRegistry for 7 days:
`rq info --url $REDIS_URL` and `python -m worker.failed` list them.
"""

from __future__ import annotations

import argparse
import functools
import logging
import signal
import sys
import threading
from typing import Any

import redis
from rq import SimpleWorker
from rq.executions import Execution, ExecutionRegistry
from rq.job import Job
from rq.utils import now as utcnow

from chatbot.router import route
from config import Settings, settings_or_exit
from observability import configure_logging, init_sentry
from runtime import presence
from runtime.resources import Runtime, build_runtime, redis_from_settings
from worker import outage, photo_followup
from worker.draining import STOPPING
from worker.pool import WorkerPool

log = logging.getLogger(__name__)

PUBSUB_POLL_S = 1.0


class _RecordedExecutions(ExecutionRegistry):
    """A job's executions whose records still exist.

    rq 3.0 lists an execution in the job's registry 60 s longer than the execution's record lives. When a
    worker dies mid-job its record expires with the heartbeat and RQ runs the job again; the new run's clean-up
    (`Job.delete`, result_ttl=0) fetched the dead execution and raised ValueError, failing a run that had
    succeeded (an ERROR with a traceback and needless further runs, for every job a dead host left behind).
    """

    def get_executions(self, start: int = 0, end: int = -1) -> list[Execution]:
        found = []
        for execution_id in self.get_execution_ids(start, end):
            try:
                found.append(Execution.fetch(id=execution_id, job_id=self.job_id, connection=self.connection))
            except ValueError:
                continue  # its worker died: nothing left to clean up
        return found


class RuntimeJob(Job):
    """A job whose function is called with the worker's Runtime first (set by EncargoWorker.perform_job)."""

    runtime: Runtime | None = None

    @property
    def execution_registry(self) -> ExecutionRegistry:
        return _RecordedExecutions(self.id, connection=self.connection)

    def _execute(self) -> Any:
        if self.func is None or self.runtime is None:
            raise ValueError("job has no function or no runtime to run with")
        return self.func(self.runtime, *self.args, **self.kwargs)


class EncargoWorker(SimpleWorker):
    """SimpleWorker that hands its Runtime to every job; abandoned jobs are noticed after timeout + grace."""

    heartbeat_grace_s = 10
    job_class = RuntimeJob

    def __init__(self, *args: Any, runtime: Runtime, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.runtime = runtime

    def perform_job(self, job: Job, queue: Any, execution: Any) -> bool:
        if isinstance(job, RuntimeJob):
            job.runtime = self.runtime
        return bool(super().perform_job(job, queue, execution))

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
        if pipeline is None:
            outage.STATE.came_back()  # rq's own retries got through an outage: say it is over

    def handle_warm_shutdown_request(self) -> None:
        """A drain job in progress finishes the message in hand and leaves the rest to the other workers."""
        STOPPING.set()
        super().handle_warm_shutdown_request()  # type: ignore[no-untyped-call]

    def subscribe(self) -> None:
        """rq's command listener, waking every PUBSUB_POLL_S instead of rq's 60 s.

        The listener thread waits that long for a message before it looks at its stop flag, and redis-py 8.2's
        `stop()` waits for the thread: with 60 s every worker shutdown (a deploy, the end of a burst run) could
        hang for a minute.
        """
        self.log.info("Worker %s: subscribing to channel %s", self.name, self.pubsub_channel_name)
        self.pubsub = self.connection.pubsub()
        self.pubsub.subscribe(**{self.pubsub_channel_name: self.handle_payload})
        self.pubsub_thread = self.pubsub.run_in_thread(  # type: ignore[assignment,unused-ignore]  # rq types it None
            sleep_time=PUBSUB_POLL_S, daemon=True, exception_handler=self._pubsub_exception_handler)

    def get_heartbeat_ttl(self, job: Job, working_time: float = 0.0) -> int:
        if job.timeout == -1:
            return int(super().get_heartbeat_ttl(job, working_time))
        return int(job.timeout or 180) + self.heartbeat_grace_s


def run_worker(settings: Settings, *, burst: bool = False, name: str | None = None) -> bool:
    """Run one worker in this process until stopped (or the queue is empty, with burst).

    rq's work loop ends when Redis goes away under it (a failed heartbeat, a timeout); here a worker that
    was not asked to stop waits for Redis with back-off (one log line when it goes, one when it is back) and
    starts a new work loop. Returns whether any job was processed.
    """
    rt = build_runtime(settings)
    # Load the router's spaCy tables and lexicon now (~3 s) rather than on a customer's first message.
    route("hola")
    EncargoWorker.heartbeat_grace_s = settings.job_heartbeat_grace_s
    worked = False
    loops = 0
    if not burst:
        _catch_stop_signals()  # Redis may be away before rq's loop ever installs its own
    try:
        while True:
            if not burst and not outage.wait_for_redis(rt.redis, STOPPING):
                return worked  # asked to stop while Redis was away
            worker = EncargoWorker(
                # a name is taken until rq's death record: after an outage it may still be, so rq picks one
                [rt.queue], connection=rt.redis, runtime=rt, name=name if loops == 0 else None,
                maintenance_interval=settings.worker_maintenance_interval_s,
                # An idle worker blocks on the queue for worker_ttl - 15 s; waking at the maintenance interval
                # is what lets it notice (and retry) the job of a worker that died.
                worker_ttl=settings.worker_maintenance_interval_s + 15,
            )
            loops += 1
            try:
                worked = bool(worker.work(burst=burst, logging_level=settings.log_level, with_scheduler=True)) or worked
            except redis.RedisError:  # raised while registering or tearing down, outside rq's own loop
                pass
            finally:
                _quiet_leftovers(worker)
            if burst or STOPPING.is_set():
                return worked
            _catch_stop_signals()
    finally:
        rt.close()


def _quiet_leftovers(worker: EncargoWorker) -> None:
    """rq's teardown may fail halfway without Redis: stop the pubsub thread it would have stopped."""
    thread = getattr(worker, "pubsub_thread", None)
    if thread is not None and thread.is_alive():
        thread.stop()
        thread.join(timeout=1)


def _catch_stop_signals() -> None:
    """Between two work loops rq's handlers are gone: a stop request must still end the worker."""
    if threading.current_thread() is not threading.main_thread():
        return

    def request_stop(_signum: int, _frame: Any) -> None:
        STOPPING.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)


def _child(settings: Settings, index: int) -> None:
    configure_logging(f"worker-{index}", settings.log_level)
    init_sentry(settings.sentry_dsn, settings.env)
    logging.getLogger("rq.worker").addFilter(outage.RetryLines())
    run_worker(settings)
    if not STOPPING.is_set():
        sys.exit(1)  # a worker only ends on request: anything else is a failure its supervisor must see


def main(argv: list[str] | None = None) -> int:
    """Returns the exit status: 0 after a stop request (SIGTERM, Ctrl-C) or a burst run, 1 otherwise."""
    parser = argparse.ArgumentParser(description="Encargo RQ worker")
    parser.add_argument("--processes", type=int, default=None, help="worker processes (default: WORKER_PROCESSES)")
    parser.add_argument("--burst", action="store_true", help="exit when the queue is empty")
    args = parser.parse_args(argv)
    settings = settings_or_exit("encargo-worker")
    configure_logging("worker", settings.log_level)
    init_sentry(settings.sentry_dsn, settings.env)
    logging.getLogger("rq.worker").addFilter(outage.RetryLines())
    photo_followup.announce(settings)  # once, before the processes start: photo OCR wanted, Tesseract missing
    if args.burst:
        run_worker(settings, burst=True)
        return 0
    processes = args.processes or settings.worker_processes
    conn = redis_from_settings(settings)
    if processes <= 1:
        stop_reporting = threading.Event()
        reporter = threading.Thread(target=_report_alone, args=(conn, stop_reporting), name="presence", daemon=True)
        reporter.start()
        try:
            run_worker(settings)
        finally:
            stop_reporting.set()
            reporter.join(timeout=5)
        if STOPPING.is_set():
            return 0
        log.error("the worker stopped without being asked to")
        return 1

    stop = threading.Event()

    def request_stop(signum: int, _frame: Any) -> None:
        log.info("%s: stopping the worker processes", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    WorkerPool(processes, functools.partial(_child, settings), conn=conn).run(stop)
    return 0 if stop.is_set() else 1


def _report_alone(conn: redis.Redis, stop: threading.Event) -> None:
    """A single worker process reports itself (one of one) while it runs; errors are ignored."""
    key = presence.group_key()
    while not stop.wait(presence.REPORT_TTL_S / 5):
        try:
            presence.report(conn, key, expected=1, alive=1)
        except redis.RedisError:
            continue
    try:
        presence.withdraw(conn, key)
    except redis.RedisError:
        pass


if __name__ == "__main__":
    sys.exit(main())
