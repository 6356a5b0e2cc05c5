"""Where the files of conversations live: a local directory (development) or an S3-compatible bucket.

`open_store(settings)` reads MEDIA_STORE_URL:
- `file:PATH` or `file:///abs/path` (or a bare path): `LocalMediaStore`. Each file is encrypted with Fernet
  (AES-128-CBC + HMAC) under MEDIA_ENCRYPTION_KEY; when that is unset the key is derived from the first
  PHONE_ENCRYPTION_KEY (HMAC-SHA256 of it with a fixed label), so a deployment has one secret less to keep.
  Changing the phone key's first entry then makes older files unreadable: set MEDIA_ENCRYPTION_KEY before
  rotating phone keys.
- `s3://bucket/prefix?endpoint_url=...&region=...`: `S3MediaStore` (boto3). Objects are written with
  server-side encryption (AES256). Credentials: MEDIA_S3_ACCESS_KEY / MEDIA_S3_SECRET_KEY when set, else
  boto3's usual chain (AWS_ACCESS_KEY_ID, instance roles, ...).

Every object lives under its tenant (`<root>/t<tenant_id>/...`, `<prefix>/t<tenant_id>/...`) and every call
takes the tenant: a key of one tenant read with another's id is not found. Keys are ours (`new_key`), never a
file name a customer chose.

Failure policy: `put`/`delete` raise `MediaStoreError` on a storage failure (the caller's job is retried);
`get` raises `MediaNotFound` for a missing object (or one of another tenant) and `MediaStoreError` otherwise.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import secrets
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import parse_qs, unquote, urlsplit

from cryptography.fernet import Fernet, InvalidToken

from config import Settings

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,200}$")
_DERIVE_LABEL = b"encargo media store v1"


class MediaStoreError(Exception):
    """The store could not be reached or refused the operation."""


class MediaNotFound(MediaStoreError):  # noqa: N818 (reads as what happened: the media was not found)
    """No such object for this tenant (missing, deleted, or another tenant's key)."""


class MediaStore(Protocol):
    def put(self, tenant_id: int, key: str, data: bytes, mime: str) -> None: ...

    def get(self, tenant_id: int, key: str) -> bytes: ...

    def delete(self, tenant_id: int, key: str) -> None: ...


def new_key(media_type: str, now: datetime | None = None) -> str:
    """A fresh object key for one file: '<yyyy>/<mm>/<type>-<random>' (the store adds the tenant)."""
    now = now or datetime.now(UTC)
    return f"{now:%Y/%m}/{media_type}-{secrets.token_hex(16)}"


def _checked(tenant_id: int, key: str) -> str:
    if not isinstance(tenant_id, int) or tenant_id <= 0:
        raise MediaNotFound("no such tenant")
    if not _KEY.match(key) or ".." in key or "//" in key:
        raise MediaNotFound("not a media key")
    return key


class LocalMediaStore:
    """Files under `root/<tenant_id>/<key>`, encrypted with Fernet (development, single host)."""

    def __init__(self, root: Path, fernet_key: str) -> None:
        self.root = root
        self._fernet = Fernet(fernet_key.encode())

    def _path(self, tenant_id: int, key: str) -> Path:
        return self.root / str(tenant_id) / _checked(tenant_id, key)

    def put(self, tenant_id: int, key: str, data: bytes, mime: str) -> None:
        path = self._path(tenant_id, key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=path.parent, delete=False) as tmp:
                tmp.write(self._fernet.encrypt(data))
            os.replace(tmp.name, path)  # readers see the whole file or none
        except OSError as exc:
            raise MediaStoreError(f"local media store: {type(exc).__name__}") from None

    def get(self, tenant_id: int, key: str) -> bytes:
        path = self._path(tenant_id, key)
        try:
            token = path.read_bytes()
        except FileNotFoundError:
            raise MediaNotFound("no such media") from None
        except OSError as exc:
            raise MediaStoreError(f"local media store: {type(exc).__name__}") from None
        try:
            return self._fernet.decrypt(token)
        except InvalidToken:
            raise MediaStoreError("local media store: a file that does not decrypt with the media key") from None

    def delete(self, tenant_id: int, key: str) -> None:
        try:
            self._path(tenant_id, key).unlink(missing_ok=True)
        except OSError as exc:
            raise MediaStoreError(f"local media store: {type(exc).__name__}") from None


class S3MediaStore:
    """Objects in an S3-compatible bucket under `<prefix>/t<tenant_id>/<key>`, with server-side encryption."""

    def __init__(self, client: S3Client, bucket: str, prefix: str = "") -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/")

    def _object(self, tenant_id: int, key: str) -> str:
        scoped = f"t{tenant_id}/{_checked(tenant_id, key)}"
        return f"{self.prefix}/{scoped}" if self.prefix else scoped

    def put(self, tenant_id: int, key: str, data: bytes, mime: str) -> None:
        try:
            self.client.put_object(Bucket=self.bucket, Key=self._object(tenant_id, key), Body=data,
                                   ContentType=mime or "application/octet-stream", ServerSideEncryption="AES256")
        except _boto_errors() as exc:
            raise MediaStoreError(f"s3 media store: {type(exc).__name__}") from None

    def get(self, tenant_id: int, key: str) -> bytes:
        try:
            answer = self.client.get_object(Bucket=self.bucket, Key=self._object(tenant_id, key))
            return answer["Body"].read()
        except _boto_errors() as exc:
            if _error_code(exc) in ("NoSuchKey", "404", "NotFound"):
                raise MediaNotFound("no such media") from None
            raise MediaStoreError(f"s3 media store: {type(exc).__name__}") from None

    def delete(self, tenant_id: int, key: str) -> None:
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self._object(tenant_id, key))
        except _boto_errors() as exc:
            raise MediaStoreError(f"s3 media store: {type(exc).__name__}") from None


def _boto_errors() -> tuple[type[Exception], ...]:
    from botocore.exceptions import BotoCoreError, ClientError

    return (BotoCoreError, ClientError)


def _error_code(exc: Exception) -> str:
    response: Any = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


def media_fernet_key(settings: Settings) -> str:
    """MEDIA_ENCRYPTION_KEY, or one derived from the first PHONE_ENCRYPTION_KEY (see the module's docstring)."""
    if settings.media_encryption_key:
        return settings.media_encryption_key
    digest = hmac.new(settings.phone_encryption_keys[0].encode(), _DERIVE_LABEL, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode()


def open_store(settings: Settings) -> MediaStore:
    """The store MEDIA_STORE_URL names. Raises ValueError for a URL of another scheme (config checks it first)."""
    url = settings.media_store_url
    parts = urlsplit(url)
    if parts.scheme in ("", "file"):
        path = unquote(parts.path if parts.scheme else url)
        if parts.netloc:  # file://relative/dir reads as netloc "relative"
            path = parts.netloc + path
        return LocalMediaStore(Path(path).expanduser(), media_fernet_key(settings))
    if parts.scheme == "s3":
        import boto3

        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        client = boto3.client(
            "s3", endpoint_url=query.get("endpoint_url") or None, region_name=query.get("region") or None,
            aws_access_key_id=settings.media_s3_access_key or None,
            aws_secret_access_key=settings.media_s3_secret_key or None,
        )
        return S3MediaStore(client, parts.netloc, parts.path)
    raise ValueError(f"MEDIA_STORE_URL: unknown scheme {parts.scheme!r} (file: or s3://)")
