"""Customers' files reach our media store (issue 17): through the real webhook, queue and RQ worker, from the
loopback fakes of Meta's Graph API and Twilio, into the local (encrypted) store or an S3 server (moto).

What a user would see: the customer's reply is sent without waiting for the file; the media row says stored,
failed, gone or rejected (what the agent is shown); the stored bytes are the customer's bytes.
"""

from __future__ import annotations

import copy
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import redis
from flask.testing import FlaskClient
from psycopg_pool import ConnectionPool

from config import Settings
from runtime.resources import build_runtime
from storage.media_files import open_store
from tests.conftest import load_fixture
from tests.fakes.graph_api import FakeGraphAPI
from tests.fakes.media_files import twilio_media_url
from tests.fakes.twilio_api import DEFAULT_ACCOUNT_SID, FakeTwilioAPI
from tests.harness import post_meta, post_twilio, rows, run_jobs
from tests.s3_support import s3_server
from web.app import create_app
from worker import media_job

CUSTOMER = "16505551234"
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(range(256)) * 40 + b"\xff\xd9"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 600
OGG = b"OggS\x00\x02" + b"\x01" * 900


def meta_media_payload(media_id: str, *, kind: str = "image", mime: str = "image/jpeg",
                       caption: str | None = "foto del paquete", voice: bool = False) -> dict[str, Any]:
    """Meta's image webhook (fixtures/meta_image.json) carrying `media_id` as a new message."""
    payload = copy.deepcopy(load_fixture("meta_image.json"))
    message = payload["entry"][0]["changes"][0]["value"]["messages"][0]
    message["id"] = f"wamid.{uuid.uuid4().hex}"
    message["type"] = kind
    del message["image"]
    content: dict[str, Any] = {"mime_type": mime, "sha256": "SfInY0gGKTsJlUWbwxC1k+FAD0FZHvzwfpvO0zX0GUI=",
                               "id": media_id}
    if caption:
        content["caption"] = caption
    if voice:
        content["voice"] = True
    message[kind] = content
    return payload


def media_rows(pool: ConnectionPool) -> list[dict[str, Any]]:
    return rows(pool, "SELECT * FROM media ORDER BY message_id, position")


def tenant_id(pool: ConnectionPool) -> int:
    return int(rows(pool, "SELECT id FROM tenants WHERE slug = 'demo'")[0]["id"])


def stored_files(settings: Settings) -> set[Path]:
    return {p for p in Path(settings.media_store_url.removeprefix("file:")).rglob("*") if p.is_file()}


def time_passes(settings: Settings, pool: ConnectionPool) -> None:
    """The back-off's wait is over (and the delayed job is not waited for): the scheduler's recovery loop
    queues the overdue downloads again, a burst worker runs them."""
    with pool.connection() as conn:
        conn.execute("UPDATE media SET next_attempt_at = now() - interval '1 hour' WHERE status = 'pending'")
    rt = build_runtime(settings, pool_size=1)
    try:
        media_job.recover_downloads(rt)
    finally:
        rt.close()
    run_jobs(settings)


@pytest.fixture
def meta_client(meta_settings: Settings) -> Iterator[FlaskClient]:
    with create_app(meta_settings).test_client() as client:
        yield client


def test_a_photo_is_stored_encrypted_and_the_customer_answered(
        meta_client: FlaskClient, meta_settings: Settings, graph: FakeGraphAPI, db_pool: ConnectionPool) -> None:
    graph.media.add("1003383421387256", JPEG, "image/jpeg")
    assert post_meta(meta_client, meta_media_payload("1003383421387256")).status_code == 200
    run_jobs(meta_settings)

    assert graph.messages_to("+" + CUSTOMER), "the customer got no answer"
    [row] = media_rows(db_pool)
    assert (row["status"], row["media_type"], row["mime"], row["size_bytes"]) == ("stored", "image", "image/jpeg",
                                                                                  len(JPEG))
    assert open_store(meta_settings).get(row["tenant_id"], row["storage_key"]) == JPEG
    # both of Meta's steps carried the bearer token
    assert [auth for _, auth in graph.media.gets()] == ["Bearer test-meta-access-token"] * 2
    # at rest the file is not the photo: it is encrypted
    [on_disk] = [p for p in stored_files(meta_settings) if row["storage_key"].endswith(p.name)]
    assert JPEG[:64] not in on_disk.read_bytes()
    assert on_disk.parent.parts[-3] == str(row["tenant_id"])  # <root>/<tenant>/<yyyy>/<mm>/<file>


def test_the_answer_does_not_wait_for_a_failing_download_which_is_retried_then_stored(
        meta_client: FlaskClient, meta_settings: Settings, graph: FakeGraphAPI, db_pool: ConnectionPool) -> None:
    graph.media.add("2001", JPEG, "image/jpeg", failures=2)
    post_meta(meta_client, meta_media_payload("2001"))
    run_jobs(meta_settings)

    assert graph.messages_to("+" + CUSTOMER), "the answer waited for the file"
    [row] = media_rows(db_pool)
    assert (row["status"], row["attempts"], row["last_error"]) == ("pending", 1, "provider_5xx")
    time_passes(meta_settings, db_pool)
    assert media_rows(db_pool)[0]["status"] == "pending"
    time_passes(meta_settings, db_pool)
    [row] = media_rows(db_pool)
    assert (row["status"], row["attempts"]) == ("stored", 3)
    assert open_store(meta_settings).get(row["tenant_id"], row["storage_key"]) == JPEG


def test_an_expired_url_is_asked_for_again_on_the_next_attempt(
        meta_client: FlaskClient, meta_settings: Settings, graph: FakeGraphAPI, db_pool: ConnectionPool) -> None:
    graph.media.add("2501", JPEG, "image/jpeg", url_expiries=1)
    post_meta(meta_client, meta_media_payload("2501"))
    run_jobs(meta_settings)
    [row] = media_rows(db_pool)
    assert (row["status"], row["last_error"]) == ("pending", "expired")
    time_passes(meta_settings, db_pool)
    [row] = media_rows(db_pool)
    assert (row["status"], row["attempts"]) == ("stored", 2)
    assert [path.rsplit("/", 2)[-2] for path, _ in graph.media.gets()] == ["v23.0", "attachments"] * 2


def test_a_download_that_keeps_failing_ends_failed_and_is_announced(
        meta_client: FlaskClient, meta_settings: Settings, graph: FakeGraphAPI, db_pool: ConnectionPool,
        redis_conn: redis.Redis) -> None:
    settings = meta_settings.with_overrides(media_download_attempts=2)
    graph.media.add("3001", JPEG, "image/jpeg", failures=99)
    listener = redis_conn.pubsub(ignore_subscribe_messages=True)
    listener.subscribe(f"console:events:{tenant_id(db_pool)}")
    post_meta(meta_client, meta_media_payload("3001"))
    run_jobs(settings)
    time_passes(settings, db_pool)

    [row] = media_rows(db_pool)
    assert (row["status"], row["attempts"], row["last_error"], row["storage_key"]) == ("failed", 2, "provider_5xx",
                                                                                       None)
    events = []
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:  # (the subscription's own confirmation also reads as None)
        if (message := listener.get_message(timeout=0.1)) is not None:
            events.append(json.loads(message["data"]))
    listener.close()
    assert {"type": "media", "media_id": row["id"], "status": "failed"}.items() <= next(
        e for e in events if e["type"] == "media").items()


def test_a_file_meta_no_longer_has_is_gone(meta_client: FlaskClient, meta_settings: Settings, graph: FakeGraphAPI,
                                          db_pool: ConnectionPool) -> None:
    graph.media.add("4001", JPEG, "image/jpeg", gone=True)
    post_meta(meta_client, meta_media_payload("4001"))
    run_jobs(meta_settings)
    [row] = media_rows(db_pool)
    assert (row["status"], row["attempts"], row["last_error"]) == ("gone", 1, "meta_100")


@pytest.mark.parametrize(("data", "declared_size", "mime", "reason"), [
    (JPEG, 6 * 1024 * 1024, "image/jpeg", "too_large"),  # Meta says it is over the 5 MB of an image: not fetched
    (b"MZ\x90\x00" + b"\x00" * 500, None, "image/jpeg", "mime_mismatch"),  # a program calling itself a photo
    (PNG, None, "image/jpeg", "mime_mismatch"),  # a PNG declared as JPEG
])
def test_too_large_or_not_what_it_claims_is_rejected_and_not_stored(
        meta_client: FlaskClient, meta_settings: Settings, graph: FakeGraphAPI, db_pool: ConnectionPool,
        data: bytes, declared_size: int | None, mime: str, reason: str) -> None:
    graph.media.add("5001", data, mime, declared_size=declared_size)
    before = stored_files(meta_settings)
    post_meta(meta_client, meta_media_payload("5001", mime=mime))
    run_jobs(meta_settings)
    [row] = media_rows(db_pool)
    assert (row["status"], row["last_error"], row["storage_key"]) == ("rejected", reason, None)
    assert stored_files(meta_settings) == before


def test_a_voice_note_and_a_document_keep_what_meta_says_of_them(
        meta_client: FlaskClient, meta_settings: Settings, graph: FakeGraphAPI, db_pool: ConnectionPool) -> None:
    graph.media.add("6001", OGG, "audio/ogg; codecs=opus")
    graph.media.add("6002", b"%PDF-1.7\n" + b"x" * 300, "application/pdf")
    post_meta(meta_client, meta_media_payload("6001", kind="audio", mime="audio/ogg; codecs=opus", caption=None,
                                              voice=True))
    document = meta_media_payload("6002", kind="document", mime="application/pdf")
    document["entry"][0]["changes"][0]["value"]["messages"][0]["document"]["filename"] = "factura.pdf"
    post_meta(meta_client, document)
    run_jobs(meta_settings)
    audio, pdf = media_rows(db_pool)
    assert (audio["media_type"], audio["voice"], audio["status"], audio["mime"]) == ("audio", True, "stored",
                                                                                     "audio/ogg")
    assert (pdf["media_type"], pdf["filename"], pdf["status"], pdf["mime"]) == ("document", "factura.pdf", "stored",
                                                                                "application/pdf")


# --- Twilio ------------------------------------------------------------------------------------------------


@pytest.fixture
def twilio() -> Iterator[FakeTwilioAPI]:
    fake = FakeTwilioAPI(auth_token="12345").start()
    yield fake
    fake.stop()


@pytest.fixture
def twilio_settings(settings: Settings, twilio: FakeTwilioAPI) -> Settings:
    return settings.with_overrides(
        whatsapp_provider="twilio", twilio_account_sid=DEFAULT_ACCOUNT_SID, twilio_auth_token="12345",
        twilio_whatsapp_number="whatsapp:+14155238886", twilio_api_base_url=twilio.url, simulator_enabled=False)


def test_twilio_images_are_fetched_with_basic_auth_which_never_reaches_the_cdn(
        twilio_settings: Settings, twilio: FakeTwilioAPI, db_pool: ConnectionPool) -> None:
    first, first_sid = twilio_media_url("https://api.twilio.com", DEFAULT_ACCOUNT_SID)  # as Twilio posts it
    second, second_sid = twilio_media_url("https://api.twilio.com", DEFAULT_ACCOUNT_SID)
    twilio.media.add(first_sid, JPEG, "image/jpeg")
    twilio.media.add(second_sid, PNG, "image/png")
    form = {k: str(v) for k, v in load_fixture("twilio_inbound_media.json").items()}
    form.update(NumMedia="2", MediaUrl0=first, MediaContentType0="image/jpeg", MediaUrl1=second,
                MediaContentType1="image/png")
    with create_app(twilio_settings).test_client() as client:
        assert post_twilio(client, form).status_code == 200
    run_jobs(twilio_settings)

    assert twilio.messages_to(form["From"].removeprefix("whatsapp:")), "the customer got no answer"
    rows_ = media_rows(db_pool)
    assert [(r["position"], r["status"], r["mime"]) for r in rows_] == [(0, "stored", "image/jpeg"),
                                                                        (1, "stored", "image/png")]
    store = open_store(twilio_settings)
    assert [store.get(r["tenant_id"], r["storage_key"]) for r in rows_] == [JPEG, PNG]
    api_gets, cdn_gets = twilio.media.gets("/2010-04-01/"), twilio.media.gets("/cdn/")
    assert len(api_gets) == 2 and all(auth.startswith("Basic ") for _, auth in api_gets)
    assert len(cdn_gets) == 2 and all(auth == "" for _, auth in cdn_gets)


def test_a_media_url_on_another_host_is_never_fetched_with_our_credentials(
        twilio_settings: Settings, twilio: FakeTwilioAPI, db_pool: ConnectionPool) -> None:
    form = {k: str(v) for k, v in load_fixture("twilio_inbound_media.json").items()}
    form["MediaUrl0"] = "http://127.0.0.2:9/2010-04-01/Accounts/AC1/Messages/MM1/Media/ME1"
    with create_app(twilio_settings).test_client() as client:
        post_twilio(client, form)
    run_jobs(twilio_settings)
    [row] = media_rows(db_pool)
    assert (row["status"], row["last_error"]) == ("gone", "not_a_twilio_url")


# --- S3 (moto's server on loopback) --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def s3_url() -> Iterator[str]:
    with s3_server() as url:
        yield url


def test_a_photo_is_stored_in_s3_with_server_side_encryption_under_its_tenant(
        meta_client: FlaskClient, meta_settings: Settings, graph: FakeGraphAPI, db_pool: ConnectionPool,
        s3_url: str) -> None:
    settings = meta_settings.with_overrides(media_store_url=s3_url, media_s3_access_key="testing",
                                            media_s3_secret_key="testing")
    graph.media.add("7001", JPEG, "image/jpeg")
    post_meta(meta_client, meta_media_payload("7001"))
    run_jobs(settings)

    [row] = media_rows(db_pool)
    assert row["status"] == "stored"
    assert open_store(settings).get(row["tenant_id"], row["storage_key"]) == JPEG
    s3 = boto3.client("s3", endpoint_url=s3_url.split("endpoint_url=")[1].split("&")[0], region_name="us-east-1",
                      aws_access_key_id="testing", aws_secret_access_key="testing")
    [obj] = s3.list_objects_v2(Bucket="encargo-media")["Contents"]
    assert obj["Key"] == f"prod/media/t{row['tenant_id']}/{row['storage_key']}"
    head = s3.head_object(Bucket="encargo-media", Key=obj["Key"])
    assert (head["ServerSideEncryption"], head["ContentType"]) == ("AES256", "image/jpeg")
