"""How long grouping a month of a busy company's unanswered messages takes (services/unanswered_groups.py).

    python -m bench.unanswered_groups [--messages 20000] [--topics 400] [--runs 3] [--database]

Generates `--messages` messages over `--topics` questions (each asked in several wordings: words reordered,
accents dropped, letters doubled, a letter missing, greetings and codes added; a few topics are asked far
more than others, as in real traffic), half of them in the previous month, and times
`services.unanswered_groups.group` over them (the "Mejoras" page's work after its query), in this process.
Prints the median of the runs, the groups found and how many messages were left out of every group.
`--database` also starts a private PostgreSQL (bench.stack), stores the same messages as a company's
conversations (each unanswered message between two answered ones, its `not_understood` event naming it) and
times what the "Mejoras" page does: `services.unanswered_groups.for_period` (the two ranges' queries, then the
grouping) for the month.
A tool for sizing, not a target: the figure goes in docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from datetime import UTC, datetime, timedelta

from services.unanswered_groups import MAX_BUCKETS, group
from storage.unanswered import Unanswered

WORDS = ("envio guatemala caja bodega refrigerada factura credito fiscal mercado libre moto repartidor domingo "
         "feriado sabado tarjeta bitcoin transferencia seguro fragil vidrio mascota planta comida perecedero "
         "honduras mexico estados unidos aduana impuesto peso volumen medida sobre documento llave celular laptop "
         "bicicleta mueble colchon refrigeradora cocina lavadora empleo trabajo vacante oficina central horario "
         "empaque cinta etiqueta recoleccion domicilio casa empresa mayoreo descuento cupon promocion reclamo "
         "garantia roto mojado abierto perdido cambiado devolver retornar cancelar anular").split()
LEADS = ("", "hola ", "buenas tardes, ", "oiga ", "disculpe, ", "buenos dias ")
ASKS = ("¿hacen {} {}?", "¿tienen {} de {}?", "quisiera saber si {} {}", "{} y {}??", "me ayudan con {} {}",
        "necesito {} para {}", "¿aceptan {} {}?")


def _typo(word: str, rng: random.Random) -> str:
    if len(word) < 5:
        return word
    i = rng.randrange(1, len(word) - 1)
    return rng.choice((word[:i] + word[i + 1:], word[:i] + word[i] + word[i:], word[:i] + word[i + 1] + word[i]
                       + word[i + 2:]))


def messages(count: int, topics: int, seed: int = 16) -> tuple[list[Unanswered], list[Unanswered]]:
    """`count` messages (this month, and the month before) over `topics` questions with Zipf-like frequencies."""
    rng = random.Random(seed)
    questions = [(rng.choice(ASKS), rng.sample(WORDS, 2)) for _ in range(topics)]
    weights = [1 / (rank + 1) for rank in range(topics)]
    now = datetime(2026, 11, 30, tzinfo=UTC)
    made: tuple[list[Unanswered], list[Unanswered]] = ([], [])
    for i in range(count):
        ask, words = rng.choices(questions, weights)[0]
        words = [_typo(w, rng) if rng.random() < 0.15 else w for w in words]
        if rng.random() < 0.3:
            words.reverse()
        text = rng.choice(LEADS) + ask.format(*words)
        if rng.random() < 0.1:
            text += f" mi código es SV{rng.randrange(10**9, 10**10)}"
        if rng.random() < 0.2:
            text = text.upper()
        at = now - timedelta(minutes=rng.randrange(0, 60 * 24 * 60))
        made[at < now - timedelta(days=30)].append(Unanswered(i, text, at, "not_understood", None))
    return made


def _store(database_url: str, tenant_id: int, rows: list[Unanswered]) -> None:
    """The messages as the worker stores them: one conversation per 4 unanswered messages, an answered customer
    message before each, a `not_understood` event naming each unanswered one by its webhook event id."""
    import psycopg
    from psycopg.types.json import Jsonb

    with psycopg.connect(database_url, autocommit=True) as conn:
        chats = len(rows) // 4 + 1
        conn.execute("INSERT INTO contacts (tenant_id, phone_hash) SELECT %s, 'bench-' || i"
                     " FROM generate_series(1, %s) i", (tenant_id, chats))
        conn.execute("INSERT INTO conversations (tenant_id, contact_id, status) SELECT %s, id, 'closed'"
                     " FROM contacts WHERE tenant_id = %s", (tenant_id, tenant_id))
        first = conn.execute("SELECT min(id) FROM conversations WHERE tenant_id = %s", (tenant_id,)).fetchone()
        assert first is not None
        conn.execute("INSERT INTO webhook_events (id, tenant_id, provider, event_id, kind, payload_encrypted,"
                     " correlation_id, status) SELECT i, %s, 'meta', 'bench-' || i, 'message', 'x', 'c', 'processed'"
                     " FROM generate_series(1, %s) i", (tenant_id, 2 * len(rows)))
        with conn.cursor() as cur:
            with cur.copy("COPY messages (tenant_id, conversation_id, direction, channel, webhook_event_id, kind,"
                          " body, status, created_at) FROM STDIN") as copy:
                for i, row in enumerate(rows):
                    chat = first[0] + i // 4
                    copy.write_row((tenant_id, chat, "in", "meta", 2 * i + 1, "text", "¿dónde está mi paquete?",
                                    "received", row.at - timedelta(minutes=1)))
                    copy.write_row((tenant_id, chat, "in", "meta", 2 * i + 2, "text", row.text, "received", row.at))
            with cur.copy("COPY events (tenant_id, conversation_id, kind, data, created_at) FROM STDIN") as copy:
                for i, row in enumerate(rows):
                    copy.write_row((tenant_id, first[0] + i // 4, "not_understood",
                                    Jsonb({"count": 1, "message_event": 2 * i + 2}), row.at))
        conn.execute("ANALYZE")


def _database(current: list[Unanswered], previous: list[Unanswered], runs: int) -> None:
    from bench.stack import Stack, bench_env
    from services.unanswered_groups import for_period
    from storage import unanswered
    from storage.db import open_pool

    with Stack() as stack:
        stack.start_services()
        tenant_id = stack.seed_tenant(bench_env(stack.redis_url, stack.database_url))
        _store(stack.database_url, tenant_id, [*previous, *current])
        end = max(r.at for r in current) + timedelta(seconds=1)
        start = end - timedelta(days=30)
        pool = open_pool(stack.database_url, max_size=1, name="bench-groups")
        try:
            timings, reads = [], []
            for _ in range(runs):
                with pool.connection() as conn:
                    began = time.perf_counter()
                    unanswered.between(conn, tenant_id, start, end)
                    unanswered.between(conn, tenant_id, start - (end - start), start)
                    reads.append(time.perf_counter() - began)
                    began = time.perf_counter()
                    result = for_period(conn, tenant_id, start, end)
                    timings.append(time.perf_counter() - began)
        finally:
            pool.close()
    print(f"database: for_period over {result.total} messages (and {result.previous_total} the month before): "  # noqa: T201
          f"median {statistics.median(timings) * 1000:.0f} ms over {runs} runs, of which the two queries "
          f"{statistics.median(reads) * 1000:.0f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--topics", type=int, default=400)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--database", action="store_true", help="also time the page's queries on PostgreSQL")
    args = parser.parse_args()
    current, previous = messages(args.messages * 2, args.topics)  # about half fall in each month
    timings = []
    result = None
    for _ in range(args.runs):
        started = time.perf_counter()
        result = group(current, previous)
        timings.append(time.perf_counter() - started)
    assert result is not None
    print(f"messages: {len(current)} this month, {len(previous)} the month before; {args.topics} questions asked")  # noqa: T201
    print(f"grouping: median {statistics.median(timings) * 1000:.0f} ms over {args.runs} runs "  # noqa: T201
          f"(max buckets {MAX_BUCKETS}); {len(result.groups)} groups, the largest "
          f"{[g.count for g in result.groups[:5]]}; left out {result.left_out}")
    if args.database:
        _database(current, previous, args.runs)


if __name__ == "__main__":
    main()
