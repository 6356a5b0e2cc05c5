"""Meta's account webhooks (issue 17): a template paused falls back or holds, a number's quality and limit are
stored and shown to the admin, through the signed webhook and the worker (fixtures: tests/fixtures/SOURCES.md).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

import pytest
from flask.testing import FlaskClient
from psycopg_pool import ConnectionPool

from channels import meta_webhook
from channels.events import AccountNotice
from config import Settings
from tests.conftest import load_fixture
from tests.console_support import logged_in
from tests.fakes.graph_api import FakeGraphAPI
from tests.harness import post_meta, rows, run_jobs
from tests.notifications_helpers import notification_settings, notifications, post_event, status_event
from web.app import create_app

WABA = "102290129340398"
MARIA = "+50370000002"  # the recipient of SV20260105007834 in the sandbox core


@pytest.fixture
def nsettings(meta_settings: Settings, core_url: str) -> Settings:
    return notification_settings(meta_settings, core_url)


@pytest.fixture
def client(nsettings: Settings, db_pool: ConnectionPool) -> Iterator[FlaskClient]:
    with db_pool.connection() as conn:  # the demo company's Meta number belongs to this business account
        conn.execute("UPDATE tenant_channels SET waba_id = %s WHERE provider = 'meta'", (WABA,))
    with create_app(nsettings).test_client() as c:
        yield c


def _template_notice(event: str, name: str, *, language: str = "es", time: int = 1751247548,
                     fixture: str = "meta_template_status_paused.json") -> dict[str, Any]:
    payload = copy.deepcopy(load_fixture(fixture))
    entry = payload["entry"][0]
    entry["time"] = time
    value = entry["changes"][0]["value"]
    value.update(event=event, message_template_name=name, message_template_language=language)
    if event != "PAUSED":
        value.pop("other_info", None)
    return payload


def _deliver(client: FlaskClient, settings: Settings, payload: dict[str, Any]) -> None:
    assert post_meta(client, payload).status_code == 200
    run_jobs(settings)


def _notify(client: FlaskClient, settings: Settings, code: str, status: str) -> None:
    assert post_event(client, status_event(code, status)).status_code == 202
    run_jobs(settings)


# --- parsing ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("fixture", "expected"), [
    ("meta_template_status_paused.json", {"topic": "template_status", "event": "PAUSED",
                                          "template_name": "order_confirmation", "template_language": "en-US",
                                          "reason": "FIRST_PAUSE", "template_id": "1689556908129832"}),
    ("meta_template_status_approved.json", {"topic": "template_status", "event": "APPROVED", "reason": None}),
    ("meta_phone_number_quality_update.json", {"topic": "number_quality", "event": "THROUGHPUT_UPGRADE",
                                                "phone": "15550783881", "tier": None}),
    ("meta_phone_number_quality_flagged.json", {"topic": "number_quality", "event": "FLAGGED",
                                                "tier": "TIER_10K"}),
    ("meta_business_capability_update.json", {"topic": "capability", "tier": "2000",
                                              "account_id": "524126980791429"}),
    ("meta_account_update_restriction.json", {"topic": "account", "event": "ACCOUNT_RESTRICTION",
                                              "reason": "RESTRICTED_BIZ_INITIATED_MESSAGING"}),
])
def test_each_account_webhook_becomes_one_notice(fixture: str, expected: dict[str, Any]) -> None:
    [notice] = meta_webhook.parse_body(json.dumps(load_fixture(fixture)).encode()).events
    assert isinstance(notice, AccountNotice)
    assert {key: getattr(notice, key) for key in expected} == expected
    assert AccountNotice.from_dict(notice.to_dict()) == notice


def test_notices_of_the_wrong_shape_are_ignored_not_refused() -> None:
    odd = {"object": "whatsapp_business_account", "entry": [{"id": ["x"], "time": "soon", "changes": [
        {"field": "message_template_status_update", "value": {"event": 7, "message_template_name": ["a"]}},
        {"field": "phone_number_quality_update", "value": "FLAGGED"},
        {"field": "account_update", "value": {}},
        {"field": "brand_new_field", "value": {"event": "X"}},
    ]}]}
    assert meta_webhook.parse_body(json.dumps(odd).encode()).events == []


# --- through the signed webhook and the worker --------------------------------------------------------------


def test_unknown_field_is_acknowledged_and_a_bad_signature_refused(
    client: FlaskClient, db_pool: ConnectionPool
) -> None:
    unknown = {"object": "whatsapp_business_account",
               "entry": [{"id": WABA, "time": 1, "changes": [{"field": "smb_app_state_sync", "value": {"x": 1}}]}]}
    assert post_meta(client, unknown).status_code == 200
    assert rows(db_pool, "SELECT id FROM webhook_events") == []
    assert post_meta(client, load_fixture("meta_template_status_paused.json"), secret="wrong").status_code == 403
    assert rows(db_pool, "SELECT id FROM webhook_events") == []


def test_a_notice_is_stored_once_for_its_company_and_an_unknown_account_is_unroutable(
    client: FlaskClient, nsettings: Settings, db_pool: ConnectionPool
) -> None:
    paused = _template_notice("PAUSED", "paquete_en_camino")
    _deliver(client, nsettings, paused)
    _deliver(client, nsettings, paused)  # Meta's re-delivery
    [notice] = rows(db_pool, "SELECT * FROM account_notices")
    assert (notice["field"], notice["event"], notice["template_name"], notice["template_language"]) == (
        "template_status", "PAUSED", "paquete_en_camino", "es")
    assert notice["tenant_id"] is not None
    [state] = rows(db_pool, "SELECT * FROM template_states")
    assert (state["name"], state["status"], state["usable"]) == ("paquete_en_camino", "PAUSED", False)
    stranger = copy.deepcopy(paused)
    stranger["entry"][0]["id"] = "999000999"
    _deliver(client, nsettings, stranger)
    [event] = rows(db_pool, "SELECT * FROM webhook_events WHERE status = 'unroutable'")
    assert (event["kind"], event["error"], event["channel_number"]) == (
        "notice", "no tenant for the account", "999000999")
    assert len(rows(db_pool, "SELECT name FROM template_states")) == 1
