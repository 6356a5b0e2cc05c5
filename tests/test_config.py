"""Start-up configuration: a bad setting is one clear line naming the variable."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from pydantic import ValidationError

from config import ConfigError, Settings, env_name
from scripts import env_example

ROOT = Path(__file__).resolve().parent.parent

GOOD = {
    "DATABASE_URL": "postgresql://x@127.0.0.1/db",
    "REDIS_URL": "redis://127.0.0.1:6379/0",
    "PHONE_ENCRYPTION_KEY": Fernet.generate_key().decode(),
    "PHONE_HASH_KEY": "k",
}


def test_defaults_choose_local_transport_without_credentials() -> None:
    settings = Settings.from_env(GOOD)
    assert settings.whatsapp_provider == "local"
    assert settings.simulator_enabled is True


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"DATABASE_URL": ""}, "DATABASE_URL is required"),
        ({"PHONE_ENCRYPTION_KEY": "short"}, "PHONE_ENCRYPTION_KEY must be urlsafe base64 of 32 bytes"),
        ({"META_THROUGHPUT_MPS": "fast"}, "META_THROUGHPUT_MPS='fast' is not a whole number"),
        ({"META_THROUGHPUT_MPS": "5000"}, "META_THROUGHPUT_MPS=5000 is outside 1..1000"),
        ({"TENANT_TIMEZONE": "Mars/Olympus"}, "TENANT_TIMEZONE='Mars/Olympus' is not a known time zone"),
        ({"WHATSAPP_PROVIDER": "telegram"}, "WHATSAPP_PROVIDER='telegram' is not one of meta, twilio, local"),
        ({"WHATSAPP_PROVIDER": "meta"}, "META_ACCESS_TOKEN is required when WHATSAPP_PROVIDER=meta"),
        ({"SIMULATOR_ENABLED": "maybe"}, "SIMULATOR_ENABLED='maybe' is not a boolean"),
        ({"CORE_API_URL": "core:8100"}, "CORE_API_URL='core:8100' must start with http:// or https://"),
        ({"ENCARGO_ENV": "production"}, "WHATSAPP_PROVIDER=local is for development"),
        ({"ENCARGO_ENV": "staging"}, "ENCARGO_ENV='staging' is not one of development, test, production"),
        ({"JOB_TIMEOUT_S": "0"}, "JOB_TIMEOUT_S=0 is outside 1..600"),
        ({"LOG_LEVEL": "x"}, "LOG_LEVEL='x' is not one of DEBUG, INFO, WARNING, ERROR"),
        ({"CORE_API_TIMEOUT_S": "soon"}, "CORE_API_TIMEOUT_S='soon' is not a number"),
        ({"RECOVERY_MIN_AGE_S": "-1"}, "RECOVERY_MIN_AGE_S=-1.0 is outside 0..86400"),
        ({"WORKER_PROCESSES": "65"}, "WORKER_PROCESSES=65 is outside 1..64"),
        ({"WEB_WORKERS": "0"}, "WEB_WORKERS=0 is outside 1..64"),
        ({"WEB_THREADS": "many"}, "WEB_THREADS='many' is not a whole number"),
        ({"REMINDER_DAYS": "3,x"}, "REMINDER_DAYS='3,x' is not whole numbers of days separated by commas"),
        ({"REMINDER_DAYS": "3,20"}, "REMINDER_DAYS must be days between 1 and UNCLAIMED_DAYS - 1 (14)"),
        ({"QUIET_HOURS_START": "25:00"}, "QUIET_HOURS_START='25:00' is not a time of day as HH:MM"),
        ({"PHONE_ENCRYPTION_KEY": " , "}, "PHONE_ENCRYPTION_KEY is required"),
    ],
)
def test_bad_setting_names_the_variable(change: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        Settings.from_env({**GOOD, **change})
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_redacted_hides_secrets() -> None:
    settings = Settings.from_env({**GOOD, "META_APP_SECRET": "s3cret"})
    redacted = settings.redacted()
    assert redacted["meta_app_secret"] is True
    assert "s3cret" not in repr(redacted)
    assert redacted["tenant_slug"] == "demo"


def test_a_secret_is_never_repeated_in_the_message() -> None:
    with pytest.raises(ConfigError) as info:
        Settings.from_env({**GOOD, "PHONE_ENCRYPTION_KEY": f"{GOOD['PHONE_ENCRYPTION_KEY']},not-a-key-s3cret"})
    assert "s3cret" not in str(info.value) and GOOD["PHONE_ENCRYPTION_KEY"] not in str(info.value)


def test_values_are_parsed_into_their_types() -> None:
    second = Fernet.generate_key().decode()
    settings = Settings.from_env({
        **GOOD, "PHONE_ENCRYPTION_KEY": f" {GOOD['PHONE_ENCRYPTION_KEY']} , {second}", "REMINDER_DAYS": "14, 3,7,3",
        "NOTIFY_RECEIVED": "yes", "LLM_ANSWERS": "off", "CORE_API_URL": "http://core:8100/", "WEB_THREADS": "2",
        "RECOVERY_MIN_AGE_S": "0",
    })
    assert settings.phone_encryption_keys == (GOOD["PHONE_ENCRYPTION_KEY"], second)  # the first encrypts
    assert settings.reminder_days == (3, 7, 14)
    assert settings.notify_received is True and settings.llm_answers is False
    assert settings.core_api_url == "http://core:8100"
    assert settings.web_threads == 2 and settings.recovery_min_age_s == 0.0
    assert (settings.web_bind, settings.web_workers, settings.worker_processes) == ("127.0.0.1:8000", 2, 4)


def test_a_blank_variable_counts_as_unset() -> None:
    settings = Settings.from_env({**GOOD, "JOB_TIMEOUT_S": "", "TENANT_SLUG": "   ", "SIMULATOR_ENABLED": ""})
    assert (settings.job_timeout_s, settings.tenant_slug, settings.simulator_enabled) == (30, "demo", True)


def test_defaults_that_follow_other_settings() -> None:
    production = {**GOOD, "ENCARGO_ENV": "production", "CONSOLE_SESSION_SECRET": "s" * 32,
                  "INTERNAL_EVENTS_SECRET": "e" * 32}
    meta = {"META_ACCESS_TOKEN": "t", "META_PHONE_NUMBER_ID": "1", "META_APP_SECRET": "s"}
    twilio = {"TWILIO_ACCOUNT_SID": "AC1", "TWILIO_AUTH_TOKEN": "t", "TWILIO_WHATSAPP_NUMBER": "whatsapp:+1"}
    assert Settings.from_env({**GOOD, **meta, **twilio}).whatsapp_provider == "meta"
    settings = Settings.from_env({**production, **twilio})
    assert settings.whatsapp_provider == "twilio"
    assert settings.simulator_enabled is False and settings.console_secure_cookies is True
    development = Settings.from_env(GOOD)
    assert development.simulator_enabled is True and development.console_secure_cookies is False
    assert Settings.from_env({**production, **twilio, "SIMULATOR_ENABLED": "true"}).simulator_enabled is True


def test_only_the_given_mapping_is_read(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("JOB_TIMEOUT_S", "99")
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("LOG_LEVEL=DEBUG\nTENANT_SLUG=from-dotenv\n")
    settings = Settings.from_env(GOOD)
    assert (settings.job_timeout_s, settings.log_level, settings.tenant_slug) == (30, "INFO", "demo")

    for name, value in GOOD.items():
        monkeypatch.setenv(name, value)
    from_process = Settings.from_env()  # no mapping: the process environment, still no .env file
    assert (from_process.job_timeout_s, from_process.tenant_slug) == (99, "demo")


def test_overrides_are_validated_like_the_environment() -> None:
    settings = Settings.from_env(GOOD, job_timeout_s=3)
    assert settings.job_timeout_s == 3
    assert settings.with_overrides(web_workers=5).web_workers == 5
    with pytest.raises(ConfigError, match=r"^JOB_TIMEOUT_S=0 is outside 1\.\.600$"):
        settings.with_overrides(job_timeout_s=0)
    with pytest.raises(ConfigError, match="META_ACCESS_TOKEN is required when WHATSAPP_PROVIDER=meta"):
        settings.with_overrides(whatsapp_provider="meta")
    with pytest.raises(ConfigError, match="'web_wrokers' is not a setting"):
        settings.with_overrides(web_wrokers=5)


def test_settings_are_frozen_and_hashable() -> None:
    settings = Settings.from_env(GOOD)
    with pytest.raises(ValidationError):
        settings.job_timeout_s = 1  # type: ignore[misc]
    assert hash(settings) == hash(Settings.from_env(GOOD)) and settings == Settings.from_env(GOOD)
    assert settings.with_overrides(job_timeout_s=3) != settings


def test_every_setting_is_documented_once() -> None:
    fields = Settings.model_fields
    assert all(info.description for info in fields.values())
    names = [env_name(name) for name in fields]
    assert len(names) == len(set(names))
    assert {"ENCARGO_ENV", "PHONE_ENCRYPTION_KEY", "WEB_BIND", "WEB_WORKERS", "WEB_THREADS",
            "WORKER_PROCESSES"} <= set(names)


def test_env_example_is_generated_from_the_settings() -> None:
    assert (ROOT / ".env.example").read_text(encoding="utf-8") == env_example.render(), \
        ".env.example is out of date: run `make env-example`"


def test_env_example_lists_every_setting_with_its_default() -> None:
    text = env_example.render()
    lines = text.splitlines()
    for name, info in Settings.model_fields.items():
        line = next(line for line in lines if line.startswith(f"{env_name(name)}="))
        if not info.is_required():
            value = line.split("=", 1)[1]
            assert Settings.from_env({**GOOD, env_name(name): value}) == Settings.from_env(GOOD), name  # the default
    prose = " ".join(line.removeprefix("# ") for line in lines)
    assert "One of: meta, twilio, local. Default: meta when META_ACCESS_TOKEN is set" in prose
    assert "# Seconds one job may run. 1..600. Default: 30.\nJOB_TIMEOUT_S=30\n" in text
    assert "\n# SANDBOX_CORE_PORT=8100\n" in text  # what one process reads for itself, commented out


def test_env_example_check_mode_reports_a_stale_file(tmp_path: Path) -> None:
    stale = tmp_path / ".env.example"
    stale.write_text("JOB_TIMEOUT_S=30\n")
    assert env_example.main(["--check", "--path", str(stale)]) == 1
    assert env_example.main(["--path", str(stale)]) == 0
    assert env_example.main(["--check", "--path", str(stale)]) == 0
    assert stale.read_text() == env_example.render()
