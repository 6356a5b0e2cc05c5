"""What the service tests share: the company clock, a service context on the demo core, a closed port."""

from __future__ import annotations

import socket
from datetime import datetime
from zoneinfo import ZoneInfo

import redis

from core_api_client import CoreClient
from services import ServiceContext

SV = ZoneInfo("America/El_Salvador")
TUESDAY_1030 = datetime(2026, 1, 6, 10, 30, tzinfo=SV)


def make_ctx(core: CoreClient, conn: redis.Redis, now: datetime = TUESDAY_1030) -> ServiceContext:
    return ServiceContext(core, conn, "demo", "Transportes Express El Salvador", SV, now)


def closed_port() -> int:
    """A loopback port nothing listens on (a core that is down)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port
