"""Helpers of the notification tests (issue 7): signed core events, settings, reading the log."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

from flask.testing import FlaskClient
from psycopg_pool import ConnectionPool
from werkzeug.test import TestResponse

from config import Settings
from notifications.events import KEY_ID_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, sign
from sandbox_core.state import load_data
from tests.conftest import TEST_ENV
from tests.harness import rows

SECRET = TEST_ENV["INTERNAL_EVENTS_SECRET"]  # the configured tenant's, in its row since the test's clean start


def notification_settings(settings: Settings, core_url: str, **overrides: Any) -> Settings:
    """Settings with the events secret, the sandbox core, and quiet hours off (tests run at any hour)."""
    values: dict[str, Any] = {"internal_events_secret": SECRET, "core_api_url": core_url,
                              "quiet_hours_start": "00:00", "quiet_hours_end": "00:00"}
    values.update(overrides)
    return settings.with_overrides(**values)


def status_event(code: str, status: str, *, event_id: str | None = None, **extra: Any) -> dict[str, Any]:
    return {"event_id": event_id or f"evt-{uuid.uuid4().hex}", "type": "package.status_changed",
            "tracking_code": code, "status": status, "occurred_at": "2026-01-06T09:40:00-06:00", **extra}


def post_event(client: FlaskClient, event: dict[str, Any] | bytes, *, secret: str = SECRET,
               timestamp: int | str | None = None, signature: str | None = None, key_id: str | None = None,
               content_type: str = "application/json") -> TestResponse:
    """POST a signed event; `key_id` names the signing tenant (X-Encargo-Key-Id; absent: the configured one)."""
    raw = event if isinstance(event, bytes) else json.dumps(event).encode()
    ts = str(int(time.time()) if timestamp is None else timestamp)
    headers = {"Content-Type": content_type, TIMESTAMP_HEADER: ts,
               SIGNATURE_HEADER: signature if signature is not None else sign(secret, ts, raw)}
    if key_id is not None:
        headers[KEY_ID_HEADER] = key_id
    return client.post("/internal/events", data=raw, headers=headers)


def notifications(pool: ConnectionPool) -> list[dict[str, Any]]:
    return rows(pool, "SELECT * FROM notification_log ORDER BY id")


def template_sends(sent: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [b for b in sent if b.get("type") == "template"]


def write_core_data(path: Path, packages: int, *, recipients: int | None = None) -> list[str]:
    """A sandbox-core data file: the demo data plus `packages` packages ready to arrive.

    Package i goes to recipient i % `recipients` (all different when None), numbers +50371xxxxxx.
    Returns the new tracking codes.
    """
    data = load_data()
    codes = []
    spread = recipients or packages
    for i in range(packages):
        code = f"SV2026{i:010d}"
        codes.append(code)
        data["packages"].append({
            "tracking_code": code, "status": "IN_TRANSIT",
            "sender": {"name": "Remitente Prueba", "phone": f"+50361{i % spread:06d}"},
            "recipient": {"name": f"Cliente {i}", "phone": f"+50371{i % spread:06d}"},
            "origin_point": "san_salvador_centro", "destination_point": "santa_ana", "weight_lbs": 3,
            "amount_to_collect": 0.0, "refund": None, "eta": None,
            "history": [{"at": "2026-01-06T10:30:00-06:00", "status": "RECEIVED_AT_ORIGIN",
                         "point": "san_salvador_centro", "note": "Recibido"}],
        })
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return codes
