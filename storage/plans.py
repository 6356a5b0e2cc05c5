"""Plans: what a tenant's subscription includes and allows, kept as data (table `plans`, design section 7.3).

A plan has `features` (flags such as `chatbot`, `ai`, `api_access`), monthly
`limits` (`bot_conversations`, `llm_usd`; absent or null: no limit), an
`overage` rule and the price list. Migration 0012 seeds Starter (no chatbot),
Pro (the WhatsApp chatbot with AI, advanced analytics, reports) and Scale (Pro
plus premium answers, API access, white-label, executive reports); every
tenant has a `plan_code`, 'pro' unless changed with `set_plan`.

The overage rule says what going over a limit does: `flag` keeps serving and
shows the overage to the operator; `rules_only` keeps serving with the rules
alone (no model calls). Neither ever leaves a customer without an answer.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any

import redis
from psycopg import Connection

from storage import tenant_changes

FLAG = "flag"
RULES_ONLY = "rules_only"


class UnknownPlan(LookupError):
    """No plan with that code."""


class UnknownTenant(LookupError):
    """No tenant with that slug or id."""


@dataclass(frozen=True)
class Plan:
    code: str
    name: str
    features: dict[str, bool] = field(default_factory=dict)
    limits: dict[str, Decimal | None] = field(default_factory=dict)
    overage: str = FLAG
    prices: dict[str, Decimal | None] = field(default_factory=dict)

    def has(self, feature: str) -> bool:
        """Whether the plan includes `feature` (an unknown feature is not included)."""
        return bool(self.features.get(feature, False))

    def limit(self, name: str) -> Decimal | None:
        """The monthly limit called `name`; None when the plan sets none (unlimited)."""
        return self.limits.get(name)


_COLUMNS = "p.code, p.name, p.features, p.limits, p.overage, p.prices"


def all_plans(conn: Connection[Any]) -> list[Plan]:
    """Every plan, cheapest first."""
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM plans p ORDER BY (p.prices->>'monthly_usd')::numeric NULLS LAST, p.code"  # noqa: S608
    ).fetchall()
    return [_plan(row) for row in rows]


def plan(conn: Connection[Any], code: str) -> Plan:
    """The plan `code`; raises UnknownPlan."""
    row = conn.execute(f"SELECT {_COLUMNS} FROM plans p WHERE p.code = %s", (code,)).fetchone()  # noqa: S608
    if row is None:
        raise UnknownPlan(code)
    return _plan(row)


def plan_of(conn: Connection[Any], tenant_id: int) -> Plan:
    """The plan tenant `tenant_id` is on, as it applies to that tenant; raises UnknownTenant.

    A tenant's own monthly LLM budget (`tenants.llm_monthly_usd`, storage/tenant_llm.py) stands in for
    the plan's `llm_usd` limit, so the bot's rules (runtime/plan_terms.py) and the operator's overages
    (storage/usage.py) both follow it. `plan(conn, code)` is the plan as sold.
    """
    row = conn.execute(
        f"SELECT {_COLUMNS}, t.llm_monthly_usd FROM tenants t JOIN plans p ON p.code = t.plan_code"  # noqa: S608
        " WHERE t.id = %s",
        (tenant_id,),
    ).fetchone()
    if row is None:
        raise UnknownTenant(str(tenant_id))
    found = _plan(row)
    if row["llm_monthly_usd"] is not None:
        found = replace(found, limits={**found.limits, "llm_usd": _number(row["llm_monthly_usd"])})
    return found


def set_plan(conn: Connection[Any], tenant_slug: str, code: str, redis_conn: redis.Redis | None = None) -> Plan:
    """Put the tenant on plan `code` (from now on: usage already counted is not re-priced); returns the plan.

    With `redis_conn` the change is announced (`storage.tenant_changes`): the workers follow the new
    plan within about a second. Raises UnknownPlan or UnknownTenant and changes nothing then.
    """
    new = plan(conn, code)
    updated = conn.execute("UPDATE tenants SET plan_code = %s, updated_at = now() WHERE slug = %s",
                           (code, tenant_slug)).rowcount
    if not updated:
        raise UnknownTenant(tenant_slug)
    if redis_conn is not None:
        conn.commit()  # announced only once the change is visible to the processes that re-read it
        tenant_changes.announce(redis_conn)
    return new


def _plan(row: Any) -> Plan:
    return Plan(
        code=row["code"], name=row["name"],
        features={str(k): bool(v) for k, v in (row["features"] or {}).items()},
        limits={str(k): _number(v) for k, v in (row["limits"] or {}).items()},
        overage=row["overage"],
        prices={str(k): _number(v) for k, v in (row["prices"] or {}).items()},
    )


def _number(value: Any) -> Decimal | None:
    """A JSON number as an exact Decimal (0.025 stays 0.025); null stays None."""
    return None if value is None else Decimal(str(value))
