"""Running the sandbox core: the `encargo-sandbox-core` process and an in-thread server for tests.

Environment of `encargo-sandbox-core`:
  SANDBOX_CORE_HOST            listen address (default 127.0.0.1)
  SANDBOX_CORE_PORT            listen port (default 8100)
  SANDBOX_CORE_EVENTS_URL      where signed package.status_changed events are POSTed
  LOG_LEVEL                    DEBUG, INFO (default), WARNING or ERROR
One company (when SANDBOX_CORE_COMPANIES is unset):
  CORE_API_KEY                 when set, requests need `Authorization: Bearer <key>`
  SANDBOX_CORE_DATA            JSON file in the core_demo.json format (default: bundled demo data)
  SANDBOX_CORE_EVENTS_SECRET   the HMAC secret that signs its events (needed with the URL to send any)
  SANDBOX_CORE_EVENTS_KEY_ID   the tenant slug its events name in X-Encargo-Key-Id (default: none)
Several companies:
  SANDBOX_CORE_COMPANIES       a JSON array of {"data", "api_key", "events_secret", "events_key_id",
                               "events_url"} objects, or the path of a file holding one (format in
                               sandbox_core/companies.py); it replaces the four one-company variables,
                               and each request's bearer key selects its company.
  Example, the two demo companies (sandbox_core/data/core_demo.json and core_demo2.json):
    SANDBOX_CORE_COMPANIES='[{"data": "sandbox_core/data/core_demo.json", "api_key": "k1",
      "events_secret": "s1", "events_key_id": "demo"}, {"data": "sandbox_core/data/core_demo2.json",
      "api_key": "k2", "events_secret": "s2", "events_key_id": "demo2"}]'
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from collections.abc import Mapping
from types import FrameType, TracebackType
from wsgiref.types import WSGIApplication

from werkzeug.serving import BaseWSGIServer, make_server

from observability import configure_logging
from sandbox_core.app import create_sandbox_app
from sandbox_core.companies import CompanyConfig, parse_companies

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


def _companies(env: Mapping[str, str], events_url: str) -> list[CompanyConfig]:
    """SANDBOX_CORE_COMPANIES' companies, else the one company of the one-company variables."""
    listed = env.get("SANDBOX_CORE_COMPANIES", "").strip()
    if listed:
        return parse_companies(listed, events_url)
    return [
        CompanyConfig(
            data_path=env.get("SANDBOX_CORE_DATA", "").strip() or None,
            api_key=env.get("CORE_API_KEY", "").strip(),
            events_url=events_url,
            events_secret=env.get("SANDBOX_CORE_EVENTS_SECRET", "").strip(),
            events_key_id=env.get("SANDBOX_CORE_EVENTS_KEY_ID", "").strip(),
        )
    ]


def _stop_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main() -> None:
    """Serve the sandbox core until interrupted (Ctrl-C or SIGTERM)."""
    env = os.environ
    configure_logging("sandbox-core", env.get("LOG_LEVEL", "INFO").strip().upper() or "INFO")
    # werkzeug logs each request line with its query string, which carries phone numbers.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    host = env.get("SANDBOX_CORE_HOST", "").strip() or "127.0.0.1"
    events_url = env.get("SANDBOX_CORE_EVENTS_URL", "").strip()
    try:
        port = _port(env.get("SANDBOX_CORE_PORT", "").strip() or "8100")
        companies = _companies(env, events_url)
        app = create_sandbox_app(companies=companies)
        server = make_server(host, port, app, threaded=True)
    except (OSError, ValueError, KeyError) as exc:
        print(f"encargo-sandbox-core: cannot start: {exc}", file=sys.stderr)  # noqa: T201 - one clear line
        raise SystemExit(2) from None
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    logger.info("sandbox core listening on http://%s:%s", host, server.server_port)
    for company in companies:
        logger.info(
            "serving data=%s (auth=%s, events=%s, key id=%s)",
            company.data_path or "bundled demo",
            bool(company.api_key),
            bool(company.events_url and company.events_secret),
            company.events_key_id or "-",
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
