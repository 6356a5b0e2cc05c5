"""gunicorn's configuration for `encargo-web`, the one every deployment uses: `gunicorn -c python:web.gunicorn_conf`.

The Docker image, docker-compose and `make run` all start `encargo-web`, which
execs gunicorn with this module (a module rather than a file path, so a
non-editable install finds it too). Where it listens and how many processes
and threads serve are settings (WEB_BIND, WEB_WORKERS, WEB_THREADS), read and
validated through `config.Settings` like every other one: a bad value stops
gunicorn with one line naming the variable.

Threads (gthread): the webhook's work is short I/O, and threads keep the
acknowledgement fast while a console page holds a live event stream.
"""

from __future__ import annotations

from config import settings_or_exit

_settings = settings_or_exit("encargo-web")

wsgi_app = "web.app:app"
bind = [_settings.web_bind]
workers = _settings.web_workers
worker_class = "gthread"
threads = _settings.web_threads
timeout = 30
graceful_timeout = 10
# gunicorn >= 25 opens a control socket at one fixed path (~/.gunicorn/gunicorn.ctl) that every gunicorn of the
# user shares; nothing here uses it. Older versions ignore the name.
control_socket_disable = True
