"""Every process refuses to start on a bad setting with one line naming the variable, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ENTRY_POINTS = {
    "worker": [sys.executable, "-m", "worker.main"],
    "scheduler": [sys.executable, "-m", "worker.scheduler"],
    "migrate": [sys.executable, "-m", "storage.migrate"],
    "web": [sys.executable, "-c", "from scripts.processes import web; web()"],
    "failed-jobs": [sys.executable, "-m", "worker.failed"],
}


def clean_env(**values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "REDIS_", "PHONE_", "META_"))}
    env.update(values)
    return env


@pytest.mark.parametrize("name", sorted(ENTRY_POINTS))
def test_missing_setting_stops_with_one_line(name: str) -> None:
    result = subprocess.run(ENTRY_POINTS[name], cwd=ROOT, env=clean_env(), capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "DATABASE_URL is required" in lines[0]


def test_malformed_setting_is_named() -> None:
    env = clean_env(DATABASE_URL="postgresql://x@127.0.0.1/db", REDIS_URL="redis://127.0.0.1/0",
                    PHONE_ENCRYPTION_KEY="not-a-key", PHONE_HASH_KEY="k")
    result = subprocess.run(ENTRY_POINTS["worker"], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode == 2
    assert result.stderr.strip() == "encargo-worker: PHONE_ENCRYPTION_KEY must be urlsafe base64 of 32 bytes " \
        '(python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())")'


def test_gunicorn_boot_with_bad_setting_stops_instead_of_looping() -> None:
    result = subprocess.run([sys.executable, "-m", "gunicorn", "web.app:app", "--bind", "127.0.0.1:0"], cwd=ROOT,
                            env=clean_env(), capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode != 0
    assert "encargo-web: DATABASE_URL is required" in result.stderr
    assert "Traceback" not in result.stderr
