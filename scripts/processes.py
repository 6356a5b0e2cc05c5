"""Console entry points that need checks before handing over to another program.

`encargo-web` validates the settings first (one clear line on a bad variable,
exit 2), then runs gunicorn serving `web.app:app` with threads (gthread): the
webhook's work is short I/O, and threads keep the acknowledgement fast.
"""

from __future__ import annotations

import os

from config import settings_or_exit


def web() -> None:
    settings_or_exit("encargo-web")
    bind = os.environ.get("WEB_BIND", "127.0.0.1:8000")
    workers = os.environ.get("WEB_WORKERS", "2")
    threads = os.environ.get("WEB_THREADS", "8")
    args = ["gunicorn", "web.app:app", "--bind", bind, "--worker-class", "gthread", "--workers", workers,
            "--threads", threads, "--timeout", "30", "--graceful-timeout", "10"]
    os.execvp("gunicorn", args)  # noqa: S606 - replaces this process with gunicorn
