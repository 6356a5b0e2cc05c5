"""Running the sandbox core: the `encargo-sandbox-core` process and an in-thread server for tests.

Environment of `encargo-sandbox-core`:
  CORE_API_KEY                 when set, requests need `Authorization: Bearer <key>`
  SANDBOX_CORE_HOST            listen address (default 127.0.0.1)
  SANDBOX_CORE_PORT            listen port (default 8100)
  SANDBOX_CORE_DATA            JSON file in the core_demo.json format (default: bundled demo data)
  SANDBOX_CORE_EVENTS_URL      where signed package.status_changed events are POSTed ...
  SANDBOX_CORE_EVENTS_SECRET   ... and the HMAC secret that signs them (both needed)
  LOG_LEVEL                    DEBUG, INFO (default), WARNING or ERROR
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from types import FrameType, TracebackType
from wsgiref.types import WSGIApplication

from werkzeug.serving import BaseWSGIServer, make_server

from observability import configure_logging
from sandbox_core.app import create_sandbox_app

logger = logging.getLogger(__name__)

__all__ = ["BackgroundServer", "create_sandbox_app", "main"]


class BackgroundServer:
    """A WSGI app served by werkzeug's threaded server in a daemon thread.

    Port 0 (the default) lets the OS pick a free loopback port; `url` tells
    which. Use as a context manager so the port is released at the end.
    """

    def __init__(self, app: WSGIApplication, host: str = "127.0.0.1", port: int = 0) -> None:
        self._server: BaseWSGIServer = make_server(host, port, app, threaded=True)
        # A short poll interval makes stop() return quickly (shutdown waits for the next poll).
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="background-wsgi",
            daemon=True,
        )

    @property
    def port(self) -> int:
        return int(self._server.server_port)

    @property
    def url(self) -> str:
        return f"http://{self._server.host}:{self.port}"

    def start(self) -> BackgroundServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join(timeout=5)
        self._server.server_close()

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def _port(raw: str) -> int:
    try:
        port = int(raw)
    except ValueError:
        raise ValueError(f"SANDBOX_CORE_PORT={raw!r} is not a whole number") from None
    if not 0 < port < 65536:
        raise ValueError(f"SANDBOX_CORE_PORT={port} is outside 1..65535")
    return port


def _stop_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main() -> None:
    """Serve the sandbox core until interrupted (Ctrl-C or SIGTERM)."""
    env = os.environ
    configure_logging("sandbox-core", env.get("LOG_LEVEL", "INFO").strip().upper() or "INFO")
    # werkzeug logs each request line with its query string, which carries phone numbers.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    host = env.get("SANDBOX_CORE_HOST", "").strip() or "127.0.0.1"
    data_path = env.get("SANDBOX_CORE_DATA", "").strip() or None
    api_key = env.get("CORE_API_KEY", "").strip()
    events_url = env.get("SANDBOX_CORE_EVENTS_URL", "").strip()
    events_secret = env.get("SANDBOX_CORE_EVENTS_SECRET", "").strip()
    try:
        port = _port(env.get("SANDBOX_CORE_PORT", "").strip() or "8100")
        app = create_sandbox_app(data_path, api_key, events_url, events_secret)
        server = make_server(host, port, app, threaded=True)
    except (OSError, ValueError, KeyError) as exc:
        print(f"encargo-sandbox-core: cannot start: {exc}", file=sys.stderr)  # noqa: T201 - one clear line
        raise SystemExit(2) from None
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    logger.info(
        "sandbox core listening on http://%s:%s (data=%s, auth=%s, events=%s)",
        host,
        server.server_port,
        data_path or "bundled demo",
        bool(api_key),
        bool(events_url and events_secret),
    )
    try:
        server.serve_forever()  # werkzeug's returns (closing the socket) on KeyboardInterrupt
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    logger.info("sandbox core stopped")


if __name__ == "__main__":
    main()
