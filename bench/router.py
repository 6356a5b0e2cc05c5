"""Message router benchmark: throughput of the rules path on one core, and how often the LLM would be needed.

    python bench/router.py [--repeat 20] [--json]

Throughput: tests/nlu/dev.jsonl routed `--repeat` times (no context, no LLM) after a warm-up pass that
builds the spaCy pipeline and the word caches, in this one process (one core); caches keyed by a whole
message are cleared before each pass, so repeating the set does not flatter the figure. LLM share: the messages of
tests/nlu/dev.jsonl + tests/nlu/extra.jsonl whose rules answer is a guess (stage "fallback" or
confidence below chatbot.router.LLM_THRESHOLD). Also reports the start-up time (pipeline + lexicon)
and the latency of single messages, including a 4,000-character one.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `python bench/router.py` puts bench/, not the root, on sys.path
    sys.path.insert(0, str(ROOT))

from bench.common import machine_info, percentile, table  # noqa: E402 - needs the path set above

NLU_DIR = ROOT / "tests" / "nlu"


def load(name: str) -> list[str]:
    path = NLU_DIR / name
    if not path.exists():
        return []
    return [json.loads(line)["text"] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def clear_message_caches() -> None:
    from chatbot import entities

    entities._places.cache_clear()


def run(repeat: int) -> dict[str, Any]:
    started = time.perf_counter()
    from chatbot.router import LLM_THRESHOLD, route  # the import and first call build the pipeline

    route("hola")
    startup_s = time.perf_counter() - started
    dev, extra = load("dev.jsonl"), load("extra.jsonl")
    for text in dev + extra:  # warm-up: caches of words and places
        route(text)
    begin = time.process_time()
    wall = time.perf_counter()
    for _ in range(repeat):
        clear_message_caches()  # word caches stay warm (a finite vocabulary); whole-message ones must not help
        for text in dev:
            route(text)
    cpu_s, wall_s = time.process_time() - begin, time.perf_counter() - wall
    latencies = []
    clear_message_caches()
    for text in dev + extra:
        t0 = time.perf_counter()
        route(text)
        latencies.append((time.perf_counter() - t0) * 1000)
    long_text = ("hola buenas, fijese que mande un encargo a santa ana y no ha llegado " * 60)[:4000]
    t0 = time.perf_counter()
    route(long_text + " x")  # not cached
    long_ms = (time.perf_counter() - t0) * 1000
    routed = [route(text) for text in dev + extra]
    to_llm = sum(1 for r in routed if r.stage == "fallback" or r.confidence < LLM_THRESHOLD)
    messages = repeat * len(dev)
    return {
        "messages": messages,
        "msgs_per_s_cpu": messages / cpu_s if cpu_s else float("nan"),
        "msgs_per_s_wall": messages / wall_s if wall_s else float("nan"),
        "latency_ms_p50": percentile(latencies, 50),
        "latency_ms_p99": percentile(latencies, 99),
        "latency_ms_4000_chars": long_ms,
        "startup_s": startup_s,
        "llm_share": to_llm / len(routed) if routed else float("nan"),
        "llm_share_messages": len(routed),
        "llm_threshold": LLM_THRESHOLD,
        "machine": machine_info(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20, help="passes over tests/nlu/dev.jsonl (default 20)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    result = run(max(1, args.repeat))
    if args.json:
        print(json.dumps(result, default=str))
        return 0
    rows = [
        ["rules path, one core (CPU time)", f"{result['msgs_per_s_cpu']:.0f} msg/s", f"{result['messages']} messages"],
        ["rules path, wall clock", f"{result['msgs_per_s_wall']:.0f} msg/s", ""],
        ["latency p50 / p99", f"{result['latency_ms_p50']:.2f} / {result['latency_ms_p99']:.2f} ms", "dev + extra"],
        ["latency, 4,000 characters", f"{result['latency_ms_4000_chars']:.1f} ms", "uncached"],
        ["start-up (spaCy + lexicon)", f"{result['startup_s']:.1f} s", "once per process"],
        ["would go to the LLM", f"{result['llm_share']:.1%}",
         f"of {result['llm_share_messages']} (dev + extra), conf < {result['llm_threshold']}"],
    ]
    print(table(["measure", "value", "note"], rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
