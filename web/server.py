"""`encargo-web`: check the settings, then hand the process over to gunicorn serving `web.app:app`.

A bad setting prints one line naming the variable and exits with status 2
before gunicorn starts; otherwise gunicorn replaces this process (same pid, so
a supervisor or container runtime signals gunicorn's master directly) with its
configuration from `web.gunicorn_conf`.
"""

from __future__ import annotations

import os
import sys

from config import settings_or_exit

GUNICORN_CONFIG = "python:web.gunicorn_conf"


def gunicorn_command() -> list[str]:
    """gunicorn run by this interpreter (its venv), configured only by web/gunicorn_conf.py."""
    return [sys.executable, "-m", "gunicorn", "-c", GUNICORN_CONFIG]


def main() -> None:
    settings_or_exit("encargo-web")
    command = gunicorn_command()
    os.execv(command[0], command)  # noqa: S606 - replaces this process with gunicorn


if __name__ == "__main__":
    main()
