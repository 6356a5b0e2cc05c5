"""Whether a tenant's plan lets the bot call the language model now (the plan's AI feature and LLM budget).

The model is used when the tenant's plan includes `ai`, unless the plan's
overage rule is `rules_only` and the month's model dollars (the calendar
month on the tenant's clock, `storage.usage.llm_spend`) have reached the
plan's `llm_usd` limit. Then the bot answers with the rules alone, as when no
provider is configured: the customer always gets an answer. Under the `flag`
rule the model keeps being called and the operator sees the overage
(`encargo-admin usage`).

The answer is cached per connection pool, so per process, for `CACHE_TTL_S`
seconds: no database round trip per message. A change of plan, or a spend that
crosses the budget, takes effect within that time (a burst may overshoot the
budget by what it spends meanwhile).

Failure policy: database errors raise (the worker's job is retried).
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Callable

from psycopg_pool import ConnectionPool

from storage import plans, usage

log = logging.getLogger(__name__)

CACHE_TTL_S = 60.0

_cache: weakref.WeakKeyDictionary[ConnectionPool, dict[int, tuple[float, bool]]] = weakref.WeakKeyDictionary()
_lock = threading.Lock()


def model_allowed(pool: ConnectionPool, tenant_id: int, *, clock: Callable[[], float] = time.monotonic) -> bool:
    """True when the tenant's plan lets the bot call the model now (cached `CACHE_TTL_S` seconds)."""
    now = clock()
    with _lock:
        known = _cache.setdefault(pool, {}).get(tenant_id)
    if known is not None and known[0] > now:
        return known[1]
    allowed = _decide(pool, tenant_id)
    with _lock:
        _cache.setdefault(pool, {})[tenant_id] = (now + CACHE_TTL_S, allowed)
    return allowed


def _decide(pool: ConnectionPool, tenant_id: int) -> bool:
    with pool.connection() as conn:
        plan = plans.plan_of(conn, tenant_id)
        if not plan.has("ai"):
            return False
        budget = plan.limit("llm_usd")
        if plan.overage != plans.RULES_ONLY or budget is None:
            return True
        spent = usage.llm_spend(conn, tenant_id, usage.current_month(conn, tenant_id))
    if spent >= budget:
        log.warning("llm budget spent: rules only until the month ends or the plan changes",
                    extra={"tenant_id": tenant_id, "plan": plan.code})
        return False
    return True
