"""Notification burst benchmark: 10,000 core events at once -> WhatsApp templates under Meta's limits.

    .venv/bin/python -m bench.notifications             # 10,000 events (~3-4 min)
    .venv/bin/python -m bench.notifications --quick     # 1,000 events: checks that the script works
    .venv/bin/python -m bench.notifications --events N --mps 80 --workers 4
    .venv/bin/python -m bench.notifications --tier 2000   # issue 17: a burst of 2.5 x the messaging limit
    .venv/bin/python -m bench.notifications --tier 10000

Starts private Redis and PostgreSQL, the sandbox logistics core with N generated
packages (10 % of the recipients have two packages, so the per-customer pair limit
is exercised), the FakeGraphAPI (tests/fakes/graph_api.py) in its own process
with `enforce_throughput(mps)` and `enforce_pair_limit(1, 6 s)` switched on
(it refuses with 130429 / 131056 as Meta does), gunicorn, `worker.main
--processes K` and the scheduler, all as deployed (WHATSAPP_PROVIDER=meta,
META_THROUGHPUT_MPS=mps, quiet hours off).

The load: N signed `package.status_changed` ARRIVED_AT_DESTINATION events POSTed
to /internal/events as fast as 8 keep-alive client connections can (a burst). Then it waits
until every event is processed and every notification is final.

Reported: time to acknowledge the burst; time to drain (first event posted ->
last message accepted by the fake); notifications sent / failed / not final;
refusals by the fake (130429, 131056: retried by us, so not errors unless a
notification ends failed); duplicates (the same notification accepted twice, or
a customer getting the same package's notice twice: must be 0); the achieved
rate (messages accepted / (last - first acceptance)) as a share of the limit,
overall and after the burst was acknowledged (target >= 90 %: while the burst is
being acknowledged, gunicorn and the client take most of the 2 cores); the
busiest 1-second window at the fake (must not exceed the limit); CPU by component.
Results: bench/results/notifications[-quick].json.

`--tier T` (issue 17, WhatsApp's messaging limit): the same stack with MESSAGING_LIMIT_TIER=T and in-transit
notices on, no warm-up (it would use up the tier), and 2.5 x T events to as many customers, shuffled: 40 %
of T "llegó a destino" (first in `notifications.decision.PRIORITY`) and the rest "en camino" (last). Then,
round after round: wait until nothing is being decided or sent, count the templates the fake accepted and the
notifications held; move the 24-hour window (every customer reached moves 24 h into the past in the Redis
count, as if a day went by: no real waiting) and let the scheduler's pass release the next ones. Reported
per round: templates sent (must be T while enough wait, never more), held, by kind; lost (events without a
final or held notification; must be 0); the priority check (no "en camino" released while a "llegó" was
still held); templates sent before the burst was seen (the first sends, before the backlog showed the burst
would not fit, go in arrival order). Results: bench/results/notifications-tier<T>.json.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a file: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import log, machine_info, table, write_results  # noqa: E402
from bench.cpu import CpuMeter, wait_for_quiet  # noqa: E402
from bench.graph_fake import GraphFakeProcess  # noqa: E402
from bench.stack import Stack, bench_env  # noqa: E402

EVENTS_SECRET = "bench-internal-events-secret-0123456789abcdef"  # noqa: S105 - bench_env's throw-away secret
TARGET_SHARE = 0.90
WARMUP = 1000
STALL_S = 60.0


# --- the load ---------------------------------------------------------------------------------------------


def post_events(port: int, codes: list[str], threads: int = 8,
                status_of: dict[str, str] | None = None) -> tuple[float, Counter[int]]:
    """POST one signed event per code (ARRIVED, or its status in `status_of`) over keep-alive connections;
    (seconds taken, answers by status)."""
    import http.client

    from notifications.events import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign

    statuses: Counter[int] = Counter()
    lock = threading.Lock()
    chunks = [codes[i::threads] for i in range(threads)]

    def post_chunk(chunk: list[str]) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        try:
            for code in chunk:
                raw = json.dumps({"event_id": f"bench-{code}", "type": "package.status_changed",
                                  "tracking_code": code,
                                  "status": (status_of or {}).get(code, "ARRIVED_AT_DESTINATION"),
                                  "occurred_at": "2026-01-06T09:40:00-06:00"}).encode()
                ts = str(int(time.time()))
                conn.request("POST", "/internal/events", body=raw, headers={
                    "Content-Type": "application/json", TIMESTAMP_HEADER: ts,
                    SIGNATURE_HEADER: sign(EVENTS_SECRET, ts, raw)})
                response = conn.getresponse()
                response.read()
                with lock:
                    statuses[response.status] += 1
        finally:
            conn.close()

    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        list(pool.map(post_chunk, chunks))
    return time.monotonic() - started, statuses


def _db(database_url: str, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    import psycopg

    with psycopg.connect(database_url, autocommit=True) as conn:
        cursor = conn.execute(sql, params)  # type: ignore[arg-type]
        return list(cursor.fetchall()) if cursor.description is not None else []


def progress(database_url: str, floor: int = 0) -> tuple[int, dict[str, int]]:
    events_open = int(_db(database_url, "SELECT count(*) FROM core_events WHERE state IN ('received', 'queued')")
                      [0][0])
    notes = dict(_db(database_url, "SELECT status, count(*) FROM notification_log WHERE id > %s GROUP BY 1",
                     (floor,)))
    return events_open, {str(k): int(v) for k, v in notes.items()}


def busiest_second(times: list[float]) -> int:
    """The most acceptances in any 1-second window (sliding)."""
    best, left = 0, 0
    for right, t in enumerate(times):
        while t - times[left] >= 1.0:
            left += 1
        best = max(best, right - left + 1)
    return best


# --- the run ----------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1,000 events")
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--mps", type=int, default=80, help="the number's limit (fake and META_THROUGHPUT_MPS)")
    parser.add_argument("--workers", type=int, default=4, help="worker processes")
    parser.add_argument("--drain-timeout", type=float, default=900.0)
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (logs)")
    parser.add_argument("--tier", type=int, choices=(250, 2000, 10000), default=None,
                        help="issue 17: 2.5 x this messaging limit in events, released round by round")
    args = parser.parse_args(argv)
    if args.tier is not None:
        tier_main(args)
        return
    n_events = 1000 if args.quick else args.events
    info = machine_info()
    log(f"machine: {info['cpus']} CPUs ({info['cpu_model']}), load {info['loadavg_at_start']}")

    from tests.notifications_helpers import write_core_data

    with Stack(keep=args.keep) as stack:
        data_dir = stack.base / "core-data"  # removed with the stack's directory
        data_dir.mkdir()
        recipients = n_events - n_events // 10  # 10 % of customers get two packages: the pair limit matters
        all_codes = write_core_data(data_dir / "core.json", n_events + WARMUP, recipients=recipients + WARMUP)
        codes, warmup_codes = all_codes[:n_events], all_codes[n_events:]
        stack.start_services()
        fake = GraphFakeProcess(throughput_mps=args.mps, pair_limit=(1, 6.0))
        stack.on_close(fake.stop)
        env = bench_env(stack.redis_url, stack.database_url, META_GRAPH_BASE_URL=fake.url,
                        META_THROUGHPUT_MPS=str(args.mps), SANDBOX_CORE_DATA=str(data_dir / "core.json"),
                        QUIET_HOURS_START="00:00", QUIET_HOURS_END="00:00", NOTIFICATIONS_INTERVAL_S="5",
                        RECOVERY_MIN_AGE_S="60", JOB_TIMEOUT_S="60", MESSAGING_LIMIT_TIER="unlimited")
        core_url = stack.start_core(env)
        if core_url is None:
            raise SystemExit("the sandbox core did not start")
        env["CORE_API_URL"] = core_url
        stack.seed_tenant(env)
        port = stack.start_gunicorn(env)
        workers = stack.start_workers(env, args.workers)
        scheduler = stack.spawn("scheduler", [sys.executable, "-m", "worker.scheduler"], env)
        roots = {"web": stack.pids["web"], "workers": workers.pid, "scheduler": scheduler.pid,
                 "postgres": stack.pids["postgres"], "redis": stack.pids["redis"], "core": stack.pids["core"],
                 "fake": fake.pid, "client": os.getpid()}
        log(f"warm-up: {WARMUP} events, then ANALYZE (a deployed database has planner statistics)")
        post_events(port, warmup_codes)
        warm_deadline = time.monotonic() + 300
        while time.monotonic() < warm_deadline:
            events_open, warm_notes = progress(stack.database_url)
            if events_open == 0 and not any(warm_notes.get(k) for k in ("pending", "deferred", "sending")):
                break
            time.sleep(0.5)
        _db(stack.database_url, "ANALYZE")
        _db(stack.database_url, "SELECT pg_stat_reset()")
        floor = int(_db(stack.database_url, "SELECT coalesce(max(id), 0) FROM notification_log")[0][0])
        fake.reset()
        wait_for_quiet(15.0, 120.0)
        meter = CpuMeter(roots, self_only=["client"])
        meter.start()
        log(f"posting {n_events} events to /internal/events")
        mono0 = time.monotonic()  # CLOCK_MONOTONIC: the same clock as the fake's arrival times
        post_s, answers = post_events(port, codes)
        log(f"burst acknowledged in {post_s:.1f}s: {dict(answers)}")
        deadline = time.monotonic() + args.drain_timeout
        last_seen: Any = None
        last_change = time.monotonic()
        notes: dict[str, int] = {}
        while time.monotonic() < deadline:
            events_open, notes = progress(stack.database_url, floor)
            waiting = sum(notes.get(s, 0) for s in ("pending", "deferred", "sending"))
            if events_open == 0 and waiting == 0 and sum(notes.values()) >= answers.get(202, 0):
                break
            seen = (events_open, tuple(sorted(notes.items())))
            if seen != last_seen:
                last_seen, last_change = seen, time.monotonic()
                log(f"open events {events_open}, notifications {notes}")
            elif time.monotonic() - last_change > STALL_S:
                log("no progress for 60 s: giving up the drain")
                break
            time.sleep(1.0)
        cpu = meter.stop()
        stats = fake.stats()
        failed_events = int(_db(stack.database_url, "SELECT count(*) FROM core_events WHERE state = 'failed'")[0][0])
        errors = dict(_db(stack.database_url, "SELECT coalesce(error_code, '-'), count(*) FROM notification_log"
                                              " WHERE status IN ('failed', 'skipped') AND id > %s GROUP BY 1",
                          (floor,)))
        reported = int(_db(stack.database_url, "SELECT count(*) FROM notification_log WHERE reported_at IS NOT NULL"
                                               " AND id > %s", (floor,))[0][0])
        seq_scans = {str(r[0]): [int(r[1]), int(r[2])] for r in _db(
            stack.database_url, "SELECT relname, seq_scan, seq_tup_read FROM pg_stat_user_tables"
                                " WHERE seq_tup_read > 10000 ORDER BY seq_tup_read DESC")}

    accepted = stats["accepted"]
    times = sorted(a[3] for a in accepted)
    refs = Counter(a[0] for a in accepted)
    notices = Counter((a[1], a[2]) for a in accepted)
    duplicates = sum(c - 1 for c in refs.values() if c > 1) + sum(c - 1 for c in notices.values() if c > 1)
    span = (times[-1] - times[0]) if len(times) > 1 else 0.0
    rate = (len(times) - 1) / span if span > 0 else 0.0
    sent = sum(v for k, v in notes.items() if k in ("accepted", "sent", "delivered", "read"))
    # while the burst is being acknowledged the web server and the client take most of the 2 cores:
    # the rate after it is what the sending side sustains on its own
    after = [t for t in times if t >= mono0 + post_s]
    after_span = (after[-1] - after[0]) if len(after) > 1 else 0.0
    after_rate = (len(after) - 1) / after_span if after_span > 0 else 0.0
    result = {
        "events": n_events, "mps_limit": args.mps, "workers": args.workers, "answers": dict(answers),
        "burst_ack_s": round(post_s, 2), "burst_ack_rate": round(n_events / post_s, 1),
        "drain_s": round(times[-1] - mono0, 1) if times else None,
        "first_to_last_message_s": round(span, 1), "messages_accepted": len(accepted),
        "notifications": notes, "sent": sent, "failed_events": failed_events, "errors": errors,
        "refusals_by_fake": stats["refusals"], "requests_at_fake": stats["received"],
        "duplicates": duplicates, "achieved_mps": round(rate, 1),
        "share_of_limit": round(rate / args.mps, 3), "busiest_second": busiest_second(times),
        "messages_after_burst": len(after), "achieved_mps_after_burst": round(after_rate, 1),
        "share_of_limit_after_burst": round(after_rate / args.mps, 3),
        "reported_to_core": reported, "cpu": cpu, "machine": info,
        "postgres_seq_scans": seq_scans,
    }
    path = write_results("notifications-quick" if args.quick else "notifications", result)

    print()
    print(f"## Notification burst ({n_events} events, limit {args.mps} msg/s, pair 1 per 6 s, K={args.workers})")
    print()
    print(table(
        ["events", "ack s", "drain s", "sent", "failed", "duplicates", "130429", "131056", "msg/s (share)",
         "msg/s after the burst (share)", "busiest 1 s", "reported"],
        [[n_events, result["burst_ack_s"], result["drain_s"], sent,
          failed_events + sum(errors.values()), duplicates, stats["refusals"].get("130429", 0),
          stats["refusals"].get("131056", 0), f"{result['achieved_mps']} ({100 * result['share_of_limit']:.1f} %)",
          f"{result['achieved_mps_after_burst']} ({100 * result['share_of_limit_after_burst']:.1f} %)",
          result["busiest_second"], reported]]))
    print()
    print("CPU seconds by component:", {k: round(v, 1) for k, v in cpu["components"].items()},
          f"other processes {cpu['foreign_pct']} % of the machine")
    print("PostgreSQL sequential scans (table: scans, rows read):", seq_scans)
    print(f"results: {path}")
    ok = duplicates == 0 and sent == n_events and result["share_of_limit_after_burst"] >= TARGET_SHARE
    log("targets met" if ok else "targets NOT met")



# --- issue 17: the messaging-limit tiers -------------------------------------------------------------------


def roll_window(redis_url: str) -> int:
    """Move every customer of every messaging-limit count 24 h (and a second) into the past: a day went by."""
    import redis

    conn = redis.Redis.from_url(redis_url)
    moved = 0
    try:
        for key in conn.scan_iter(match="msglimit:*:reached"):
            members = conn.zrange(key, 0, -1, withscores=True)
            if members:
                conn.zadd(key, {m: score - 86401 for m, score in members})
                moved += len(members)
    finally:
        conn.close()
    return moved


def settle(database_url: str, total: int, timeout: float) -> dict[str, int]:
    """Wait until no event is being decided and no notification is waiting or being sent; the statuses then."""
    deadline = time.monotonic() + timeout
    last: Any = None
    last_change = time.monotonic()
    notes: dict[str, int] = {}
    while time.monotonic() < deadline:
        events_open, notes = progress(database_url)
        busy = sum(notes.get(s, 0) for s in ("pending", "deferred", "sending"))
        if events_open == 0 and busy == 0 and sum(notes.values()) >= total:
            time.sleep(6.0)  # one more scheduler pass: nothing left to release
            events_open, again = progress(database_url)
            if again == notes and events_open == 0:
                return notes
            notes = again
        if (events_open, notes) != last:
            last, last_change = (events_open, notes), time.monotonic()
            log(f"open events {events_open}, notifications {notes}")
        elif time.monotonic() - last_change > STALL_S:
            log("no progress for 60 s")
            break
        time.sleep(1.0)
    return notes


def tier_main(args: argparse.Namespace) -> None:
    import random

    from notifications.decision import PRIORITY
    from tests.notifications_helpers import write_core_data

    tier = int(args.tier)
    n_events = int(tier * 2.5)
    info = machine_info()
    log(f"machine: {info['cpus']} CPUs ({info['cpu_model']}), load {info['loadavg_at_start']}")
    with Stack(keep=args.keep) as stack:
        data_dir = stack.base / "core-data"
        data_dir.mkdir()
        codes = write_core_data(data_dir / "core.json", n_events)  # every package to a customer of its own
        rng = random.Random(17)
        rng.shuffle(codes)
        arrived = set(codes[:int(tier * 0.4)])
        statuses = {c: "ARRIVED_AT_DESTINATION" if c in arrived else "IN_TRANSIT" for c in codes}
        rng.shuffle(codes)
        stack.start_services()
        fake = GraphFakeProcess(throughput_mps=args.mps, pair_limit=(1, 6.0))
        stack.on_close(fake.stop)
        env = bench_env(stack.redis_url, stack.database_url, META_GRAPH_BASE_URL=fake.url,
                        META_THROUGHPUT_MPS=str(args.mps), SANDBOX_CORE_DATA=str(data_dir / "core.json"),
                        QUIET_HOURS_START="00:00", QUIET_HOURS_END="00:00", NOTIFICATIONS_INTERVAL_S="5",
                        RECOVERY_MIN_AGE_S="60", JOB_TIMEOUT_S="60", MESSAGING_LIMIT_TIER=str(tier),
                        NOTIFY_IN_TRANSIT="true")
        core_url = stack.start_core(env)
        if core_url is None:
            raise SystemExit("the sandbox core did not start")
        env["CORE_API_URL"] = core_url
        stack.seed_tenant(env)
        port = stack.start_gunicorn(env)
        stack.start_workers(env, args.workers)
        stack.spawn("scheduler", [sys.executable, "-m", "worker.scheduler"], env)
        log(f"tier {tier}: posting {n_events} events ({len(arrived)} arrived, {n_events - len(arrived)} in transit)")
        started = time.monotonic()
        post_s, answers = post_events(port, codes, status_of=statuses)
        log(f"burst acknowledged in {post_s:.1f}s: {dict(answers)}")
        rounds: list[dict[str, Any]] = []
        seen_refs: set[str] = set()
        for number in range(1, 6):
            notes = settle(stack.database_url, n_events, args.drain_timeout)
            accepted = fake.stats()["accepted"]
            new = [a for a in accepted if a[0] not in seen_refs]
            seen_refs |= {a[0] for a in new}
            sent_ids = [int(str(a[0]).split(":")[1]) for a in new if a[0]]
            by_kind = dict(Counter(str(r[0]) for r in _db(
                stack.database_url, "SELECT kind FROM notification_log WHERE id = ANY(%s)", (sent_ids,))))
            held = dict(_db(stack.database_url, "SELECT kind, count(*) FROM notification_log WHERE status = 'held'"
                                                " GROUP BY 1"))
            direct = int(_db(stack.database_url, "SELECT count(*) FROM notification_log WHERE id = ANY(%s)"
                                                 " AND admitted_at IS NULL", (sent_ids,))[0][0])
            rank = {kind: i for i, kind in enumerate(PRIORITY)}
            released_ranks = [rank[k] for k in by_kind if by_kind[k]]
            held_ranks = [rank[k] for k in held if held[k]]
            in_order = not released_ranks or not held_ranks or max(released_ranks) <= min(held_ranks)
            entry = {"round": number, "templates_sent": len(new), "sent_by_kind": by_kind,
                     "held": sum(held.values()), "held_by_kind": {str(k): int(v) for k, v in held.items()},
                     "sent_before_the_burst_was_seen": direct if number == 1 else 0,
                     "priority_order_kept": in_order, "distinct_recipients": len({a[1] for a in new}),
                     "statuses": notes, "at_s": round(time.monotonic() - started, 1)}
            rounds.append(entry)
            log(f"round {number}: {entry}")
            if not held:
                break
            log(f"the 24-hour window rolls: {roll_window(stack.redis_url)} customers move a day back")
        final = dict(_db(stack.database_url, "SELECT status, count(*) FROM notification_log GROUP BY 1"))
        stats = fake.stats()
    finals = sum(v for k, v in final.items() if k in ("accepted", "sent", "delivered", "read"))
    lost = n_events - finals - int(final.get("held", 0))
    over = max(r["templates_sent"] - tier for r in rounds)
    result = {"tier": tier, "events": n_events, "arrived": len(arrived), "in_transit": n_events - len(arrived),
              "answers": dict(answers), "burst_ack_s": round(post_s, 2), "rounds": rounds,
              "final_statuses": {str(k): int(v) for k, v in final.items()}, "lost": lost,
              "templates_beyond_the_tier": max(0, over), "refusals_by_fake": stats["refusals"],
              "duplicates": len(stats["accepted"]) - len({a[0] for a in stats["accepted"]}), "machine": info}
    path = write_results(f"notifications-tier{tier}", result)
    print()
    print(f"## Messaging limit {tier:,}: {n_events:,} events ({len(arrived):,} arrived, "
          f"{n_events - len(arrived):,} in transit), limit {args.mps} msg/s, K={args.workers}")
    print()
    print(table(["round", "templates sent", "arrived / in transit sent", "held after", "priority kept",
                 "ended at s"],
                [[r["round"], r["templates_sent"],
                  f"{r['sent_by_kind'].get('arrived', 0)} / {r['sent_by_kind'].get('in_transit', 0)}",
                  r["held"], "yes" if r["priority_order_kept"] else "NO", r["at_s"]] for r in rounds]))
    print()
    print(f"lost {lost}, templates beyond the tier {max(0, over)}, duplicates {result['duplicates']}, "
          f"refusals {stats['refusals']}, sent before the burst was seen {rounds[0]['sent_before_the_burst_was_seen']}")
    print(f"results: {path}")
    ok = lost == 0 and over <= 0 and rounds[0]["templates_sent"] == tier and result["duplicates"] == 0 \
        and all(r["priority_order_kept"] for r in rounds)
    log("targets met" if ok else "targets NOT met")


if __name__ == "__main__":
    main()
