"""Choose the WhatsApp transport a process uses, from `Settings.whatsapp_provider`.

`meta` sends through Meta's Cloud API, `twilio` through Twilio, `local` (the
default without credentials) only shows messages in the simulator. The
settings were validated at start-up, so the chosen provider has what it needs.
"""

from __future__ import annotations

import redis

from channels.local_transport import LocalTransport
from channels.meta_cloud import MetaCloudTransport
from channels.outbound import Transport
from channels.twilio_api import TwilioTransport
from config import ConfigError, Settings


def build_transport(settings: Settings, redis_conn: redis.Redis) -> Transport:
    """The transport for `settings.whatsapp_provider`; ConfigError for an unknown provider."""
    provider = settings.whatsapp_provider
    if provider == "meta":
        return MetaCloudTransport(settings)
    if provider == "twilio":
        return TwilioTransport(settings)
    if provider == "local":
        return LocalTransport(redis_conn)
    raise ConfigError(f"WHATSAPP_PROVIDER={provider!r} is not one of meta, twilio, local")
