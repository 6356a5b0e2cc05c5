"""Which auth token a Twilio webhook must be signed with: that of the account owning our number in it.

Twilio signs each webhook (`X-Twilio-Signature`) with the auth token of the
account the number belongs to, and a company is usually its own subaccount
with its own token. The number is ours: `To` of an incoming message, `From`
of a status callback. The token to check with is:
- the channel's own auth token (`tenant_channels.secret_encrypted`) when the
  number is a channel that has one: only that token, so a webhook for one
  company's number signed with another company's token is refused;
- the deployment's TWILIO_AUTH_TOKEN for a channel without its own token (it
  sends with the deployment's credentials too), and for a number that is no
  channel: such a webhook is acknowledged and its message stored unroutable,
  as before. A number nobody knows, signed with no token that verifies, is
  refused like any wrong signature, so naming an unknown number gets nothing
  stored.

The numbers and tokens are read in one query and kept in a
`storage.tenant_changes.TenantCache`: a new channel or token counts within
about a second, and a webhook costs no database round trip while nothing
changed (an unknown number costs none either). When PostgreSQL cannot be read
and nothing is cached, only the deployment's token can be used (`None` from
`tokens_for` says so).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import psycopg
import psycopg_pool
import redis
from psycopg_pool import ConnectionPool

from config import Settings
from storage.channel_accounts import twilio_auth_tokens
from storage.crypto import Vault
from storage.tenant_changes import TenantCache
from storage.tenants import bare_number

log = logging.getLogger(__name__)

_ALL = "twilio"  # the cache's one key: every Twilio number at once


class TwilioSigners:
    """The auth tokens Twilio signs with, per number of ours. Thread-safe."""

    def __init__(self, settings: Settings, pool: ConnectionPool, redis_conn: redis.Redis, vault: Vault) -> None:
        self._deployment = settings.twilio_auth_token
        self._pool = pool
        self._vault = vault
        self._numbers: TenantCache[str, dict[str, str | None]] = TenantCache(redis_conn, self._read)

    def tokens_for(self, form: Mapping[str, str]) -> list[str] | None:
        """The token(s) the webhook `form` may be signed with (empty: none can verify it); None when the
        channels cannot be read now (PostgreSQL down and nothing cached): the caller tries the deployment's."""
        number = bare_number(form.get("From" if _is_status(form) else "To") or "")
        try:
            channels = self._numbers.get(_ALL)
        except (psycopg.Error, psycopg_pool.PoolTimeout) as exc:
            log.warning("twilio channels unreadable (%s)", type(exc).__name__)
            return None
        own = channels.get(number)
        if own:
            return [own]
        return [self._deployment] if self._deployment else []

    @property
    def deployment_token(self) -> str:
        return self._deployment

    def _read(self, _key: str) -> dict[str, str | None]:
        return twilio_auth_tokens(self._pool, self._vault)


def _is_status(form: Mapping[str, str]) -> bool:
    """A status callback (our message's fate: our number is `From`), not an incoming message (ours is `To`)."""
    status = (form.get("MessageStatus") or "").lower()
    return bool(status) and status != "received"
