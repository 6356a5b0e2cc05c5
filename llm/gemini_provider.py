"""Google Gemini's generateContent through the official `google-genai` SDK.

Tools are function declarations; the model's `functionCall` parts come back
as `ToolCall`s and results go back as `functionResponse` parts. Structured
output uses `response_mime_type` application/json with `response_json_schema`.
`LLM_BASE_URL` (set through `http_options`) points the client elsewhere, e.g.
a proxy, or the loopback fake in tests.

Failure policy: every SDK or network failure becomes `LlmError`; nothing else is raised.
"""

from __future__ import annotations

import logging
from typing import Any

import httpx
import httpx2
from google import genai
from google.genai import errors, types

from llm.types import Completion, LlmError, Message, ToolCall, ToolSpec

log = logging.getLogger(__name__)

DEFAULT_MODEL = "gemini-2.5-flash"


class GeminiProvider:
    name = "gemini"

    def __init__(self, *, api_key: str, model: str, base_url: str = "", timeout_s: float = 4.0,
                 max_retries: int = 1) -> None:
        self.model = model or DEFAULT_MODEL
        self._timeout_s = timeout_s
        self._retry = types.HttpRetryOptions(attempts=max_retries + 1, initial_delay=0.2, max_delay=1.0)
        options = types.HttpOptions(base_url=base_url or None, timeout=int(timeout_s * 1000),
                                    retry_options=self._retry)
        self._client = genai.Client(api_key=api_key, http_options=options)

    def complete(self, system: str, messages: list[Message], *, tools: list[ToolSpec] | None = None,
                 json_schema: dict[str, Any] | None = None, timeout_s: float, max_output_tokens: int = 400
                 ) -> Completion:
        config = types.GenerateContentConfig(
            system_instruction=system, temperature=0, max_output_tokens=max_output_tokens,
            http_options=types.HttpOptions(timeout=max(1, int(timeout_s * 1000)), retry_options=self._retry),
            automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
        )
        if tools:
            config.tools = [types.Tool(function_declarations=[types.FunctionDeclaration(
                name=t.name, description=t.description, parameters_json_schema=t.parameters) for t in tools])]
        if json_schema is not None:
            config.response_mime_type = "application/json"
            config.response_json_schema = json_schema
        try:
            response = self._client.models.generate_content(
                model=self.model, contents=_contents(messages), config=config)
        except (httpx.TimeoutException, httpx2.TimeoutException, TimeoutError) as exc:
            raise LlmError("timeout", type(exc).__name__) from None
        except (httpx.HTTPError, httpx2.HTTPError) as exc:  # the SDK uses either client
            raise LlmError("unavailable", type(exc).__name__) from None
        except errors.APIError as exc:
            code = int(getattr(exc, "code", 0) or 0)
            if code == 408 or code == 504:
                raise LlmError("timeout", f"HTTP {code}") from None
            kind = "refused" if code in (400, 401, 403, 404) else "unavailable"
            raise LlmError(kind, f"HTTP {code}") from None
        except (ValueError, TypeError, KeyError) as exc:  # a body the SDK could not read
            raise LlmError("bad_output", type(exc).__name__) from None
        return _completion(response, self.model)


def _contents(messages: list[Message]) -> list[types.Content]:
    contents: list[types.Content] = []
    for message in messages:
        if message.role == "tool":
            part = types.Part(function_response=types.FunctionResponse(
                id=message.tool_call_id or None, name=message.tool_name, response={"result": message.text}))
            if contents and contents[-1].role == "user" and contents[-1].parts and \
                    contents[-1].parts[-1].function_response is not None:
                contents[-1].parts.append(part)  # several results answer one turn of calls
            else:
                contents.append(types.Content(role="user", parts=[part]))
        elif message.role == "assistant":
            parts = [types.Part(text=message.text)] if message.text else []
            parts += [types.Part(function_call=types.FunctionCall(id=c.id, name=c.name, args=c.arguments))
                      for c in message.tool_calls]
            contents.append(types.Content(role="model", parts=parts))
        else:
            contents.append(types.Content(role="user", parts=[types.Part(text=message.text)]))
    return contents


def _completion(response: types.GenerateContentResponse, model: str) -> Completion:
    candidates = response.candidates or []
    if not candidates or candidates[0].content is None:
        raise LlmError("bad_output", "no candidates")
    texts: list[str] = []
    calls: list[ToolCall] = []
    for part in candidates[0].content.parts or []:
        if part.function_call is not None and part.function_call.name:
            args = part.function_call.args or {}
            calls.append(ToolCall(part.function_call.id or f"call_{len(calls)}", part.function_call.name,
                                  dict(args)))
        elif part.text and not part.thought:
            texts.append(part.text)
    usage = response.usage_metadata
    return Completion(text="".join(texts).strip(), tool_calls=tuple(calls),
                      tokens_in=int(usage.prompt_token_count or 0) if usage else 0,
                      tokens_out=int(usage.candidates_token_count or 0) if usage else 0,
                      model=str(response.model_version or model))
