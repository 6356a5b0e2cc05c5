"""Customers: one row per person per tenant, found by phone (keyed hash) or by BSUID.

The phone is stored only encrypted; `phone_hash` finds it. A customer who
hides the phone behind a WhatsApp username is known by the business-scoped
user id (BSUID) alone. When both identifiers show up, they are linked.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from psycopg import Connection

from storage.crypto import Vault


@dataclass(frozen=True)
class Contact:
    id: int
    tenant_id: int
    phone: str | None
    bsuid: str | None
    profile_name: str | None
    opted_out: bool
    is_new: bool


def upsert_inbound(
    conn: Connection[Any], vault: Vault, *, tenant_id: int, phone: str | None, bsuid: str | None,
    profile_name: str | None,
) -> Contact:
    """Find or create the customer who wrote, record the time of their message (it opens the 24 h window)."""
    if not phone and not bsuid:
        raise ValueError("a contact needs a phone or a BSUID")
    phone_hash = vault.lookup_hash(phone) if phone else None
    row = _find(conn, tenant_id, phone_hash, bsuid)
    is_new = row is None
    if row is None:
        row = conn.execute(
            """
            INSERT INTO contacts (tenant_id, phone_hash, phone_encrypted, bsuid, profile_name, last_inbound_at)
            VALUES (%s, %s, %s, %s, %s, now())
            ON CONFLICT DO NOTHING
            RETURNING id, phone_encrypted, bsuid, profile_name, opted_out_at
            """,
            (tenant_id, phone_hash, vault.encrypt(phone) if phone else None, bsuid, profile_name),
        ).fetchone()
        if row is None:  # created concurrently by another worker a moment ago
            row = _find(conn, tenant_id, phone_hash, bsuid)
            is_new = False
            assert row is not None
    else:
        row = conn.execute(
            """
            UPDATE contacts SET
                last_inbound_at = now(),
                profile_name = COALESCE(%s, profile_name),
                bsuid = COALESCE(bsuid, %s),
                phone_hash = COALESCE(phone_hash, %s),
                phone_encrypted = COALESCE(phone_encrypted, %s)
            WHERE id = %s
            RETURNING id, phone_encrypted, bsuid, profile_name, opted_out_at
            """,
            # Encrypted only when the row has no phone yet: COALESCE keeps a stored one (Fernet costs ~0.1 ms).
            (profile_name, bsuid, phone_hash, vault.encrypt(phone) if phone and not row["phone_encrypted"] else None,
             row["id"]),
        ).fetchone()
        assert row is not None
    return Contact(
        id=row["id"],
        tenant_id=tenant_id,
        phone=vault.decrypt(row["phone_encrypted"]) if row["phone_encrypted"] else None,
        bsuid=row["bsuid"],
        profile_name=row["profile_name"],
        opted_out=row["opted_out_at"] is not None,
        is_new=is_new,
    )


def recipient_of(conn: Connection[Any], vault: Vault, contact_id: int) -> tuple[str | None, str | None]:
    """(phone, bsuid) to send to."""
    row = conn.execute("SELECT phone_encrypted, bsuid FROM contacts WHERE id = %s", (contact_id,)).fetchone()
    if row is None:
        raise LookupError(f"contact {contact_id} does not exist")
    phone = vault.decrypt(row["phone_encrypted"]) if row["phone_encrypted"] else None
    return phone, row["bsuid"]


def _find(conn: Connection[Any], tenant_id: int, phone_hash: str | None, bsuid: str | None) -> Any:
    if phone_hash:
        row = conn.execute(
            "SELECT id, phone_encrypted, bsuid, profile_name, opted_out_at FROM contacts"
            " WHERE tenant_id = %s AND phone_hash = %s",
            (tenant_id, phone_hash),
        ).fetchone()
        if row is not None:
            return row
    if bsuid:
        return conn.execute(
            "SELECT id, phone_encrypted, bsuid, profile_name, opted_out_at FROM contacts"
            " WHERE tenant_id = %s AND bsuid = %s",
            (tenant_id, bsuid),
        ).fetchone()
    return None


def set_opted_out(conn: Connection[Any], contact_id: int, opted_out: bool) -> None:
    """Opt the customer out of proactive messages ("STOP", "BAJA"), or back in ("ALTA"); keeps the first time."""
    conn.execute(
        "UPDATE contacts SET opted_out_at = CASE WHEN %s THEN COALESCE(opted_out_at, now()) ELSE NULL END"
        " WHERE id = %s",
        (opted_out, contact_id),
    )


def is_opted_out(conn: Connection[Any], contact_id: int) -> bool:
    row = conn.execute("SELECT opted_out_at FROM contacts WHERE id = %s", (contact_id,)).fetchone()
    return row is not None and row["opted_out_at"] is not None


SERVICE_WINDOW = timedelta(hours=24)


def service_window_closes_at(conn: Connection[Any], contact_id: int) -> datetime | None:
    """When WhatsApp's 24-hour customer service window closes (None: the customer never wrote).

    Inside the window any message may be sent; outside it only an approved template.
    """
    row = conn.execute("SELECT last_inbound_at FROM contacts WHERE id = %s", (contact_id,)).fetchone()
    if row is None or row["last_inbound_at"] is None:
        return None
    closes: datetime = row["last_inbound_at"] + SERVICE_WINDOW
    return closes


def service_window_open(conn: Connection[Any], contact_id: int, now: datetime | None = None) -> bool:
    closes = service_window_closes_at(conn, contact_id)
    return closes is not None and (now or datetime.now(UTC)) < closes
