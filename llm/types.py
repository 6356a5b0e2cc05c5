"""Provider-neutral shapes of a model conversation: messages, tool calls, tool specs and one completion.

Each provider module translates these to its own wire format and back, and
turns every failure into `LlmError`, so SDK exceptions never leak upward.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

Role = Literal["user", "assistant", "tool"]


class LlmError(Exception):
    """A model call failed. `kind`: timeout | unavailable | refused | bad_output."""

    def __init__(self, kind: str, detail: str = "") -> None:
        super().__init__(f"{kind}: {detail}" if detail else kind)
        self.kind = kind


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    arguments: dict[str, Any]


@dataclass(frozen=True)
class Message:
    """One turn: the customer's text, the model's text and/or tool calls, or one tool's result."""

    role: Role
    text: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str = ""  # role "tool": the call this result answers
    tool_name: str = ""


@dataclass(frozen=True)
class ToolSpec:
    name: str
    description: str
    parameters: dict[str, Any]  # JSON schema of the arguments (an object)


@dataclass(frozen=True)
class Completion:
    """What the model said: text, tool calls, or both; with the tokens it cost."""

    text: str
    tool_calls: tuple[ToolCall, ...] = ()
    tokens_in: int = 0
    tokens_out: int = 0
    model: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


class Provider(Protocol):
    """One model behind one API. `complete` raises LlmError on any failure."""

    name: str
    model: str

    def complete(self, system: str, messages: list[Message], *, tools: list[ToolSpec] | None = None,
                 json_schema: dict[str, Any] | None = None, timeout_s: float, max_output_tokens: int = 400
                 ) -> Completion:
        """One request. `json_schema` asks for JSON output constrained to that schema (no tools then)."""
        ...
