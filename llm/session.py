"""One customer message's (or one job's) model calls: the time budget, the circuit breaker and the cost log.

`LlmSession.complete` makes one request with what is left of the budget
(`LLM_REPLY_BUDGET_S` for every call made for one message together, each
attempt at most `LLM_TIMEOUT_S`, and the SDK's retries counted in), records it as an `LlmCall`, and tells the
breaker. `available()` is False when the circuit is open (checked once per
session, so a half-open circuit lets exactly one session try) or the budget
is spent.

Failure policy: `complete` raises `LlmError` (logged with its kind, never the
text); the caller falls back to the rules.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import redis

from config import Settings
from llm import breaker, costs
from llm.types import Completion, LlmError, Message, Provider, ToolSpec

log = logging.getLogger(__name__)

MIN_CALL_S = 0.3  # less time than this left in the budget: do not start a call
BREAKER_COUNTED = frozenset({"timeout", "unavailable", "refused"})


def policy_of(settings: Settings) -> breaker.BreakerPolicy:
    return breaker.BreakerPolicy(settings.llm_breaker_failures, settings.llm_breaker_window_s,
                                 settings.llm_breaker_cooldown_s)


class LlmSession:
    def __init__(self, provider: Provider, settings: Settings, conn: redis.Redis, *,
                 budget_s: float | None = None, clock: Callable[[], float] = time.monotonic,
                 circuit: str | None = None) -> None:
        """`circuit` names the breaker the calls answer to (default: the provider's name; a tenant's own
        account has its own, `llm.tenant_models`)."""
        self.provider, self.settings, self.conn, self._clock = provider, settings, conn, clock
        self.circuit = circuit or provider.name
        self.deadline = clock() + (settings.llm_reply_budget_s if budget_s is None else budget_s)
        self.calls: list[costs.LlmCall] = []
        self._allowed: bool | None = None

    def remaining_s(self) -> float:
        return self.deadline - self._clock()

    def available(self) -> bool:
        if self._allowed is None:
            self._allowed = breaker.allow(self.conn, self.circuit, time.time(), policy_of(self.settings))
            if not self._allowed:
                log.info("llm skipped: circuit open")
        return self._allowed and self.remaining_s() >= MIN_CALL_S

    def skipped(self, purpose: str, prompt_version: str) -> None:
        """Record a call not made because the circuit is open (what the metrics count as rules-only)."""
        if self._allowed is False:
            self._record(purpose, prompt_version, 0, 0, 0.0, "skipped")

    def complete(self, purpose: str, prompt_version: str, system: str, messages: list[Message], *,
                 tools: list[ToolSpec] | None = None, json_schema: dict[str, Any] | None = None,
                 max_output_tokens: int = 400) -> Completion:
        if not self.available():
            self._record(purpose, prompt_version, 0, 0, 0.0, "skipped")
            raise LlmError("unavailable", "circuit open or budget spent")
        # the SDK retries within one call: every attempt's timeout fits what is left of the budget
        attempts = self.settings.llm_max_retries + 1
        timeout_s = min(self.settings.llm_timeout_s, self.remaining_s() / attempts)
        started = time.monotonic()
        try:
            result = self.provider.complete(system, messages, tools=tools, json_schema=json_schema,
                                            timeout_s=timeout_s, max_output_tokens=max_output_tokens)
        except LlmError as exc:
            elapsed = time.monotonic() - started
            self._record(purpose, prompt_version, 0, 0, elapsed, exc.kind)
            log.warning("llm call failed: %s (%s, %.0f ms)", exc.kind, purpose, elapsed * 1000)
            if exc.kind in BREAKER_COUNTED:
                breaker.record_failure(self.conn, self.circuit, time.time(), policy_of(self.settings))
            raise
        self._record(purpose, prompt_version, result.tokens_in, result.tokens_out, time.monotonic() - started, "ok",
                     result.model)
        breaker.record_success(self.conn, self.circuit)
        return result

    def mark_last(self, outcome: str) -> None:
        """Change the outcome of the last call (e.g. `guard` when its answer was refused, `bad_output`)."""
        if self.calls:
            last = self.calls[-1]
            self.calls[-1] = costs.LlmCall(last.provider, last.model, last.purpose, last.prompt_version,
                                           last.tokens_in, last.tokens_out, last.latency_ms, last.cost_usd, outcome)

    def _record(self, purpose: str, prompt_version: str, tokens_in: int, tokens_out: int, elapsed_s: float,
                outcome: str, model: str = "") -> None:
        self.calls.append(costs.LlmCall(
            provider=self.provider.name, model=model or self.provider.model, purpose=purpose,
            prompt_version=prompt_version, tokens_in=tokens_in, tokens_out=tokens_out,
            latency_ms=int(elapsed_s * 1000), cost_usd=costs.price(self.settings, tokens_in, tokens_out),
            outcome=outcome))
