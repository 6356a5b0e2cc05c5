"""The operations figures (issue 16): the read API every dashboard, report and e-mail uses.

`operations(conn, tenant_ids, start, end, tz)` gives one range's figures (volume, quality against the
design's targets, intents, cost) for some companies or, with `tenant_ids=None`, every company (the
operator); `series(...)` gives one figure hour by hour or day by day. Both read the rollups the
scheduler keeps (storage/metric_rollups.py). `recount(...)` computes the same `Operations` straight
from the raw tables (storage/metric_counts.py): the tests and bench/dashboard.py compare the two.

Ranges are whole hours: `start` and `end` are aware datetimes on an hour boundary (a day on a
company's clock is one, America/El_Salvador being UTC-6); anything else raises ValueError. Every
figure is defined once in docs/METRICS.md; the Spanish label and tooltip of each are in
storage/metric_texts.py. Read-only; database errors raise.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal
from zoneinfo import ZoneInfo

from psycopg import Connection

from storage import metric_counts, metric_rollups
from storage.metric_counts import RESPONSE_EDGES_MS, Sla, Tally

Step = Literal["hour", "day"]

# The design's targets (section 11.1.2): resolution > 75 %, escalation < 20 %, not understood < 10 %,
# bot response < 2 s; agents' first response within the SLA (CONSOLE_SLA_*_S).
RESOLUTION_TARGET = 0.75
ESCALATION_TARGET = 0.20
NOT_UNDERSTOOD_TARGET = 0.10
RESPONSE_TARGET_S = 2.0
TOP_INTENTS = 8

# What `series` can draw, by name.
METRICS = ("conversations", "customer_messages", "unique_customers", "notifications", "resolution_rate",
           "escalation_rate", "not_understood_rate", "response_p50_s", "response_p95_s", "csat_average",
           "first_response_in_sla_rate", "llm_usd", "templates")


@dataclass(frozen=True)
class Rate:
    """numerator / denominator against a target: `above` says the value must be over it (else under)."""

    numerator: int
    denominator: int
    target: float
    above: bool

    @property
    def value(self) -> float | None:
        """The share (0..1); None when nothing was counted (no denominator)."""
        return self.numerator / self.denominator if self.denominator else None

    @property
    def met(self) -> bool | None:
        value = self.value
        if value is None:
            return None
        return value > self.target if self.above else value < self.target


@dataclass(frozen=True)
class Volume:
    conversations: int  # 24-hour sessions customers opened (storage/usage.py's bot_conversations)
    customer_messages: int
    unique_customers: int
    notifications: int  # proactive notifications the provider took


@dataclass(frozen=True)
class ResponseTime:
    """The bot's first reply to a customer message: webhook arrival to the provider accepting it."""

    replies: int
    p50_s: float | None  # upper edge of the histogram bucket holding the median (docs/METRICS.md)
    p95_s: float | None
    target_s: float = RESPONSE_TARGET_S

    @property
    def met(self) -> bool | None:
        return None if self.p95_s is None else self.p95_s <= self.target_s


@dataclass(frozen=True)
class Csat:
    """Ratings on one scale: 5 (the bot asks after an exchange) or 10 (after a case an agent resolved)."""

    scale: int
    ratings: int
    average: float | None
    distribution: tuple[int, ...]  # distribution[i] = ratings of score i + 1


@dataclass(frozen=True)
class FirstResponse:
    """Agents' first reply to a case, from the case's clock start (its opening, or a callback's due time)."""

    answered: int
    average_s: float | None
    within_sla: Rate  # target: every case (1.0 means all answered within the SLA)


@dataclass(frozen=True)
class Quality:
    resolution: Rate  # sessions without a case / sessions; target above 75 %
    escalation: Rate  # sessions with a case / sessions; target under 20 %
    not_understood: Rate  # messages the bot did not understand / messages the bot routed; under 10 %
    response_time: ResponseTime
    csat: tuple[Csat, ...]  # one per scale, 5 then 10
    first_response: FirstResponse


@dataclass(frozen=True)
class IntentCount:
    intent: str
    messages: int
    share: float  # of the messages the bot routed to an intent


@dataclass(frozen=True)
class Intents:
    top: tuple[IntentCount, ...]  # most frequent first, at most TOP_INTENTS
    routed: int  # customer messages the bot routed (rules, model, fallback)
    by_rules: int  # decided by the rules (regex or keyword stage)
    by_llm: int  # decided by the language model

    @property
    def rules_share(self) -> float | None:
        return self.by_rules / self.routed if self.routed else None

    @property
    def llm_share(self) -> float | None:
        return self.by_llm / self.routed if self.routed else None


@dataclass(frozen=True)
class Cost:
    templates_marketing: int
    templates_utility: int  # charged: sent outside the customer's 24-hour window
    templates_utility_free: int  # inside the window: free since July 2025
    templates_authentication: int
    templates_uncategorised: int
    llm_calls: int
    llm_usd: Decimal
    conversations: int

    @property
    def templates(self) -> int:
        return (self.templates_marketing + self.templates_utility + self.templates_utility_free
                + self.templates_authentication + self.templates_uncategorised)

    @property
    def llm_usd_per_conversation(self) -> Decimal | None:
        return (self.llm_usd / self.conversations).quantize(Decimal("0.000001")) if self.conversations else None

    @property
    def templates_per_conversation(self) -> float | None:
        return self.templates / self.conversations if self.conversations else None


@dataclass(frozen=True)
class Operations:
    tenant_ids: tuple[int, ...] | None  # None: every company
    start: datetime
    end: datetime
    tz: str
    volume: Volume
    quality: Quality
    intents: Intents
    cost: Cost
    source: str  # "rollup" or "recount"


def operations(conn: Connection[Any], tenant_ids: Sequence[int] | None, start: datetime, end: datetime,
               tz: str) -> Operations:
    """The figures of [start, end) for `tenant_ids` (None: every company), from the rollups."""
    _check_range(start, end, tz)
    tally = metric_rollups.read_tally(conn, tenant_ids, start, end)
    customers = metric_rollups.unique_customers(conn, tenant_ids, start, end)
    return build(tally, customers, tenant_ids, start, end, tz, "rollup")


def recount(conn: Connection[Any], tenant_ids: Sequence[int] | None, start: datetime, end: datetime, tz: str,
            *, sla: Sla, categories: metric_counts.Categories) -> Operations:
    """The same figures computed from the raw tables (the reference the rollups must equal).

    `sla`: the first-response targets (settings CONSOLE_SLA_*_S); `categories`: each tenant's template
    name -> WhatsApp category mapping (notifications.tenant_templates.categories)."""
    _check_range(start, end, tz)
    hours = metric_counts.count_hours(conn, tenant_ids, start, end, sla=sla, categories=categories)
    customers = metric_counts.unique_customers(conn, tenant_ids, start, end)
    return build(Tally.total(hours.values()), customers, tenant_ids, start, end, tz, "recount")


def series(conn: Connection[Any], tenant_ids: Sequence[int] | None, start: datetime, end: datetime, tz: str,
           metric: str, step: Step) -> list[tuple[datetime, float | None]]:
    """`metric` (one of METRICS) for each hour or day (on the clock `tz`) of [start, end), from the rollups.

    Each point is (the step's first instant in `tz`, the value; None for a rate with nothing counted)."""
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}")
    _check_range(start, end, tz)
    sums = metric_rollups.read_steps(conn, tenant_ids, start, end, tz, step, metric)
    out: list[tuple[datetime, float | None]] = []
    for lower, upper in steps(start, end, tz, step):
        customers = metric_rollups.unique_customers(conn, tenant_ids, lower, upper) \
            if metric == "unique_customers" else 0
        bucket = sums.get(lower, Tally())
        out.append((lower, figure(build(bucket, customers, tenant_ids, lower, upper, tz, "rollup"), metric)))
    return out


def recount_series(conn: Connection[Any], tenant_ids: Sequence[int] | None, start: datetime, end: datetime,
                   tz: str, metric: str, step: Step, *, sla: Sla,
                   categories: metric_counts.Categories) -> list[tuple[datetime, float | None]]:
    """`series` from the raw tables (the tests' and the benchmark's reference)."""
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}")
    return [(lower, figure(recount(conn, tenant_ids, lower, upper, tz, sla=sla, categories=categories), metric))
            for lower, upper in steps(start, end, tz, step)]


def figure(ops: Operations, metric: str) -> float | None:
    """One named figure of `ops` as a number (what `series` plots)."""
    values: dict[str, Any] = {
        "conversations": ops.volume.conversations, "customer_messages": ops.volume.customer_messages,
        "unique_customers": ops.volume.unique_customers, "notifications": ops.volume.notifications,
        "resolution_rate": ops.quality.resolution.value, "escalation_rate": ops.quality.escalation.value,
        "not_understood_rate": ops.quality.not_understood.value,
        "response_p50_s": ops.quality.response_time.p50_s, "response_p95_s": ops.quality.response_time.p95_s,
        "csat_average": _csat_average_10(ops.quality.csat),
        "first_response_in_sla_rate": ops.quality.first_response.within_sla.value,
        "llm_usd": ops.cost.llm_usd, "templates": ops.cost.templates,
    }
    value = values[metric]
    return None if value is None else float(value)


def steps(start: datetime, end: datetime, tz: str, step: Step) -> list[tuple[datetime, datetime]]:
    """[start, end) cut into hours or days on the clock `tz` (a day is midnight to midnight there)."""
    zone = ZoneInfo(tz)
    out = []
    lower = start.astimezone(zone)
    while lower < end:
        if step == "hour":
            upper = lower + timedelta(hours=1)
        else:
            upper = datetime.combine(lower.date() + timedelta(days=1), datetime.min.time(), tzinfo=zone)
        upper = min(upper, end.astimezone(zone))
        out.append((lower, upper))
        lower = upper
    return out


def build(tally: Tally, customers: int, tenant_ids: Sequence[int] | None, start: datetime, end: datetime, tz: str,
          source: str) -> Operations:
    """The figures from summed counts (the same reduction for rollups and recount)."""
    t = tally
    p50, p95 = percentile(t.response_buckets, 0.50), percentile(t.response_buckets, 0.95)
    answered = t.first_responses
    return Operations(
        tenant_ids=tuple(sorted(tenant_ids)) if tenant_ids is not None else None, start=start, end=end, tz=tz,
        volume=Volume(conversations=t.conversations, customer_messages=t.customer_messages,
                      unique_customers=customers, notifications=t.notifications),
        quality=Quality(
            resolution=Rate(t.conversations - t.escalated_conversations, t.conversations, RESOLUTION_TARGET, True),
            escalation=Rate(t.escalated_conversations, t.conversations, ESCALATION_TARGET, False),
            not_understood=Rate(t.not_understood, t.routed, NOT_UNDERSTOOD_TARGET, False),
            response_time=ResponseTime(sum(t.response_buckets), p50, p95),
            csat=(_csat(5, t.csat5), _csat(10, t.csat10)),
            first_response=FirstResponse(
                answered, round(t.first_response_ms / answered / 1000, 1) if answered else None,
                Rate(t.first_responses_in_sla, answered, 1.0, False)),
        ),
        intents=Intents(top=_top(t.intents), routed=t.routed, by_rules=t.by_rules, by_llm=t.by_llm),
        cost=Cost(templates_marketing=t.templates_marketing, templates_utility=t.templates_utility,
                  templates_utility_free=t.templates_utility_free,
                  templates_authentication=t.templates_authentication,
                  templates_uncategorised=t.templates_uncategorised, llm_calls=t.llm_calls, llm_usd=t.llm_usd,
                  conversations=t.conversations),
        source=source,
    )


def percentile(buckets: Sequence[int], share: float) -> float | None:
    """The upper edge (seconds) of the bucket holding the `share` quantile; the last edge for the open bucket."""
    total = sum(buckets)
    if not total:
        return None
    rank = max(1, -(-round(share * 1000) * total // 1000))  # ceil(share * total), exactly for shares like 0.95
    seen = 0
    for index, count in enumerate(buckets):
        seen += count
        if seen >= rank:
            edge = RESPONSE_EDGES_MS[min(index, len(RESPONSE_EDGES_MS) - 1)]
            return edge / 1000
    raise AssertionError("unreachable: the rank is at most the total")


def _csat(scale: int, counts: Sequence[int]) -> Csat:
    ratings = sum(counts)
    total = sum((score + 1) * n for score, n in enumerate(counts))
    return Csat(scale, ratings, round(total / ratings, 2) if ratings else None, tuple(counts))


def _csat_average_10(scales: Sequence[Csat]) -> float | None:
    """Every rating on a 10-point scale (a 1-5 rating doubled), averaged: one line for the charts."""
    ratings = sum(c.ratings for c in scales)
    if not ratings:
        return None
    points = sum((score + 1) * n * (10 // c.scale) for c in scales for score, n in enumerate(c.distribution))
    return round(points / ratings, 2)


def _top(intents: dict[str, int]) -> tuple[IntentCount, ...]:
    total = sum(intents.values())
    ranked = sorted(intents.items(), key=lambda item: (-item[1], item[0]))[:TOP_INTENTS]
    return tuple(IntentCount(name, n, n / total) for name, n in ranked)


def _check_range(start: datetime, end: datetime, tz: str) -> None:
    ZoneInfo(tz)  # an unknown zone raises here
    for moment in (start, end):
        if moment.tzinfo is None or moment.utcoffset() is None:
            raise ValueError("the range's ends must carry a time zone")
        utc = moment.astimezone(UTC)
        if utc.minute or utc.second or utc.microsecond:
            raise ValueError("the range's ends must be whole hours")
    if end <= start:
        raise ValueError("the range must end after it starts")
