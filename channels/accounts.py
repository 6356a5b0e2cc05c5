"""A WhatsApp number a company sends from, with the credentials its provider wants for it.

A tenant's channels (`tenant_channels`) become `ChannelAccount`s
(`storage.channel_accounts`), and `channels.transport.channel_transport` turns
one into the transport that sends from that number. The secret is the
channel's own Meta access token or Twilio auth token; a channel without one
sends with the deployment's credentials (Meta: the provider's token, from the
channel's phone number id; Twilio: the deployment's account, acting on the
channel's subaccount when it names one). Meta's app secret is never per
channel: one Meta app serves every business.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class ChannelAccount:
    """One sending number. Equal accounts share one transport (and its kept-alive connections)."""

    provider: str  # meta | twilio | local
    number: str  # Meta phone_number_id, or the Twilio sender in E.164 ("+15558675310")
    secret: str | None = field(default=None, repr=False)  # access / auth token; None: the deployment's
    account_sid: str | None = None  # Twilio: the (sub)account the messages belong to
    messaging_service_sid: str | None = None  # Twilio: send through this Messaging Service instead of `From`
