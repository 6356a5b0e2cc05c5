"""Scripted replies for the loopback LLM fakes (OpenAI, Gemini): what they share beyond the HTTP plumbing.

Replies are queued per test in three queues chosen by what the request asks
for: `json` (structured output), `tools` (tools offered) and `text`
(neither); each fake decides the kind from its own wire format. A `Reply` can
also be an HTTP error, a delay (held until it passes, `release()` or
`stop()`), or a malformed body. An empty queue answers 500 with "nothing
scripted", so a test that did not expect a call fails loudly.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tests.fakes.loopback import JSONHandler, LoopbackServer

# (status, JSON payload, raw body sent instead of the payload when not None, seconds to hold the answer)
Answer = tuple[int, dict[str, Any], bytes | None, float]


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


class ModelHandler(JSONHandler):
    fake: ScriptedModel

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        status, payload, raw, delay = self.fake.handle(self.path, dict(self.headers.items()), self.read_body())
        if delay:
            self.fake.released.wait(delay)
        self.reply(status, payload if raw is None else raw)


class ScriptedModel(LoopbackServer, ABC):
    """`requests` lists every request body received, with its `kind` (json | tools | text)."""

    handler_class = ModelHandler

    def __init__(self, *, api_key: str) -> None:
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

    @abstractmethod
    def handle(self, path: str, headers: dict[str, str], body: bytes) -> Answer:
        """Check the request in the provider's wire format, then `answer` it."""

    @abstractmethod
    def error(self, status: int, message: str) -> dict[str, Any]:
        """The provider's error envelope for a scripted (or unscripted) failure."""

    def answer(self, kind: str, record: dict[str, Any], completion: Callable[[Reply], dict[str, Any]]) -> Answer:
        """Record a valid request (`record`, with its kind) and answer with the next reply scripted for `kind`."""
        with self.lock:
            self.requests.append({"kind": kind, **record})
            reply = self.queues[kind].popleft() if self.queues[kind] else None
        if reply is None:
            return 500, self.error(500, f"nothing scripted for a {kind} request"), None, 0.0
        if reply.status != 200:
            return reply.status, self.error(reply.status, "scripted failure"), None, reply.delay_s
        if reply.raw is not None:
            return 200, {}, reply.raw, reply.delay_s
        return 200, completion(reply), None, reply.delay_s
