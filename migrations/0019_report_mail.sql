-- Issue 16: the e-mails of the executive report (console/report_mail.py, console/alert_mail.py).
--
-- weekly_report_sends: one row per company and reported week (the Monday it began, on the company's clock).
--   The scheduler claims the row before sending (INSERT ... ON CONFLICT), so a restart or a second scheduler
--   never sends a week twice; sent_at is set once the mail server took it. A claim whose send failed
--   (sent_at NULL) may be taken again after a while, at most a few times (attempts).
CREATE TABLE weekly_report_sends (
    tenant_id   integer NOT NULL REFERENCES tenants(id),
    week_start  date NOT NULL,
    attempts    integer NOT NULL DEFAULT 1,
    claimed_at  timestamptz NOT NULL DEFAULT now(),
    sent_at     timestamptz,
    recipients  integer NOT NULL DEFAULT 0,
    error       text,
    PRIMARY KEY (tenant_id, week_start)
);

-- alert_mail_sends: when each alert (its key: kind and detail, e.g. 'provider_error:131047') was last e-mailed
--   to a company's admins. A send claims the row only when the last one is an hour old or more, in one
--   statement, so two schedulers never both send it and an alert goes out at most once an hour.
CREATE TABLE alert_mail_sends (
    tenant_id     integer NOT NULL REFERENCES tenants(id),
    alert         text NOT NULL,
    last_sent_at  timestamptz NOT NULL DEFAULT now(),
    times_sent    integer NOT NULL DEFAULT 1,
    PRIMARY KEY (tenant_id, alert)
);
