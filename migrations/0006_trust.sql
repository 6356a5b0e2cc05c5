-- Issue 12: hostile input loses nothing, and each tenant signs its own core events.

-- A part of a webhook delivery that cannot be processed (a lone UTF-16 surrogate, a NUL in its id,
-- an id or sender of the wrong JSON type) is kept as `quarantined`, with the reason in `error` and
-- the part itself sealed in `payload_encrypted` (JSON with every non-ASCII character escaped).
-- It is never queued; the rest of the delivery is stored and processed as usual.
ALTER TABLE webhook_events DROP CONSTRAINT webhook_events_status_check;
ALTER TABLE webhook_events ADD CONSTRAINT webhook_events_status_check
    CHECK (status IN ('received', 'queued', 'processed', 'failed', 'unroutable', 'quarantined'));

-- The secret that signs this tenant's events to /internal/events (HMAC key), encrypted with the
-- phone encryption key (Fernet). The configured tenant gets INTERNAL_EVENTS_SECRET; NULL refuses them all.
ALTER TABLE tenants ADD COLUMN events_secret_encrypted text;
