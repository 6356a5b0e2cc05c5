"""The operations figures at scale (issue 16): page time from the rollups against the raw tables, and the
rollups' upkeep per message.

1. Generates (COPY, bench/dashboard_data.py) 1,000,000 messages in 100,000 conversations of 30 companies
   over the 30 days before the current hour, in a private PostgreSQL (bench.stack), and builds the rollups
   (storage/metric_rollups.refresh: the job's first run).
2. Reads, side by side in the same run: `metrics.operations` (rollups) and `metrics.recount` (raw tables)
   for a day, a week and a month (on El Salvador's clock), per company and for every company; and the
   figures the operations page asks for (the range, the one before it, a series: console/dashboard.py).
3. Keeps the rollups current as the scheduler does: a further `--live-minutes` of traffic at
   `--live-rate` messages/s is copied in, then the job runs once per simulated minute (its adds, and the
   heal when the hour turns), then once with a daily heal. CPU of the job (this process) and of
   PostgreSQL (its whole process tree) per message, against the pipeline's CPU per message.

    .venv/bin/python -m bench.dashboard                # full size (~15 min on 2 cores)
    .venv/bin/python -m bench.dashboard --scale 0.1    # 100,000 messages: checks that the script works

Prints Markdown tables; writes bench/results/dashboard.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
from psycopg.rows import dict_row

from bench.common import fmt, log, machine_info, percentile, table, tree_state, write_results
from bench.cpu import cpu_by_component
from bench.dashboard_data import generate, rows_between
from bench.stack import Stack, bench_env
from storage import metric_rollups, metrics
from storage.metric_counts import Sla, hour_of

TZ = "America/El_Salvador"
PIPELINE_CPU_MS = 13.76  # docs/BENCHMARKS.md, issue 14: total CPU per message of the pipeline (new code)
SLA = Sla()


def categories(_tenant: int) -> dict[str, str]:
    return {"envio_en_camino": "UTILITY", "envio_entregado": "UTILITY", "promo_navidad": "MARKETING"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="share of 1,000,000 messages and 100,000 "
                                                                  "conversations (the companies stay 30)")
    parser.add_argument("--repeat", type=int, default=5, help="reads of each range from the rollups")
    parser.add_argument("--sample", type=int, default=6, help="companies whose ranges are also recounted")
    parser.add_argument("--live-minutes", type=int, default=90)
    parser.add_argument("--live-rate", type=float, default=20.0, help="messages per second of live traffic")
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    with Stack(keep=args.keep) as stack:
        stack.start_services()
        with psycopg.connect(stack.database_url, autocommit=True) as conn:
            results = run(conn, stack, args)
    results.update(machine=machine_info(), tree=tree_state())
    log(f"results in {write_results('dashboard', results)}")


def run(conn: psycopg.Connection[Any], stack: Stack, args: argparse.Namespace) -> dict[str, Any]:
    pg_pid = stack.pids["postgres"]
    end = hour_of(datetime.now(UTC))
    start = end - timedelta(days=30)
    t0 = time.monotonic()
    made = generate(conn, _folder(), messages=round(1_000_000 * args.scale),
                    conversations=round(100_000 * args.scale), tenants=30, start=start, end=end)
    generated_s = time.monotonic() - t0
    log(f"generated {made.messages} messages, {made.conversations} conversations in {generated_s:.0f} s: {made.rows}")
    backfill = _job(conn, pg_pid, end + timedelta(minutes=1))
    log(f"rollups built in {backfill['wall_s']:.1f} s")

    reads = _reads(conn, made.tenants, end, args)
    pages = _real_pages(conn, stack, end, args)
    upkeep = _upkeep(conn, pg_pid, made.tenants, end, args)
    _report(made, generated_s, backfill, reads, pages, upkeep, args)
    return {"scale": args.scale, "messages": made.messages, "conversations": made.conversations, "rows": made.rows,
            "generated_s": round(generated_s, 1), "backfill": backfill, "reads": reads, "pages": pages,
            "upkeep": upkeep}


def _folder() -> Path:
    return Path(tempfile.mkdtemp(prefix="encargo-dashboard-"))


def _ranges(end: datetime) -> dict[str, tuple[datetime, datetime]]:
    """Yesterday, the last 7 days and the last 30 days, midnight to midnight in El Salvador."""
    midnight = datetime.combine(end.astimezone(ZoneInfo(TZ)).date(), datetime.min.time(), tzinfo=ZoneInfo(TZ))
    return {name: (midnight - timedelta(days=days), midnight) for name, days in
            (("day", 1), ("week", 7), ("month", 29))}


def _timed(call: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    call()
    return (time.perf_counter() - t0) * 1000


def _page(conn: psycopg.Connection[Any], tenants: Sequence[int] | None, start: datetime, end: datetime) -> None:
    """What the operations page reads (console/dashboard.py): the range, the one before, a series."""
    before = start - (end - start)
    metrics.operations(conn, tenants, start, end, TZ)
    metrics.operations(conn, tenants, before, start, TZ)
    metrics.series(conn, tenants, start, end, TZ, "conversations", "hour" if end - start <= timedelta(days=1)
                   else "day")


def _reads(conn: psycopg.Connection[Any], tenants: list[int], end: datetime,
           args: argparse.Namespace) -> dict[str, Any]:
    sample = sorted({tenants[round(i * (len(tenants) - 1) / max(1, args.sample - 1))] for i in range(args.sample)})
    out: dict[str, Any] = {}
    for name, (start, stop) in _ranges(end).items():
        rolled = [_timed(partial(metrics.operations, conn, [t], start, stop, TZ))
                  for t in tenants for _ in range(args.repeat)]
        page = [_timed(partial(_page, conn, [t], start, stop)) for t in tenants for _ in range(args.repeat)]
        counted = [_timed(partial(metrics.recount, conn, [t], start, stop, TZ, sla=SLA, categories=categories))
                   for t in sample]
        every_rolled = [_timed(partial(metrics.operations, conn, None, start, stop, TZ)) for _ in range(args.repeat)]
        every_page = [_timed(partial(_page, conn, None, start, stop)) for _ in range(args.repeat)]
        every_counted = [_timed(partial(metrics.recount, conn, None, start, stop, TZ, sla=SLA,
                                        categories=categories))]
        same = all(
            _same(metrics.operations(conn, ids, start, stop, TZ),
                  metrics.recount(conn, ids, start, stop, TZ, sla=SLA, categories=categories))
            for ids in ([sample[0]], None))
        out[name] = {"company": _summary(rolled, page, counted), "all": _summary(every_rolled, every_page,
                                                                                   every_counted),
                     "rollups_equal_recount": same}
        log(f"{name}: company p95 {out[name]['company']['rollup_p95_ms']} ms (recount p50 "
            f"{out[name]['company']['recount_p50_ms']} ms), all p95 {out[name]['all']['rollup_p95_ms']} ms")
    return out


def _real_pages(conn: psycopg.Connection[Any], stack: Stack, end: datetime,
                args: argparse.Namespace) -> dict[str, Any]:
    """The operator's operations page (console/dashboard.py) through the Flask test client, logged in: every
    company, and the largest one, for each range (the server's whole time: figures, alerts, template)."""
    from config import Settings
    from storage import operators
    from web.app import create_app

    app = create_app(Settings.from_env(bench_env(stack.redis_url, stack.database_url)))
    with psycopg.connect(stack.database_url, autocommit=True, row_factory=dict_row) as own:
        operators.create(own, "bench@operador.example", "una clave larga de benchmark")
    client = app.test_client()
    login = client.get("/operator/login").get_data(as_text=True)
    token = login.split('name="csrf-token" content="', 1)[1].split('"', 1)[0]
    answer = client.post("/operator/login", data={"email": "bench@operador.example", "csrf_token": token,
                                                  "password": "una clave larga de benchmark"})
    assert answer.status_code == 302, answer.status_code
    out: dict[str, Any] = {}
    for name, (start, stop) in _ranges(end).items():
        dates = f"desde={start.date().isoformat()}&hasta={(stop - timedelta(days=1)).date().isoformat()}"
        for scope, query in (("all", dates), ("company", f"company=tablero-00&{dates}")):
            times = []
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                page = client.get(f"/operator/dashboard?{query}")
                times.append((time.perf_counter() - t0) * 1000)
                assert page.status_code == 200, (page.status_code, query)
            out[f"{name}/{scope}"] = {"p50_ms": round(percentile(times, 50), 1),
                                      "p95_ms": round(percentile(times, 95), 1)}
        log(f"page {name}: {out[f'{name}/all']} (every company), {out[f'{name}/company']} (one)")
    return out


def _same(a: metrics.Operations, b: metrics.Operations) -> bool:
    return dataclasses.replace(a, source=b.source) == b


def _summary(rolled: list[float], page: list[float], counted: list[float]) -> dict[str, float]:
    return {"rollup_p50_ms": round(percentile(rolled, 50), 1), "rollup_p95_ms": round(percentile(rolled, 95), 1),
            "page_p50_ms": round(percentile(page, 50), 1), "page_p95_ms": round(percentile(page, 95), 1),
            "recount_p50_ms": round(percentile(counted, 50), 1), "recount_p95_ms": round(percentile(counted, 95), 1),
            "reads": len(rolled), "recounts": len(counted)}


def _job(conn: psycopg.Connection[Any], pg_pid: int, now: datetime) -> dict[str, Any]:
    """One run of the scheduler's job at `now`, with the CPU it took (this process and PostgreSQL's)."""
    backend = conn.info.backend_pid
    tree0, pg0 = cpu_by_component({"pg": pg_pid})["pg"], _process_cpu_s(backend)
    own0, t0 = time.process_time(), time.monotonic()
    with conn.transaction():
        done = metric_rollups.refresh(conn, now, sla=SLA, categories=categories)
    wall, own = time.monotonic() - t0, time.process_time() - own0
    pg, tree = _process_cpu_s(backend) - pg0, cpu_by_component({"pg": pg_pid})["pg"] - tree0
    return {"wall_s": round(wall, 3), "job_cpu_s": round(own, 4), "postgres_cpu_s": round(pg, 4),
            "postgres_tree_cpu_s": round(tree, 4),
            "from": done.counted_from.isoformat(), "to": done.counted_to.isoformat(),
            "healed_from": done.healed_from.isoformat() if done.healed_from else None}


def _process_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) of one process: the job's PostgreSQL backend (not autovacuum, not the
    checkpointer: the tree's total is recorded beside it)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _upkeep(conn: psycopg.Connection[Any], pg_pid: int, tenants: list[int], end: datetime,
            args: argparse.Namespace) -> dict[str, Any]:
    """The job minute by minute over live traffic, then a daily heal; CPU per message of each."""
    minutes = args.live_minutes
    live = round(args.live_rate * 60 * minutes)
    generate(conn, _folder(), messages=live, conversations=max(1, live // 10), tenants=len(tenants),
             start=end + timedelta(minutes=1), end=end + timedelta(minutes=1 + minutes), daytime=False, seed=17,
             first_id=10_000_000)
    conn.execute("VACUUM ANALYZE")  # the copy's own autovacuum is the pipeline's cost, not the job's
    adds: list[dict[str, Any]] = []
    heals: list[dict[str, Any]] = []
    for minute in range(2, minutes + 3):
        run = _job(conn, pg_pid, end + timedelta(minutes=minute))
        run["messages"] = rows_between(conn, datetime.fromisoformat(run["from"]), datetime.fromisoformat(run["to"]))
        (heals if run["healed_from"] else adds).append(run)
    for run in heals:
        run["messages"] = rows_between(conn, datetime.fromisoformat(run["healed_from"]),
                                       datetime.fromisoformat(run["to"]))
    now = end + timedelta(minutes=minutes + 3)
    conn.execute("UPDATE metric_state SET deep_healed_at = %s", (now - timedelta(hours=25),))
    deep = _job(conn, pg_pid, now)
    deep["messages"] = rows_between(conn, datetime.fromisoformat(deep["healed_from"]),
                                    datetime.fromisoformat(deep["to"]))

    def per_message_ms(runs: list[dict[str, Any]]) -> tuple[float, float]:
        n = max(1, sum(r["messages"] for r in runs))
        return (1000 * sum(r["job_cpu_s"] for r in runs) / n, 1000 * sum(r["postgres_cpu_s"] for r in runs) / n)

    def tree_ms(runs: list[dict[str, Any]]) -> float:
        return 1000 * float(sum(r["postgres_tree_cpu_s"] for r in runs)) / max(1, int(sum(r["messages"] for r in runs)))

    add_job, add_pg = per_message_ms(adds)
    heal_job, heal_pg = per_message_ms(heals) if heals else (0.0, 0.0)
    deep_job, deep_pg = per_message_ms([deep])
    # Each message: one add, two hourly heals (each covers the 2 hours before it), 26/24 daily heals.
    total = add_job + add_pg + 2 * (heal_job + heal_pg) + 26 / 24 * (deep_job + deep_pg)
    return {"live_messages": sum(r["messages"] for r in adds), "live_minutes": minutes, "rate": args.live_rate,
            "add_runs": len(adds), "heal_runs": len(heals),
            "add_job_ms": round(add_job, 4), "add_pg_ms": round(add_pg, 4),
            "add_run_p95_s": round(percentile([r["wall_s"] for r in adds], 95), 3),
            "heal_job_ms": round(heal_job, 4), "heal_pg_ms": round(heal_pg, 4), "heals": heals,
            "deep_job_ms": round(deep_job, 4), "deep_pg_ms": round(deep_pg, 4), "deep": deep,
            "add_pg_tree_ms": round(tree_ms(adds), 4), "heal_pg_tree_ms": round(tree_ms(heals), 4),
            "deep_pg_tree_ms": round(tree_ms([deep]), 4),
            "per_message_tree_ms": round(add_job + tree_ms(adds) + 2 * (heal_job + tree_ms(heals))
                                         + 26 / 24 * (deep_job + tree_ms([deep])), 4),
            "per_message_ms": round(total, 4), "share_of_pipeline_pct": round(100 * total / PIPELINE_CPU_MS, 2)}


def _report(made: Any, generated_s: float, backfill: dict[str, Any], reads: dict[str, Any],
            pages: dict[str, Any], upkeep: dict[str, Any], args: argparse.Namespace) -> None:
    print(f"\n{made.messages:,} messages, {made.conversations:,} conversations, 30 companies "
          f"(scale {args.scale}); generated in {generated_s:.0f} s, rollups built in {backfill['wall_s']:.1f} s\n")
    rows = []
    for name, scopes in reads.items():
        for scope in ("company", "all"):
            s = scopes[scope]
            rows.append([name, "one company" if scope == "company" else "every company", fmt(s["rollup_p50_ms"]),
                         fmt(s["rollup_p95_ms"]), fmt(s["page_p50_ms"]), fmt(s["page_p95_ms"]),
                         fmt(s["recount_p50_ms"]), fmt(s["recount_p95_ms"]),
                         "yes" if scopes["rollups_equal_recount"] else "NO"])
    print(table(["range", "scope", "rollups p50 ms", "rollups p95 ms", "page figures p50 ms", "page figures p95 ms",
                 "raw tables p50 ms", "raw tables p95 ms", "equal"], rows))
    print("\nThe operator's page through the Flask test client (ms):\n")
    print(table(["range", "every company p50", "every company p95", "largest company p50", "largest company p95"],
                [[name, fmt(pages[f"{name}/all"]["p50_ms"]), fmt(pages[f"{name}/all"]["p95_ms"]),
                  fmt(pages[f"{name}/company"]["p50_ms"]), fmt(pages[f"{name}/company"]["p95_ms"])]
                 for name in reads]))
    u = upkeep
    print(f"\nUpkeep over {u['live_minutes']} minutes at {u['rate']} messages/s ({u['live_messages']:,} messages, "
          f"{u['add_runs']} adds, {u['heal_runs']} hourly heals, 1 daily heal), CPU ms per message:\n")
    print(table(["step", "job (Python)", "PostgreSQL", "times per message"], [
        ["add (every minute)", fmt(u["add_job_ms"], 4), fmt(u["add_pg_ms"], 4), "1"],
        ["hourly heal (2 h back)", fmt(u["heal_job_ms"], 4), fmt(u["heal_pg_ms"], 4), "2"],
        ["daily heal (26 h back)", fmt(u["deep_job_ms"], 4), fmt(u["deep_pg_ms"], 4), "26/24"],
    ]))
    print(f"\nPostgreSQL's whole process tree instead of the job's backend (autovacuum, WAL writer, checkpointer "
          f"too): add {u['add_pg_tree_ms']}, hourly heal {u['heal_pg_tree_ms']}, daily heal {u['deep_pg_tree_ms']} ms; "
          f"total {u['per_message_tree_ms']} ms per message")
    print(f"\nTotal {u['per_message_ms']} ms per message = {u['share_of_pipeline_pct']} % of the pipeline's "
          f"{PIPELINE_CPU_MS} ms (target < 5 %)")


if __name__ == "__main__":
    main()
