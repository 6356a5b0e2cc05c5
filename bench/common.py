"""Small helpers shared by the benchmarks: constants, logging, statistics, tables, result files.

- `ROOT`, `RESULTS_DIR` and the benchmark's Meta set-up (`APP_SECRET`, `PHONE_NUMBER_ID`,
  `GRAPH_TOKEN`); importing this module puts the project root on sys.path.
- `percentile`, `median`, `latency_summary_ms`: statistics; `fmt`, `table`: Markdown tables.
- `write_results` (bench/results/<name>.json); `machine_info` and `tree_state`: what was measured, where.
- `log`, `timed`: progress lines on stderr.

The machinery lives in its own modules: `bench.cpu` (CPU accounting from /proc), `bench.stack`
(private services and the processes under test), `bench.loadgen` (the load generator and its
requests), `bench.graph_fake` (the fake Graph API in its own process) and `bench.rq_baseline`
(RQ's own ceiling with no-op jobs).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `python bench/ingest.py` (make bench) puts bench/, not the root, on sys.path
    sys.path.insert(0, str(ROOT))

RESULTS_DIR = ROOT / "bench" / "results"
APP_SECRET = "bench-app-secret"  # noqa: S105 - a throw-away secret of the benchmark
PHONE_NUMBER_ID = "106540352242922"
GRAPH_TOKEN = "bench-meta-access-token"  # noqa: S105 - the fake Graph API's token


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- statistics ----------------------------------------------------------------------------


def percentile(values: Iterable[float], p: float) -> float:
    """The p-th percentile (0..100) with linear interpolation between ranks; nan for no values."""
    data = sorted(values)
    if not data:
        return math.nan
    if len(data) == 1:
        return data[0]
    rank = (len(data) - 1) * p / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(data) - 1)
    return data[low] + (data[high] - data[low]) * (rank - low)


def latency_summary_ms(latencies_s: list[float]) -> dict[str, float]:
    if not latencies_s:
        return {"p50": math.nan, "p95": math.nan, "p99": math.nan, "max": math.nan, "mean": math.nan}
    return {
        "p50": round(percentile(latencies_s, 50) * 1000, 2),
        "p95": round(percentile(latencies_s, 95) * 1000, 2),
        "p99": round(percentile(latencies_s, 99) * 1000, 2),
        "max": round(max(latencies_s) * 1000, 2),
        "mean": round(sum(latencies_s) / len(latencies_s) * 1000, 2),
    }


def median(values: Iterable[float]) -> float:
    return percentile(values, 50)


def fmt(value: Any, digits: int = 1) -> str:
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.{digits}f}"
    return str(value)


def table(headers: list[str], rows: list[list[Any]]) -> str:
    """A Markdown table (readable in a terminal and pasteable into docs/BENCHMARKS.md)."""
    cells = [[fmt(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    lines = ["| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |",
             "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    lines += ["| " + " | ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) + " |" for row in cells]
    return "\n".join(lines)


def write_results(name: str, data: dict[str, Any]) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    path.write_text(json.dumps(data, indent=2, default=str), encoding="utf-8")
    return path


def tree_state() -> dict[str, Any]:
    """Which code was measured: the commit and how many files differ from it (other work in progress)."""
    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            return ""

    return {"commit": git("rev-parse", "--short", "HEAD"),
            "changed_files": len([line for line in git("status", "--porcelain").splitlines() if line.strip()])}


def machine_info() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem_gb = 0.0
    with contextlib.suppress(OSError, ValueError, IndexError):
        mem_gb = int(Path("/proc/meminfo").read_text().split()[1]) / 1024 / 1024
    return {"cpus": os.cpu_count(), "cpu_model": model, "mem_gb": round(mem_gb, 1),
            "python": sys.version.split()[0], "loadavg_at_start": os.getloadavg(), "tree": tree_state()}
