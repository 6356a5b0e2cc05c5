-- Issue 16, the improvement loop (design 12.3.2): what a company's admin changes from the messages the bot did
-- not understand, and the phrases each company adds to the router's intents.

-- A company's own phrases for an intent, on top of the lexicon every company shares (chatbot/lexicon/es_sv.yaml).
-- The router matches them only for that company (storage/intent_phrases.py; the worker's per-process cache).
CREATE TABLE tenant_intent_phrases (
    id          bigserial PRIMARY KEY,
    tenant_id   integer NOT NULL REFERENCES tenants(id),
    intent      text NOT NULL,
    phrase      text NOT NULL CHECK (length(phrase) BETWEEN 1 AND 200),  -- as the admin wrote it
    created_by  integer REFERENCES agents(id) ON DELETE SET NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX tenant_intent_phrases_unique ON tenant_intent_phrases (tenant_id, intent, lower(phrase));

-- Every change made from the "Mejoras" page: who, when, what, the group it came from, and the object it made.
-- `target` names that object: {"faq_entry": id, "faq_version": n} | {"phrase_id": id} | {"canned_id": id}.
-- An undone change keeps its row (undone_by/undone_at): the history is never rewritten.
CREATE TABLE improvement_changes (
    id          bigserial PRIMARY KEY,
    tenant_id   integer NOT NULL REFERENCES tenants(id),
    action      text NOT NULL CHECK (action IN ('faq', 'phrase', 'canned')),
    group_text  text NOT NULL,  -- the group's representative message, masked as the page shows it
    summary     text NOT NULL,  -- what was made, as the admin reads it in the history
    target      jsonb NOT NULL CHECK (jsonb_typeof(target) = 'object'),
    created_by  integer REFERENCES agents(id) ON DELETE SET NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    undone_by   integer REFERENCES agents(id) ON DELETE SET NULL,
    undone_at   timestamptz
);
CREATE INDEX improvement_changes_tenant ON improvement_changes (tenant_id, created_at DESC);
