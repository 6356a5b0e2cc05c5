"""Delivery receipts of notifications: status callbacks copied into `notification_log`.

`worker.statuses` applies a receipt to our `messages` row (monotonic) and then
calls `on_status`, which copies the message's status, error and time stamps
to its notification. A free-form notification that the provider later reports
failed because the 24-hour window had closed (Meta 131047 / 470, Twilio
63016: errors come synchronously, asynchronously, or both) is reopened to go
out again as the approved template.

Failure policy: database errors raise (the status job is retried); a Redis
error while queueing the template is logged (the scheduler's pass sends it).
"""

from __future__ import annotations

import logging
from typing import Any

import redis
from psycopg import Connection

from notifications import ledger
from notifications.jobs import enqueue_send
from runtime.resources import Runtime

log = logging.getLogger(__name__)

WINDOW_CLOSED_CODES = frozenset({"131047", "470", "63016"})


def on_status(rt: Runtime, conn: Connection[Any], channel: str, provider_message_id: str) -> str | None:
    """Update the notification sent as this message, if any; returns its new status (None: not a notification)."""
    row = conn.execute(
        "SELECT id FROM messages WHERE channel = %s AND provider_message_id = %s", (channel, provider_message_id)
    ).fetchone()
    if row is None:
        return None
    outcome = ledger.apply_receipt(conn, int(row["id"]))
    if outcome is None:
        return None
    if (outcome.status == "failed" and outcome.mode == "free_form"
            and outcome.error_code in WINDOW_CLOSED_CODES and ledger.reopen_as_template(conn, outcome.log_id)):
        log.info("free-form notification refused for the closed window; sending the template",
                 extra={"notification_id": outcome.log_id})
        try:
            enqueue_send(rt.queue, rt.settings, outcome.log_id)
        except redis.RedisError as exc:
            log.warning("template resend not queued (%s); the scheduler will send it", type(exc).__name__)
        return "pending"
    return outcome.status
