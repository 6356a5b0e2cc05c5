-- The conversation engine: every routing decision is kept with the customer's message
-- (stage regex/keyword/llm/fallback, intent, confidence, entities, dialog state before/after),
-- and escalations are looked up by conversation.

ALTER TABLE messages ADD COLUMN route jsonb;
CREATE INDEX escalations_conversation ON escalations (conversation_id, created_at);
CREATE INDEX events_conversation ON events (conversation_id, created_at);
