"""Table `tenant_faq_versions`: each company's policies and FAQ, every version kept.

A version is never changed. An admin's edit in the console writes the next
version (`save`), a restore writes a new version holding an earlier one's
content, and the bot reads the highest one (`for_tenant`, through the
processes' caches: every write announces a change with
`storage.tenant_changes`, so every process reads the new version within about
a second, without a restart).

A company starts from its seed file faq_data/<slug>.yaml when there is one:
`seed_from_file` stores it as a version with origin 'file' when the company
has no version yet, or when the file changed while nobody edited the FAQ in
the console (so a deployment that edits its file keeps working as before; an
admin's edit wins from then on). `encargo-migrate` seeds every tenant
(`seed_all`), and a tenant created by the operator is seeded at once. Until
then, `for_tenant` reads the seed file itself; a company with neither has an
empty FAQ (the bot says it does not have the information and offers a person).

Failure policy: database errors raise; a malformed seed file is logged and
skipped by `seed_all` and `for_tenant` (the company then has what it had),
raised (`FaqDataError`) by `seed_from_file`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
import redis
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool

from storage import tenant_changes
from storage.faq_content import FAQ_DIR, FaqData, FaqDataError, empty, from_json, read_file, same_content

log = logging.getLogger(__name__)

ORIGINS = ("file", "console", "restore")
HISTORY_MAX = 50

_COLUMNS = ("v.id, v.tenant_id, v.version, v.policies, v.entries, v.origin, v.created_by, v.created_at, v.note,"
            " a.name AS author")


@dataclass(frozen=True)
class FaqVersion:
    id: int  # the row's own id: how the console names a version (another company's is 404)
    tenant_id: int
    version: int  # 1, 2, 3 ... within the company
    data: FaqData
    origin: str
    created_by: int | None  # the agent who wrote it (None: loaded from the seed file)
    author: str | None  # that agent's name
    created_at: datetime
    note: str


def _version(row: dict[str, Any]) -> FaqVersion:
    return FaqVersion(
        id=int(row["id"]), tenant_id=int(row["tenant_id"]), version=int(row["version"]),
        data=from_json(f"tenant {row['tenant_id']} FAQ version {row['version']}", row["policies"], row["entries"]),
        origin=str(row["origin"]), created_by=row["created_by"], author=row["author"],
        created_at=row["created_at"], note=str(row["note"]),
    )


def current(conn: psycopg.Connection[Any], tenant_id: int) -> FaqVersion | None:
    """The company's highest version (None: it has none yet)."""
    row = conn.execute(
        f"SELECT {_COLUMNS} FROM tenant_faq_versions v LEFT JOIN agents a ON a.id = v.created_by"  # noqa: S608
        " WHERE v.tenant_id = %s ORDER BY v.version DESC LIMIT 1", (tenant_id,)).fetchone()
    return _version(row) if row is not None else None


def history(conn: psycopg.Connection[Any], tenant_id: int, limit: int = HISTORY_MAX) -> list[FaqVersion]:
    """The company's versions, newest first."""
    found = conn.execute(
        f"SELECT {_COLUMNS} FROM tenant_faq_versions v LEFT JOIN agents a ON a.id = v.created_by"  # noqa: S608
        " WHERE v.tenant_id = %s ORDER BY v.version DESC LIMIT %s", (tenant_id, limit)).fetchall()
    return [_version(row) for row in found]


def by_id(conn: psycopg.Connection[Any], tenant_id: int, version_id: int) -> FaqVersion | None:
    """One version of the company by its row id (None when it is not one of this company's)."""
    row = conn.execute(
        f"SELECT {_COLUMNS} FROM tenant_faq_versions v LEFT JOIN agents a ON a.id = v.created_by"  # noqa: S608
        " WHERE v.tenant_id = %s AND v.id = %s", (tenant_id, version_id)).fetchone()
    return _version(row) if row is not None else None


def previous(conn: psycopg.Connection[Any], tenant_id: int, version: int) -> FaqVersion | None:
    """The version just before `version` (what it changed is measured against it)."""
    row = conn.execute(
        f"SELECT {_COLUMNS} FROM tenant_faq_versions v LEFT JOIN agents a ON a.id = v.created_by"  # noqa: S608
        " WHERE v.tenant_id = %s AND v.version < %s ORDER BY v.version DESC LIMIT 1", (tenant_id, version)).fetchone()
    return _version(row) if row is not None else None


def save(conn: psycopg.Connection[Any], redis_conn: redis.Redis | None, tenant_id: int, data: FaqData, *,
         origin: str, created_by: int | None = None, note: str = "") -> int:
    """Write `data` as the company's next version and announce it; returns the new version number.

    The tenant's row is locked while the number is chosen, so two admins saving at once get two versions.
    """
    if origin not in ORIGINS:
        raise ValueError(f"unknown FAQ version origin {origin!r}")
    policies, entries = data.to_json()
    with conn.transaction():
        if conn.execute("SELECT id FROM tenants WHERE id = %s FOR UPDATE", (tenant_id,)).fetchone() is None:
            raise LookupError(f"tenant {tenant_id} does not exist")
        row = conn.execute(
            "INSERT INTO tenant_faq_versions (tenant_id, version, policies, entries, origin, created_by, note)"
            " SELECT %s, coalesce(max(version), 0) + 1, %s, %s, %s, %s, %s FROM tenant_faq_versions"
            " WHERE tenant_id = %s RETURNING version",
            (tenant_id, Jsonb(policies), Jsonb(entries), origin, created_by, note[:300], tenant_id)).fetchone()
    assert row is not None
    tenant_changes.announce(redis_conn)
    return int(row["version"])


def seed_from_file(conn: psycopg.Connection[Any], redis_conn: redis.Redis | None, tenant_id: int, slug: str,
                   directory: Path = FAQ_DIR) -> int | None:
    """Store the company's seed file as its next version when it has none, or when the file changed and the
    current version is the file's; returns the version written (None: no file, or nothing to do).

    Raises FaqDataError for a malformed file.
    """
    path = directory / f"{slug}.yaml"
    if not path.exists():
        return None
    seed = read_file(slug, directory)
    found = current(conn, tenant_id)
    if found is not None and (found.origin != "file" or same_content(found.data, seed)):
        return None
    return save(conn, redis_conn, tenant_id, seed, origin="file", note=f"faq_data/{slug}.yaml")


def seed_tenant(pool: ConnectionPool, redis_conn: redis.Redis | None, tenant_id: int, slug: str,
                directory: Path = FAQ_DIR) -> int | None:
    """`seed_from_file` for one tenant (a new one: `storage.tenant_admin.create_tenant`); a malformed file
    is logged and skipped (the tenant is made all the same)."""
    try:
        with pool.connection() as conn:
            return seed_from_file(conn, redis_conn, tenant_id, slug, directory)
    except FaqDataError as exc:
        log.error("faq seed file unusable, FAQ left as it was: %s", exc)
        return None


def seed_all(pool: ConnectionPool, redis_conn: redis.Redis | None, directory: Path = FAQ_DIR) -> list[str]:
    """`seed_tenant` for every tenant (encargo-migrate); returns the slugs whose FAQ was written."""
    with pool.connection() as conn:
        tenants: list[Any] = conn.execute("SELECT id, slug FROM tenants ORDER BY id").fetchall()
    return [str(t["slug"]) for t in tenants
            if seed_tenant(pool, redis_conn, int(t["id"]), str(t["slug"]), directory) is not None]


def for_tenant(pool: ConnectionPool, tenant_id: int, directory: Path = FAQ_DIR) -> FaqData:
    """What the bot answers with: the company's current version, else its seed file, else an empty FAQ.

    One query. Reads, never writes (the message path stays read-only).
    """
    with pool.connection() as conn:
        return answering(conn, tenant_id, directory)


def answering(conn: psycopg.Connection[Any], tenant_id: int, directory: Path = FAQ_DIR) -> FaqData:
    """`for_tenant` on a connection the caller holds (the console's pages)."""
    row = conn.execute(
        "SELECT t.id AS tenant_id, t.slug, v.version, v.policies, v.entries FROM tenants t"
        " LEFT JOIN LATERAL (SELECT version, policies, entries FROM tenant_faq_versions"
        "  WHERE tenant_id = t.id ORDER BY version DESC LIMIT 1) v ON true WHERE t.id = %s",
        (tenant_id,)).fetchone()
    if row is None:
        raise LookupError(f"tenant {tenant_id} does not exist")
    found: dict[str, Any] = row
    if found["version"] is not None:
        return from_json(f"tenant {tenant_id} FAQ version {found['version']}", found["policies"], found["entries"])
    slug = str(found["slug"])
    nothing = empty(f"tenant {tenant_id} FAQ (none written yet)")
    if not (directory / f"{slug}.yaml").exists():
        return nothing
    try:
        return read_file(slug, directory)
    except FaqDataError as exc:
        log.error("faq seed file unusable: %s", exc)
        return nothing
