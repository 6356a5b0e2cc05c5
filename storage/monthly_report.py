"""The executive monthly report's figures (issue 16, design 11.4.2): one calendar month against the one before.

Every operations figure comes from `storage.metrics.operations` (the rollups); what is specific to the
report is computed here and defined in docs/METRICS.md ("Monthly report"):

- adoption: companies (active tenants) and those whose plan includes the chatbot (plan feature `chatbot`,
  storage/plans.py: the plan as it is now, plans keep no history), companies with at least one conversation
  in the month and in the month before, conversations and unique customers with their change;
- operational impact: calls avoided = conversations resolved without a person x `calls_per_resolved`
  (setting REPORT_CALLS_PER_RESOLVED, 1.0: one phone call avoided per resolved conversation, an assumption
  the page states);
- cost per conversation: WhatsApp templates priced by category (`Prices`, settings WHATSAPP_PRICE_*_USD;
  utility templates inside the customer's 24-hour window are free; a template of no known category is priced
  as marketing, the dearest) plus the model's dollars, over the month's conversations, against the
  design's target of under $0.02;
- improvement cases: the month's escalations by reason (escalations.reason; `no_chatbot`, a company
  without the bot, is not the bot's failure and is left out) and the escalation analyses (llm/analysis.py)
  by category and reason, with the model's latest suggestion.

A month runs from midnight of its first day to midnight of the next on `tz` (a company's clock for its
report, the deployment's for every company together). Read-only; database errors raise.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from psycopg import Connection
from psycopg.rows import tuple_row

from storage import metrics
from storage.usage import Month

COST_TARGET_USD = Decimal("0.02")  # design 11.4.2: cost per conversation under $0.02
NOT_THE_BOTS = ("no_chatbot",)  # escalation reasons that are not a failure of the bot
TOP_CASES = 5


@dataclass(frozen=True)
class Prices:
    """Dollars per template message the provider charges, by WhatsApp category (settings WHATSAPP_PRICE_*)."""

    marketing: Decimal
    utility: Decimal
    authentication: Decimal

    def templates_usd(self, cost: metrics.Cost) -> Decimal:
        """What the month's templates cost: free utility ones cost nothing, uncategorised ones as marketing."""
        return (cost.templates_marketing * self.marketing + cost.templates_utility * self.utility
                + cost.templates_authentication * self.authentication
                + cost.templates_uncategorised * self.marketing)


@dataclass(frozen=True)
class Change:
    """A count this month and the month before."""

    current: int
    previous: int

    @property
    def ratio(self) -> float | None:
        """(current - previous) / previous; None when the month before had none."""
        return (self.current - self.previous) / self.previous if self.previous else None


@dataclass(frozen=True)
class Adoption:
    companies: int  # active companies in the report (1 for a company's own report)
    with_chatbot: int  # of them, on a plan that includes the chatbot now
    using: Change  # of them, companies with at least one conversation in the month
    conversations: Change
    unique_customers: Change


@dataclass(frozen=True)
class CostSummary:
    prices: Prices
    templates_usd: Decimal
    llm_usd: Decimal
    conversations: int

    @property
    def total_usd(self) -> Decimal:
        return self.templates_usd + self.llm_usd

    @property
    def per_conversation(self) -> Decimal | None:
        return (self.total_usd / self.conversations).quantize(Decimal("0.0001")) if self.conversations else None

    @property
    def met(self) -> bool | None:
        per = self.per_conversation
        return None if per is None else per < COST_TARGET_USD


@dataclass(frozen=True)
class ReasonCount:
    reason: str  # escalations.reason
    count: int
    share: float  # of the month's escalations by the bot (NOT_THE_BOTS left out)


@dataclass(frozen=True)
class AnalysisGroup:
    """Analysed escalations of one category and reason (llm/analysis.py's JSON)."""

    category: str
    reason: str
    count: int
    unnecessary: int  # the model judged a person was not needed
    suggestion: str  # the latest analysis' suggestion
    example: str  # its example query (phones masked): the company's own report only


@dataclass(frozen=True)
class CompanyRow:
    """One company's month in the report over every company."""

    tenant_id: int
    slug: str
    name: str
    chatbot: bool
    operations: metrics.Operations
    cost: CostSummary


@dataclass(frozen=True)
class MonthlyReport:
    month: Month | None  # None: another range (the weekly e-mail's week)
    tz: str
    tenant_ids: tuple[int, ...] | None  # None: every company
    current: metrics.Operations
    previous: metrics.Operations
    adoption: Adoption
    cost: CostSummary
    previous_cost: CostSummary
    calls_per_resolved: float
    reasons: tuple[ReasonCount, ...]
    analyses: tuple[AnalysisGroup, ...]
    companies: tuple[CompanyRow, ...]  # each active company's month, by name

    @property
    def calls_avoided(self) -> int:
        """Conversations resolved without a person x the calls each one avoids, rounded down."""
        return int(self.current.quality.resolution.numerator * self.calls_per_resolved)

    @property
    def calls_avoided_previous(self) -> int:
        return int(self.previous.quality.resolution.numerator * self.calls_per_resolved)


def previous_month(month: Month) -> Month:
    return Month(month.year - 1, 12) if month.month == 1 else Month(month.year, month.month - 1)


def monthly(conn: Connection[Any], tenant_ids: Sequence[int] | None, month: Month, tz: str, *, prices: Prices,
            calls_per_resolved: float) -> MonthlyReport:
    """The report of `month` on the clock `tz` for `tenant_ids` (None: every company), against the month before."""
    start, end = month.bounds(tz)
    before = previous_month(month).bounds(tz)
    return period_report(conn, tenant_ids, (start, end), before, tz, prices=prices,
                         calls_per_resolved=calls_per_resolved, month=month)


def period_report(conn: Connection[Any], tenant_ids: Sequence[int] | None, span: tuple[datetime, datetime],
                  before: tuple[datetime, datetime], tz: str, *, prices: Prices, calls_per_resolved: float,
                  month: Month | None = None) -> MonthlyReport:
    """The same figures for any range `span` against `before` (the weekly e-mail's week against the one before),
    with one row per active company, each on the same clock `tz` so that the rows add up to the total."""
    (start, end), (before_start, before_end) = span, before
    current = metrics.operations(conn, tenant_ids, start, end, tz)
    previous = metrics.operations(conn, tenant_ids, before_start, before_end, tz)
    companies = _companies(conn, tenant_ids)
    rows, using_before = [], 0
    for tenant_id, slug, name, chatbot in companies:
        figures = metrics.operations(conn, [tenant_id], start, end, tz)
        rows.append(CompanyRow(tenant_id, slug, name, chatbot, figures, cost_of(figures.cost, prices)))
        earlier = metrics.operations(conn, [tenant_id], before_start, before_end, tz)
        using_before += earlier.volume.conversations > 0
    adoption = Adoption(
        companies=len(companies), with_chatbot=sum(1 for c in companies if c[3]),
        using=Change(sum(1 for r in rows if r.operations.volume.conversations), using_before),
        conversations=Change(current.volume.conversations, previous.volume.conversations),
        unique_customers=Change(current.volume.unique_customers, previous.volume.unique_customers))
    return MonthlyReport(
        month=month, tz=tz, tenant_ids=tuple(sorted(tenant_ids)) if tenant_ids is not None else None,
        current=current, previous=previous, adoption=adoption, cost=cost_of(current.cost, prices),
        previous_cost=cost_of(previous.cost, prices), calls_per_resolved=calls_per_resolved,
        reasons=tuple(escalation_reasons(conn, tenant_ids, start, end)),
        analyses=tuple(analysis_groups(conn, tenant_ids, start, end)), companies=tuple(rows))


def cost_of(cost: metrics.Cost, prices: Prices) -> CostSummary:
    return CostSummary(prices=prices, templates_usd=prices.templates_usd(cost), llm_usd=cost.llm_usd,
                       conversations=cost.conversations)


def escalation_reasons(conn: Connection[Any], tenant_ids: Sequence[int] | None, start: datetime, end: datetime,
                       limit: int = TOP_CASES) -> list[ReasonCount]:
    """The range's escalations by the bot, by reason, most frequent first (at most `limit`)."""
    found = conn.cursor(row_factory=tuple_row).execute(
        "SELECT reason, count(*) FROM escalations WHERE created_at >= %(start)s AND created_at < %(end)s"
        " AND (%(tenants)s::int[] IS NULL OR tenant_id = ANY(%(tenants)s)) AND NOT reason = ANY(%(skip)s)"
        " GROUP BY reason ORDER BY count(*) DESC, reason",
        {"start": start, "end": end, "tenants": _ids(tenant_ids), "skip": list(NOT_THE_BOTS)}).fetchall()
    total = sum(int(n) for _, n in found)
    return [ReasonCount(str(reason), int(n), int(n) / total) for reason, n in found[:limit]]


def analysis_groups(conn: Connection[Any], tenant_ids: Sequence[int] | None, start: datetime, end: datetime,
                    limit: int = TOP_CASES) -> list[AnalysisGroup]:
    """Analyses of the range's escalations by (category, reason), largest first, with the latest suggestion."""
    found = conn.cursor(row_factory=tuple_row).execute(
        """
        SELECT a.analysis->>'category', a.analysis->>'escalation_reason', count(*),
               count(*) FILTER (WHERE a.analysis->>'was_necessary' = 'false'),
               (array_agg(a.analysis->>'suggestion' ORDER BY a.created_at DESC, a.id DESC))[1],
               (array_agg(a.analysis->>'example_query' ORDER BY a.created_at DESC, a.id DESC))[1]
        FROM escalation_analyses a JOIN escalations e ON e.id = a.escalation_id
        WHERE e.created_at >= %(start)s AND e.created_at < %(end)s
          AND (%(tenants)s::int[] IS NULL OR e.tenant_id = ANY(%(tenants)s)) AND NOT e.reason = ANY(%(skip)s)
        GROUP BY 1, 2 ORDER BY count(*) DESC, 1, 2 LIMIT %(limit)s
        """,
        {"start": start, "end": end, "tenants": _ids(tenant_ids), "skip": list(NOT_THE_BOTS),
         "limit": limit}).fetchall()
    return [AnalysisGroup(str(cat or "otro"), str(reason or "otro"), int(n), int(unneeded), str(suggestion or ""),
                          str(example or "")) for cat, reason, n, unneeded, suggestion, example in found]


def _ids(tenant_ids: Sequence[int] | None) -> list[int] | None:
    return None if tenant_ids is None else [int(t) for t in tenant_ids]


def _companies(conn: Connection[Any], tenant_ids: Sequence[int] | None) -> list[tuple[int, str, str, bool]]:
    """(id, slug, name, has the chatbot) of the active companies in the report, by name."""
    found = conn.cursor(row_factory=tuple_row).execute(
        "SELECT t.id, t.slug, t.name, coalesce((p.features->>'chatbot')::boolean, false)"
        " FROM tenants t JOIN plans p ON p.code = t.plan_code"
        " WHERE t.status = 'active' AND (%(tenants)s::int[] IS NULL OR t.id = ANY(%(tenants)s)) ORDER BY t.name",
        {"tenants": _ids(tenant_ids)}).fetchall()
    return [(int(i), str(slug), str(name), bool(chatbot)) for i, slug, name, chatbot in found]
