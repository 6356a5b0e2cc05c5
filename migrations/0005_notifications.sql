-- Issue 7: proactive notifications. Events pushed by the logistics core, and the
-- notification log extended with how each notification was sent and what happened to it.

-- One row per event the core POSTed to /internal/events, stored before the 202.
-- (tenant_id, event_id) is the idempotency key: a retried POST finds its row.
-- The payload carries tracking codes and statuses only (the schema allows no phone numbers).
CREATE TABLE core_events (
    id             bigserial PRIMARY KEY,
    tenant_id      integer NOT NULL REFERENCES tenants(id),
    event_id       text NOT NULL,
    type           text NOT NULL,
    tracking_code  text NOT NULL,
    status         text,
    payload        jsonb NOT NULL,
    occurred_at    timestamptz NOT NULL,
    -- received: stored, not yet on the queue; queued; processed; failed (gave up, `error` says why)
    state          text NOT NULL DEFAULT 'received' CHECK (state IN ('received', 'queued', 'processed', 'failed')),
    attempts       integer NOT NULL DEFAULT 0,
    error          text,
    received_at    timestamptz NOT NULL DEFAULT now(),
    queued_at      timestamptz,
    processed_at   timestamptz,
    UNIQUE (tenant_id, event_id)
);
CREATE INDEX core_events_pending ON core_events (received_at) WHERE state IN ('received', 'queued');

-- notification_log (0001) gets: which role was told, the de-duplication key (one message per customer
-- per package status), when it may be sent (quiet hours), template vs free-form, the provider's id and
-- status (from status callbacks), errors, and whether the core accepted our report.
ALTER TABLE notification_log
    ADD COLUMN core_event_pk        bigint REFERENCES core_events(id) ON DELETE SET NULL,
    ADD COLUMN role                 text CHECK (role IN ('recipient', 'sender')),
    ADD COLUMN package_status       text,
    ADD COLUMN dedupe_key           text,
    -- the template values (names, amounts): encrypted like phone numbers
    ADD COLUMN values_encrypted     text,
    ADD COLUMN send_after           timestamptz,
    ADD COLUMN mode                 text CHECK (mode IN ('template', 'free_form')),
    ADD COLUMN channel              text,
    ADD COLUMN provider_message_id  text,
    ADD COLUMN status_rank          smallint NOT NULL DEFAULT 0,
    ADD COLUMN error_code           text,
    ADD COLUMN attempts             integer NOT NULL DEFAULT 0,
    ADD COLUMN sent_at              timestamptz,
    ADD COLUMN delivered_at         timestamptz,
    ADD COLUMN read_at              timestamptz,
    ADD COLUMN failed_at            timestamptz,
    ADD COLUMN reported_at          timestamptz,
    ADD COLUMN report_attempts      integer NOT NULL DEFAULT 0,
    ADD COLUMN updated_at           timestamptz NOT NULL DEFAULT now();

-- status: pending -> (deferred) -> sending -> accepted/sent -> delivered -> read, or failed / skipped
CREATE UNIQUE INDEX notification_log_dedupe ON notification_log (tenant_id, dedupe_key) WHERE dedupe_key IS NOT NULL;
CREATE INDEX notification_log_message ON notification_log (message_id);
CREATE INDEX notification_log_due ON notification_log (send_after) WHERE status IN ('pending', 'deferred');
CREATE INDEX notification_log_unreported ON notification_log (id)
    WHERE reported_at IS NULL AND status IN ('accepted', 'sent', 'delivered', 'read');
CREATE INDEX notification_log_arrivals ON notification_log (created_at) WHERE kind = 'arrived';
-- a package's notifications (reminders already sent, the console's package view)
CREATE INDEX notification_log_package ON notification_log (tenant_id, tracking_code);
