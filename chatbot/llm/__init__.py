"""The AI layer behind the rules: a language model that helps the router and answers from tool results.

Nothing here is needed for the bot to work: with `LLM_PROVIDER=none` (the
default) and no company model of its own (`llm.tenant_models`), or a plan
that allows none now (`runtime.plan_terms`), the engine runs rules-only.
Modules: `types` (provider-neutral messages and results), `openai_provider` /
`gemini_provider` (one per external system), `settings` (which provider),
`breaker` (Redis circuit breaker), `costs` (every call recorded and priced),
`session` (one customer message's calls: budget, breaker, costs), `history`
(the recent exchanges the model sees),
`fallback` (the router's `llm=` callable), `tools` + `answer` +
`output_guard` (grounded free answers), `summary` and `analysis`.
"""
