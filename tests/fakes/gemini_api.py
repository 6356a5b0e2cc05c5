"""A stand-in for Google's Gemini API (`POST /v1beta/models/{model}:generateContent`), on loopback.

Speaks the wire format the `google-genai` SDK uses: the `x-goog-api-key`
header (403 with Google's error envelope otherwise), `contents` with text,
`functionCall` and `functionResponse` parts, and a response with
`candidates[0].content.parts` (text or `functionCall`) and `usageMetadata`.
Replies are scripted per test (tests/fakes/model_replies.py) in three queues
chosen by the request: `json` (`generationConfig.responseMimeType` is
application/json), `tools` (function declarations offered) and `text`. An
empty queue answers 500.

Imports nothing from the project: it is Google, not us.
"""

from __future__ import annotations

import json
import re
from typing import Any

from tests.fakes.loopback import header
from tests.fakes.model_replies import Answer, Reply, ScriptedModel

DEFAULT_KEY = "test-gemini-key"
_PATH = re.compile(r"^/v1(?:beta|alpha)?/models/([\w.-]+):generateContent$")
_STATUS = {400: "INVALID_ARGUMENT", 403: "PERMISSION_DENIED", 404: "NOT_FOUND", 429: "RESOURCE_EXHAUSTED",
           500: "INTERNAL", 503: "UNAVAILABLE"}


class FakeGemini(ScriptedModel):
    def __init__(self, *, api_key: str = DEFAULT_KEY) -> None:
        super().__init__(api_key=api_key)

    def handle(self, path: str, headers: dict[str, str], body: bytes) -> Answer:
        match = _PATH.match(path.split("?")[0])
        if match is None:
            return 404, _error(404, "Not found"), None, 0.0
        if self.api_key and header(headers, "x-goog-api-key") != self.api_key:
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
        model = match.group(1)
        return self.answer(kind, {"model": model, **request}, lambda reply: _response(model, request, reply))

    def error(self, status: int, message: str) -> dict[str, Any]:
        return _error(status, message)


def _response(model: str, request: dict[str, Any], reply: Reply) -> dict[str, Any]:
    parts: list[dict[str, Any]] = [{"text": reply.content}] if reply.content else []
    parts += [{"functionCall": {"name": name, "args": args}} for name, args in reply.tool_calls]
    tokens_in = reply.tokens_in if reply.tokens_in is not None else len(json.dumps(request["contents"])) // 4
    tokens_out = reply.tokens_out if reply.tokens_out is not None else len(json.dumps(parts)) // 4
    return {
        "candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": "STOP", "index": 0}],
        "usageMetadata": {"promptTokenCount": tokens_in, "candidatesTokenCount": tokens_out,
                          "totalTokenCount": tokens_in + tokens_out},
        "modelVersion": model, "responseId": "fake-response",
    }


def _error(code: int, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "status": _STATUS.get(code, "UNKNOWN")}}
