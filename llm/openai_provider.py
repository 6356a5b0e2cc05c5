"""OpenAI's chat completions through the official `openai` SDK, and any OpenAI-compatible server.

With `LLM_BASE_URL` the same client talks to a self-hosted server speaking
the same API (Ollama `…/v1`, vLLM, llama.cpp server): the design's
self-hosted Llama option. Tool calls use the `tools` / `tool_calls` format;
structured output uses `response_format` `json_schema` (strict).

Failure policy: every SDK or network failure becomes `LlmError` (timeout,
unavailable, refused, bad_output); nothing else is raised.
"""

from __future__ import annotations

import json
import logging
from typing import Any, cast

import openai

from llm.types import Completion, LlmError, Message, ToolCall, ToolSpec

log = logging.getLogger(__name__)

DEFAULT_MODEL = "gpt-4o-mini"


class OpenAIProvider:
    name = "openai"

    def __init__(self, *, api_key: str, model: str, base_url: str = "", timeout_s: float = 4.0,
                 max_retries: int = 1) -> None:
        self.model = model or DEFAULT_MODEL
        self.self_hosted = bool(base_url)
        self._client = openai.OpenAI(api_key=api_key or "not-needed", base_url=base_url or None,
                                     timeout=timeout_s, max_retries=max_retries)

    def complete(self, system: str, messages: list[Message], *, tools: list[ToolSpec] | None = None,
                 json_schema: dict[str, Any] | None = None, timeout_s: float, max_output_tokens: int = 400
                 ) -> Completion:
        wire: list[dict[str, Any]] = [{"role": "system", "content": system}, *map(_wire_message, messages)]
        options: dict[str, Any] = {"temperature": 0}
        if self.self_hosted:  # Ollama and older servers know only the classic name
            options["max_tokens"] = max_output_tokens
        else:
            options["max_completion_tokens"] = max_output_tokens
        if tools:
            options["tools"] = [{"type": "function", "function": {
                "name": t.name, "description": t.description, "parameters": t.parameters}} for t in tools]
        if json_schema is not None:
            options["response_format"] = {"type": "json_schema", "json_schema": {
                "name": "answer", "schema": json_schema, "strict": True}}
        try:
            response = self._client.chat.completions.create(
                model=self.model, messages=cast(Any, wire), timeout=timeout_s, **options)
        except openai.APITimeoutError as exc:
            raise LlmError("timeout", type(exc).__name__) from None
        except openai.APIConnectionError as exc:
            raise LlmError("unavailable", type(exc).__name__) from None
        except openai.APIStatusError as exc:
            kind = "refused" if exc.status_code in (400, 401, 403, 404, 422) else "unavailable"
            raise LlmError(kind, f"HTTP {exc.status_code}") from None
        except (openai.OpenAIError, ValueError, TypeError) as exc:  # a body the SDK could not read
            raise LlmError("bad_output", type(exc).__name__) from None
        return _completion(response, self.model)


def _wire_message(message: Message) -> dict[str, Any]:
    if message.role == "tool":
        return {"role": "tool", "tool_call_id": message.tool_call_id, "content": message.text}
    if message.role == "assistant":
        wire: dict[str, Any] = {"role": "assistant", "content": message.text or None}
        if message.tool_calls:
            wire["tool_calls"] = [{"id": c.id, "type": "function", "function": {
                "name": c.name, "arguments": json.dumps(c.arguments, ensure_ascii=False)}} for c in message.tool_calls]
        return wire
    return {"role": "user", "content": message.text}


def _completion(response: Any, model: str) -> Completion:
    choices = getattr(response, "choices", None) or []
    if not choices:
        raise LlmError("bad_output", "no choices")
    message = choices[0].message
    calls: list[ToolCall] = []
    for call in message.tool_calls or []:
        function = getattr(call, "function", None)
        if function is None:
            continue
        try:
            arguments = json.loads(function.arguments or "{}")
        except json.JSONDecodeError:
            raise LlmError("bad_output", "tool arguments are not JSON") from None
        if not isinstance(arguments, dict):
            raise LlmError("bad_output", "tool arguments are not an object")
        calls.append(ToolCall(call.id or f"call_{len(calls)}", str(function.name), arguments))
    usage = response.usage
    return Completion(text=(message.content or "").strip(), tool_calls=tuple(calls),
                      tokens_in=int(getattr(usage, "prompt_tokens", 0) or 0),
                      tokens_out=int(getattr(usage, "completion_tokens", 0) or 0),
                      model=str(getattr(response, "model", "") or model))
