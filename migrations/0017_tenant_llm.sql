-- Issue 15: each tenant's own language model settings (storage/tenant_llm.py). NULL everywhere: the
-- deployment's LLM_* settings and the plan's llm_usd limit, so a single-company deployment is unchanged.
--
-- llm_provider: 'openai' or 'gemini' (the tenant's own account), 'none' (this tenant never calls a model);
--   NULL: the deployment's LLM_PROVIDER.
-- llm_model: the model name; NULL: the deployment's LLM_MODEL (or the provider's default).
-- llm_api_key_encrypted: the tenant's own API key (Fernet, like every secret here).
-- llm_base_url: an OpenAI-compatible server of the tenant's (Ollama, vLLM, ...) or a Gemini endpoint.
--   A row that names its own key, base URL or another provider than the deployment's is an account of its own:
--   the deployment's key and base URL are never sent to it.
-- llm_monthly_usd: what the tenant's model calls may cost per calendar month on its clock; it replaces the
--   plan's llm_usd limit and going over it follows the plan's overage rule (llm/budget.py).
ALTER TABLE tenants
    ADD COLUMN llm_provider           text CHECK (llm_provider IN ('none', 'openai', 'gemini')),
    ADD COLUMN llm_model              text CHECK (llm_model <> ''),
    ADD COLUMN llm_api_key_encrypted  text,
    ADD COLUMN llm_base_url           text CHECK (llm_base_url ~ '^https?://'),
    ADD COLUMN llm_monthly_usd        numeric(12, 4) CHECK (llm_monthly_usd >= 0);
