"""Key rotation: re-encrypt every encrypted column with the first key of PHONE_ENCRYPTION_KEY.

The Vault decrypts with every configured key and encrypts with the first, so a
new key is put first, `encargo-admin rotate-secrets` re-encrypts what the old
keys sealed, and then the old keys can be removed from PHONE_ENCRYPTION_KEY.

Rows are read and rewritten in batches by id, each batch in its own short
transaction; a row changed meanwhile (its token differs from the one read) is
left alone, since whoever changed it sealed it with the first key already.
Running it again is harmless. What Redis holds sealed for a moment (an event
kept there while PostgreSQL was down) is not rewritten: keep the old key
until the queues are drained.

Failure policy: a value no configured key can decrypt raises DecryptionError
(after the batches already done are committed); database errors raise.
"""

from __future__ import annotations

import logging

from psycopg_pool import ConnectionPool

from storage.crypto import Vault

log = logging.getLogger(__name__)

# (table, encrypted column): every column the project stores Fernet tokens in.
ENCRYPTED_COLUMNS = (
    ("tenants", "events_secret_encrypted"),
    ("tenants", "core_api_key_encrypted"),
    ("tenants", "llm_api_key_encrypted"),
    ("tenant_channels", "secret_encrypted"),
    ("contacts", "phone_encrypted"),
    ("webhook_events", "payload_encrypted"),
    ("notification_log", "values_encrypted"),
)
BATCH = 500


def rotate_all(pool: ConnectionPool, vault: Vault, *, batch: int = BATCH) -> dict[str, int]:
    """Re-encrypt every stored token with the first key; returns how many were rewritten per "table.column"."""
    return {f"{table}.{column}": rotate_column(pool, vault, table, column, batch=batch)
            for table, column in ENCRYPTED_COLUMNS}


def rotate_column(pool: ConnectionPool, vault: Vault, table: str, column: str, *, batch: int = BATCH) -> int:
    if (table, column) not in ENCRYPTED_COLUMNS:
        raise ValueError(f"{table}.{column} is not an encrypted column")
    select = (f"SELECT id, {column} AS token FROM {table}"  # noqa: S608 - names from ENCRYPTED_COLUMNS only
              f" WHERE id > %s AND {column} IS NOT NULL ORDER BY id LIMIT %s")
    update = f"UPDATE {table} SET {column} = %s WHERE id = %s AND {column} = %s"  # noqa: S608 - same
    last_id = 0
    rewritten = 0
    while True:
        with pool.connection() as conn, conn.transaction():
            rows = conn.execute(select, (last_id, batch)).fetchall()
            if not rows:
                break
            changes = [(vault.rotate(row["token"]), row["id"], row["token"]) for row in rows]  # type: ignore[call-overload]
            with conn.cursor() as cur:
                cur.executemany(update, changes)
            rewritten += len(changes)
            last_id = rows[-1]["id"]  # type: ignore[call-overload]
    log.info("re-encrypted %s.%s", table, column, extra={"rows": rewritten})
    return rewritten
