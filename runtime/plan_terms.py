"""What a tenant's plan lets the bot do now: converse at all, and call the language model.

Read from the tenant's plan as it applies to it (`storage.plans.plan_of`:
the plan's features and limits, with the tenant's own monthly LLM budget in
place of the plan's `llm_usd` when set, storage/tenant_llm.py):
- `chatbot` off (Starter): the bot does not converse; the company's people
  answer (chatbot/people_only.py);
- the model is used when the plan includes `ai`, unless the plan's overage
  rule is `rules_only` and either the month's model dollars (the calendar
  month on the tenant's clock, `storage.usage.llm_spend`) have reached the
  LLM budget, or the month's bot conversations (runtime/bot_sessions.py) went
  over the plan's `bot_conversations` limit. Then the bot answers with the
  rules alone, as when no provider is configured: the customer always gets
  an answer. Under the `flag` rule the model keeps being called and the
  operator sees the overage (`encargo-admin usage`, `storage.usage.overages`).

Each process's `Runtime` holds one `PlanTerms` (`rt.plans`); a process
without a Runtime (the console) builds its own. The terms are kept in a
`storage.tenant_changes.TenantCache`: a
plan change (`encargo-admin plan-set`) or a new budget is followed within
about a second, and the month's model dollars are read again every
`SPEND_CHECK_S` (a spend that crosses the budget is seen within that time; a
burst may overshoot the budget by what it spends meanwhile). No database
round trip per message.

Failure policy: database errors raise (the worker's job is retried).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from decimal import Decimal

import redis
from psycopg_pool import ConnectionPool

from storage import plans, usage
from storage.tenant_changes import TenantCache

log = logging.getLogger(__name__)

SPEND_CHECK_S = 60.0


@dataclass(frozen=True)
class Terms:
    """One tenant's plan as the bot obeys it, at the time it was read."""

    plan: str
    chatbot: bool  # the bot converses (else the company's people answer every message)
    ai: bool  # the plan includes the model
    overage: str  # plans.FLAG | plans.RULES_ONLY
    conversations_limit: Decimal | None  # bot conversations a month (None: no limit)
    llm_spent: bool  # the month's model dollars reached the LLM budget

    def model_allowed(self, conversations: int | None) -> bool:
        """Whether the bot may call the model, this month's bot conversations being `conversations`
        (None: not known, no limit enforced)."""
        if not (self.chatbot and self.ai):
            return False
        if self.overage != plans.RULES_ONLY:
            return True
        if self.llm_spent:
            return False
        return conversations is None or self.conversations_limit is None or conversations <= self.conversations_limit

    def over_conversations(self, conversations: int | None) -> bool:
        return conversations is not None and self.conversations_limit is not None \
            and conversations > self.conversations_limit


class PlanTerms:
    """Each tenant's `Terms`, cached for the life of the process (see the module docstring). Thread-safe."""

    def __init__(self, pool: ConnectionPool, redis_conn: redis.Redis) -> None:
        self._pool = pool
        self._cache: TenantCache[int, Terms] = TenantCache(redis_conn, self.read, ttl_s=SPEND_CHECK_S)

    def terms(self, tenant_id: int) -> Terms:
        return self._cache.get(tenant_id)

    def read(self, tenant_id: int) -> Terms:
        with self._pool.connection() as conn:
            plan = plans.plan_of(conn, tenant_id)
            budget = plan.limit("llm_usd")
            spent = False
            if plan.has("ai") and plan.overage == plans.RULES_ONLY and budget is not None:
                spent = usage.llm_spend(conn, tenant_id, usage.current_month(conn, tenant_id)) >= budget
        if spent:
            log.warning("llm budget spent: rules only until the month ends or the plan or budget changes",
                        extra={"tenant_id": tenant_id, "plan": plan.code})
        return Terms(plan=plan.code, chatbot=plan.has("chatbot"), ai=plan.has("ai"), overage=plan.overage,
                     conversations_limit=plan.limit("bot_conversations"), llm_spent=spent)
