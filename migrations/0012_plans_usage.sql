-- Issue 15: plans are data (design section 7.3), and each tenant is on one.
--
-- features: what the plan includes (the bot checks `chatbot` and `ai`; the others are the console's and
--   the API's to honour: advanced_analytics, reports, premium_answers, api_access, white_label,
--   executive_reports).
-- limits: per calendar month on the tenant's clock; a missing key or null means no limit.
--   bot_conversations: 24-hour sessions a customer opened (storage/usage.py says exactly what counts);
--   llm_usd: what the language model may cost in dollars.
-- overage: what going over a limit does. 'flag': keep serving, the operator sees the overage;
--   'rules_only': keep serving with the rules alone (no model calls). A customer is never left unanswered.
-- prices: the design's price list, for the operator's bill (monthly_usd, per_package_usd, packages_included;
--   packages_included null: unlimited).
CREATE TABLE plans (
    code        text PRIMARY KEY CHECK (code ~ '^[a-z][a-z0-9_]*$'),
    name        text NOT NULL,
    features    jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(features) = 'object'),
    limits      jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(limits) = 'object'),
    overage     text NOT NULL DEFAULT 'flag' CHECK (overage IN ('flag', 'rules_only')),
    prices      jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(prices) = 'object'),
    created_at  timestamptz NOT NULL DEFAULT now()
);

INSERT INTO plans (code, name, features, limits, overage, prices) VALUES
('starter', 'Starter',
 '{"chatbot": false, "ai": false, "advanced_analytics": false, "reports": false, "premium_answers": false,
   "api_access": false, "white_label": false, "executive_reports": false}',
 '{"bot_conversations": 0, "llm_usd": 0}',
 'rules_only',
 '{"monthly_usd": 49, "per_package_usd": 0.03, "packages_included": 2000}'),
('pro', 'Pro',
 '{"chatbot": true, "ai": true, "advanced_analytics": true, "reports": true, "premium_answers": false,
   "api_access": false, "white_label": false, "executive_reports": false}',
 '{"bot_conversations": 5000, "llm_usd": 50}',
 'rules_only',
 '{"monthly_usd": 99, "per_package_usd": 0.025, "packages_included": 5000}'),
('scale', 'Scale',
 '{"chatbot": true, "ai": true, "advanced_analytics": true, "reports": true, "premium_answers": true,
   "api_access": true, "white_label": true, "executive_reports": true}',
 '{"bot_conversations": null, "llm_usd": 200}',
 'flag',
 '{"monthly_usd": 199, "per_package_usd": 0.02, "packages_included": null}');

-- Every tenant is on a plan; the demo company (and any tenant created before plans existed) has the chatbot.
ALTER TABLE tenants ADD COLUMN plan_code text NOT NULL DEFAULT 'pro' REFERENCES plans(code);

-- Usage is counted per tenant and month (storage/usage.py): the tenant's messages by time (escalations
-- have escalations_tenant_created, llm_calls llm_calls_tenant_time already).
CREATE INDEX messages_tenant_time ON messages (tenant_id, created_at);
