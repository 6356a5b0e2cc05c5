"""Each provider module on its own: the real SDK against its loopback fake, failures as LlmError kinds."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from config import ConfigError, Settings
from llm.gemini_provider import GeminiProvider
from llm.openai_provider import OpenAIProvider
from llm.settings import provider_for
from llm.types import LlmError, Message, ToolCall, ToolSpec
from tests.fakes.gemini_api import DEFAULT_KEY as GEMINI_KEY
from tests.fakes.gemini_api import FakeGemini
from tests.fakes.openai_api import DEFAULT_KEY as OPENAI_KEY
from tests.fakes.openai_api import FakeOpenAI, Reply

TRACK = ToolSpec("track_package", "one package", {"type": "object", "properties": {"code": {"type": "string"}},
                                                  "required": ["code"]})
Fake = FakeOpenAI | FakeGemini
Provider = OpenAIProvider | GeminiProvider


@pytest.fixture(params=["openai", "gemini"])
def pair(request: pytest.FixtureRequest) -> Iterator[tuple[Fake, Provider]]:
    if request.param == "openai":
        with FakeOpenAI() as openai_fake:
            yield openai_fake, OpenAIProvider(api_key=OPENAI_KEY, model="gpt-4o-mini", base_url=openai_fake.base_url,
                                              max_retries=0)
    else:
        with FakeGemini() as gemini_fake:
            yield gemini_fake, GeminiProvider(api_key=GEMINI_KEY, model="gemini-2.5-flash", base_url=gemini_fake.url,
                                              max_retries=0)


def test_tool_calls_and_results_round_trip(pair: tuple[Fake, Provider]) -> None:
    fake, provider = pair
    fake.script("tools", Reply(tool_calls=[("track_package", {"code": "SV20260106012345"})], tokens_in=50,
                               tokens_out=7),
                Reply(content="En tránsito.", tokens_in=80, tokens_out=4))
    first = provider.complete("sistema", [Message("user", "¿y mi paquete?")], tools=[TRACK], timeout_s=2)
    assert [(c.name, c.arguments) for c in first.tool_calls] == [("track_package", {"code": "SV20260106012345"})]
    assert (first.tokens_in, first.tokens_out) == (50, 7)
    call = first.tool_calls[0]
    second = provider.complete("sistema", [
        Message("user", "¿y mi paquete?"), Message("assistant", "", tool_calls=(ToolCall(call.id, call.name,
                                                                                         call.arguments),)),
        Message("tool", "Estado: En tránsito", tool_call_id=call.id, tool_name=call.name)],
        tools=[TRACK], timeout_s=2)
    assert second.text == "En tránsito." and second.tool_calls == ()
    body = str(fake.requests[1])
    assert "Estado: En tránsito" in body and "sistema" in body


def test_structured_output_is_requested(pair: tuple[Fake, Provider]) -> None:
    fake, provider = pair
    fake.script("json", Reply(content='{"intent": "greeting"}'))
    schema = {"type": "object", "properties": {"intent": {"type": "string"}}, "required": ["intent"],
              "additionalProperties": False}
    result = provider.complete("sistema", [Message("user", "hola")], json_schema=schema, timeout_s=2)
    assert result.text == '{"intent": "greeting"}' and fake.kinds() == ["json"]


@pytest.mark.parametrize(("reply", "kind"), [
    (Reply(status=500), "unavailable"),
    (Reply(status=429), "unavailable"),
    (Reply(status=400), "refused"),
    (Reply(delay_s=3), "timeout"),
    (Reply(raw=b"<html>proxy error</html>"), "bad_output"),
])
def test_failures_become_llm_errors(pair: tuple[Fake, Provider], reply: Reply, kind: str) -> None:
    fake, provider = pair
    fake.script("text", reply)
    with pytest.raises(LlmError) as failure:
        provider.complete("sistema", [Message("user", "hola")], timeout_s=0.5)
    assert failure.value.kind == kind


def test_a_wrong_key_is_refused(pair: tuple[Fake, Provider]) -> None:
    fake, _provider = pair
    wrong: Provider
    if isinstance(fake, FakeOpenAI):
        wrong = OpenAIProvider(api_key="sk-wrong", model="m", base_url=fake.base_url, max_retries=0)
    else:
        wrong = GeminiProvider(api_key="wrong", model="m", base_url=fake.url, max_retries=0)
    with pytest.raises(LlmError) as failure:
        wrong.complete("sistema", [Message("user", "hola")], timeout_s=2)
    assert failure.value.kind == "refused" and fake.requests == []


@pytest.mark.parametrize(("env", "message"), [
    ({"LLM_PROVIDER": "gemini"}, "LLM_API_KEY is required when LLM_PROVIDER=gemini"),
    ({"LLM_PROVIDER": "openai"}, "LLM_API_KEY (or LLM_BASE_URL for a self-hosted server)"),
    ({"LLM_PROVIDER": "claude"}, "LLM_PROVIDER='claude' is not one of none, openai, gemini"),
    ({"LLM_PROVIDER": "openai", "LLM_BASE_URL": "localhost:11434"}, "LLM_BASE_URL='localhost:11434' must start"),
    ({"LLM_TIMEOUT_S": "0"}, "LLM_TIMEOUT_S=0.0 is outside"),
])
def test_llm_settings_say_what_is_wrong(env: dict[str, str], message: str) -> None:
    base = {"DATABASE_URL": "postgresql://x/y", "REDIS_URL": "redis://x", "PHONE_HASH_KEY": "k",
            "PHONE_ENCRYPTION_KEY": "A" * 43 + "="}
    with pytest.raises(ConfigError) as failure:
        Settings.from_env({**base, **env})
    assert message in str(failure.value)


def test_a_self_hosted_server_needs_no_key() -> None:
    settings = Settings.from_env({"DATABASE_URL": "postgresql://x/y", "REDIS_URL": "redis://x", "PHONE_HASH_KEY": "k",
                                  "PHONE_ENCRYPTION_KEY": "A" * 43 + "=", "LLM_PROVIDER": "openai",
                                  "LLM_BASE_URL": "http://127.0.0.1:11434/v1", "LLM_MODEL": "llama3.1:8b"})
    provider = provider_for(settings)
    assert isinstance(provider, OpenAIProvider) and provider.model == "llama3.1:8b" and provider.self_hosted
    assert provider_for(Settings.from_env({"DATABASE_URL": "postgresql://x/y", "REDIS_URL": "redis://x",
                                           "PHONE_HASH_KEY": "k", "PHONE_ENCRYPTION_KEY": "A" * 43 + "="})) is None
