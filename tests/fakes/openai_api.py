"""A stand-in for OpenAI's Chat Completions API (`POST /v1/chat/completions`), on loopback.

Speaks the wire format the `openai` SDK (and OpenAI-compatible servers such
as Ollama or vLLM) use: Bearer auth (401 with OpenAI's error envelope
otherwise), a `chat.completion` object whose message carries `content` or
`tool_calls`, and `usage` token counts. Replies are scripted per test
(tests/fakes/model_replies.py) in three queues chosen by what the request
asks for: `json` (a `response_format` is set: structured output), `tools`
(tools are offered) and `text` (neither). An empty queue answers 500.

Imports nothing from the project: it is OpenAI, not us.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from tests.fakes.loopback import header
from tests.fakes.model_replies import Answer, ScriptedModel
from tests.fakes.model_replies import Reply as Reply  # re-exported: tests and bench import it from here
from tests.fakes.model_replies import json_reply as json_reply

DEFAULT_KEY = "sk-test-openai"


class FakeOpenAI(ScriptedModel):
    """`requests` lists every request body received, with its `kind` (json | tools | text)."""

    def __init__(self, *, api_key: str = DEFAULT_KEY) -> None:
        super().__init__(api_key=api_key)

    @property
    def base_url(self) -> str:
        return self.url + "/v1"

    def handle(self, path: str, headers: dict[str, str], body: bytes) -> Answer:
        if path != "/v1/chat/completions":
            return 404, _error("Unknown request URL", "invalid_request_error"), None, 0.0
        if self.api_key and header(headers, "authorization") != f"Bearer {self.api_key}":
            return 401, _error("Incorrect API key provided", "invalid_request_error", "invalid_api_key"), None, 0.0
        try:
            request = json.loads(body)
        except json.JSONDecodeError:
            return 400, _error("We could not parse the JSON body of your request.", "invalid_request_error"), None, 0
        if not isinstance(request.get("messages"), list) or not request.get("model"):
            return 400, _error("'messages' and 'model' are required", "invalid_request_error"), None, 0.0
        kind = "json" if request.get("response_format") else "tools" if request.get("tools") else "text"
        return self.answer(kind, request, lambda reply: self._completion(request, reply))

    def error(self, status: int, message: str) -> dict[str, Any]:
        return _error(message, "server_error")

    def _completion(self, request: dict[str, Any], reply: Reply) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": reply.content, "refusal": None}
        if reply.tool_calls:
            message["tool_calls"] = [{"id": f"call_{uuid.uuid4().hex[:12]}", "type": "function", "function": {
                "name": name, "arguments": json.dumps(args, ensure_ascii=False)}} for name, args in reply.tool_calls]
        tokens_in = reply.tokens_in if reply.tokens_in is not None else len(json.dumps(request["messages"])) // 4
        tokens_out = reply.tokens_out if reply.tokens_out is not None else len(json.dumps(message)) // 4
        return {"id": f"chatcmpl-{uuid.uuid4().hex[:16]}", "object": "chat.completion", "created": int(time.time()),
                "model": request["model"], "system_fingerprint": "fp_fake",
                "choices": [{"index": 0, "message": message, "logprobs": None,
                             "finish_reason": "tool_calls" if reply.tool_calls else "stop"}],
                "usage": {"prompt_tokens": tokens_in, "completion_tokens": tokens_out,
                          "total_tokens": tokens_in + tokens_out}}


def _error(message: str, kind: str, code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}
