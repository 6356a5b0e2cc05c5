-- The support console (issue 6): agents, their sessions' password resets, private notes,
-- canned answers, the history of every hand-over action, and what an escalation needs
-- to be worked by a person (who has it, since when, first response, resolution, CSAT).

CREATE TABLE agents (
    id             serial PRIMARY KEY,
    tenant_id      integer NOT NULL REFERENCES tenants(id),
    name           text NOT NULL,
    email          text NOT NULL,
    role           text NOT NULL DEFAULT 'agent' CHECK (role IN ('agent', 'supervisor', 'admin')),
    -- werkzeug scrypt hash ("scrypt:32768:8:1$salt$hash")
    password_hash  text NOT NULL,
    active         boolean NOT NULL DEFAULT true,
    created_at     timestamptz NOT NULL DEFAULT now(),
    last_login_at  timestamptz
);
-- One login per e-mail address across tenants: the login form does not ask for the company.
CREATE UNIQUE INDEX agents_email ON agents (lower(email));

-- One-time password reset links; only the SHA-256 of the token is stored.
CREATE TABLE password_resets (
    id          bigserial PRIMARY KEY,
    agent_id    integer NOT NULL REFERENCES agents(id),
    token_hash  text NOT NULL UNIQUE,
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- Private notes between agents on a conversation; never sent to the customer.
CREATE TABLE agent_notes (
    id               bigserial PRIMARY KEY,
    tenant_id        integer NOT NULL REFERENCES tenants(id),
    conversation_id  bigint NOT NULL REFERENCES conversations(id),
    agent_id         integer NOT NULL REFERENCES agents(id),
    body             text NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX agent_notes_conversation ON agent_notes (conversation_id, id);

-- Quick replies per tenant; {nombre} and {codigo} are filled from the conversation.
CREATE TABLE canned_answers (
    id          serial PRIMARY KEY,
    tenant_id   integer NOT NULL REFERENCES tenants(id),
    title       text NOT NULL,
    body        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, title)
);

-- Every hand-over action: claim, takeover (with the previous agent), reply, hand_back, resolve,
-- wait_notice (the customer was told nobody is free yet), callback_due (opening time arrived).
CREATE TABLE handoff_events (
    id               bigserial PRIMARY KEY,
    tenant_id        integer NOT NULL REFERENCES tenants(id),
    escalation_id    bigint NOT NULL REFERENCES escalations(id),
    agent_id         integer REFERENCES agents(id),
    action           text NOT NULL,
    data             jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX handoff_events_escalation ON handoff_events (escalation_id, id);

ALTER TABLE escalations
    ADD COLUMN taken_by           integer REFERENCES agents(id),
    ADD COLUMN taken_at           timestamptz,
    ADD COLUMN first_response_at  timestamptz,
    ADD COLUMN resolved_by        integer REFERENCES agents(id),
    ADD COLUMN resolution_reason  text,
    ADD COLUMN wait_notice_at     timestamptz,
    -- a callback (out of hours) is due at the next opening; the queue shows it on top from then on
    ADD COLUMN callback_due_at    timestamptz,
    ADD COLUMN csat_asked_at      timestamptz,
    ADD COLUMN csat_score         smallint CHECK (csat_score BETWEEN 1 AND 10),
    ADD COLUMN csat_at            timestamptz;
CREATE INDEX escalations_queue ON escalations (tenant_id, status, created_at);

-- An agent's reply names its author (the transcript shows "Carlos").
ALTER TABLE messages ADD COLUMN agent_id integer REFERENCES agents(id);
