"""Choose the WhatsApp transports a process uses.

`build_transport(settings)` is the deployment's own, from
`Settings.whatsapp_provider`: `meta` sends through Meta's Cloud API, `twilio`
through Twilio, `local` (the default without credentials) only shows messages
in the simulator. The settings were validated at start-up, so the chosen
provider has what it needs.

`channel_transport(settings, account)` is the transport of one company's
number (`channels.accounts.ChannelAccount`). A `local` deployment never lets a
message leave the machine, whatever credentials its channels hold: every
channel then gets a `LocalTransport` for its number. A channel whose provider
the deployment holds no credentials for, and which has none of its own, gets
an `UnconfiguredTransport`: each send fails permanently (`no_credentials`).
"""

from __future__ import annotations

import logging

import redis

from channels.accounts import ChannelAccount
from channels.errors import AUTH, PermanentSendError
from channels.local_transport import LocalTransport
from channels.meta_cloud import MetaCloudTransport
from channels.outbound import OutboundMessage, Recipient, SendResult, Transport
from channels.twilio_api import TwilioTransport
from config import ConfigError, Settings

log = logging.getLogger(__name__)


def build_transport(settings: Settings, redis_conn: redis.Redis) -> Transport:
    """The transport for `settings.whatsapp_provider`; ConfigError for an unknown provider."""
    provider = settings.whatsapp_provider
    if provider == "meta":
        return MetaCloudTransport(settings)
    if provider == "twilio":
        return TwilioTransport(settings)
    if provider == "local":
        return LocalTransport.from_settings(settings, redis_conn, deployment_account(settings).number)
    raise ConfigError(f"WHATSAPP_PROVIDER={provider!r} is not one of meta, twilio, local")


def deployment_account(settings: Settings) -> ChannelAccount:
    """The number the deployment's own transport sends from, as an account (its secret from the settings)."""
    if settings.whatsapp_provider == "twilio":
        return ChannelAccount("twilio", settings.twilio_whatsapp_number.removeprefix("whatsapp:").strip(),
                              settings.twilio_auth_token or None, settings.twilio_account_sid or None)
    if settings.whatsapp_provider == "meta":
        return ChannelAccount("meta", settings.meta_phone_number_id, settings.meta_access_token or None)
    return ChannelAccount("local", settings.meta_phone_number_id or "local")


def channel_transport(settings: Settings, redis_conn: redis.Redis, account: ChannelAccount) -> Transport:
    """The transport that sends from `account`'s number (see the module docstring)."""
    if settings.whatsapp_provider == "local" or account.provider == "local":
        return LocalTransport.from_settings(settings, redis_conn, account.number)
    if account.provider == "meta":
        if account.secret or settings.meta_access_token:
            return MetaCloudTransport(settings, account)
    elif account.provider == "twilio":
        if account.secret or (settings.twilio_account_sid and settings.twilio_auth_token):
            return TwilioTransport(settings, account=account)
    return UnconfiguredTransport(account.provider, account.number)


class UnconfiguredTransport:
    """A channel nobody gave credentials to: every send fails with PermanentSendError `no_credentials`."""

    def __init__(self, provider: str, number: str) -> None:
        self.channel = provider
        self.number = number

    def send(self, to: Recipient, message: OutboundMessage, *, reference: str) -> list[SendResult]:
        """Raises PermanentSendError (category auth): the operator must give the channel its token."""
        log.warning("no credentials for the %s channel %s: reference=%s not sent", self.channel, self.number,
                    reference)
        raise PermanentSendError("no_credentials", f"the {self.channel} channel {self.number} has no credentials",
                                 provider=self.channel, category=AUTH)

    def mark_read(self, message_id: str) -> None:
        """Nothing can be sent without credentials; logged only."""
        log.debug("no credentials to mark %s read", message_id)
