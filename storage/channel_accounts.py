"""A tenant's sending numbers with their credentials in clear, for the code that calls the providers.

Read once per tenant and cached by `runtime.senders.Senders` (no database round
trip per message); listings for people (`storage.tenant_admin.list_tenants`)
never carry a secret.

Failure policy: database and decryption errors raise (the job is retried).
"""

from __future__ import annotations

from psycopg_pool import ConnectionPool

from channels.accounts import ChannelAccount
from storage.crypto import Vault


def sending_accounts(pool: ConnectionPool, vault: Vault, tenant_id: int) -> list[ChannelAccount]:
    """The tenant's channels, oldest first (the first of a provider is the one used when nothing says which)."""
    with pool.connection() as conn:
        rows = conn.execute(
            "SELECT provider, number, secret_encrypted, account_sid, messaging_service_sid FROM tenant_channels"
            " WHERE tenant_id = %s ORDER BY id",
            (tenant_id,),
        ).fetchall()
    return [ChannelAccount(provider=row["provider"], number=row["number"],  # type: ignore[call-overload]
                           secret=vault.decrypt(row["secret_encrypted"]) if row["secret_encrypted"] else None,  # type: ignore[call-overload]
                           account_sid=row["account_sid"],  # type: ignore[call-overload]
                           messaging_service_sid=row["messaging_service_sid"])  # type: ignore[call-overload]
            for row in rows]


def twilio_auth_tokens(pool: ConnectionPool, vault: Vault) -> dict[str, str | None]:
    """Every Twilio receiving number (bare E.164) with its channel's own auth token in clear; None for a channel
    that uses the deployment's. For checking the signatures of Twilio's webhooks (web/twilio_signers.py)."""
    with pool.connection() as conn:
        rows = conn.execute("SELECT number, secret_encrypted FROM tenant_channels WHERE provider = 'twilio'").fetchall()
    return {row["number"]: vault.decrypt(row["secret_encrypted"]) if row["secret_encrypted"] else None  # type: ignore[call-overload]
            for row in rows}
