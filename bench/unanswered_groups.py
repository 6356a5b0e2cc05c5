"""How long grouping a month of a busy company's unanswered messages takes (services/unanswered_groups.py).

    python -m bench.unanswered_groups [--messages 20000] [--topics 400] [--runs 3]

Generates `--messages` messages over `--topics` questions (each asked in several wordings: words reordered,
accents dropped, letters doubled, a letter missing, greetings and codes added; a few topics are asked far
more than others, as in real traffic), half of them in the previous month, and times
`services.unanswered_groups.group` over them (the "Mejoras" page's work after its query), in this process.
Prints the median of the runs, the groups found and how many messages were left out of every group.
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--topics", type=int, default=400)
    parser.add_argument("--runs", type=int, default=3)
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


if __name__ == "__main__":
    main()
