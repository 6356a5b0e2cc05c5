"""Webhook acknowledgement benchmark: signed Meta webhooks vs the no-op endpoint, on the same gunicorn.

    .venv/bin/python -m bench.ingest            # full run (~3 min)
    .venv/bin/python -m bench.ingest --quick    # short phases (< 90 s): checks that the script works

Starts private Redis and PostgreSQL, migrates, seeds the tenant, starts gunicorn as
deployed (gthread, 2 workers x 8 threads, no access log, LOG_LEVEL=WARNING) and NO
workers: only the acknowledgement path is measured (verify, parse, store in
PostgreSQL, hand the event to Redis, answer 200); the work piles up in Redis.

Two modes, alternating noop / webhook runs (noop, webhook, noop, webhook, ...):
- closed loop: C persistent connections, each sends its next request when the
  previous answer arrived, for D seconds -> requests/s;
- open loop: a fixed rate (200 requests/s) scheduled by the clock; latency from
  the scheduled send time -> acknowledgement p50/p95/p99.

Every webhook is a unique message id (no duplicates) from one of 500 customers.
Afterwards the number of webhook_events rows must equal the number of 200 answers.
Targets: webhook throughput >= 50 % of the no-op's; p99 acknowledgement < 50 ms at 200/s.
Results: a table on stdout and bench/results/ingest[-quick].json.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a file (make bench): make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import latency_summary_ms, log, machine_info, median, table, write_results  # noqa: E402
from bench.cpu import CpuMeter, wait_for_quiet  # noqa: E402
from bench.loadgen import LoadGenerator, LoadResult, WebhookFactory  # noqa: E402
from bench.stack import Stack, bench_env  # noqa: E402

TARGET_RATIO = 0.5
TARGET_P99_MS = 50.0


def count_events(database_url: str) -> int:
    import psycopg

    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM webhook_events").fetchone()
    return int(row[0]) if row else 0


def analyze(database_url: str) -> None:
    import psycopg

    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("ANALYZE")


def queued_jobs(redis_url: str) -> dict[str, int]:
    import redis

    conn = redis.Redis.from_url(redis_url)
    try:
        return {"rq_queue_length": int(conn.llen("rq:queue:encargo")),
                "announced_not_dispatched": int(conn.llen("ingest:events")),
                "customers_waiting": int(conn.llen("inbox:ready"))}
    finally:
        conn.close()


def run_one(stack: Stack, gen: LoadGenerator, factory: WebhookFactory, target: str, mode: str,
            args: argparse.Namespace, roots: dict[str, int]) -> tuple[LoadResult, dict[str, Any]]:
    """One measurement; repeated (up to --retries) when other processes used the machine meanwhile."""
    discarded: list[dict[str, Any]] = []
    for attempt in range(args.retries + 1):
        wait_for_quiet(args.noise_threshold, args.quiet_wait)
        rows_before = count_events(stack.database_url) if target == "webhook" else 0
        meter = CpuMeter(roots, self_only=["client"])
        meter.start()
        if mode == "closed":
            result = gen.closed_loop(factory, concurrency=args.concurrency, duration_s=args.duration, target=target)
        else:
            result = gen.open_loop(factory, rate=args.rate, duration_s=args.open_duration, target=target)
        cpu = meter.stop()
        summary = result.summary()
        summary["cpu_s"] = cpu["components"]
        summary["cpu_ms_per_request"] = {k: round(v * 1000 / max(result.ok, 1), 3)
                                         for k, v in cpu["components"].items()}
        summary["busy_pct"] = cpu["busy_pct"]
        summary["foreign_pct"] = cpu["foreign_pct"]
        if target == "webhook":
            rows = count_events(stack.database_url) - rows_before
            summary["rows_stored"] = rows
            summary["rows_match_200s"] = rows == result.ok
        lat = summary["latency_ms"]
        log(f"{mode:6s} {target:7s} {summary['rate']:8.1f} req/s  ok={result.ok} other={result.sent - result.ok} "
            f"p50={lat['p50']}ms p95={lat['p95']}ms p99={lat['p99']}ms  client cpu {summary['client_cpu_pct']}% "
            f"machine busy {cpu['busy_pct']}% (other processes {cpu['foreign_pct']}%)"
            + (f"  rows={summary['rows_stored']}" if target == "webhook" else ""))
        if cpu["foreign_pct"] <= args.noise_threshold or attempt == args.retries:
            summary["attempt"] = attempt + 1
            summary["discarded_noisy"] = discarded
            return result, summary
        log(f"  other processes used {cpu['foreign_pct']}% of the machine: run discarded, repeating")
        discarded.append({k: summary[k] for k in ("rate", "latency_ms", "foreign_pct", "ok")}
                         | {"rows_stored": summary.get("rows_stored")})
        if target == "webhook":
            args.discarded_200s += result.ok
    raise AssertionError("unreachable")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short phases: the whole run takes < 90 s")
    parser.add_argument("--duration", type=float, default=None, help="seconds per closed-loop run (10)")
    parser.add_argument("--open-duration", type=float, default=None, help="seconds per open-loop run (15)")
    parser.add_argument("--reps", type=int, default=None, help="noop/webhook pairs per mode (3)")
    parser.add_argument("--rate", type=float, default=200.0, help="open-loop requests/s")
    parser.add_argument("--concurrency", type=int, default=16, help="closed-loop connections")
    parser.add_argument("--customers", type=int, default=500)
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (as deployed: 2)")
    parser.add_argument("--threads", type=int, default=8, help="gunicorn threads per worker (as deployed: 8)")
    parser.add_argument("--noise-threshold", type=float, default=10.0,
                        help="%% of the machine other processes may use during a run before it is repeated")
    parser.add_argument("--retries", type=int, default=None, help="repeats of a noisy run (2; quick: 1)")
    parser.add_argument("--quiet-wait", type=float, default=None, help="seconds to wait for quiet before a run (60)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (logs, data)")
    args = parser.parse_args(argv)
    args.retries = args.retries if args.retries is not None else (1 if args.quick else 2)
    args.quiet_wait = args.quiet_wait if args.quiet_wait is not None else (5.0 if args.quick else 60.0)
    args.discarded_200s = 0
    args.duration = args.duration or (3.0 if args.quick else 10.0)
    args.open_duration = args.open_duration or (3.0 if args.quick else 15.0)
    args.reps = args.reps or (2 if args.quick else 3)
    warmup = 2.0 if args.quick else 3.0
    started = time.monotonic()
    info = machine_info()
    log(f"machine: {info['cpus']} CPUs ({info['cpu_model']}), {info['mem_gb']} GB, load {info['loadavg_at_start']}")

    with Stack(keep=args.keep) as stack:
        stack.start_services()
        env = bench_env(stack.redis_url, stack.database_url)
        stack.seed_tenant(env)
        port = stack.start_gunicorn(env, workers=args.workers, threads=args.threads)
        gen = LoadGenerator(port)
        roots = {"web": stack.pids["web"], "postgres": stack.pids["postgres"], "redis": stack.pids["redis"],
                 "client": os.getpid()}
        factories = {
            "noop": WebhookFactory(port, "/bench/noop", customers=args.customers, id_prefix="wamid.NOOP"),
            "webhook": WebhookFactory(port, "/webhooks/whatsapp", customers=args.customers, id_prefix="wamid.HOOK"),
        }
        log(f"warm-up: {warmup:.0f}s closed loop on each endpoint")
        warm = {t: gen.closed_loop(f, concurrency=args.concurrency, duration_s=warmup, target=t)
                for t, f in factories.items()}
        webhook_200s = warm["webhook"].ok
        # A deployed database has planner statistics; a fresh one has none until autovacuum's first
        # ANALYZE (up to a minute later), and meanwhile mark_queued's plan degrades with every pending row.
        analyze(stack.database_url)
        runs: dict[str, dict[str, list[dict[str, Any]]]] = {"closed": {"noop": [], "webhook": []},
                                                            "open": {"noop": [], "webhook": []}}
        latencies: dict[str, dict[str, list[float]]] = {"closed": {"noop": [], "webhook": []},
                                                       "open": {"noop": [], "webhook": []}}
        for mode in ("closed", "open"):
            for rep in range(args.reps):
                for target in ("noop", "webhook"):
                    result, summary = run_one(stack, gen, factories[target], target, mode, args, roots)
                    summary["rep"] = rep
                    runs[mode][target].append(summary)
                    latencies[mode][target].extend(result.latencies)
                    if target == "webhook":
                        webhook_200s += result.ok
        webhook_200s += args.discarded_200s  # discarded noisy runs stored their events too
        rows_total = count_events(stack.database_url)
        backlog = queued_jobs(stack.redis_url)

    # --- report -----------------------------------------------------------------------------------
    def med(mode: str, target: str, key: str, sub: str | None = None) -> float:
        values = [r[key][sub] if sub else r[key] for r in runs[mode][target]]
        return round(median(values), 2)

    closed_noop, closed_hook = med("closed", "noop", "rate"), med("closed", "webhook", "rate")
    ratio = round(closed_hook / closed_noop, 3) if closed_noop else float("nan")
    open_p99 = med("open", "webhook", "latency_ms", "p99")
    pooled = {t: latency_summary_ms(latencies["open"][t]) for t in ("noop", "webhook")}
    cpu_per_req = {t: {k: round(median([r["cpu_ms_per_request"][k] for r in runs["closed"][t]]), 3)
                       for k in roots} for t in ("noop", "webhook")}
    all_runs = [r for m in runs.values() for t in m.values() for r in t]
    errors = sum(r["sent"] - r["ok"] for r in all_runs)
    rows_ok = rows_total == webhook_200s and all(r.get("rows_match_200s", True) for r in all_runs)

    print()
    print(f"## Ingest benchmark ({'quick' if args.quick else 'full'}): gunicorn gthread "
          f"{args.workers}x{args.threads}, no workers, "
          f"{args.customers} customers")
    print()
    print(f"Closed loop, {args.concurrency} connections, {args.duration:.0f} s per run (requests/s):")
    print()
    rows = []
    for rep in range(args.reps):
        n, w = runs["closed"]["noop"][rep], runs["closed"]["webhook"][rep]
        rows.append([rep + 1, n["rate"], w["rate"], f"{w['rate'] / n['rate']:.1%}" if n["rate"] else "-",
                     n["latency_ms"]["p50"], w["latency_ms"]["p50"], w["latency_ms"]["p99"],
                     n["client_cpu_pct"], w["client_cpu_pct"], f"{n['foreign_pct']} / {w['foreign_pct']}"])
    rows.append(["median", closed_noop, closed_hook, f"{ratio:.1%}", med("closed", "noop", "latency_ms", "p50"),
                 med("closed", "webhook", "latency_ms", "p50"), med("closed", "webhook", "latency_ms", "p99"),
                 med("closed", "noop", "client_cpu_pct"), med("closed", "webhook", "client_cpu_pct"), ""])
    print(table(["run", "noop req/s", "webhook req/s", "ratio", "noop p50 ms", "webhook p50 ms",
                 "webhook p99 ms", "client CPU % noop", "client CPU % webhook", "other procs % noop / webhook"],
                rows))
    print()
    print(f"Open loop at {args.rate:.0f} requests/s, {args.open_duration:.0f} s per run "
          "(latency from the scheduled send time, ms):")
    print()
    rows = []
    for rep in range(args.reps):
        for target in ("noop", "webhook"):
            r = runs["open"][target][rep]
            lat = r["latency_ms"]
            rows.append([rep + 1, target, r["rate"], lat["p50"], lat["p95"], lat["p99"], lat["max"],
                         r["sent"] - r["ok"], r["busy_pct"], r["foreign_pct"]])
    for target in ("noop", "webhook"):
        lat = pooled[target]
        rows.append(["all", target, med("open", target, "rate"), lat["p50"], lat["p95"], lat["p99"], lat["max"],
                     sum(r["sent"] - r["ok"] for r in runs["open"][target]), "", ""])
    print(table(["run", "endpoint", "achieved req/s", "p50", "p95", "p99", "max", "non-200", "machine busy %",
                 "other procs %"], rows))
    print()
    print("CPU per acknowledged request, closed loop (ms of CPU, median of runs):")
    print()
    totals = {t: sum(cpu_per_req[t].values()) for t in ("noop", "webhook")}
    print(table(["endpoint", *roots, "total", "CPU-bound capacity req/s"],
                [[t, *(f"{cpu_per_req[t][k]:.3f}" for k in roots), f"{totals[t]:.3f}",
                  f"{1000 * (os.cpu_count() or 1) / totals[t]:.0f}" if totals[t] else "-"]
                 for t in ("noop", "webhook")]))
    cpu_ratio = totals["noop"] / totals["webhook"] if totals["webhook"] else float("nan")
    print()
    print(f"CPU-cost ratio (noop CPU per request / webhook CPU per request): {cpu_ratio:.1%} -- the throughput "
          "ratio a machine free of other processes would show; it moves far less with neighbours' load")
    print()
    print(f"webhook_events rows: {rows_total}; webhook 200 answers (warm-up included): {webhook_200s} -> "
          f"{'MATCH' if rows_ok else 'MISMATCH'}; non-200 or failed requests: {errors}; "
          f"left in Redis (no workers run): {backlog}")
    print()
    ratio_met = ratio >= TARGET_RATIO
    p99_met = open_p99 < TARGET_P99_MS
    print(f"target throughput ratio >= {TARGET_RATIO:.0%}: {ratio:.1%} -> {'MET' if ratio_met else 'MISSED'}")
    print(f"target p99 < {TARGET_P99_MS:.0f} ms at {args.rate:.0f}/s: median p99 {open_p99} ms "
          f"(pooled {pooled['webhook']['p99']} ms) -> {'MET' if p99_met else 'MISSED'}")
    elapsed = time.monotonic() - started
    print(f"(run took {elapsed:.0f} s)")

    name = "ingest-quick" if args.quick else "ingest"
    if (args.workers, args.threads) != (2, 8):
        name += f"-{args.workers}x{args.threads}"
    path = write_results(name, {
        "benchmark": "ingest", "quick": args.quick, "machine": info,
        "settings": {"duration_s": args.duration, "open_duration_s": args.open_duration, "reps": args.reps,
                     "rate": args.rate, "concurrency": args.concurrency, "customers": args.customers,
                     "gunicorn": f"gthread, {args.workers} workers x {args.threads} threads"},
        "runs": runs,
        "medians": {"closed_noop_rps": closed_noop, "closed_webhook_rps": closed_hook, "ratio": ratio,
                    "open_webhook_p99_ms_median": open_p99, "open_pooled_ms": pooled,
                    "cpu_ms_per_request": cpu_per_req, "cpu_cost_ratio": round(cpu_ratio, 3)},
        "verification": {"rows": rows_total, "webhook_200s": webhook_200s, "match": rows_ok,
                         "non_200_or_failed": errors, "redis_backlog": backlog},
        "targets": {"throughput_ratio_met": ratio_met, "p99_met": p99_met},
        "elapsed_s": round(elapsed, 1),
    })
    print(f"results: {path}")
    return 0 if rows_ok and errors == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
