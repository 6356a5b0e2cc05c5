-- Issue 16: the operations figures (docs/METRICS.md), kept as rollups by the scheduler (storage/metric_rollups.py).

-- When the provider accepted an outbound message (its send answered with an id): the end of the bot's
-- response time, measured from the customer's webhook (webhook_events.received_at).
ALTER TABLE messages ADD COLUMN accepted_at timestamptz;

-- Agents' first responses by when they happened (the figures count them in that hour).
CREATE INDEX escalations_first_response ON escalations (tenant_id, first_response_at)
    WHERE first_response_at IS NOT NULL;
