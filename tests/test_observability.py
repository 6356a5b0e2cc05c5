"""Logs: one JSON object per line, a correlation id from webhook to send, and no message bodies or secrets."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from config import Settings
from observability import JsonFormatter, install_correlation_factory
from tests.fakes.graph_api import DEFAULT_TOKEN, FakeGraphAPI
from tests.harness import post_meta, run_jobs, text_payload
from web.app import create_app


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    install_correlation_factory()
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter("test"))
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    yield stream
    root.removeHandler(handler)
    root.setLevel(old_level)


def test_correlation_id_follows_a_message_and_no_body_is_logged(settings: Settings, log_lines: io.StringIO) -> None:
    graph = FakeGraphAPI().start()
    try:
        meta = settings.with_overrides(whatsapp_provider="meta", meta_access_token=DEFAULT_TOKEN,
                                       meta_graph_base_url=graph.url, simulator_enabled=False)
        secret_text = "mi clave es ZQX-7781 y vivo en Calle Falsa 123"
        with create_app(meta).test_client() as client:
            assert post_meta(client, text_payload("50370000001", secret_text, "wamid.LOG1")).status_code == 200
        run_jobs(meta)
        delivered = len(graph.sent)
    finally:
        graph.stop()
    raw = log_lines.getvalue()
    lines = [json.loads(line) for line in raw.splitlines()]
    queued = [line for line in lines if line["msg"] == "event queued"]
    sent = [line for line in lines if line["msg"] == "reply sent"]
    assert len(queued) == 1
    assert delivered >= 1 and len(sent) == delivered  # one log line per reply the customer got
    cid = queued[0]["correlation_id"]
    assert all(line["correlation_id"] == cid for line in sent)
    handled = [line for line in lines if line["msg"] == "message handled"]
    assert handled[0]["correlation_id"] == cid
    for forbidden in ("ZQX-7781", "Calle Falsa", "50370000001", "test-app-secret", DEFAULT_TOKEN, "Transportes"):
        assert forbidden not in raw, f"{forbidden!r} leaked into the logs"
