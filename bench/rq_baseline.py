"""RQ's own ceiling: jobs that do nothing, on the same worker class and number of worker processes.

`rq_noop_baseline` enqueues `noop_job`s (options as production's message jobs), starts K no-op
worker processes (`worker.main.EncargoWorker`, burst mode) that begin together on a Redis "go" key,
and reports jobs/s and CPU per job.

Run as a script, `python -m bench.rq_baseline noop-worker ...` is the no-op worker
process (started by `rq_noop_baseline`); without arguments it does nothing.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from typing import Any

from bench.common import log
from bench.cpu import CpuMeter
from bench.stack import Stack

NOOP_QUEUE = "bench-noop"


def noop_job(_runtime: object) -> None:
    """A job that does nothing (the RQ baseline); like every job it gets the worker's Runtime first."""


def run_noop_worker(queue_name: str, ready_key: str, go_key: str) -> None:
    """One no-op worker process: EncargoWorker built as `worker.main.run_worker` builds it, burst mode.

    Waits for `go_key` so that all K processes start together (their imports are not measured).
    """
    import redis
    from rq import Queue

    from config import Settings
    from observability import configure_logging
    from runtime.resources import build_runtime
    from worker.main import EncargoWorker

    settings = Settings.from_env()
    configure_logging("bench-noop-worker", settings.log_level)
    rt = build_runtime(settings, pool_size=1)
    conn = rt.redis
    EncargoWorker.heartbeat_grace_s = settings.job_heartbeat_grace_s
    worker = EncargoWorker([Queue(queue_name, connection=conn)], connection=conn, runtime=rt,
                           maintenance_interval=settings.worker_maintenance_interval_s,
                           worker_ttl=settings.worker_maintenance_interval_s + 15)
    control = redis.Redis.from_url(settings.redis_url)
    control.incr(ready_key)
    deadline = time.monotonic() + 120
    while not control.exists(go_key):
        if time.monotonic() > deadline:
            raise SystemExit("no go signal within 120 s")
        time.sleep(0.002)
    worker.work(burst=True, logging_level=settings.log_level, with_scheduler=True)


def rq_noop_baseline(stack: Stack, env: dict[str, str], processes: int, jobs: int, *,
                     tag: str = "") -> dict[str, Any]:
    """jobs/s of K EncargoWorker processes running `noop_job` (options as production's jobs)."""
    import redis
    from rq import Queue
    from rq.registry import FailedJobRegistry, StartedJobRegistry

    from runtime.enqueue import FAILED_TTL_S

    conn = redis.Redis.from_url(stack.redis_url)
    run = f"{tag or 'noop'}{int(time.time() * 1000)}"
    queue_name = f"{NOOP_QUEUE}-{run}"
    queue = Queue(queue_name, connection=conn)
    ready_key, go_key = f"bench:{run}:ready", f"bench:{run}:go"
    t_enqueue = time.monotonic()
    for n in range(jobs):
        queue.enqueue_call(noop_job, job_id=f"{run}-{n:07d}", timeout=30, result_ttl=0, failure_ttl=FAILED_TTL_S)
    enqueue_s = time.monotonic() - t_enqueue
    procs = []
    for i in range(processes):
        procs.append(stack.spawn(f"{run}-w{i}", [sys.executable, "-m", "bench.rq_baseline", "noop-worker",
                                                 "--queue", queue_name, "--ready-key", ready_key,
                                                 "--go-key", go_key], env))
    try:
        deadline = time.monotonic() + 90
        while int(conn.get(ready_key) or 0) < processes:
            if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                raise RuntimeError("no-op workers did not start:\n" + stack.log_tail(f"{run}-w0"))
            time.sleep(0.05)
        time.sleep(0.2)  # let each process reach its polling loop
        started = StartedJobRegistry(queue_name, connection=conn)
        meter = CpuMeter({"redis": stack.pids["redis"], **{f"worker{i}": p.pid for i, p in enumerate(procs)}})
        meter.start()
        conn.set(go_key, 1)
        t0 = time.monotonic()
        deadline = t0 + 300
        t_end = None
        while time.monotonic() < deadline:
            remaining = conn.llen(queue.key)
            if remaining == 0 and started.count == 0:
                t_end = time.monotonic()
                break
            time.sleep(0.005)
        if t_end is None:
            raise RuntimeError(f"no-op jobs did not drain within 300 s ({conn.llen(queue.key)} left)")
        cpu = meter.stop()
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                log("a no-op worker did not exit after the burst")
        failed = FailedJobRegistry(queue_name, connection=conn).count
        leftover = sum(1 for _ in conn.scan_iter(match=f"rq:job:{run}-*", count=1000))
    finally:
        for p in procs:
            stack.stop(p, timeout=10)
        conn.close()
    elapsed = t_end - t0
    worker_cpu = sum(v for k, v in cpu["components"].items() if k.startswith("worker"))
    return {"processes": processes, "jobs": jobs, "elapsed_s": round(elapsed, 3),
            "jobs_per_s": round(jobs / elapsed, 1), "failed": failed, "job_hashes_left": leftover,
            "enqueue_s": round(enqueue_s, 2),
            "cpu_ms_per_job": {"workers": round(1000 * worker_cpu / jobs, 3),
                               "redis": round(1000 * cpu["components"]["redis"] / jobs, 3)},
            "busy_pct": cpu["busy_pct"], "foreign_pct": cpu["foreign_pct"]}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="RQ no-op baseline (used by bench/pipeline.py)")
    sub = parser.add_subparsers(dest="command")
    noop = sub.add_parser("noop-worker", help="one RQ no-op worker process (started by rq_noop_baseline)")
    noop.add_argument("--queue", required=True)
    noop.add_argument("--ready-key", required=True)
    noop.add_argument("--go-key", required=True)
    args = parser.parse_args(argv)
    if args.command == "noop-worker":
        run_noop_worker(args.queue, args.ready_key, args.go_key)
    else:
        print("bench/rq_baseline.py is started by rq_noop_baseline (noop-worker); run bench/pipeline.py")


if __name__ == "__main__":
    main()
