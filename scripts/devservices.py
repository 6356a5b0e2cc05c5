"""Install (when missing) and start private Redis and PostgreSQL instances on loopback.

Used by `make run` (data kept under .run/) and by the test suite (throw-away
directories, free ports). On Debian/Ubuntu missing packages are installed with
apt-get (through sudo when not root); elsewhere it prints what to install.

PostgreSQL refuses to run as root, so when we are root the private cluster is
initialised and run as the `postgres` system user that Debian's package
creates. Debian keeps the server binaries off the PATH, under
/usr/lib/postgresql/<version>/bin; they are looked up there.
"""

from __future__ import annotations

import argparse
import glob
import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

APT_PACKAGES = {"redis-server": "redis-server", "postgres": "postgresql", "chromium": "chromium"}
# Without an emoji font Chromium draws the bot's emojis as empty boxes in screenshots.
EMOJI_FONT_PACKAGE = "fonts-noto-color-emoji"
EMOJI_FONT_FILE = Path("/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf")
# Tesseract with its Spanish data reads tracking codes in customers' photos (services/ocr.py): `make test` installs
# it, `make run` tries to (without it photo OCR is off, and the worker says so once when it starts).
OCR_PACKAGES = ("tesseract-ocr", "tesseract-ocr-spa")
OCR_SPANISH_DATA = "/usr/share/tesseract-ocr/*/tessdata/spa.traineddata"


class ServiceError(RuntimeError):
    """A service could not be installed or started; the message says what to do."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _is_root() -> bool:
    return os.geteuid() == 0


def _apt_install(packages: list[str]) -> None:
    if not shutil.which("apt-get"):
        raise ServiceError(f"please install {', '.join(packages)} with your system's package manager")
    prefix: list[str] = [] if _is_root() else ["sudo", "-n"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    print(f"installing {' '.join(packages)} with apt-get ...", file=sys.stderr, flush=True)
    install = [*prefix, "apt-get", "install", "-y", "-q", "--no-install-recommends", *packages]
    if subprocess.run(install, env=env, stdout=subprocess.DEVNULL, check=False).returncode != 0:
        subprocess.run([*prefix, "apt-get", "update", "-q"], env=env, stdout=subprocess.DEVNULL, check=False)
        if subprocess.run(install, env=env, stdout=subprocess.DEVNULL, check=False).returncode != 0:
            raise ServiceError(f"apt-get could not install {' '.join(packages)}; install them and retry")


def postgres_bindir() -> Path | None:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name), reverse=True)
    for path in candidates:
        if (Path(path) / "postgres").exists():
            return Path(path)
    found = shutil.which("postgres")
    return Path(found).parent if found else None


def chromium_path() -> str | None:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return None


def ocr_installed() -> bool:
    """Whether Tesseract and its Spanish data are installed."""
    return shutil.which("tesseract") is not None and bool(glob.glob(OCR_SPANISH_DATA))


def ensure_ocr() -> bool:
    """Install Tesseract when missing, for `make run` where it is optional: False (and one line on stderr saying
    photo OCR stays off) when it cannot be installed."""
    if ocr_installed():
        return True
    try:
        _apt_install(list(OCR_PACKAGES))
    except ServiceError as exc:
        print(f"devservices: photo OCR stays off: {exc}", file=sys.stderr, flush=True)
        return False
    return ocr_installed()


def ensure_installed(*, browser: bool = False, ocr: bool = False) -> None:
    """Install what is missing: redis-server, PostgreSQL and (for the tests) Chromium and Tesseract."""
    missing = []
    if not shutil.which("redis-server"):
        missing.append(APT_PACKAGES["redis-server"])
    if postgres_bindir() is None:
        missing.append(APT_PACKAGES["postgres"])
    if browser and chromium_path() is None:
        missing.append(APT_PACKAGES["chromium"])
    if browser and not EMOJI_FONT_FILE.exists():
        missing.append(EMOJI_FONT_PACKAGE)
    if ocr and not ocr_installed():
        missing.extend(OCR_PACKAGES)
    if missing:
        _apt_install(missing)
    if _is_root() and postgres_bindir() is not None:
        _ensure_postgres_user()


def _ensure_postgres_user() -> None:
    if subprocess.run(["id", "-u", "postgres"], capture_output=True, check=False).returncode != 0:
        subprocess.run(
            ["useradd", "--system", "--home-dir", "/var/lib/postgresql", "--shell", "/bin/bash", "postgres"],
            check=True,
        )


def _wait_for_port(port: int, proc: subprocess.Popen[bytes], name: str, log_path: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log_path.read_text(errors="replace")[-2000:] if log_path.exists() else ""
            raise ServiceError(f"{name} exited with status {proc.returncode}:\n{tail}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise ServiceError(f"{name} did not listen on 127.0.0.1:{port} within {timeout:.0f}s (log: {log_path})")


@dataclass
class RunningService:
    name: str
    port: int
    process: subprocess.Popen[bytes]
    url: str

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_redis(data_dir: Path, port: int, *, persistent: bool) -> RunningService:
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = data_dir / "redis.log"
    args = [
        shutil.which("redis-server") or "redis-server",
        "--bind", "127.0.0.1", "--port", str(port), "--dir", str(data_dir),
        "--daemonize", "no", "--logfile", str(log_path), "--protected-mode", "yes",
    ]
    # For `make run`: append-only file so queued jobs survive a restart. Tests need no durability.
    args += ["--appendonly", "yes", "--save", ""] if persistent else ["--appendonly", "no", "--save", ""]
    proc = subprocess.Popen(  # noqa: S603
        args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    _wait_for_port(port, proc, "redis-server", log_path)
    return RunningService("redis", port, proc, f"redis://127.0.0.1:{port}/0")


def _traversable_by_others(path: Path) -> bool:
    return all(p.stat().st_mode & 0o001 for p in path.resolve().parents)


def _as_postgres_user(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if _is_root() else cmd


def start_postgres(data_dir: Path, port: int, *, database: str = "encargo") -> RunningService:
    """Initialise (once) and start a private cluster with trust auth on 127.0.0.1 only."""
    bindir = postgres_bindir()
    if bindir is None:
        raise ServiceError("PostgreSQL server binaries not found; run with installation enabled")
    data_dir.mkdir(parents=True, exist_ok=True)
    pgdata = data_dir / "pgdata"
    log_path = data_dir / "postgres.log"
    if _is_root():
        shutil.chown(data_dir, "postgres", "postgres")
        if not _traversable_by_others(data_dir):
            raise ServiceError(f"{data_dir} must be reachable by the postgres user (chmod o+x its parents)")
    if not (pgdata / "PG_VERSION").exists():
        result = subprocess.run(
            _as_postgres_user([str(bindir / "initdb"), "-D", str(pgdata), "-U", "encargo", "--auth=trust",
                               "--encoding=UTF8", "--locale=C.UTF-8", "--no-sync"]),
            capture_output=True, text=True, check=False,
        )
        if result.returncode != 0:
            raise ServiceError(f"initdb failed: {result.stderr.strip()[-1500:]}")
    pid_file = pgdata / "postmaster.pid"
    if pid_file.exists():
        pid_file.unlink()  # a stale pid file from a killed run would stop the server from starting
    log_file = open(log_path, "ab")  # noqa: SIM115 - handed to the child process
    if _is_root():
        shutil.chown(log_path, "postgres", "postgres")
    proc = subprocess.Popen(  # noqa: S603
        _as_postgres_user([
            str(bindir / "postgres"), "-D", str(pgdata), "-h", "127.0.0.1", "-p", str(port),
            "-k", str(data_dir), "-c", "fsync=off" if "tmp" in str(data_dir) else "fsync=on",
            "-c", "max_connections=200", "-c", "shared_buffers=128MB",
        ]),
        stdin=subprocess.DEVNULL, stdout=log_file, stderr=log_file, start_new_session=True,
    )
    _wait_for_port(port, proc, "postgres", log_path)
    _create_database(port, database)
    return RunningService("postgres", port, proc, f"postgresql://encargo@127.0.0.1:{port}/{database}")


def _create_database(port: int, name: str) -> None:
    import psycopg

    deadline = time.monotonic() + 30
    while True:
        try:
            with psycopg.connect(f"postgresql://encargo@127.0.0.1:{port}/postgres", autocommit=True) as conn:
                exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
                if not exists:
                    conn.execute(f'CREATE DATABASE "{name}"')
                return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def main() -> None:
    parser = argparse.ArgumentParser(description="install and check the local services Encargo needs")
    parser.add_argument("--browser", action="store_true", help="also install Chromium for browser tests")
    parser.add_argument("--ocr", action="store_true", help="also install Tesseract with Spanish data (photo codes)")
    args = parser.parse_args()
    try:
        ensure_installed(browser=args.browser, ocr=args.ocr)
    except ServiceError as exc:
        print(f"devservices: {exc}", file=sys.stderr)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
