"""Which model the bot talks to, from the settings (`LLM_PROVIDER`, `LLM_MODEL`, `LLM_API_KEY`, `LLM_BASE_URL`).

`provider_for` gives None when no provider is configured: the bot is then
rules-only and says nothing about AI. One client per process and
configuration (clients keep connections alive).
"""

from __future__ import annotations

import functools

from config import Settings
from llm.types import Provider


def configured(settings: Settings) -> bool:
    return settings.llm_provider in ("openai", "gemini")


def provider_for(settings: Settings) -> Provider | None:
    """The configured provider's client, or None for rules-only."""
    if not configured(settings):
        return None
    return _provider(settings.llm_provider, settings.llm_model, settings.llm_api_key, settings.llm_base_url,
                     settings.llm_timeout_s, settings.llm_max_retries)


@functools.lru_cache(maxsize=8)
def _provider(name: str, model: str, api_key: str, base_url: str, timeout_s: float, max_retries: int) -> Provider:
    # imported here: a rules-only process never loads either SDK (about a second of start-up each)
    if name == "gemini":
        from llm.gemini_provider import GeminiProvider

        return GeminiProvider(api_key=api_key, model=model, base_url=base_url, timeout_s=timeout_s,
                              max_retries=max_retries)
    from llm.openai_provider import OpenAIProvider

    return OpenAIProvider(api_key=api_key, model=model, base_url=base_url, timeout_s=timeout_s,
                          max_retries=max_retries)
