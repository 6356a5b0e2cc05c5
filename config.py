"""Settings read from environment variables, validated once at start-up.

Every process (web, worker, scheduler, sandbox-core, scripts) builds one
`Settings` with `Settings.from_env()`. A missing or malformed required variable
raises `ConfigError` whose message is one line naming the variable; the entry
points print that line and exit with status 2 instead of a stack trace.
"""

from __future__ import annotations

import base64
import binascii
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from email.utils import parseaddr
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

ENVIRONMENTS = ("development", "test", "production")
PROVIDERS = ("meta", "twilio", "local")
LLM_PROVIDERS = ("none", "openai", "gemini")


class ConfigError(Exception):
    """A setting is missing or malformed; the message names the variable."""


@dataclass(frozen=True)
class Settings:
    env: str = "development"
    database_url: str = ""
    redis_url: str = ""
    # Fernet key (urlsafe base64 of 32 bytes) that encrypts phone numbers at rest;
    # several keys separated by commas allow rotation (the first encrypts).
    phone_encryption_keys: tuple[str, ...] = ()
    # HMAC key for the phone lookup hash (a phone is found without decrypting every row).
    phone_hash_key: str = ""

    whatsapp_provider: str = "local"
    meta_app_secret: str = ""
    meta_verify_token: str = ""
    meta_access_token: str = ""
    meta_phone_number_id: str = ""
    meta_graph_base_url: str = "https://graph.facebook.com"
    meta_graph_api_version: str = "v23.0"
    meta_throughput_mps: int = 80

    twilio_account_sid: str = ""
    twilio_auth_token: str = ""
    twilio_whatsapp_number: str = ""
    twilio_api_base_url: str = "https://api.twilio.com"
    public_base_url: str = ""

    tenant_slug: str = "demo"
    tenant_name: str = "Transportes Express El Salvador"
    tenant_timezone: str = "America/El_Salvador"

    core_api_url: str = "http://127.0.0.1:8100"
    core_api_key: str = ""
    core_api_timeout_s: float = 5.0

    simulator_enabled: bool = True
    sentry_dsn: str = ""
    log_level: str = "INFO"

    queue_name: str = "encargo"
    job_timeout_s: int = 30
    # Seconds a dead worker's job keeps its slot past its timeout before it is retried.
    job_heartbeat_grace_s: int = 10
    worker_maintenance_interval_s: int = 30
    recovery_interval_s: float = 10.0
    recovery_min_age_s: float = 60.0
    send_timeout_s: float = 10.0
    # Drain jobs that take turns over customers' inboxes (worker/inbox.py): at least the worker processes.
    message_drainers: int = 4
    # Seconds a drain job with nothing to do waits for the next message before giving its slot up.
    message_drain_linger_s: float = 0.5
    max_body_bytes: int = 3 * 1024 * 1024

    # Messages one customer may send before the bot asks them to wait (design 9.3.1).
    rate_limit_per_minute: int = 20
    rate_limit_per_hour: int = 100
    rate_limit_per_day: int = 500

    # --- issue 5: the AI layer (chatbot/llm/); LLM_PROVIDER=none keeps the bot rules-only ---
    llm_provider: str = "none"  # none | openai | gemini (openai also serves OpenAI-compatible servers)
    llm_model: str = ""  # default per provider: gpt-4o-mini / gemini-2.5-flash
    llm_api_key: str = ""
    llm_base_url: str = ""  # empty: the provider's own; e.g. http://127.0.0.1:11434/v1 for Ollama
    llm_timeout_s: float = 4.0  # one request
    llm_reply_budget_s: float = 8.0  # every model call made for one customer message, together
    llm_max_retries: int = 1
    llm_price_in_per_mtok: float = 0.15  # USD per million input tokens
    llm_price_out_per_mtok: float = 0.60  # USD per million output tokens
    llm_breaker_failures: int = 5  # failures within the window that open the circuit
    llm_breaker_window_s: int = 60
    llm_breaker_cooldown_s: int = 120  # rules-only this long, then one trial call
    llm_history_turns: int = 6  # recent exchanges given to the model
    llm_answers: bool = True  # grounded free answers (False: the model only helps the router)

    # --- issue 6: the support console (console/) ---
    # Signs the agents' session cookies; required in production (development derives one from PHONE_HASH_KEY).
    console_session_secret: str = ""
    # Session cookies only over HTTPS (on by default in production, where TLS terminates in front of us).
    console_secure_cookies: bool = False
    # First-response targets (seconds from escalation to the first agent message), by priority.
    console_sla_normal_s: int = 300
    console_sla_high_s: int = 120
    # A waiting chat nobody took for this long: the bot tells the customer honestly and offers a callback.
    console_wait_notice_s: int = 600
    # Failed logins allowed per (e-mail, client address) in 15 minutes; per e-mail from all addresses, 4x that
    # in an hour (console/login_limit.py).
    console_login_attempts: int = 5
    # Proxies in front of the web process that append the client's address to X-Forwarded-For (the TLS proxy the
    # README recommends: 1). 0: no proxy, the connection's own address is the client's and the header is ignored.
    trusted_proxy_hops: int = 0
    console_reset_ttl_s: int = 3600
    # Live event streams one web process keeps open (each holds one of its threads, which webhooks need too);
    # further console pages refresh every 30 s and retry the stream every 20 s.
    console_max_streams: int = 4
    # Password reset e-mails: smtp://user:password@host:587 (STARTTLS) or smtps://user:password@host:465 (TLS).
    # Empty: no e-mail; the one-time link is written to the log for an operator.
    smtp_url: str = ""
    smtp_from: str = ""  # the From header, e.g. "Encargo Soporte <soporte@empresa.sv>"
    smtp_timeout_s: float = 10.0

    # --- issue 7: proactive notifications (notifications/, /internal/events) ---
    # HMAC-SHA256 key the logistics core signs its events with; /internal/events refuses every event without it.
    internal_events_secret: str = ""
    # Signed events older (or further in the future) than this are refused as replays.
    internal_events_max_age_s: int = 300
    # Optional notifications, off by default: package in transit (recipient), received at origin (sender).
    notify_in_transit: bool = False
    notify_received: bool = False
    # No proactive message between these company-time hours ("HH:MM"); they wait until the end. Equal: none.
    quiet_hours_start: str = "21:00"
    quiet_hours_end: str = "07:00"
    # Days after arrival on which an unclaimed package's recipient is reminded; the package returns after
    # unclaimed_days.
    reminder_days: tuple[int, ...] = (3, 7, 14)
    unclaimed_days: int = 15
    # Conversation content is deleted after this many days (escalated conversations: the second figure).
    retention_days: int = 90
    retention_escalated_days: int = 365
    # How often the scheduler sends due reminders / deferred notifications / reports (seconds).
    notifications_interval_s: float = 60.0
    retention_interval_s: float = 3600.0

    @property
    def is_production(self) -> bool:
        return self.env == "production"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Read and validate settings; `overrides` (a test's mapping) win over the environment."""
        env = os.environ if environ is None else environ
        reader = _Reader(env)
        app_env = reader.choice("ENCARGO_ENV", ENVIRONMENTS, "development")
        has_meta = bool(env.get("META_ACCESS_TOKEN"))
        has_twilio = bool(env.get("TWILIO_ACCOUNT_SID"))
        default_provider = "meta" if has_meta else "twilio" if has_twilio else "local"
        values: dict[str, Any] = {
            "env": app_env,
            "database_url": reader.required("DATABASE_URL"),
            "redis_url": reader.required("REDIS_URL"),
            "phone_encryption_keys": reader.fernet_keys("PHONE_ENCRYPTION_KEY"),
            "phone_hash_key": reader.required("PHONE_HASH_KEY"),
            "whatsapp_provider": reader.choice("WHATSAPP_PROVIDER", PROVIDERS, default_provider),
            "meta_app_secret": reader.text("META_APP_SECRET"),
            "meta_verify_token": reader.text("META_VERIFY_TOKEN"),
            "meta_access_token": reader.text("META_ACCESS_TOKEN"),
            "meta_phone_number_id": reader.text("META_PHONE_NUMBER_ID"),
            "meta_graph_base_url": reader.url("META_GRAPH_BASE_URL", cls.meta_graph_base_url),
            "meta_graph_api_version": reader.text("META_GRAPH_API_VERSION", cls.meta_graph_api_version),
            "meta_throughput_mps": reader.integer("META_THROUGHPUT_MPS", 80, 1, 1000),
            "twilio_account_sid": reader.text("TWILIO_ACCOUNT_SID"),
            "twilio_auth_token": reader.text("TWILIO_AUTH_TOKEN"),
            "twilio_whatsapp_number": reader.text("TWILIO_WHATSAPP_NUMBER"),
            "twilio_api_base_url": reader.url("TWILIO_API_BASE_URL", cls.twilio_api_base_url),
            "public_base_url": reader.url("PUBLIC_BASE_URL", ""),
            "tenant_slug": reader.text("TENANT_SLUG", cls.tenant_slug),
            "tenant_name": reader.text("TENANT_NAME", cls.tenant_name),
            "tenant_timezone": reader.timezone("TENANT_TIMEZONE", cls.tenant_timezone),
            "core_api_url": reader.url("CORE_API_URL", cls.core_api_url),
            "core_api_key": reader.text("CORE_API_KEY"),
            "core_api_timeout_s": reader.number("CORE_API_TIMEOUT_S", 5.0, 0.1, 60),
            "simulator_enabled": reader.flag("SIMULATOR_ENABLED", app_env != "production"),
            "sentry_dsn": reader.text("SENTRY_DSN"),
            "log_level": reader.choice("LOG_LEVEL", ("DEBUG", "INFO", "WARNING", "ERROR"), "INFO"),
            "queue_name": reader.text("QUEUE_NAME", cls.queue_name),
            "job_timeout_s": reader.integer("JOB_TIMEOUT_S", 30, 1, 600),
            "job_heartbeat_grace_s": reader.integer("JOB_HEARTBEAT_GRACE_S", 10, 1, 600),
            "worker_maintenance_interval_s": reader.integer("WORKER_MAINTENANCE_INTERVAL_S", 30, 1, 3600),
            "recovery_interval_s": reader.number("RECOVERY_INTERVAL_S", 10.0, 0.1, 3600),
            "recovery_min_age_s": reader.number("RECOVERY_MIN_AGE_S", 60.0, 0.0, 86400),
            "send_timeout_s": reader.number("SEND_TIMEOUT_S", 10.0, 0.1, 120),
            "message_drainers": reader.integer("MESSAGE_DRAINERS", 4, 1, 256),
            "message_drain_linger_s": reader.number("MESSAGE_DRAIN_LINGER_S", 0.5, 0.0, 60),
            "rate_limit_per_minute": reader.integer("RATE_LIMIT_PER_MINUTE", 20, 1, 10_000),
            "rate_limit_per_hour": reader.integer("RATE_LIMIT_PER_HOUR", 100, 1, 100_000),
            "rate_limit_per_day": reader.integer("RATE_LIMIT_PER_DAY", 500, 1, 1_000_000),
            # issue 5: the AI layer
            "llm_provider": reader.choice("LLM_PROVIDER", LLM_PROVIDERS, "none"),
            "llm_model": reader.text("LLM_MODEL"),
            "llm_api_key": reader.text("LLM_API_KEY"),
            "llm_base_url": reader.url("LLM_BASE_URL", ""),
            "llm_timeout_s": reader.number("LLM_TIMEOUT_S", 4.0, 0.1, 120),
            "llm_reply_budget_s": reader.number("LLM_REPLY_BUDGET_S", 8.0, 0.1, 300),
            "llm_max_retries": reader.integer("LLM_MAX_RETRIES", 1, 0, 5),
            "llm_price_in_per_mtok": reader.number("LLM_PRICE_IN_PER_MTOK", 0.15, 0, 1000),
            "llm_price_out_per_mtok": reader.number("LLM_PRICE_OUT_PER_MTOK", 0.60, 0, 1000),
            "llm_breaker_failures": reader.integer("LLM_BREAKER_FAILURES", 5, 1, 1000),
            "llm_breaker_window_s": reader.integer("LLM_BREAKER_WINDOW_S", 60, 1, 86400),
            "llm_breaker_cooldown_s": reader.integer("LLM_BREAKER_COOLDOWN_S", 120, 1, 86400),
            "llm_history_turns": reader.integer("LLM_HISTORY_TURNS", 6, 0, 50),
            "llm_answers": reader.flag("LLM_ANSWERS", True),
            # issue 6: the support console
            "console_session_secret": reader.text("CONSOLE_SESSION_SECRET"),
            "console_secure_cookies": reader.flag("CONSOLE_SECURE_COOKIES", app_env == "production"),
            "console_sla_normal_s": reader.integer("CONSOLE_SLA_NORMAL_S", 300, 10, 86400),
            "console_sla_high_s": reader.integer("CONSOLE_SLA_HIGH_S", 120, 10, 86400),
            "console_wait_notice_s": reader.integer("CONSOLE_WAIT_NOTICE_S", 600, 30, 86400),
            "console_login_attempts": reader.integer("CONSOLE_LOGIN_ATTEMPTS", 5, 1, 100),
            "trusted_proxy_hops": reader.integer("TRUSTED_PROXY_HOPS", 0, 0, 10),
            "console_reset_ttl_s": reader.integer("CONSOLE_RESET_TTL_S", 3600, 60, 7 * 86400),
            "console_max_streams": reader.integer("CONSOLE_MAX_STREAMS", 4, 1, 1000),
            "smtp_url": reader.text("SMTP_URL"),
            "smtp_from": reader.text("SMTP_FROM"),
            "smtp_timeout_s": reader.number("SMTP_TIMEOUT_S", 10.0, 0.5, 120),
            # issue 7: proactive notifications
            "internal_events_secret": reader.text("INTERNAL_EVENTS_SECRET"),
            "internal_events_max_age_s": reader.integer("INTERNAL_EVENTS_MAX_AGE_S", 300, 10, 3600),
            "notify_in_transit": reader.flag("NOTIFY_IN_TRANSIT", False),
            "notify_received": reader.flag("NOTIFY_RECEIVED", False),
            "quiet_hours_start": reader.text("QUIET_HOURS_START", cls.quiet_hours_start),
            "quiet_hours_end": reader.text("QUIET_HOURS_END", cls.quiet_hours_end),
            "reminder_days": _day_list("REMINDER_DAYS", reader.text("REMINDER_DAYS", "3,7,14")),
            "unclaimed_days": reader.integer("UNCLAIMED_DAYS", 15, 1, 365),
            "retention_days": reader.integer("RETENTION_DAYS", 90, 1, 3650),
            "retention_escalated_days": reader.integer("RETENTION_ESCALATED_DAYS", 365, 1, 3650),
            "notifications_interval_s": reader.number("NOTIFICATIONS_INTERVAL_S", 60.0, 0.1, 86400),
            "retention_interval_s": reader.number("RETENTION_INTERVAL_S", 3600.0, 1, 7 * 86400),
        }
        values.update(overrides)
        settings = cls(**values)
        settings.validate()
        return settings

    def with_overrides(self, **overrides: Any) -> Settings:
        settings = replace(self, **overrides)
        settings.validate()
        return settings

    def validate(self) -> None:
        """Cross-field rules: what a chosen provider needs to work at all."""
        if self.whatsapp_provider == "meta":
            for name in ("meta_access_token", "meta_phone_number_id", "meta_app_secret"):
                if not getattr(self, name):
                    raise ConfigError(f"{name.upper()} is required when WHATSAPP_PROVIDER=meta")
        if self.whatsapp_provider == "twilio":
            for name in ("twilio_account_sid", "twilio_auth_token", "twilio_whatsapp_number"):
                if not getattr(self, name):
                    raise ConfigError(f"{name.upper()} is required when WHATSAPP_PROVIDER=twilio")
        if not self.rate_limit_per_minute <= self.rate_limit_per_hour <= self.rate_limit_per_day:
            raise ConfigError(
                "RATE_LIMIT_PER_MINUTE <= RATE_LIMIT_PER_HOUR <= RATE_LIMIT_PER_DAY must hold "
                f"(got {self.rate_limit_per_minute}, {self.rate_limit_per_hour}, {self.rate_limit_per_day})"
            )
        if self.llm_provider == "gemini" and not self.llm_api_key:
            raise ConfigError("LLM_API_KEY is required when LLM_PROVIDER=gemini")
        if self.llm_provider == "openai" and not (self.llm_api_key or self.llm_base_url):
            raise ConfigError(
                "LLM_API_KEY (or LLM_BASE_URL for a self-hosted server) is required when LLM_PROVIDER=openai")
        if self.is_production and self.whatsapp_provider == "local":
            raise ConfigError("WHATSAPP_PROVIDER=local is for development; set meta or twilio in production")
        if self.is_production and len(self.console_session_secret) < 32:
            raise ConfigError("CONSOLE_SESSION_SECRET (at least 32 characters) is required in production")
        if self.smtp_url:
            _check_smtp(self.smtp_url, self.smtp_from)
            if self.is_production and not self.public_base_url:
                # otherwise the reset link would be built from the request's Host header, which a client chooses
                raise ConfigError("PUBLIC_BASE_URL is required in production when SMTP_URL is set")
        # issue 7: proactive notifications
        for name in ("quiet_hours_start", "quiet_hours_end"):
            if not _is_clock_time(getattr(self, name)):
                raise ConfigError(f"{name.upper()} must be a time of day as HH:MM (got {getattr(self, name)!r})")
        if self.is_production and len(self.internal_events_secret) < 32:
            raise ConfigError("INTERNAL_EVENTS_SECRET (at least 32 characters) is required in production")
        if any(not 1 <= d < self.unclaimed_days for d in self.reminder_days):
            raise ConfigError(
                f"REMINDER_DAYS must be days between 1 and UNCLAIMED_DAYS - 1 ({self.unclaimed_days - 1})"
            )

    def redacted(self) -> dict[str, Any]:
        """Settings safe to log: secrets replaced by whether they are set."""
        secret_words = ("secret", "token", "key", "dsn", "database_url", "redis_url", "smtp_url")
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            out[f.name] = bool(value) if any(w in f.name for w in secret_words) else value
        return out


def _check_smtp(url: str, sender: str) -> None:
    """SMTP_URL and SMTP_FROM (issue 6: reset e-mails); the message never repeats the URL (it holds a password)."""
    shape = "must look like smtp://user:password@host:587 or smtps://user:password@host:465"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise ConfigError(f"SMTP_URL {shape} (its port is not a number from 1 to 65535)") from None
    if parts.scheme not in ("smtp", "smtps"):
        raise ConfigError(f"SMTP_URL {shape} (the scheme is not smtp or smtps)")
    if not parts.hostname:
        raise ConfigError(f"SMTP_URL {shape} (no host)")
    if port == 0 or parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ConfigError(f"SMTP_URL {shape} (nothing may follow host:port)")
    if parts.username and not parts.password:
        raise ConfigError(f"SMTP_URL {shape} (a user needs a password; write @ in either as %40)")
    if not sender:
        raise ConfigError("SMTP_FROM is required when SMTP_URL is set (e.g. Encargo Soporte <soporte@empresa.sv>)")
    address = parseaddr(sender)[1]
    if "@" not in address or any(c in sender for c in "\r\n"):
        raise ConfigError(f"SMTP_FROM={sender!r} is not an e-mail address")


def _is_clock_time(value: str) -> bool:
    """'HH:MM' with 00 <= HH <= 23 and 00 <= MM <= 59 (issue 7: quiet hours)."""
    hours, sep, minutes = value.partition(":")
    return bool(sep) and hours.isdigit() and minutes.isdigit() and len(minutes) == 2 \
        and 0 <= int(hours) <= 23 and 0 <= int(minutes) <= 59


def _day_list(name: str, raw: str) -> tuple[int, ...]:
    """'3,7,14' -> (3, 7, 14), sorted and de-duplicated (issue 7: reminder days)."""
    parts = [p.strip() for p in raw.split(",") if p.strip()]
    if not all(p.isdigit() for p in parts):
        raise ConfigError(f"{name} must be whole numbers of days separated by commas (got {raw!r})")
    return tuple(sorted({int(p) for p in parts}))


def settings_or_exit(program: str, *, exit_code: int = 2) -> Settings:
    """Settings for a process's entry point; a bad setting prints one line naming it and exits."""
    try:
        return Settings.from_env()
    except ConfigError as exc:
        print(f"{program}: {exc}", file=sys.stderr)  # noqa: T201 - the one line an operator reads
        raise SystemExit(exit_code) from None


class _Reader:
    """Typed access to environment variables, raising ConfigError with the variable's name."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env

    def text(self, name: str, default: str = "") -> str:
        return self.env.get(name, "").strip() or default

    def required(self, name: str) -> str:
        value = self.text(name)
        if not value:
            raise ConfigError(f"{name} is required but not set (see .env.example)")
        return value

    def choice(self, name: str, allowed: tuple[str, ...], default: str) -> str:
        value = self.text(name, default)
        if value not in allowed:
            raise ConfigError(f"{name}={value!r} is not one of {', '.join(allowed)}")
        return value

    def integer(self, name: str, default: int, low: int, high: int) -> int:
        raw = self.text(name)
        if not raw:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise ConfigError(f"{name}={raw!r} is not a whole number") from None
        if not low <= value <= high:
            raise ConfigError(f"{name}={value} is outside {low}..{high}")
        return value

    def number(self, name: str, default: float, low: float, high: float) -> float:
        raw = self.text(name)
        if not raw:
            return default
        try:
            value = float(raw)
        except ValueError:
            raise ConfigError(f"{name}={raw!r} is not a number") from None
        if not low <= value <= high:
            raise ConfigError(f"{name}={value} is outside {low}..{high}")
        return value

    def flag(self, name: str, default: bool) -> bool:
        raw = self.text(name).lower()
        if not raw:
            return default
        if raw in ("1", "true", "yes", "on"):
            return True
        if raw in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{name}={raw!r} is not a boolean (use true or false)")

    def url(self, name: str, default: str) -> str:
        value = self.text(name, default).rstrip("/")
        if value and not value.startswith(("http://", "https://")):
            raise ConfigError(f"{name}={value!r} must start with http:// or https://")
        return value

    def timezone(self, name: str, default: str) -> str:
        value = self.text(name, default)
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigError(f"{name}={value!r} is not a known time zone") from None
        return value

    def fernet_keys(self, name: str) -> tuple[str, ...]:
        raw = self.required(name)
        keys = tuple(k.strip() for k in raw.split(",") if k.strip())
        for key in keys:
            try:
                decoded = base64.urlsafe_b64decode(key.encode())
            except (binascii.Error, ValueError):
                decoded = b""
            if len(decoded) != 32:
                raise ConfigError(
                    f"{name} must be urlsafe base64 of 32 bytes "
                    '(python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())")'
                )
        return keys
