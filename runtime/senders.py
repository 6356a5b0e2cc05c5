"""Which number and credentials a message to a customer leaves with: the conversation's tenant's channel.

A reply, an agent's message or a notification goes out from the number the
customer last wrote to (kept with each customer message), with that
channel's own credentials (`channels.transport.channel_transport`); when the
number is not known (a notification to someone who never wrote, an older
message) it is the tenant's first channel of that provider (of the
deployment's provider when the customer never wrote), else its first channel.
A tenant without channels sends with the deployment's transport.

`Senders` keeps, per process, each tenant's channels (read once, secrets
decrypted once) and one transport per distinct channel account (Meta's
keep-alive connections live in it), so a message costs no database round trip
for its credentials. The channels are kept in a `storage.tenant_changes.TenantCache`
(dropped within about a second of a change); a transport whose account is unchanged is kept across a change, one
no longer used is closed at a later change, RETIRE_AFTER_S after it was last
handed out (a send in flight on it is never cut).

Failure policy: database and decryption errors raise (the job is retried).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

import redis
from psycopg_pool import ConnectionPool

from channels.accounts import ChannelAccount
from channels.outbound import Transport
from channels.transport import channel_transport, deployment_account
from config import Settings
from storage.channel_accounts import sending_accounts
from storage.crypto import Vault
from storage.tenant_changes import TenantCache
from storage.tenants import channel_key

log = logging.getLogger(__name__)

RETIRE_AFTER_S = 120.0  # a transport unused since a change is closed at a later change, this long after


@dataclass(frozen=True)
class Sender:
    """A transport and the business number it sends from."""

    transport: Transport
    provider: str  # the channel's provider as its inbound events name it: meta | twilio (local: meta)
    number: str  # Meta phone_number_id or Twilio sender: the send throttle's buckets are per number

    @property
    def channel(self) -> str:
        """What `messages.channel` records: the transport that sent (meta, twilio, local)."""
        return self.transport.channel


class Senders:
    """Each tenant's senders, cached for the life of the process. Thread-safe."""

    def __init__(self, settings: Settings, pool: ConnectionPool, redis_conn: redis.Redis, vault: Vault,
                 deployment: Transport) -> None:
        self._settings = settings
        self._redis = redis_conn
        account = deployment_account(settings)
        self._deployment = Sender(deployment, _inbound_provider(account.provider), account.number)
        self._deployment_account = account
        self._lock = threading.Lock()
        self._accounts: TenantCache[int, list[ChannelAccount]] = TenantCache(
            redis_conn, lambda tenant_id: sending_accounts(pool, vault, tenant_id), on_change=self._forget)
        self._transports: dict[ChannelAccount, Transport] = {}
        self._retired: dict[ChannelAccount, tuple[float, Transport]] = {}  # account -> (retired at, transport)

    @property
    def deployment(self) -> Sender:
        """The deployment's own sender (its settings' number and credentials)."""
        return self._deployment

    def sender(self, tenant_id: int, provider: str | None = None, number: str | None = None) -> Sender:
        """The sender for a customer of `tenant_id` who last wrote to `number` through `provider` (None: the
        customer never wrote; the tenant's first channel of the deployment's provider is used)."""
        account = pick(self._accounts.get(tenant_id), provider or self._deployment.provider, number)
        if account is None:
            return self._deployment
        return Sender(self._transport(account), _inbound_provider(account.provider), account.number)

    def close(self) -> None:
        """Close every transport this process built (the deployment's is the Runtime's)."""
        with self._lock:
            transports = [*self._transports.values(), *(t for _, t in self._retired.values())]
            self._transports.clear()
            self._retired.clear()
        for transport in transports:
            _close(transport)

    def _forget(self) -> None:
        """Tenants changed: keep the transports for a while (see the module docstring)."""
        now = time.monotonic()
        closing: list[Transport] = []
        with self._lock:
            for account, (since, transport) in list(self._retired.items()):
                if now - since >= RETIRE_AFTER_S:
                    closing.append(transport)
                    del self._retired[account]
            for account, transport in self._transports.items():
                self._retired[account] = (now, transport)
            self._transports.clear()
        for transport in closing:
            _close(transport)

    def _transport(self, account: ChannelAccount) -> Transport:
        with self._lock:
            found = self._transports.get(account)
            if found is None:
                retired = self._retired.pop(account, None)
                if retired is not None:
                    found = retired[1]
                elif self._is_deployments(account):
                    found = self._deployment.transport  # the single-company case: the very same transport
                else:
                    found = channel_transport(self._settings, self._redis, account)
                    log.info("sender built", extra={"provider": account.provider, "number": account.number,
                                                    "own_credentials": bool(account.secret)})
                self._transports[account] = found
            return found

    def _is_deployments(self, account: ChannelAccount) -> bool:
        """Whether `account` sends exactly as the deployment's own transport does (same number, same credentials)."""
        own = self._deployment_account
        if own.provider == "local" or not own.secret:
            return False
        return (account.provider, account.number, account.messaging_service_sid) == (own.provider, own.number, None) \
            and account.secret in (None, own.secret) and account.account_sid in (None, own.account_sid)


def pick(accounts: list[ChannelAccount], provider: str | None, number: str | None) -> ChannelAccount | None:
    """The channel the customer wrote to, else the first of that provider, else the first; None without any."""
    if not accounts:
        return None
    if provider and number:
        key = channel_key(provider, number)
        for account in accounts:
            if account.provider == provider and account.number == key:
                return account
    for account in accounts:
        if account.provider == provider:
            return account
    return accounts[0]


def _inbound_provider(provider: str) -> str:
    return "twilio" if provider == "twilio" else "meta"


def _close(transport: Transport) -> None:
    close = getattr(transport, "close", None)
    if callable(close):
        close()
