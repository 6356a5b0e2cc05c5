"""List (and optionally requeue) the jobs in rq's FailedJobRegistry: `python -m worker.failed [--requeue]`.

A failed job is one that raised on its last retry (for example PostgreSQL was
down for longer than the back-off). Its event is still in `webhook_events`;
requeueing it is safe because processing is idempotent.
"""

from __future__ import annotations

import argparse

from rq.job import Job
from rq.registry import FailedJobRegistry

from config import settings_or_exit
from runtime.resources import build_runtime


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--requeue", action="store_true", help="put every failed job back on the queue")
    args = parser.parse_args(argv)
    settings = settings_or_exit("worker.failed")
    rt = build_runtime(settings, pool_size=1)
    try:
        registry = FailedJobRegistry(queue=rt.queue)
        job_ids = registry.get_job_ids()
        print(f"{len(job_ids)} failed job(s) on queue {settings.queue_name}")  # noqa: T201
        for job in Job.fetch_many(job_ids, connection=rt.redis):
            if job is None:
                continue
            last_line = (job.exc_info or "").strip().splitlines()[-1:] or [""]
            print(f"{job.id}  {job.func_name}  ended {job.ended_at}  {last_line[0][:160]}")  # noqa: T201
            if args.requeue:
                registry.requeue(job.id)
    finally:
        rt.close()


if __name__ == "__main__":
    main()
