"""Cost accounting: every model call, priced from the configured per-token prices, per conversation and tenant.

A call is an `LlmCall` (provider, model, purpose, prompt version, tokens
in/out, latency, cost, outcome). The engine returns the calls made for one
message in its `Outcome`, and the worker stores them with `store` in the
same transaction as the replies; jobs (summary, analysis) store theirs
directly. Rows never hold message text. Callers hold the transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from psycopg import Connection
from psycopg.rows import tuple_row

from config import Settings

MILLION = 1_000_000


@dataclass(frozen=True)
class LlmCall:
    provider: str
    model: str
    purpose: str  # route | answer | summary | analysis
    prompt_version: str
    tokens_in: int
    tokens_out: int
    latency_ms: int
    cost_usd: float
    outcome: str  # ok | timeout | unavailable | refused | bad_output | guard | skipped

    def as_event(self) -> dict[str, Any]:
        return {"provider": self.provider, "model": self.model, "purpose": self.purpose,
                "prompt_version": self.prompt_version, "tokens_in": self.tokens_in, "tokens_out": self.tokens_out,
                "latency_ms": self.latency_ms, "cost_usd": self.cost_usd, "outcome": self.outcome}


def price(settings: Settings, tokens_in: int, tokens_out: int) -> float:
    """USD for one call at the configured prices (per million tokens)."""
    return round((tokens_in * settings.llm_price_in_per_mtok + tokens_out * settings.llm_price_out_per_mtok)
                 / MILLION, 8)


def store(conn: Connection[Any], *, tenant_id: int | None, conversation_id: int | None,
          calls: list[LlmCall]) -> None:
    """Insert the calls (nothing for an empty list)."""
    if not calls:
        return
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO llm_calls (tenant_id, conversation_id, provider, model, purpose, prompt_version, tokens_in,"
            " tokens_out, latency_ms, cost_usd, outcome) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            [(tenant_id, conversation_id, c.provider, c.model, c.purpose, c.prompt_version, c.tokens_in,
              c.tokens_out, c.latency_ms, Decimal(str(c.cost_usd)), c.outcome) for c in calls],
        )


@dataclass(frozen=True)
class CostTotals:
    calls: int
    tokens_in: int
    tokens_out: int
    cost_usd: float
    conversations: int

    @property
    def per_conversation(self) -> float:
        return self.cost_usd / self.conversations if self.conversations else 0.0


def tenant_totals(conn: Connection[Any], tenant_id: int, since: datetime | None = None) -> CostTotals:
    """What one tenant's model calls cost (since a moment, or ever)."""
    row = conn.cursor(row_factory=tuple_row).execute(
        "SELECT count(*), coalesce(sum(tokens_in), 0), coalesce(sum(tokens_out), 0), coalesce(sum(cost_usd), 0),"
        " count(DISTINCT conversation_id) FROM llm_calls WHERE tenant_id = %s"
        " AND (%s::timestamptz IS NULL OR created_at >= %s)",
        (tenant_id, since, since),
    ).fetchone()
    assert row is not None
    return CostTotals(int(row[0]), int(row[1]), int(row[2]), float(row[3]), int(row[4]))


def conversation_cost(conn: Connection[Any], conversation_id: int) -> float:
    row = conn.cursor(row_factory=tuple_row).execute(
        "SELECT coalesce(sum(cost_usd), 0) FROM llm_calls WHERE conversation_id = %s", (conversation_id,)).fetchone()
    return float(row[0]) if row else 0.0
