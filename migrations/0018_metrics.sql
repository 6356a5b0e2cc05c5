-- Issue 16: the operations figures (docs/METRICS.md), kept as rollups by the scheduler (storage/metric_rollups.py).

-- When the provider accepted an outbound message (its send answered with an id): the end of the bot's
-- response time, measured from the customer's webhook (webhook_events.received_at).
ALTER TABLE messages ADD COLUMN accepted_at timestamptz;

-- Agents' first responses by when they happened (the figures count them in that hour).
CREATE INDEX escalations_first_response ON escalations (tenant_id, first_response_at)
    WHERE first_response_at IS NOT NULL;

-- The rollups (docs/METRICS.md, "Rollups"): per tenant and UTC hour, additive counts the scheduler keeps
-- (storage/metric_rollups.py); the figures of any whole-hour range are sums of them.
CREATE TABLE metric_hours (
    tenant_id                integer NOT NULL REFERENCES tenants(id),
    hour                     timestamptz NOT NULL,  -- its first instant (UTC hours: any whole-hour clock's days are unions of them)
    conversations int NOT NULL DEFAULT 0, escalated_conversations int NOT NULL DEFAULT 0, customer_messages int NOT NULL DEFAULT 0,
    notifications int NOT NULL DEFAULT 0, escalations int NOT NULL DEFAULT 0, routed int NOT NULL DEFAULT 0,
    by_rules int NOT NULL DEFAULT 0, by_llm int NOT NULL DEFAULT 0, not_understood int NOT NULL DEFAULT 0,
    first_responses int NOT NULL DEFAULT 0, first_responses_in_sla int NOT NULL DEFAULT 0, templates_marketing int NOT NULL DEFAULT 0,
    templates_utility int NOT NULL DEFAULT 0, templates_utility_free int NOT NULL DEFAULT 0, templates_authentication int NOT NULL DEFAULT 0,
    templates_uncategorised int NOT NULL DEFAULT 0, llm_calls int NOT NULL DEFAULT 0,
    first_response_ms bigint NOT NULL DEFAULT 0, llm_usd numeric(14, 8) NOT NULL DEFAULT 0,
    -- the bot's response times: response_NN counts replies in bucket NN (storage/metric_counts.RESPONSE_EDGES_MS)
    response_00 int NOT NULL DEFAULT 0, response_01 int NOT NULL DEFAULT 0, response_02 int NOT NULL DEFAULT 0, response_03 int NOT NULL DEFAULT 0,
    response_04 int NOT NULL DEFAULT 0, response_05 int NOT NULL DEFAULT 0, response_06 int NOT NULL DEFAULT 0, response_07 int NOT NULL DEFAULT 0,
    response_08 int NOT NULL DEFAULT 0, response_09 int NOT NULL DEFAULT 0, response_10 int NOT NULL DEFAULT 0, response_11 int NOT NULL DEFAULT 0,
    response_12 int NOT NULL DEFAULT 0, response_13 int NOT NULL DEFAULT 0, response_14 int NOT NULL DEFAULT 0, response_15 int NOT NULL DEFAULT 0,
    response_16 int NOT NULL DEFAULT 0, response_17 int NOT NULL DEFAULT 0, response_18 int NOT NULL DEFAULT 0, response_19 int NOT NULL DEFAULT 0,
    response_20 int NOT NULL DEFAULT 0, response_21 int NOT NULL DEFAULT 0, response_22 int NOT NULL DEFAULT 0, response_23 int NOT NULL DEFAULT 0,
    response_24 int NOT NULL DEFAULT 0, response_25 int NOT NULL DEFAULT 0, response_26 int NOT NULL DEFAULT 0, response_27 int NOT NULL DEFAULT 0,
    response_28 int NOT NULL DEFAULT 0, response_29 int NOT NULL DEFAULT 0, response_30 int NOT NULL DEFAULT 0, response_31 int NOT NULL DEFAULT 0,
    response_32 int NOT NULL DEFAULT 0, response_33 int NOT NULL DEFAULT 0, response_34 int NOT NULL DEFAULT 0, response_35 int NOT NULL DEFAULT 0,
    response_36 int NOT NULL DEFAULT 0, response_37 int NOT NULL DEFAULT 0, response_38 int NOT NULL DEFAULT 0, response_39 int NOT NULL DEFAULT 0,
    response_40 int NOT NULL DEFAULT 0,
    -- ratings by score: csat5_N on the bot's 1-5 scale, csat10_NN on the 1-10 scale after a case
    csat5_1 int NOT NULL DEFAULT 0, csat5_2 int NOT NULL DEFAULT 0, csat5_3 int NOT NULL DEFAULT 0, csat5_4 int NOT NULL DEFAULT 0, csat5_5 int NOT NULL DEFAULT 0,
    csat10_01 int NOT NULL DEFAULT 0, csat10_02 int NOT NULL DEFAULT 0, csat10_03 int NOT NULL DEFAULT 0, csat10_04 int NOT NULL DEFAULT 0, csat10_05 int NOT NULL DEFAULT 0,
    csat10_06 int NOT NULL DEFAULT 0, csat10_07 int NOT NULL DEFAULT 0, csat10_08 int NOT NULL DEFAULT 0, csat10_09 int NOT NULL DEFAULT 0, csat10_10 int NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, hour)
);
CREATE INDEX metric_hours_hour ON metric_hours (hour);

-- Customer messages the bot routed, per intent.
CREATE TABLE metric_intent_hours (
    tenant_id  integer NOT NULL REFERENCES tenants(id),
    hour       timestamptz NOT NULL,
    intent     text NOT NULL,
    messages   integer NOT NULL,
    PRIMARY KEY (tenant_id, hour, intent)
);

-- Who wrote in each hour (unique customers over any range: distinct contacts over its hours).
CREATE TABLE metric_customer_hours (
    tenant_id   integer NOT NULL REFERENCES tenants(id),
    hour        timestamptz NOT NULL,
    contact_id  bigint NOT NULL,
    PRIMARY KEY (tenant_id, hour, contact_id)
);

-- The 24-hour sessions customers opened (storage/usage.py's definition), each with its first case's time:
-- the chain state a new message is judged against, and what an escalation marks.
CREATE TABLE metric_sessions (
    tenant_id     integer NOT NULL REFERENCES tenants(id),
    contact_id    bigint NOT NULL,
    started_at    timestamptz NOT NULL,
    escalated_at  timestamptz,
    PRIMARY KEY (contact_id, started_at)
);
CREATE INDEX metric_sessions_start ON metric_sessions (started_at);

-- How far the rollups go: rows up to `counted_through` are in them; the last hour a heal ran for, and the
-- last deep heal (docs/METRICS.md).
CREATE TABLE metric_state (
    id               integer PRIMARY KEY DEFAULT 1 CHECK (id = 1),
    counted_through  timestamptz NOT NULL,
    healed_hour      timestamptz NOT NULL,
    deep_healed_at   timestamptz NOT NULL
);

-- A customer's conversations: whether a template went out in the customer's 24-hour service window
-- (storage/metric_counts.py, storage/usage.py) is looked up per template through them.
CREATE INDEX conversations_contact ON conversations (contact_id);
