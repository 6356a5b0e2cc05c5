-- Issue 13: a support team's console. Cases carry short free tags ("reembolso", "daño", "vip"), and
-- closed cases are searched over the retention period.

-- One row per tag on a case. `tag` is the spelling shown (lower case, as first written in the tenant);
-- `tag_key` is what makes two spellings the same tag ("Daño", "#daño", "dano" -> "dano"), so a case
-- holds each tag once and the tenant's vocabulary stays small. Tags belong to the tenant of their case.
CREATE TABLE case_tags (
    tenant_id      integer NOT NULL REFERENCES tenants(id),
    escalation_id  bigint NOT NULL REFERENCES escalations(id),
    tag            text NOT NULL CHECK (length(tag) BETWEEN 1 AND 30),
    tag_key        text NOT NULL CHECK (length(tag_key) BETWEEN 1 AND 30),
    agent_id       integer REFERENCES agents(id),
    created_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (escalation_id, tag_key)
);
CREATE INDEX case_tags_tenant_key ON case_tags (tenant_id, tag_key);

-- The search page lists a tenant's cases newest first within the retention period.
CREATE INDEX escalations_tenant_created ON escalations (tenant_id, created_at DESC);
