-- The AI layer (issue 5): every model call with its cost, and the analyses of escalated conversations.

-- One row per model request (or per request skipped because the circuit was open), priced from the
-- configured per-token prices at the time of the call. Never holds message text.
CREATE TABLE llm_calls (
    id               bigserial PRIMARY KEY,
    tenant_id        integer REFERENCES tenants(id),
    conversation_id  bigint REFERENCES conversations(id) ON DELETE SET NULL,
    provider         text NOT NULL,
    model            text NOT NULL,
    purpose          text NOT NULL,            -- route | answer | summary | analysis
    prompt_version   text NOT NULL,
    tokens_in        integer NOT NULL DEFAULT 0,
    tokens_out       integer NOT NULL DEFAULT 0,
    latency_ms       integer NOT NULL DEFAULT 0,
    cost_usd         numeric(12, 8) NOT NULL DEFAULT 0,
    outcome          text NOT NULL,            -- ok | timeout | unavailable | refused | bad_output | guard | skipped
    created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX llm_calls_tenant_time ON llm_calls (tenant_id, created_at);
CREATE INDEX llm_calls_conversation ON llm_calls (conversation_id);

-- The escalation-analysis prompt's JSON (design Anexo B), one row per analysed escalation.
CREATE TABLE escalation_analyses (
    id               bigserial PRIMARY KEY,
    tenant_id        integer NOT NULL REFERENCES tenants(id),
    escalation_id    bigint NOT NULL UNIQUE REFERENCES escalations(id) ON DELETE CASCADE,
    conversation_id  bigint REFERENCES conversations(id) ON DELETE SET NULL,
    prompt_version   text NOT NULL,
    analysis         jsonb NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX escalation_analyses_tenant ON escalation_analyses (tenant_id, created_at);
