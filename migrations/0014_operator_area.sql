-- Issue 15: the operator's area of the web console (the provider who runs the deployment).
--
-- An operator is nobody's agent: a row here, with its own login at /operator/login and its own
-- server-side sessions (like agent_sessions: the browser's signed cookie holds a random token, only its
-- SHA-256 is stored; logging out or a new password revokes the rows at once).
CREATE TABLE operators (
    id             serial PRIMARY KEY,
    email          text NOT NULL CHECK (email <> ''),
    password_hash  text NOT NULL,
    active         boolean NOT NULL DEFAULT true,
    created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX operators_email ON operators (lower(email));

CREATE TABLE operator_sessions (
    id             bigserial PRIMARY KEY,
    operator_id    integer NOT NULL REFERENCES operators(id) ON DELETE CASCADE,
    token_hash     text NOT NULL UNIQUE,
    created_at     timestamptz NOT NULL DEFAULT now(),
    expires_at     timestamptz NOT NULL,
    revoked_at     timestamptz
);
CREATE INDEX operator_sessions_open ON operator_sessions (operator_id) WHERE revoked_at IS NULL;

-- The receiving number of an event stored `unroutable` (Meta's phone_number_id or the Twilio `To`), in
-- clear: it is the business's number, not a customer's. The operator's page groups them by number and reason.
ALTER TABLE webhook_events ADD COLUMN channel_number text;
CREATE INDEX webhook_events_unroutable ON webhook_events (received_at) WHERE status = 'unroutable';

-- Provider errors of the last 24 hours, every tenant in one grouped query (messages_tenant_time leads with
-- the tenant, so a range over time alone cannot use it).
CREATE INDEX messages_failed_time ON messages (failed_at) WHERE status = 'failed';
