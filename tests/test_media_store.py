"""The media store (issue 17): one tenant never reads another's files, files are encrypted at rest (local) or
written with server-side encryption (S3, moto's server on loopback), retention deletes them, and the check of a
file's content against its declared MIME type."""

from __future__ import annotations

import copy
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from flask.testing import FlaskClient
from psycopg_pool import ConnectionPool

from channels.media_types import check, sniff
from config import Settings
from notifications import retention
from runtime.resources import build_runtime
from storage import media
from storage.media_files import MediaNotFound, MediaStore, MediaStoreError, new_key, open_store
from tests.conftest import load_fixture
from tests.fakes.graph_api import FakeGraphAPI
from tests.harness import post_meta, rows, run_jobs
from tests.s3_support import CREDENTIALS, s3_server
from web.app import create_app

JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x17" * 2000


@pytest.fixture(scope="module")
def s3_url() -> Iterator[str]:
    with s3_server() as url:
        yield url


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, settings: Settings, tmp_path: Path) -> MediaStore:
    if request.param == "local":
        return open_store(settings.with_overrides(media_store_url=f"file:{tmp_path}/media"))
    url = request.getfixturevalue("s3_url")
    return open_store(settings.with_overrides(media_store_url=url, media_s3_access_key=CREDENTIALS["aws_access_key_id"],
                                              media_s3_secret_key=CREDENTIALS["aws_secret_access_key"]))


def test_one_tenant_never_reads_or_deletes_another_tenants_file(store: MediaStore) -> None:
    key = new_key("image")
    store.put(1, key, JPEG, "image/jpeg")
    with pytest.raises(MediaNotFound):
        store.get(2, key)
    store.delete(2, key)  # another tenant's delete reaches nothing
    assert store.get(1, key) == JPEG
    store.delete(1, key)
    with pytest.raises(MediaNotFound):
        store.get(1, key)


@pytest.mark.parametrize("key", ["../2/2026/12/image-x", "/etc/passwd", "2026/../../2/x", "", "a//b", "~/x"])
def test_keys_cannot_leave_their_tenant(store: MediaStore, key: str) -> None:
    with pytest.raises(MediaNotFound):
        store.get(1, key)
    with pytest.raises(MediaNotFound):
        store.put(1, key, JPEG, "image/jpeg")


def test_local_files_are_encrypted_with_a_key_derived_from_the_phone_key_unless_one_is_set(
        settings: Settings, tmp_path: Path) -> None:
    local = settings.with_overrides(media_store_url=f"file:{tmp_path}/media")
    key = new_key("document")
    open_store(local).put(5, key, b"%PDF-1.7 factura de Juana", "application/pdf")
    [path] = [p for p in (tmp_path / "media").rglob("*") if p.is_file()]
    assert path.is_relative_to(tmp_path / "media" / "5")
    assert b"factura" not in path.read_bytes()
    assert open_store(local).get(5, key) == b"%PDF-1.7 factura de Juana"  # another process, the same derived key
    own_key = local.with_overrides(media_encryption_key=Fernet.generate_key().decode())
    with pytest.raises(MediaStoreError):
        open_store(own_key).get(5, key)


def test_an_unknown_store_url_is_a_configuration_error(settings: Settings) -> None:
    from config import ConfigError

    with pytest.raises(ConfigError, match="MEDIA_STORE_URL"):
        settings.with_overrides(media_store_url="ftp://files.example/media")


def test_retention_deletes_the_files_of_the_conversations_it_purges(
        meta_settings: Settings, graph: FakeGraphAPI, db_pool: ConnectionPool) -> None:
    graph.media.add("8001", JPEG, "image/jpeg")
    payload = copy.deepcopy(load_fixture("meta_image.json"))
    message = payload["entry"][0]["changes"][0]["value"]["messages"][0]
    message["id"], message["image"]["id"] = f"wamid.{uuid.uuid4().hex}", "8001"
    with create_app(meta_settings).test_client() as client:
        assert isinstance(client, FlaskClient)
        post_meta(client, payload)
    run_jobs(meta_settings)
    [row] = rows(db_pool, "SELECT * FROM media")
    store = open_store(meta_settings)
    assert store.get(row["tenant_id"], row["storage_key"]) == JPEG
    with db_pool.connection() as conn:  # the row, like the file, only for its own tenant
        assert media.get(conn, row["id"], row["tenant_id"]) is not None
        assert media.get(conn, row["id"], row["tenant_id"] + 1) is None
        assert media.for_conversation(conn, row["tenant_id"] + 1, row["conversation_id"]) == []

    rt = build_runtime(meta_settings, pool_size=1)
    try:
        kept = retention.apply_retention(rt)  # a recent conversation keeps its file
        assert kept.media_files == 0 and store.get(row["tenant_id"], row["storage_key"]) == JPEG
        result = retention.apply_retention(rt, now=datetime.now(UTC) + timedelta(days=meta_settings.retention_days + 1))
    finally:
        rt.close()
    assert result.media_files == 1
    with pytest.raises(MediaNotFound):
        store.get(row["tenant_id"], row["storage_key"])
    assert rows(db_pool, "SELECT * FROM media") == []


@pytest.mark.parametrize(("media_type", "declared", "data", "verdict"), [
    ("image", "image/jpeg", JPEG, ("image/jpeg", None)),
    ("image", "image/png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 10, ("image/png", None)),
    ("sticker", "image/webp", b"RIFF\x00\x00\x00\x00WEBPVP8 " + b"\x00" * 10, ("image/webp", None)),
    ("audio", "audio/ogg; codecs=opus", b"OggS" + b"\x00" * 10, ("audio/ogg", None)),
    ("audio", "audio/mpeg", b"ID3\x04" + b"\x00" * 10, ("audio/mpeg", None)),
    ("audio", "audio/amr", b"#!AMR\n" + b"\x00" * 10, ("audio/amr", None)),
    ("audio", "audio/mp4", b"\x00\x00\x00\x20ftypM4A " + b"\x00" * 10, ("audio/mp4", None)),
    ("video", "video/mp4", b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 10, ("video/mp4", None)),
    ("video", "video/3gpp", b"\x00\x00\x00\x18ftyp3gp4" + b"\x00" * 10, ("video/3gpp", None)),
    ("document", "application/pdf", b"%PDF-1.4\n", ("application/pdf", None)),
    ("document", "application/vnd.openxmlformats-officedocument.wordprocessingml.document", b"PK\x03\x04rest",
     ("application/vnd.openxmlformats-officedocument.wordprocessingml.document", None)),
    ("document", "application/msword", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1rest", ("application/msword", None)),
    ("document", "text/plain", "hola, mi código es SV123".encode(), ("text/plain", None)),
    ("document", "application/octet-stream", b"%PDF-1.4\n", ("application/pdf", None)),  # the content decides
    ("image", "application/octet-stream", b"%PDF-1.4\n", ("application/pdf", "mime_mismatch")),
    ("document", "application/pdf", b"MZ\x90\x00", (None, "mime_mismatch")),  # a program named .pdf
    ("image", "image/jpeg", b"%PDF-1.4\n", ("application/pdf", "mime_mismatch")),
    ("image", "image/jpeg", b"\xff\xd8\xff" + b"\x00" * (5 * 1024 * 1024), (None, "too_large")),
    ("sticker", "image/webp", b"RIFF\x00\x00\x00\x00WEBP" + b"\x00" * 600 * 1024, (None, "too_large")),
    ("image", "image/jpeg", b"", (None, "empty")),
])
def test_content_is_checked_against_its_declared_type_and_size(
        media_type: str, declared: str, data: bytes, verdict: tuple[str | None, str | None]) -> None:
    result = check(media_type, declared, data)
    assert (result.mime, result.reason) == verdict


def test_sniffing_reads_only_signatures() -> None:
    assert sniff(b"just some text") is None
    assert sniff(b"GIF89a...") == "image/gif"
