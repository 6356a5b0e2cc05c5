-- The backbone: tenants, contacts, conversations, messages, webhook events,
-- escalations, the notification log and analytics events.
-- Every business row carries tenant_id. Phone numbers are stored only encrypted
-- (phone_encrypted, Fernet) and found by a keyed hash (phone_hash, HMAC-SHA256).

CREATE TABLE tenants (
    id                    serial PRIMARY KEY,
    slug                  text NOT NULL UNIQUE,
    name                  text NOT NULL,
    timezone              text NOT NULL DEFAULT 'America/El_Salvador',
    meta_phone_number_id  text UNIQUE,
    twilio_number         text UNIQUE,
    created_at            timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE contacts (
    id               bigserial PRIMARY KEY,
    tenant_id        integer NOT NULL REFERENCES tenants(id),
    phone_hash       text,
    phone_encrypted  text,
    bsuid            text,
    profile_name     text,
    opted_out_at     timestamptz,
    last_inbound_at  timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    CHECK (phone_hash IS NOT NULL OR bsuid IS NOT NULL)
);
CREATE UNIQUE INDEX contacts_tenant_phone ON contacts (tenant_id, phone_hash) WHERE phone_hash IS NOT NULL;
CREATE UNIQUE INDEX contacts_tenant_bsuid ON contacts (tenant_id, bsuid) WHERE bsuid IS NOT NULL;

CREATE TABLE conversations (
    id               bigserial PRIMARY KEY,
    tenant_id        integer NOT NULL REFERENCES tenants(id),
    contact_id       bigint NOT NULL REFERENCES contacts(id),
    -- bot: the assistant answers; escalated: waiting for a human; agent: a human has it; closed
    status           text NOT NULL DEFAULT 'bot' CHECK (status IN ('bot', 'escalated', 'agent', 'closed')),
    started_at       timestamptz NOT NULL DEFAULT now(),
    last_message_at  timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX conversations_one_open ON conversations (tenant_id, contact_id) WHERE status <> 'closed';

-- Raw provider events, stored before the webhook answers 200. The payload is
-- encrypted because it carries phone numbers. (provider, event_id) is the
-- de-duplication key: a wamid / MessageSid for messages, "<id>:<status>" for statuses.
CREATE TABLE webhook_events (
    id                 bigserial PRIMARY KEY,
    tenant_id          integer REFERENCES tenants(id),
    provider           text NOT NULL CHECK (provider IN ('meta', 'twilio', 'local')),
    event_id           text NOT NULL,
    kind               text NOT NULL CHECK (kind IN ('message', 'status')),
    payload_encrypted  text NOT NULL,
    correlation_id     text NOT NULL,
    -- received: stored, not yet on the queue; queued; processed; failed; unroutable (no tenant for the number)
    status             text NOT NULL DEFAULT 'received'
                       CHECK (status IN ('received', 'queued', 'processed', 'failed', 'unroutable')),
    attempts           integer NOT NULL DEFAULT 0,
    error              text,
    received_at        timestamptz NOT NULL DEFAULT now(),
    processed_at       timestamptz,
    UNIQUE (provider, event_id)
);
CREATE INDEX webhook_events_pending ON webhook_events (received_at) WHERE status IN ('received', 'queued');

CREATE TABLE messages (
    id                   bigserial PRIMARY KEY,
    tenant_id            integer NOT NULL REFERENCES tenants(id),
    conversation_id      bigint NOT NULL REFERENCES conversations(id),
    direction            text NOT NULL CHECK (direction IN ('in', 'out')),
    channel              text NOT NULL CHECK (channel IN ('meta', 'twilio', 'local')),
    provider_message_id  text,
    -- outbound: "<webhook event id>:<reply index>" (or another producer's key); a retried job finds its row
    idempotency_key      text UNIQUE,
    webhook_event_id     bigint REFERENCES webhook_events(id),
    kind                 text NOT NULL,
    body                 text,
    payload              jsonb NOT NULL DEFAULT '{}'::jsonb,
    -- inbound: received. outbound: pending -> sending -> accepted -> sent -> delivered -> read, or failed
    status               text NOT NULL,
    status_rank          smallint NOT NULL DEFAULT 0,
    error_code           text,
    error_title          text,
    attempts             integer NOT NULL DEFAULT 0,
    correlation_id       text,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    sent_at              timestamptz,
    delivered_at         timestamptz,
    read_at              timestamptz,
    failed_at            timestamptz,
    UNIQUE (channel, provider_message_id)
);
CREATE INDEX messages_conversation ON messages (conversation_id, id);
CREATE INDEX messages_event ON messages (webhook_event_id);

CREATE TABLE escalations (
    id               bigserial PRIMARY KEY,
    tenant_id        integer NOT NULL REFERENCES tenants(id),
    conversation_id  bigint NOT NULL REFERENCES conversations(id),
    case_number      text NOT NULL UNIQUE,
    priority         text NOT NULL CHECK (priority IN ('high', 'normal')),
    reason           text NOT NULL,
    status           text NOT NULL DEFAULT 'waiting'
                     CHECK (status IN ('waiting', 'taken', 'callback', 'resolved', 'returned')),
    created_at       timestamptz NOT NULL DEFAULT now(),
    resolved_at      timestamptz
);

CREATE TABLE notification_log (
    id                  bigserial PRIMARY KEY,
    tenant_id           integer NOT NULL REFERENCES tenants(id),
    core_event_id       text NOT NULL,
    tracking_code       text NOT NULL,
    contact_id          bigint REFERENCES contacts(id),
    message_id          bigint REFERENCES messages(id),
    kind                text NOT NULL,
    template_name       text,
    status              text NOT NULL DEFAULT 'pending',
    error               text,
    created_at          timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, core_event_id, contact_id)
);

-- Analytics: one row per thing worth counting (a routing decision, an escalation, a rating...).
CREATE TABLE events (
    id               bigserial PRIMARY KEY,
    tenant_id        integer NOT NULL REFERENCES tenants(id),
    conversation_id  bigint REFERENCES conversations(id),
    kind             text NOT NULL,
    data             jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX events_tenant_kind ON events (tenant_id, kind, created_at);
