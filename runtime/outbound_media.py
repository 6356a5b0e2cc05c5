"""An agent's file, made ready for the provider right before it is sent.

The stored message (`channels.outbound.Media`) names no provider: its file is on the message's `media`
row (direction 'out', already in the media store). Right before the transport is called:

- a transport that uploads (`MediaUploader`: Meta's Cloud API) gets the bytes from the media store and
  returns its id of the file, which the message then carries;
- Twilio gets a public signed link of ours (runtime.media_links, `out` links), which it fetches;
- the local transport (the simulator) needs nothing.

Failure policy: raises `SendError`s, so the delivery path treats them like a refused send: a failed upload
or an unreadable store is transient (retried later; nothing reached the customer), a missing file or no
public address for Twilio is permanent.
"""

from __future__ import annotations

import dataclasses
import logging
import time

from channels.errors import BAD_REQUEST, UNAVAILABLE, PermanentSendError, TransientSendError
from channels.outbound import Media, MediaUploader, OutboundMessage, Transport
from runtime import media_links
from runtime.resources import Runtime
from storage import media
from storage.messages import OutboundRow

log = logging.getLogger(__name__)


def ready(runtime: Runtime, transport: Transport, row: OutboundRow) -> OutboundMessage:
    """`row.message` as the transport needs it (unchanged unless it is a Media message)."""
    message = row.message
    if not isinstance(message, Media) or message.provider_media_id or message.link:
        return message
    with runtime.pool.connection() as conn:
        files = [f for f in media.for_message(conn, row.tenant_id, row.id)
                 if f.direction == "out" and f.status == media.STORED and f.storage_key]
    if not files:
        raise PermanentSendError("media_missing", "the file of this message is not in the media store",
                                 provider=transport.channel, category=BAD_REQUEST)
    file = files[0]
    assert file.storage_key is not None
    if isinstance(transport, MediaUploader):
        try:
            data = runtime.media_store.get(row.tenant_id, file.storage_key)
        except Exception as exc:  # noqa: BLE001 - any store failure (disk, S3) is a retry, never a lost send
            log.warning("media store unreadable for an agent's file: media=%s error=%s", file.id, type(exc).__name__)
            raise TransientSendError("media_store", "the media store could not be read", provider=transport.channel,
                                     category=UNAVAILABLE) from None
        provider_id = transport.upload_media(data, file.mime or message.mime, file.filename)
        return dataclasses.replace(message, provider_media_id=provider_id)
    if transport.channel == "twilio":
        if not runtime.settings.public_base_url:
            raise PermanentSendError("no_public_base_url", "Twilio needs PUBLIC_BASE_URL to fetch the file",
                                     provider="twilio", category=BAD_REQUEST)
        link = media_links.public_url(runtime.settings, file.id, row.tenant_id, file.filename, time.time())
        return dataclasses.replace(message, link=link)
    return message
