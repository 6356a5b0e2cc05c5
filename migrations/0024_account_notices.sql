-- Issue 17: what Meta says about a company's WhatsApp account, besides messages (storage/account_notices.py).
-- Meta posts these to the same webhook as messages, under other `field`s: message_template_status_update
-- (a template approved, paused, disabled, rejected...), message_template_quality_update, phone_number_quality_update
-- (a number flagged, a messaging-limit change), business_capability_update (the portfolio's messaging limit) and
-- account_update (restrictions, violations...). They are stored and queued like messages (webhook_events, kind
-- 'notice'), then a worker resolves the company by the WhatsApp Business Account id (tenant_channels.waba_id).

ALTER TABLE webhook_events DROP CONSTRAINT IF EXISTS webhook_events_kind_check;
ALTER TABLE webhook_events ADD CONSTRAINT webhook_events_kind_check CHECK (kind IN ('message', 'status', 'notice'));

-- One row per notice and company (tenant_id NULL: no company has that account; the event itself is kept
-- `unroutable` in webhook_events, like a message to an unknown number). `field` is ours, provider-neutral:
-- template_status | template_quality | number_quality | capability | account. `event` is Meta's word as sent
-- (PAUSED, FLAGGED, THROUGHPUT_UPGRADE...), `tier` the messaging limit as sent (TIER_2K...), `quality` a rating
-- (GREEN, YELLOW, RED, UNKNOWN) when the notice carries one. `occurred_at` is Meta's entry.time.
CREATE TABLE IF NOT EXISTS account_notices (
    id                 bigserial PRIMARY KEY,
    tenant_id          integer REFERENCES tenants(id) ON DELETE CASCADE,
    webhook_event_id   bigint REFERENCES webhook_events(id) ON DELETE SET NULL,
    provider           text NOT NULL DEFAULT 'meta',
    field              text NOT NULL
                       CHECK (field IN ('template_status', 'template_quality', 'number_quality', 'capability',
                                        'account')),
    waba_id            text,
    phone              text,
    template_name      text,
    template_language  text,
    event              text NOT NULL DEFAULT '',
    tier               text,
    quality            text,
    reason             text,
    occurred_at        timestamptz NOT NULL,
    received_at        timestamptz NOT NULL DEFAULT now(),
    UNIQUE (webhook_event_id, tenant_id)
);
CREATE INDEX IF NOT EXISTS account_notices_tenant_time ON account_notices (tenant_id, occurred_at DESC);

-- Each template's state at Meta as the notices told it, per company (name + language as approved; the language
-- with an underscore, as our templates write it: 'es', 'es_MX'). `usable` false: PAUSED, DISABLED, REJECTED...
-- until an APPROVED / REINSTATED / UNPAUSE notice; notifications.template_states reads it before a template is
-- sent. `since`: Meta's time of the notice that set the state (an older notice arriving late changes nothing).
CREATE TABLE IF NOT EXISTS template_states (
    tenant_id  integer NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    name       text NOT NULL,
    language   text NOT NULL,
    status     text NOT NULL,
    usable     boolean NOT NULL,
    reason     text,
    since      timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, name, language)
);
CREATE INDEX IF NOT EXISTS template_states_unusable ON template_states (tenant_id) WHERE NOT usable;
