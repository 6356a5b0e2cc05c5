-- Issue 15: tenants are data. A tenant row holds what used to come from the environment per company,
-- and its receiving numbers move to `tenant_channels` (zero or more per tenant).

-- active: served; suspended: its inbound events are acknowledged and stored `unroutable`
-- ("tenant suspended"), its core events refused (403), nothing is answered or sent.
ALTER TABLE tenants
    ADD COLUMN status                  text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended')),
    -- the bot's display name and greeting; NULL: the texts' defaults apply
    ADD COLUMN bot_name                text,
    ADD COLUMN greeting                text,
    -- the tenant's logistics core: base URL and API key (Fernet, like every secret here)
    ADD COLUMN core_api_url            text,
    ADD COLUMN core_api_key_encrypted  text,
    ADD COLUMN updated_at              timestamptz NOT NULL DEFAULT now();

-- A WhatsApp number a tenant receives on. `number` is Meta's phone_number_id or the Twilio sender in
-- E.164 ("+15558675310"); an inbound event is routed by (provider, number). `secret_encrypted` is the
-- channel's credential (Meta access token, Twilio auth token), Fernet-encrypted.
CREATE TABLE tenant_channels (
    id                     serial PRIMARY KEY,
    tenant_id              integer NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    provider               text NOT NULL CHECK (provider IN ('meta', 'twilio', 'local')),
    number                 text NOT NULL CHECK (number <> ''),
    waba_id                text,
    account_sid            text,
    messaging_service_sid  text,
    secret_encrypted       text,
    created_at             timestamptz NOT NULL DEFAULT now(),
    -- when the provider's webhook verification (or a test message) proved the channel works
    verified_at            timestamptz,
    UNIQUE (provider, number)
);
CREATE INDEX tenant_channels_tenant ON tenant_channels (tenant_id);

INSERT INTO tenant_channels (tenant_id, provider, number)
SELECT id, 'meta', meta_phone_number_id FROM tenants WHERE meta_phone_number_id IS NOT NULL AND meta_phone_number_id <> '';
INSERT INTO tenant_channels (tenant_id, provider, number)
SELECT id, 'twilio', twilio_number FROM tenants WHERE twilio_number IS NOT NULL AND twilio_number <> '';

ALTER TABLE tenants DROP COLUMN meta_phone_number_id, DROP COLUMN twilio_number;
