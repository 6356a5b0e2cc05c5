"""A stand-in for OpenAI's Chat Completions API (`POST /v1/chat/completions`), on loopback.

Speaks the wire format the `openai` SDK (and OpenAI-compatible servers such
as Ollama or vLLM) use: Bearer auth (401 with OpenAI's error envelope
otherwise), a `chat.completion` object whose message carries `content` or
`tool_calls`, and `usage` token counts. Replies are scripted per test in
three queues chosen by what the request asks for: `json` (a
`response_format` is set: structured output), `tools` (tools are offered)
and `text` (neither). A `Reply` can also be an HTTP error, a delay longer
than the client's timeout, or a malformed body. An empty queue answers 500
with "nothing scripted", so a test that did not expect a call fails loudly.

Imports nothing from the project: it is OpenAI, not us.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from tests.fakes.graph_api import LoopbackServer, QuietHandler

DEFAULT_KEY = "sk-test-openai"


@dataclass
class Reply:
    """One scripted answer. `tool_calls`: [(name, arguments)]; `status` other than 200 is an API error."""

    content: str | None = None
    tool_calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    status: int = 200
    delay_s: float = 0.0
    raw: bytes | None = None  # sent as the body instead of a well-formed completion
    tokens_in: int | None = None
    tokens_out: int | None = None


def json_reply(data: dict[str, Any], **kwargs: Any) -> Reply:
    return Reply(content=json.dumps(data, ensure_ascii=False), **kwargs)


class _Handler(QuietHandler):
    fake: FakeOpenAI

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        status, payload, raw, delay = self.fake.handle(self.path, dict(self.headers.items()), self.read_body())
        if delay:
            self.fake.released.wait(delay)
        if raw is not None:
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)
            except OSError:
                pass
            return
        self.reply(status, payload)


class FakeOpenAI(LoopbackServer):
    """`requests` lists every request body received, with its `kind` (json | tools | text)."""

    handler_class = _Handler

    def __init__(self, *, api_key: str = DEFAULT_KEY) -> None:
        super().__init__()
        self.api_key = api_key
        self.requests: list[dict[str, Any]] = []
        self.queues: dict[str, deque[Reply]] = {"json": deque(), "tools": deque(), "text": deque()}

    @property
    def base_url(self) -> str:
        return self.url + "/v1"

    def script(self, kind: str, *replies: Reply) -> None:
        with self.lock:
            self.queues[kind].extend(replies)

    def kinds(self) -> list[str]:
        with self.lock:
            return [r["kind"] for r in self.requests]

    def handle(self, path: str, headers: dict[str, str], body: bytes
               ) -> tuple[int, dict[str, Any], bytes | None, float]:
        if path != "/v1/chat/completions":
            return 404, _error("Unknown request URL", "invalid_request_error"), None, 0.0
        auth = {k.lower(): v for k, v in headers.items()}.get("authorization", "")
        if self.api_key and auth != f"Bearer {self.api_key}":
            return 401, _error("Incorrect API key provided", "invalid_request_error", "invalid_api_key"), None, 0.0
        try:
            request = json.loads(body)
        except json.JSONDecodeError:
            return 400, _error("We could not parse the JSON body of your request.", "invalid_request_error"), None, 0
        if not isinstance(request.get("messages"), list) or not request.get("model"):
            return 400, _error("'messages' and 'model' are required", "invalid_request_error"), None, 0.0
        kind = "json" if request.get("response_format") else "tools" if request.get("tools") else "text"
        with self.lock:
            self.requests.append({"kind": kind, **request})
            reply = self.queues[kind].popleft() if self.queues[kind] else None
        if reply is None:
            return 500, _error(f"nothing scripted for a {kind} request", "server_error"), None, 0.0
        if reply.status != 200:
            return reply.status, _error("scripted failure", "server_error"), None, reply.delay_s
        if reply.raw is not None:
            return 200, {}, reply.raw, reply.delay_s
        return 200, self._completion(request, reply), None, reply.delay_s

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
