-- Issue 12: the console's sessions live on the server, so logging out ends them at once.
-- The browser's signed cookie holds a random session token; only its SHA-256 is stored here.
-- A session counts while revoked_at is NULL and expires_at is ahead: logout revokes one row,
-- a password change or reset (and deactivating the agent) revokes every row of that agent.
CREATE TABLE agent_sessions (
    id             bigserial PRIMARY KEY,
    agent_id       integer NOT NULL REFERENCES agents(id),
    token_hash     text NOT NULL UNIQUE,
    created_at     timestamptz NOT NULL DEFAULT now(),
    expires_at     timestamptz NOT NULL,
    revoked_at     timestamptz
);
CREATE INDEX agent_sessions_open ON agent_sessions (agent_id) WHERE revoked_at IS NULL;

-- A new reset link revokes the links issued before it (the page then says a newer one exists).
ALTER TABLE password_resets ADD COLUMN revoked_at timestamptz;
CREATE INDEX password_resets_agent_open ON password_resets (agent_id) WHERE used_at IS NULL AND revoked_at IS NULL;
