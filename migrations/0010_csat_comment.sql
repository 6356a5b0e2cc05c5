-- Issue 13 (handoff etiquette): what the customer added in words after rating an agent's attention
-- ("el agente fue amable pero se tardaron mucho"), kept with the rating on the case it rates.
ALTER TABLE escalations
    ADD COLUMN csat_comment     text,
    ADD COLUMN csat_comment_at  timestamptz;
