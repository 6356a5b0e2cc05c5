"""Structured JSON logging with a correlation id, and Sentry when configured.

A correlation id follows one inbound event from the webhook to the outbound
send: the webhook creates it, stores it with the event, passes it to the job,
and every log line written while handling that event carries it. Log lines
never contain message bodies or secrets: callers log ids, kinds and counts.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

_correlation_id: contextvars.ContextVar[str] = contextvars.ContextVar("correlation_id", default="")

# Attributes every LogRecord has; anything else passed through `extra=` is emitted as a field.
_STANDARD_ATTRS = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


def new_correlation_id() -> str:
    return uuid.uuid4().hex[:16]


def current_correlation_id() -> str:
    return _correlation_id.get()


@contextlib.contextmanager
def correlation(cid: str | None) -> Iterator[str]:
    """Bind a correlation id to every log line written inside the block."""
    value = cid or new_correlation_id()
    token = _correlation_id.set(value)
    try:
        yield value
    finally:
        _correlation_id.reset(token)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, correlation id, extras."""

    def __init__(self, process_name: str) -> None:
        super().__init__()
        self.process_name = process_name

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "process": self.process_name,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        cid = getattr(record, "correlation_id", None) or _correlation_id.get()
        if cid:
            payload["correlation_id"] = cid
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                payload[key] = value
        if record.exc_info:
            payload["exc"] = self.formatException(record.exc_info)
        return json.dumps(payload, default=str, ensure_ascii=False)


def install_correlation_factory() -> None:
    """Stamp every log record with the correlation id current when it was created (idempotent)."""
    current = logging.getLogRecordFactory()
    if getattr(current, "_encargo", False):
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = current(*args, **kwargs)
        cid = _correlation_id.get()
        if cid:
            record.correlation_id = cid
        return record

    factory._encargo = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)


def configure_logging(process_name: str, level: str = "INFO") -> None:
    """Send JSON lines to stderr for this process; idempotent."""
    install_correlation_factory()
    root = logging.getLogger()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(process_name))
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Library loggers that would otherwise log request URLs with tokens or bodies at INFO.
    # spaCy also adds its own plain-text handler: its INFO lines ("Created vocabulary") would appear twice.
    for noisy in ("httpx", "httpcore", "twilio.http_client", "urllib3", "spacy"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # Several lines per job or per timer tick: useful only when debugging (failures are logged at ERROR).
    quiet = logging.DEBUG if level == "DEBUG" else logging.WARNING
    for chatty in ("rq.worker", "apscheduler.executors", "apscheduler.scheduler"):
        logging.getLogger(chatty).setLevel(quiet)


def init_sentry(dsn: str, environment: str) -> bool:
    """Initialise Sentry when a DSN is set; message bodies are never sent (no PII, no request bodies)."""
    if not dsn:
        return False
    import sentry_sdk

    sentry_sdk.init(dsn=dsn, environment=environment, send_default_pii=False, max_request_body_size="never")
    return True
