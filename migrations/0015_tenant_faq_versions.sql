-- Issue 15: each company's policies and FAQ are data its admin edits in the console, and every edit is kept.
-- A version is never changed: an edit writes the next version, and "restore" writes a new version holding an
-- earlier one's content. The current FAQ is the tenant's highest version (storage/faq_versions.py).
-- `origin` says where a version came from: 'file' (faq_data/<slug>.yaml, loaded at start-up or when the tenant
-- was created, and again when that file changes while nobody has edited the FAQ in the console), 'console'
-- (an admin's edit) or 'restore' (an admin restored an earlier version).
CREATE TABLE tenant_faq_versions (
    id          bigserial PRIMARY KEY,
    tenant_id   integer NOT NULL REFERENCES tenants(id),
    version     integer NOT NULL CHECK (version > 0),
    -- topic -> text (or, for "prohibited", a list of items)
    policies    jsonb NOT NULL CHECK (jsonb_typeof(policies) = 'object'),
    -- [{"id", "question", "answer", "keywords": [...]}], in the order the bot ranks ties
    entries     jsonb NOT NULL CHECK (jsonb_typeof(entries) = 'array'),
    origin      text NOT NULL CHECK (origin IN ('file', 'console', 'restore')),
    created_by  integer REFERENCES agents(id) ON DELETE SET NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    note        text NOT NULL DEFAULT '',
    UNIQUE (tenant_id, version)
);
