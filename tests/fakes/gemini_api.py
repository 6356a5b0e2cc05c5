"""A stand-in for Google's Gemini API (`POST /v1beta/models/{model}:generateContent`), on loopback.

Speaks the wire format the `google-genai` SDK uses: the `x-goog-api-key`
header (403 with Google's error envelope otherwise), `contents` with text,
`functionCall` and `functionResponse` parts, and a response with
`candidates[0].content.parts` (text or `functionCall`) and `usageMetadata`.
Replies are scripted per test in three queues chosen by the request: `json`
(`generationConfig.responseMimeType` is application/json), `tools`
(function declarations offered) and `text`. An empty queue answers 500.

Imports nothing from the project: it is Google, not us.
"""

from __future__ import annotations

import json
import re
from collections import deque
from typing import Any

from tests.fakes.graph_api import LoopbackServer, QuietHandler
from tests.fakes.openai_api import Reply

DEFAULT_KEY = "test-gemini-key"
_PATH = re.compile(r"^/v1(?:beta|alpha)?/models/([\w.-]+):generateContent$")
_STATUS = {400: "INVALID_ARGUMENT", 403: "PERMISSION_DENIED", 404: "NOT_FOUND", 429: "RESOURCE_EXHAUSTED",
           500: "INTERNAL", 503: "UNAVAILABLE"}


class _Handler(QuietHandler):
    fake: FakeGemini

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


class FakeGemini(LoopbackServer):
    handler_class = _Handler

    def __init__(self, *, api_key: str = DEFAULT_KEY) -> None:
        super().__init__()
        self.api_key = api_key
        self.requests: list[dict[str, Any]] = []
        self.queues: dict[str, deque[Reply]] = {"json": deque(), "tools": deque(), "text": deque()}

    def script(self, kind: str, *replies: Reply) -> None:
        with self.lock:
            self.queues[kind].extend(replies)

    def kinds(self) -> list[str]:
        with self.lock:
            return [r["kind"] for r in self.requests]

    def handle(self, path: str, headers: dict[str, str], body: bytes
               ) -> tuple[int, dict[str, Any], bytes | None, float]:
        match = _PATH.match(path.split("?")[0])
        if match is None:
            return 404, _error(404, "Not found"), None, 0.0
        key = {k.lower(): v for k, v in headers.items()}.get("x-goog-api-key", "")
        if self.api_key and key != self.api_key:
            return 403, _error(403, "API key not valid. Please pass a valid API key."), None, 0.0
        try:
            request = json.loads(body)
        except json.JSONDecodeError:
            return 400, _error(400, "Invalid JSON payload received."), None, 0.0
        if not isinstance(request.get("contents"), list) or not request["contents"]:
            return 400, _error(400, "* GenerateContentRequest.contents: contents is not specified"), None, 0.0
        config = request.get("generationConfig") or {}
        kind = "json" if config.get("responseMimeType") == "application/json" else (
            "tools" if request.get("tools") else "text")
        with self.lock:
            self.requests.append({"kind": kind, "model": match.group(1), **request})
            reply = self.queues[kind].popleft() if self.queues[kind] else None
        if reply is None:
            return 500, _error(500, f"nothing scripted for a {kind} request"), None, 0.0
        if reply.status != 200:
            return reply.status, _error(reply.status, "scripted failure"), None, reply.delay_s
        if reply.raw is not None:
            return 200, {}, reply.raw, reply.delay_s
        parts: list[dict[str, Any]] = [{"text": reply.content}] if reply.content else []
        parts += [{"functionCall": {"name": name, "args": args}} for name, args in reply.tool_calls]
        tokens_in = reply.tokens_in if reply.tokens_in is not None else len(json.dumps(request["contents"])) // 4
        tokens_out = reply.tokens_out if reply.tokens_out is not None else len(json.dumps(parts)) // 4
        return 200, {
            "candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": "STOP", "index": 0}],
            "usageMetadata": {"promptTokenCount": tokens_in, "candidatesTokenCount": tokens_out,
                              "totalTokenCount": tokens_in + tokens_out},
            "modelVersion": match.group(1), "responseId": "fake-response",
        }, None, reply.delay_s


def _error(code: int, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "status": _STATUS.get(code, "UNKNOWN")}}
