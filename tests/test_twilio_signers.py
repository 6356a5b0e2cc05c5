"""Twilio webhooks are checked with the auth token of the (sub)account owning our number in them (issue 15).

Two Twilio companies, each its own subaccount with its own auth token, beside the configured company (the
deployment's TWILIO_AUTH_TOKEN, "12345"): each one's signed webhook is accepted and answered as that
company; one company's number signed with the other's token (or the deployment's) is refused 403 and
nothing is stored; a number nobody has is acknowledged only when the deployment's token signed it (stored
unroutable, as before), else refused. Status callbacks name our number in `From`. The tokens are cached
in the web process until tenants:version moves. The real app, worker and Twilio's API faked on loopback.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import redis
from flask.testing import FlaskClient
from psycopg_pool import ConnectionPool

from config import Settings
from storage import tenant_admin, tenant_changes
from storage.crypto import Vault
from tests.fakes.twilio_api import DEFAULT_ACCOUNT_SID, FakeTwilioAPI
from tests.harness import post_twilio, rows, run_jobs
from web.app import create_app

OUR_NUMBER = "whatsapp:+14155238886"  # the configured company's
NORTE_SID, NORTE_TOKEN, NORTE_NUMBER = "AC" + "1" * 32, "norte-subaccount-token", "+15005550001"
SUR_SID, SUR_TOKEN, SUR_NUMBER = "AC" + "2" * 32, "sur-subaccount-token", "+15005550002"
UNKNOWN_NUMBER = "+15005550099"
CUSTOMER = "whatsapp:+50370005001"


@pytest.fixture
def twilio() -> Iterator[FakeTwilioAPI]:
    fake = FakeTwilioAPI(auth_token="12345").start()
    yield fake
    fake.stop()


@pytest.fixture
def tsettings(settings: Settings, twilio: FakeTwilioAPI, core_url: str) -> Settings:
    return settings.with_overrides(
        whatsapp_provider="twilio", twilio_account_sid=DEFAULT_ACCOUNT_SID, twilio_auth_token="12345",
        twilio_whatsapp_number=OUR_NUMBER, twilio_api_base_url=twilio.url, simulator_enabled=False,
        core_api_url=core_url,
    )


@pytest.fixture
def vault(settings: Settings) -> Vault:
    return Vault(settings.phone_encryption_keys, settings.phone_hash_key)


@pytest.fixture
def companies(db_pool: ConnectionPool, vault: Vault, redis_conn: redis.Redis, twilio: FakeTwilioAPI) -> None:
    for slug, name, sid, token, number in (("norte", "Envíos del Norte", NORTE_SID, NORTE_TOKEN, NORTE_NUMBER),
                                           ("sur", "Envíos del Sur", SUR_SID, SUR_TOKEN, SUR_NUMBER)):
        twilio.add_account(sid, token)
        tenant_admin.create_tenant(db_pool, vault, redis_conn, slug=slug, name=name)
        tenant_admin.add_channel(db_pool, vault, redis_conn, slug, provider="twilio", number=f"whatsapp:{number}",
                                 account_sid=sid, secret=token)


@pytest.fixture
def client(tsettings: Settings, companies: None) -> Iterator[FlaskClient]:
    app = create_app(tsettings)
    with app.test_client() as c:
        yield c
    app.extensions["db_pool"].close()
    app.extensions["redis"].close()


def message(sid_digit: str, to: str, sid: str = DEFAULT_ACCOUNT_SID) -> dict[str, str]:
    return {"MessageSid": "SM" + sid_digit * 32, "AccountSid": sid, "From": CUSTOMER, "To": f"whatsapp:{to}",
            "Body": "Hola", "NumMedia": "0", "ProfileName": "Cliente"}


def stored(pool: ConnectionPool) -> list[dict[str, object]]:
    return rows(pool, "SELECT w.event_id, w.status, w.error, t.slug FROM webhook_events w"
                      " LEFT JOIN tenants t ON t.id = w.tenant_id ORDER BY w.id")


def test_each_company_is_verified_with_its_own_token(client: FlaskClient, tsettings: Settings,
                                                     twilio: FakeTwilioAPI, db_pool: ConnectionPool) -> None:
    assert post_twilio(client, message("1", NORTE_NUMBER, NORTE_SID), token=NORTE_TOKEN).status_code == 200
    assert post_twilio(client, message("2", SUR_NUMBER, SUR_SID), token=SUR_TOKEN).status_code == 200
    ours = message("3", OUR_NUMBER.removeprefix("whatsapp:"))
    assert post_twilio(client, ours).status_code == 200  # the configured company: the deployment's token
    run_jobs(tsettings)
    assert stored(db_pool) == [
        {"event_id": "SM" + "1" * 32, "status": "processed", "error": None, "slug": "norte"},
        {"event_id": "SM" + "2" * 32, "status": "processed", "error": None, "slug": "sur"},
        {"event_id": "SM" + "3" * 32, "status": "processed", "error": None, "slug": "demo"},
    ]
    # and each is answered as its own subaccount, from its own number
    senders = {(account, params["From"]) for account, params in twilio.sends_to(CUSTOMER.removeprefix("whatsapp:"))}
    assert senders == {(NORTE_SID, f"whatsapp:{NORTE_NUMBER}"), (SUR_SID, f"whatsapp:{SUR_NUMBER}"),
                       (DEFAULT_ACCOUNT_SID, OUR_NUMBER)}


@pytest.mark.parametrize("token", [NORTE_TOKEN, "12345", "wrong-token"])
def test_a_company_number_signed_with_another_token_is_refused(client: FlaskClient, db_pool: ConnectionPool,
                                                               token: str) -> None:
    response = post_twilio(client, message("4", SUR_NUMBER, SUR_SID), token=token)
    assert response.status_code == 403 and response.get_json() == {"error": "invalid X-Twilio-Signature"}
    status = {"MessageSid": "SM" + "5" * 32, "MessageStatus": "delivered", "From": f"whatsapp:{SUR_NUMBER}",
              "To": CUSTOMER, "AccountSid": SUR_SID}
    assert post_twilio(client, status, token=token, path="/webhooks/twilio/status").status_code == 403
    assert stored(db_pool) == []


def test_status_callbacks_are_verified_by_the_number_they_left_from(client: FlaskClient,
                                                                    db_pool: ConnectionPool) -> None:
    status = {"MessageSid": "SM" + "6" * 32, "MessageStatus": "delivered", "From": f"whatsapp:{SUR_NUMBER}",
              "To": CUSTOMER, "AccountSid": SUR_SID}
    assert post_twilio(client, status, token=SUR_TOKEN, path="/webhooks/twilio/status").status_code == 200
    assert [e["event_id"] for e in stored(db_pool)] == ["SM" + "6" * 32 + ":delivered"]


def test_an_unknown_number_is_kept_only_when_the_deployment_signed_it(
        client: FlaskClient, tsettings: Settings, db_pool: ConnectionPool) -> None:
    assert post_twilio(client, message("7", UNKNOWN_NUMBER), token=NORTE_TOKEN).status_code == 403
    assert post_twilio(client, message("8", UNKNOWN_NUMBER), token="made-up").status_code == 403
    assert stored(db_pool) == []  # naming a number nobody has gets nothing stored
    assert post_twilio(client, message("9", UNKNOWN_NUMBER)).status_code == 200
    run_jobs(tsettings)
    assert stored(db_pool) == [{"event_id": "SM" + "9" * 32, "status": "unroutable",
                                "error": "no tenant for the receiving number", "slug": None}]


def test_a_new_token_counts_once_announced(client: FlaskClient, db_pool: ConnectionPool, vault: Vault,
                                           redis_conn: redis.Redis) -> None:
    assert post_twilio(client, message("a", SUR_NUMBER), token=SUR_TOKEN).status_code == 200
    with db_pool.connection() as conn:  # changed behind the processes' back: the cached token still counts
        conn.execute("UPDATE tenant_channels SET secret_encrypted = %s WHERE number = %s",
                     (vault.encrypt("sur-new-token"), SUR_NUMBER))
    time.sleep(1.1)
    assert post_twilio(client, message("b", SUR_NUMBER), token=SUR_TOKEN).status_code == 200
    tenant_changes.announce(redis_conn)  # what every tenant change does (storage.tenant_admin)
    time.sleep(1.1)
    assert post_twilio(client, message("c", SUR_NUMBER), token=SUR_TOKEN).status_code == 403
    assert post_twilio(client, message("d", SUR_NUMBER), token="sur-new-token").status_code == 200


def test_a_deployment_without_its_own_token_still_verifies_its_companies(
        tsettings: Settings, companies: None, db_pool: ConnectionPool) -> None:
    """A deployment on another provider whose companies bring their own Twilio subaccounts."""
    app = create_app(tsettings.with_overrides(whatsapp_provider="local", twilio_auth_token="",
                                              twilio_whatsapp_number=""))
    with app.test_client() as c:
        assert post_twilio(c, message("e", NORTE_NUMBER), token=NORTE_TOKEN).status_code == 200
        assert post_twilio(c, message("f", UNKNOWN_NUMBER), signature="").status_code == 401
        assert post_twilio(c, message("f", UNKNOWN_NUMBER), token="12345").status_code == 403
    app.extensions["db_pool"].close()
    app.extensions["redis"].close()
    assert [e["event_id"] for e in stored(db_pool)] == ["SM" + "e" * 32]
