-- Issue 15: each company's support hours, holidays, notification rules and approved templates are data,
-- edited by its own admin in the console ("Horario", "Plantillas"; storage/tenant_hours.py,
-- storage/tenant_templates.py). Every change bumps `tenants:version`, so the workers' caches
-- (runtime/tenant_rules.py) read them again within about a second.

-- Support hours per weekday, in the logistics core's format: {"mon": ["08:00", "17:00"], ..., "sun": null}
-- (a key per day, null = closed). NULL: the hours the company's core gives (`GET /api/company`), as before.
-- quiet_hours_start/_end ("HH:MM", company time; equal = none) and reminder_days (days after arrival):
-- NULL = the deployment's QUIET_HOURS_START/_END and REMINDER_DAYS.
ALTER TABLE tenants
    ADD COLUMN support_hours      jsonb CHECK (support_hours IS NULL OR jsonb_typeof(support_hours) = 'object'),
    ADD COLUMN quiet_hours_start  text CHECK (quiet_hours_start ~ '^([01][0-9]|2[0-3]):[0-5][0-9]$'),
    ADD COLUMN quiet_hours_end    text CHECK (quiet_hours_end ~ '^([01][0-9]|2[0-3]):[0-5][0-9]$'),
    ADD COLUMN reminder_days      integer[],
    ADD CONSTRAINT tenants_quiet_hours_both CHECK ((quiet_hours_start IS NULL) = (quiet_hours_end IS NULL));

-- Days support is closed whatever the weekday says (a holiday: "1 de mayo, Día del Trabajo"). They apply to
-- the company's own hours and to its core's alike.
CREATE TABLE tenant_holidays (
    id         serial PRIMARY KEY,
    tenant_id  integer NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    day        date NOT NULL,
    name       text NOT NULL CHECK (name <> ''),
    UNIQUE (tenant_id, day)
);

-- A company's approved WhatsApp template per notification kind (the one sent outside the 24-hour window;
-- inside it, its text goes as an interactive message). What Meta approved: `name` and `language` (exact),
-- `body` with {{1}}, {{2}}... filled in order by the notification values named in `params`, quick-reply
-- `buttons` ([{"title": ..., "payload": ...}], at most 3, titles up to 20 characters); Twilio's ContentSid.
-- A disabled template is not sent (the notification fails as "no template"). Rows are seeded from the
-- tenant's block of notifications/templates.yaml the first time its admin opens "Plantillas"; until then
-- (and for a kind without a row) the YAML's template is used, so nothing changes for a tenant nobody edited.
CREATE TABLE notification_templates (
    id                  serial PRIMARY KEY,
    tenant_id           integer NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    kind                text NOT NULL,
    name                text NOT NULL CHECK (name ~ '^[a-z0-9_]+$' AND char_length(name) <= 512),
    language            text NOT NULL CHECK (language <> ''),
    category            text NOT NULL DEFAULT 'UTILITY',
    body                text NOT NULL CHECK (body <> ''),
    params              text[] NOT NULL DEFAULT '{}',
    buttons             jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(buttons) = 'array'),
    twilio_content_sid  text CHECK (twilio_content_sid ~ '^HX[0-9a-f]{32}$'),
    enabled             boolean NOT NULL DEFAULT true,
    updated_at          timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, kind)
);
