"""Every process refuses to start on a bad setting with one line naming the variable, never a traceback;
`encargo-web` serves with the one gunicorn configuration, whose WEB_* settings take effect."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import tomllib
import urllib.request
from pathlib import Path

import pytest

from web.server import gunicorn_command

ROOT = Path(__file__).resolve().parent.parent
ENTRY_POINTS = {
    "worker": [sys.executable, "-m", "worker.main"],
    "scheduler": [sys.executable, "-m", "worker.scheduler"],
    "migrate": [sys.executable, "-m", "storage.migrate"],
    "web": [sys.executable, "-m", "web.server"],
    "gunicorn-config": gunicorn_command(),  # what encargo-web execs, started without it
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


def test_console_scripts_name_the_package_they_run() -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["encargo-web"] == "web.server:main"
    assert scripts["encargo-worker"] == "worker.main:main"
    assert scripts["encargo-scheduler"] == "worker.scheduler:main"
    assert not (ROOT / "scripts" / "processes.py").exists()


def _children(pid: int) -> list[int]:
    """Processes whose parent is `pid` (from /proc/*/stat)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid and fields[0] not in ("Z", "X"):
            found.append(int(stat.parent.name))
    return found


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.slow
def test_web_workers_and_threads_take_effect(base_env: dict[str, str], tmp_path: Path) -> None:
    port = _free_port()
    env = {**clean_env(), **base_env, "WEB_BIND": f"127.0.0.1:{port}", "WEB_WORKERS": "3", "WEB_THREADS": "2",
           "HOME": str(tmp_path),  # gunicorn's files under ~ stay private to this test
           "GUNICORN_CMD_ARGS": "--log-level debug"}  # gunicorn then prints its effective configuration
    log_path = tmp_path / "gunicorn.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(ENTRY_POINTS["web"], cwd=tmp_path, env=env, stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 60
        body = b""
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as response:  # noqa: S310
                    body = response.read()
                break
            except OSError:
                time.sleep(0.2)
        assert b'"status":"ok"' in body.replace(b" ", b""), log_path.read_text()
        deadline = time.monotonic() + 15  # the workers boot side by side: all three soon after the first answers
        while len(_children(proc.pid)) < 3 and time.monotonic() < deadline:
            time.sleep(0.1)
        workers = _children(proc.pid)  # encargo-web execs gunicorn: its pid is the master's
        text = log_path.read_text()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert len(workers) == 3, text
    assert text.count("Booting worker with pid") == 3
    assert "Using worker: gthread" in text
    config = {line.split(":", 1)[0].strip(): line.split(":", 1)[1].strip()
              for line in text.splitlines() if line.startswith("  ") and ":" in line}
    assert config["workers"] == "3" and config["threads"] == "2"
    assert config["bind"] == f"['127.0.0.1:{port}']"
    assert config["timeout"] == "30" and config["graceful_timeout"] == "10"
    assert config["wsgi_app"] == "web.app:app"
    assert proc.returncode == 0  # SIGTERM: a graceful stop
