"""Write `.run/env` for `make run`: development settings plus secrets generated once.

The file holds KEY=VALUE lines. It is created on the first run; later runs only
append keys that are missing and never change a value already there, so the
phone-encryption key (and so every phone stored with it) survives restarts.
Values set in the real environment win over the file when a process starts
(`merged_environment`).

Only the standard library is used, so this runs before anything is installed.

    python -m scripts.bootstrap_env [--path .run/env]
"""

from __future__ import annotations

import argparse
import base64
import os
import secrets
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PATH = ROOT / ".run" / "env"

# Development values that are the same on every machine (ports match scripts/run_environment.py).
FIXED_VALUES: dict[str, str] = {
    "ENCARGO_ENV": "development",
    "WHATSAPP_PROVIDER": "local",
    "META_PHONE_NUMBER_ID": "100000000000001",
    "REDIS_URL": "redis://127.0.0.1:6390/0",
    "DATABASE_URL": "postgresql://encargo@127.0.0.1:5440/encargo",
    "CORE_API_URL": "http://127.0.0.1:8100",
    "SIMULATOR_ENABLED": "true",
    "PUBLIC_BASE_URL": "http://127.0.0.1:8000",
    # issue 15: the second demo company (sandbox_core/data/core_demo2.json) and its own WhatsApp number
    "DEMO2_TENANT_SLUG": "cuscatlan",
    "DEMO2_PHONE_NUMBER_ID": "100000000000002",
}


def fernet_key() -> str:
    """A Fernet key: urlsafe base64 of 32 random bytes (what Fernet.generate_key() returns)."""
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()


def _token() -> str:
    return secrets.token_urlsafe(32)


# Secrets generated once per machine; a generator per key so nothing is generated needlessly.
SECRET_GENERATORS: dict[str, Callable[[], str]] = {
    "PHONE_ENCRYPTION_KEY": fernet_key,
    "PHONE_HASH_KEY": _token,
    "META_APP_SECRET": _token,
    "META_VERIFY_TOKEN": _token,
    "CORE_API_KEY": _token,
    # issue 6: the demo agent `make run` creates for the support console (/console)
    "CONSOLE_DEMO_PASSWORD": _token,
    # issue 15: the demo operator `make run` creates for the operator's area (/operator)
    "OPERATOR_DEMO_PASSWORD": _token,
    # issue 7: signs the sandbox core's package events to /internal/events
    "INTERNAL_EVENTS_SECRET": _token,
    # issue 15: the second demo company's own core API key and the secret its core signs events with
    "DEMO2_CORE_API_KEY": _token,
    "DEMO2_EVENTS_SECRET": _token,
}

HEADER = (
    "# Written by scripts/bootstrap_env.py for `make run` (development only).\n"
    "# Secrets were generated once on this machine; keep them, or stored phone numbers become unreadable.\n"
    "# Edit values freely: they are never overwritten. Variables set in your shell win over this file.\n"
)


def parse_env(text: str) -> dict[str, str]:
    """KEY=VALUE lines; blank lines and # comments ignored, `export ` and matching quotes stripped."""
    values: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export "):].lstrip()
        key, sep, value = line.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key.replace("_", "").isalnum():
            continue
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key] = value
    return values


def missing_values(existing: Mapping[str, str]) -> dict[str, str]:
    """What the file still lacks: fixed values and freshly generated secrets, in file order."""
    added: dict[str, str] = {}
    for key, value in FIXED_VALUES.items():
        if key not in existing:
            added[key] = value
    for key, generate in SECRET_GENERATORS.items():
        if key not in existing:
            added[key] = generate()
    return added


def ensure_env_file(path: Path = DEFAULT_PATH) -> tuple[dict[str, str], list[str]]:
    """Create or complete the env file; returns (all values in the file, keys added now).

    Existing lines are kept byte for byte; missing keys are appended. The file is
    written atomically with mode 0600 because it holds secrets.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    old_text = path.read_text(encoding="utf-8") if path.exists() else ""
    existing = parse_env(old_text)
    added = missing_values(existing)
    if added:
        new_text = old_text or HEADER
        if not new_text.endswith("\n"):
            new_text += "\n"
        new_text += "".join(f"{key}={value}\n" for key, value in added.items())
        tmp = path.with_name(f".{path.name}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(new_text)
        os.replace(tmp, path)
    os.chmod(path, 0o600)
    return {**existing, **added}, list(added)


def merged_environment(
    file_values: Mapping[str, str], environ: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The environment a process gets: the file's values, overridden by the real environment."""
    real = os.environ if environ is None else environ
    return {**file_values, **real}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="create .run/env (development settings and secrets) once")
    parser.add_argument("--path", type=Path, default=DEFAULT_PATH, help="the file (default .run/env)")
    args = parser.parse_args(argv)
    _values, added = ensure_env_file(args.path)
    path = args.path.resolve()
    shown = str(path.relative_to(Path.cwd())) if path.is_relative_to(Path.cwd()) else str(path)
    if added:
        print(f"bootstrap_env: wrote {len(added)} value(s) to {shown}: {', '.join(added)}")
    else:
        print(f"bootstrap_env: {shown} is complete; nothing changed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
