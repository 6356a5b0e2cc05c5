"""The `scheduler` process: APScheduler running timed work, one active instance at a time.

Every job first checks the Redis leader lease (`runtime.leader`): two
scheduler processes may run (a deploy overlap, a second machine) but only the
lease holder does the work. Jobs here: the recovery loop that queues events
stored while Redis was down (`worker.recovery`), and those the modules below
register (analyses, notifications, the console's timers, closing notices, the
operations figures' rollups). The process
also beats for its container's health check (`worker.healthcheck`), leader or not.
"""

from __future__ import annotations

import logging
import signal
from typing import Any

from apscheduler.schedulers.blocking import BlockingScheduler

from config import settings_or_exit
from console import alert_mail, report_mail
from handoff import closing, timers
from llm import analysis as llm_analysis
from notifications import schedule as notification_schedule
from observability import configure_logging, init_sentry
from runtime.leader import Leader
from runtime.resources import Runtime, build_runtime
from worker import healthcheck, media_followup, media_job, metrics_job, recovery

log = logging.getLogger(__name__)


def build_scheduler(rt: Runtime, leader: Leader) -> BlockingScheduler:
    scheduler = BlockingScheduler(timezone=rt.settings.tenant_timezone)

    def recover() -> None:
        if leader.holds():
            recovery.recover_events(rt)
            media_job.recover_downloads(rt)  # issue 17: downloads whose job was lost

    scheduler.add_job(recover, "interval", seconds=rt.settings.recovery_interval_s, id="recover_events",
                      max_instances=1, coalesce=True)

    def recover_transcriptions() -> None:  # issue 17: voice notes whose transcription job was lost
        if leader.holds():
            media_followup.recover_transcriptions(rt)

    scheduler.add_job(recover_transcriptions, "interval", seconds=media_followup.RECOVERY_INTERVAL_S,
                      id="recover_transcriptions", max_instances=1, coalesce=True)
    llm_analysis.register_jobs(scheduler, rt, leader)  # issue 5: escalation analyses (only with an LLM provider)
    notification_schedule.register_jobs(scheduler, rt, leader)  # issue 7: reminders, retention, recovery
    timers.register_jobs(scheduler, rt, leader)  # issue 6: wait notices, callbacks due at opening time
    closing.register_jobs(scheduler, rt, leader)  # issue 13: support closed with customers waiting
    metrics_job.register_jobs(scheduler, rt, leader)  # issue 16: the operations figures' rollups
    report_mail.register_jobs(scheduler, rt, leader)  # issue 16: the weekly report e-mail to each company's admins
    alert_mail.register_jobs(scheduler, rt, leader)  # issue 16: alerts e-mailed to admins, once an hour at most
    return scheduler


def main() -> None:
    settings = settings_or_exit("encargo-scheduler")
    configure_logging("scheduler", settings.log_level)
    init_sentry(settings.sentry_dsn, settings.env)
    rt = build_runtime(settings, pool_size=2)
    leader = Leader(rt.redis, lease_s=max(3 * settings.recovery_interval_s, 15))
    scheduler = build_scheduler(rt, leader)
    healthcheck.register_heartbeat(scheduler)  # what the container's check reads (python -m worker.healthcheck)

    def stop(signum: int, _frame: Any) -> None:
        scheduler.shutdown(wait=False)

    signal.signal(signal.SIGTERM, stop)
    log.info("scheduler started")
    try:
        scheduler.start()
    except KeyboardInterrupt:
        pass
    finally:
        leader.release()
        rt.close()


if __name__ == "__main__":
    main()
