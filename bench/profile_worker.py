"""Where one message's worker time goes: CPU, SQL statements, Redis commands and HTTP calls per message.

    python -m bench.profile_worker [--messages 300] [--top 25] [--tenants 50]

Starts private Redis and PostgreSQL, the sandbox core and the fake Graph API (like `bench.pipeline`),
acknowledges N signed webhooks through the real Flask app (in this process, no gunicorn), then handles
each stored event with `worker.inbound.process_message` in this process under cProfile, exactly as an RQ
job does (without RQ's own per-job cost, which `bench.pipeline` measures as the no-op baseline).
Reports per message: worker CPU ms, SQL statements (cProfile's count of psycopg executes), Redis
commands (the server's INFO commandstats delta) and HTTP requests (http.client responses for the
Graph API, httpx sends for the core), then the top functions by cumulative time. A tool for
optimising, not a target: the figures go in docs/BENCHMARKS.md.

`--tenants N` seeds N tenants, each with its own Meta number (bench.stack.Stack.seed_tenants), and
spreads the customers over them; the warm-up reaches every tenant once, as a running worker's would
have. It then also counts, per message, the tenant reads that reached PostgreSQL (the misses of the
routing, core, senders and FAQ caches: storage.tenants.tenant_for_channel_number, runtime.cores'
TenantCores._read, storage.channel_accounts.sending_accounts, storage.faq_versions.answering,
storage.intent_phrases.for_tenant) and the reads
of Redis `tenants:version`.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import time
from collections import Counter
from typing import Any

from bench.common import APP_SECRET, log
from bench.graph_fake import GraphFakeProcess
from bench.loadgen import WebhookFactory
from bench.stack import Stack, bench_env, tenant_numbers


def _redis_calls(conn: Any) -> Counter[str]:
    return Counter({name.removeprefix("cmdstat_"): int(stats["calls"])
                    for name, stats in conn.info("commandstats").items() if name != "cmdstat_info"})


def _calls(stats: pstats.Stats, module_part: str, func: str) -> int:
    table: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    return sum(entry[1] for (path, _line, name), entry in table.items() if module_part in path and name == func)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=300)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--sort", default="cumulative", help="cProfile order: cumulative, tottime, ncalls")
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--tenants", type=int, default=1, help="tenants (numbers) the customers are spread over")
    parser.add_argument("--no-profile", action="store_true", help="CPU and counts only (cProfile adds ~40 %% of CPU)")
    parser.add_argument("--cpu-timer", action="store_true",
                        help="profile with the process's CPU time instead of wall time (waits for answers vanish)")
    args = parser.parse_args(argv)

    from config import Settings
    from runtime.resources import build_runtime
    from web.app import create_app
    from worker import inbound

    with Stack(keep=args.keep) as stack:
        stack.start_services()
        tenants = max(1, args.tenants)
        fake = GraphFakeProcess(phone_number_ids=tenant_numbers(tenants))
        stack.on_close(fake.stop)
        env = bench_env(stack.redis_url, stack.database_url, META_GRAPH_BASE_URL=fake.url)
        core_url = stack.start_core(env)
        env["CORE_API_URL"] = core_url or "http://127.0.0.1:9"
        numbers = stack.seed_tenants(env, tenants)
        settings = Settings.from_env(env)
        app = create_app(settings)
        client = app.test_client()
        customers = -(-max(50, args.messages // 2) // tenants) * tenants  # as many for every tenant
        factory = WebhookFactory(0, "/webhooks/whatsapp", customers=customers, secret=APP_SECRET,
                                 phone_number_ids=numbers)
        n_warm = max(20, tenants)  # the first `tenants` messages reach every tenant once
        for _ in range(args.messages + n_warm):
            raw, _mid = factory.next()
            head, body = raw.split(b"\r\n\r\n", 1)
            headers = dict(line.split(": ", 1) for line in head.decode().split("\r\n")[1:])
            response = client.post("/webhooks/whatsapp", data=body, headers=headers)
            assert response.status_code == 200, response.data

        rt = build_runtime(settings, pool_size=2)
        try:
            with rt.pool.connection() as conn:
                pks = [row["id"] for row in conn.execute(  # type: ignore[call-overload]  # the pool's rows are dicts
                    "SELECT id FROM webhook_events ORDER BY id")]
            warm, measured = pks[:n_warm], pks[n_warm:]
            for pk in warm:  # first messages load the router, open connections, warm caches
                inbound.process_message(rt, pk)
            redis_before = _redis_calls(rt.redis)
            profiler = cProfile.Profile(time.process_time) if args.cpu_timer else cProfile.Profile()
            cpu0, wall0 = time.process_time(), time.perf_counter()
            if not args.no_profile:
                profiler.enable()
            for pk in measured:
                inbound.process_message(rt, pk)
            profiler.disable()
            cpu_s, wall_s = time.process_time() - cpu0, time.perf_counter() - wall0
            redis_by_command = _redis_calls(rt.redis)
            redis_by_command.subtract(redis_before)
        finally:
            rt.close()
        n = len(measured)
        out = io.StringIO()
        stats = None if args.no_profile else pstats.Stats(profiler, stream=out)
        replies = fake.count()
        print()
        print(f"## Worker profile: {n} messages (greetings, {replies} replies at the fake), "
              f"{tenants} tenant{'s' if tenants > 1 else ''}")
        print()
        print("| per message | value |")
        print("|---|---|")
        label = "worker CPU ms" + ("" if args.no_profile else " (with cProfile)")
        print(f"| {label} | {1000 * cpu_s / n:.2f} |")
        print(f"| wall ms | {1000 * wall_s / n:.2f} |")
        if stats is not None:
            print(f"| SQL statements | {_calls(stats, 'psycopg/cursor.py', 'execute') / n:.1f} |")
            http = _calls(stats, 'http/client.py', 'getresponse') + _calls(stats, 'httpx/_client.py', 'send')
            print(f"| HTTP requests (Graph API, core) | {http / n:.1f} |")
            # the per-process tenant caches' misses: routing, each tenant's core, sending channels, FAQ, phrases
            for what, module_part, func in (("routing", "storage/tenants.py", "tenant_for_channel_number"),
                                            ("core", "runtime/cores.py", "_read"),
                                            ("senders", "storage/channel_accounts.py", "sending_accounts"),
                                            ("FAQ", "storage/faq_versions.py", "answering"),
                                            ("phrases", "storage/intent_phrases.py", "for_tenant")):
                lookups = _calls(stats, module_part, func)
                print(f"| tenant reads in PostgreSQL ({what} cache misses) | {lookups / n:.3f} ({lookups} in all) |")
            versions = _calls(stats, 'storage/tenant_changes.py', 'version')
            print(f"| reads of Redis tenants:version | {versions / n:.3f} ({versions} in all) |")
        print(f"| Redis commands | {redis_by_command.total() / n:.1f} |")
        print()
        print("Redis commands per message: " + ", ".join(
            f"{name} {count / n:.2f}" for name, count in redis_by_command.most_common() if count > 0))
        if stats is not None:
            print()
            stats.sort_stats(args.sort).print_stats(args.top)
            print(out.getvalue())
    log("done")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
