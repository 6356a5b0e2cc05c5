"""Start-up configuration: a bad setting is one clear line naming the variable."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet

from config import ConfigError, Settings

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
