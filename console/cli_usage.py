"""`encargo-admin` commands for plans and usage (the provider's side).

    encargo-admin usage --month 2026-12 [--tenant slug] [--csv FILE|-]
        The month's usage per tenant (months on each tenant's clock): a short table, or CSV with one row
        per tenant, a header row, one column per figure (storage/usage.py says what each counts), plain
        numbers and dollars with 4 decimals, then the tenant's plan and the limits it went over
        ("llm_usd:rules_only"). `--csv -` writes to standard output.
    encargo-admin plans-list
        The plans, their features, monthly limits, overage rule and prices.
    encargo-admin plan-set --tenant slug --plan scale
        Put a tenant on a plan (the running workers follow it within about a second).

Exit status: 0 done, 1 refused (unknown tenant or plan, bad month), 2 bad configuration.
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

import redis
from psycopg import Connection

from config import settings_or_exit
from notifications import tenant_templates
from storage import plans, usage
from storage.db import open_pool

Handler = Callable[[argparse.Namespace], int]
# The short table's columns: (header, figure).
TABLE = (("tenant", "tenant"), ("plan", "plan"), ("conv", "bot_conversations"), ("in", "customer_messages"),
         ("bot", "bot_replies"), ("agent", "agent_replies"), ("notif", "notifications"),
         ("util", "templates_utility"), ("util free", "templates_utility_free"), ("mkt", "templates_marketing"),
         ("auth", "templates_authentication"), ("esc", "escalations"), ("llm", "llm_calls"),
         ("tokens", "llm_tokens"), ("usd", "llm_usd"), ("over", "over_limits"))


def register(commands: Any) -> None:
    """Add `usage`, `plans-list` and `plan-set` to encargo-admin's subcommands; each runs `args.run(args)`."""
    show = commands.add_parser("usage", help="usage per tenant for a month (table or CSV)")
    show.add_argument("--month", required=True, help="YYYY-MM, on each tenant's clock")
    show.add_argument("--tenant", help="one tenant's slug (default: every tenant)")
    show.add_argument("--csv", metavar="FILE", help="write CSV to FILE ('-': standard output)")
    show.set_defaults(run=usage_command)
    listing = commands.add_parser("plans-list", help="the plans: features, limits, overage rule, prices")
    listing.set_defaults(run=plans_command)
    change = commands.add_parser("plan-set", help="put a tenant on a plan")
    change.add_argument("--tenant", required=True)
    change.add_argument("--plan", required=True)
    change.set_defaults(run=plan_set_command)


def usage_command(args: argparse.Namespace) -> int:
    try:
        month = usage.Month.parse(args.month)
    except ValueError as exc:
        return _refuse(str(exc))
    with _connection() as conn:
        chosen = [(i, s) for i, s in usage.tenants(conn) if args.tenant in (None, s)]
        if not chosen:
            return _refuse(f"no tenant {args.tenant!r}")
        rows = [month_row(conn, tenant_id, slug, month) for tenant_id, slug in chosen]
    if args.csv is None:
        _table(rows)
    elif args.csv == "-":
        write_csv(sys.stdout, rows)
    else:
        with Path(args.csv).open("w", newline="", encoding="utf-8") as out:
            write_csv(out, rows)
        _say(f"{len(rows)} tenant(s) written to {args.csv}")
    return 0


def month_row(conn: Connection[Any], tenant_id: int, slug: str, month: usage.Month) -> dict[str, Any]:
    """One tenant's month: every figure, its plan, and the limits it went over with the plan's rule."""
    categories = tenant_templates.categories(conn, tenant_id, slug)  # its rows' and its templates.yaml's
    figures = usage.month_usage(conn, tenant_id, month, categories)
    plan = plans.plan_of(conn, tenant_id)
    over = usage.exceeded(plan, figures)
    return {**figures.figures(), "plan": plan.code,
            "over_limits": " ".join(f"{o.limit}:{o.rule}" for o in over)}


def write_csv(out: IO[str], rows: list[dict[str, Any]]) -> None:
    """Header row, then one row per tenant; dollars with 4 decimals, other figures as plain integers."""
    if not rows:
        return
    writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _plain(v) for k, v in row.items()})


def plans_command(args: argparse.Namespace) -> int:
    with _connection() as conn:
        for plan in plans.all_plans(conn):
            included = ", ".join(sorted(name for name, on in plan.features.items() if on)) or "-"
            limits = ", ".join(f"{k}={_amount(v)}" for k, v in sorted(plan.limits.items()))
            prices = ", ".join(f"{k}={_amount(v)}" for k, v in sorted(plan.prices.items()))
            _say(f"{plan.code} ({plan.name}): features {included}; limits {limits or '-'};"
                 f" over a limit: {plan.overage}; prices {prices or '-'}")
    return 0


def plan_set_command(args: argparse.Namespace) -> int:
    """The new plan is announced (storage.tenant_changes): the workers follow it within about a second."""
    settings = settings_or_exit("encargo-admin")
    announcer = redis.Redis.from_url(settings.redis_url, socket_timeout=2, socket_connect_timeout=1)
    with _connection() as conn, closing(announcer):
        try:
            plan = plans.set_plan(conn, args.tenant, args.plan, announcer)
        except plans.UnknownPlan:
            codes = ", ".join(p.code for p in plans.all_plans(conn))
            return _refuse(f"no plan {args.plan!r} (plans: {codes})")
        except plans.UnknownTenant:
            return _refuse(f"no tenant {args.tenant!r}")
    _say(f"{args.tenant}: plan {plan.code} ({plan.name})")
    return 0


@contextmanager
def _connection() -> Iterator[Connection[Any]]:
    settings = settings_or_exit("encargo-admin")
    pool = open_pool(settings.database_url, max_size=1, name="admin")
    try:
        pool.wait(timeout=10)
        with pool.connection() as conn:
            yield conn
    finally:
        pool.close()


def _table(rows: list[dict[str, Any]]) -> None:
    cells = [[h for h, _ in TABLE]]
    for row in rows:
        row = {**row, "llm_tokens": row["llm_tokens_in"] + row["llm_tokens_out"]}
        cells.append([_plain(row[figure]) or "-" for _, figure in TABLE])
    widths = [max(len(line[i]) for line in cells) for i in range(len(TABLE))]
    for line in cells:
        _say("  ".join(cell.rjust(width) if n else cell.ljust(width)
                       for n, (cell, width) in enumerate(zip(line, widths, strict=True))).rstrip())


def _plain(value: Any) -> str:
    if isinstance(value, Decimal):
        return f"{value:.4f}"
    return str(value)


def _amount(value: Decimal | None) -> str:
    return "unlimited" if value is None else f"{value.normalize():f}"


def _say(text: str) -> None:
    print(text)  # noqa: T201 - a command-line tool talks to its operator


def _refuse(why: str) -> int:
    _say(f"encargo-admin: {why}")
    return 1
