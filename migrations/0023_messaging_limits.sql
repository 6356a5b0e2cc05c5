-- Issue 17: WhatsApp's messaging limits for proactive sends. Meta lets a business portfolio start conversations
-- (templates outside the 24-hour service window) with at most 250, 2,000, 10,000 or 100,000 unique customers per
-- rolling 24 hours, or with any number (unlimited). The count itself lives in Redis (notifications/limits.py).

-- The tier per company and WhatsApp Business Account, from the configuration (MESSAGING_LIMIT_TIER, the
-- operator) or from Meta's business_capability_update webhook. `account_id` is Meta's WABA id
-- (tenant_channels.waba_id); '' is the company's numbers whose WABA is not known (Twilio, local, an old channel).
-- tier NULL: unlimited. `previous_tier` keeps the value before the last change (shown as "bajó de ... a ...").
CREATE TABLE IF NOT EXISTS messaging_limits (
    tenant_id      integer NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    account_id     text NOT NULL,
    tier           integer CHECK (tier IS NULL OR tier IN (250, 2000, 10000, 100000)),
    previous_tier  integer CHECK (previous_tier IS NULL OR previous_tier IN (250, 2000, 10000, 100000)),
    source         text NOT NULL CHECK (source IN ('config', 'webhook')),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, account_id)
);

-- A notification can be `held`: not sent, waiting for a reason the admin sees (hold_reason: 'messaging_limit' =
-- the tier's customers for the last 24 hours are used up, or a burst bigger than what is left is being sorted by
-- priority; 'template_paused' = Meta paused or disabled its template). `admitted_at`: when the limit's pass let
-- a held notification go (the sender then takes its place in the count without queueing it behind others again).
ALTER TABLE notification_log
    ADD COLUMN IF NOT EXISTS hold_reason  text,
    ADD COLUMN IF NOT EXISTS held_at      timestamptz,
    ADD COLUMN IF NOT EXISTS admitted_at  timestamptz;
CREATE INDEX IF NOT EXISTS notification_log_held ON notification_log (tenant_id, hold_reason, created_at)
    WHERE status = 'held';
-- the limit's pass: released notifications whose place in the count is not taken yet
CREATE INDEX IF NOT EXISTS notification_log_admitted ON notification_log (tenant_id)
    WHERE admitted_at IS NOT NULL AND status IN ('pending', 'deferred', 'sending');
