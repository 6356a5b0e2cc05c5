-- Issue 17: the files customers send (and agents send): one row per file of a message.
-- The file itself lives in the media store (storage/media_files.py: a local directory with Fernet-encrypted
-- files, or an S3 bucket with server-side encryption), under a key scoped by tenant. `provider_ref` is the
-- Meta media id or the Twilio MediaUrl: it is used by the download job only and never sent to a browser.
-- status: pending (to download) -> stored | failed (out of attempts) | gone (the provider no longer has it)
--         | rejected (too large for its type, or the content is not what its MIME type says).
CREATE TABLE IF NOT EXISTS media (
    id                     bigserial PRIMARY KEY,
    tenant_id              integer NOT NULL REFERENCES tenants(id),
    conversation_id        bigint NOT NULL REFERENCES conversations(id),
    message_id             bigint NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
    direction              text NOT NULL CHECK (direction IN ('in', 'out')),
    position               smallint NOT NULL DEFAULT 0,  -- 0.. for the several files of one message (Twilio)
    media_type             text NOT NULL CHECK (media_type IN ('image', 'audio', 'video', 'document', 'sticker')),
    voice                  boolean NOT NULL DEFAULT false,  -- an audio recorded as a voice note
    provider               text NOT NULL CHECK (provider IN ('meta', 'twilio', 'local')),
    provider_ref           text,
    declared_mime          text,  -- what the provider said
    mime                   text,  -- what the content is (checked against its first bytes)
    size_bytes             bigint,
    sha256                 text,
    filename               text,
    storage_key            text,
    status                 text NOT NULL DEFAULT 'pending'
                           CHECK (status IN ('pending', 'stored', 'failed', 'gone', 'rejected')),
    attempts               integer NOT NULL DEFAULT 0,
    last_error             text,  -- a short machine reason: provider_5xx, expired, too_large, mime_mismatch, ...
    next_attempt_at        timestamptz,
    stored_at              timestamptz,
    created_at             timestamptz NOT NULL DEFAULT now(),
    transcript             text,
    transcript_confidence  real,
    transcript_status      text NOT NULL DEFAULT 'none'
                           CHECK (transcript_status IN ('none', 'pending', 'done', 'failed', 'unavailable')),
    ocr_code               text,
    UNIQUE (message_id, position)
);
CREATE INDEX IF NOT EXISTS media_conversation ON media (conversation_id, id);
-- The scheduler's recovery loop: downloads whose job was lost (a worker crashed) are queued again.
CREATE INDEX IF NOT EXISTS media_pending ON media (next_attempt_at) WHERE status = 'pending';
