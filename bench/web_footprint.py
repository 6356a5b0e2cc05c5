"""What the web process costs before it answers anything: import time of the app and a gunicorn worker's memory.

Compares checkouts side by side (this machine's speed drifts, so the trees alternate run by run):

    git worktree add /tmp/wt_base <old commit> && ln -s "$PWD/.venv" /tmp/wt_base/.venv
    .venv/bin/python -m bench.web_footprint --trees /tmp/wt_base . --rounds 7

For each tree:
- import time: a fresh interpreter imports the WSGI module (`web.app`, or `app` in trees from before it moved)
  and reports the seconds and whether spaCy and the bot were loaded; median of `--rounds`;
- memory: gunicorn with one gthread worker serving that tree's app, against private Redis and PostgreSQL;
  after /readyz, 50 signed webhooks and the console's login page, the worker's resident memory (VmRSS) and
  the master's, median of `--rounds` starts.
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import subprocess
import time
from pathlib import Path

from bench.loadgen import WebhookFactory
from bench.stack import Stack, bench_env, http_get_status, stop_process

PROBE = """
import sys, time
t = time.perf_counter()
import {module}
seconds = time.perf_counter() - t
ours = {{"chatbot", "worker", "console", "web", "runtime", "services", "storage", "channels", "notifications",
         "handoff", "llm", "core_api_client", "config", "observability", "app"}}
print(seconds, "spacy" in sys.modules, any(m.split(".")[0] == "chatbot" for m in sys.modules),
      sum(1 for m in sys.modules if m.split(".")[0] in ours))
"""


def wsgi_module(tree: Path) -> str:
    return "web.app" if (tree / "web" / "app.py").exists() else "app"


def import_once(tree: Path) -> tuple[float, bool, bool, int]:
    out = subprocess.run([str(tree / ".venv" / "bin" / "python"), "-c", PROBE.format(module=wsgi_module(tree))],
                         cwd=tree, capture_output=True, text=True, check=True, timeout=120).stdout.split()
    return float(out[0]), out[1] == "True", out[2] == "True", int(out[3])


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(p) for p in (task / "children").read_text().split()]
    return found


def gunicorn_rss_once(stack: Stack, tree: Path, env: dict[str, str], port: int) -> tuple[int, int]:
    """(worker KiB, master KiB) of a one-worker gunicorn serving `tree` after some work."""
    args = [str(tree / ".venv" / "bin" / "python"), "-m", "gunicorn", f"{wsgi_module(tree)}:app",
            "--bind", f"127.0.0.1:{port}", "--workers", "1", "--worker-class", "gthread", "--threads", "8",
            "--log-level", "warning", "--chdir", str(tree)]
    log_path = stack.base / f"web-{tree.name}-{port}.log"
    with open(log_path, "ab") as out:  # run from the tree: `python -m` puts the working directory first on sys.path
        proc = subprocess.Popen(args, cwd=tree, env=env, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while not _ready(port):
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"gunicorn for {tree} did not start:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.2)
        factory = WebhookFactory(port, "/webhooks/whatsapp", customers=10, id_prefix=f"wamid.FP{port}")
        for _ in range(50):
            raw, _mid = factory.next()
            head, body = raw.split(b"\r\n\r\n", 1)
            headers = dict(line.split(": ", 1) for line in head.decode().split("\r\n")[1:])
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            conn.request("POST", "/webhooks/whatsapp", body=body, headers=headers)
            assert conn.getresponse().status == 200
            conn.close()
        assert http_get_status(port, "/console/login") == 200
        (worker,) = children(proc.pid)
        return rss_kib(worker), rss_kib(proc.pid)
    finally:
        stop_process(proc, "gunicorn")


def _ready(port: int) -> bool:
    try:
        return http_get_status(port, "/readyz") == 200
    except OSError:
        return False


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trees", nargs="+", type=Path, required=True, help="checkouts, each with its .venv")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args(argv)
    trees = [t.resolve() for t in args.trees]
    imports: dict[Path, list[tuple[float, bool, bool, int]]] = {t: [] for t in trees}
    memory: dict[Path, list[tuple[int, int]]] = {t: [] for t in trees}
    for _ in range(args.rounds):
        for tree in trees:
            imports[tree].append(import_once(tree))
    with Stack() as stack:
        stack.start_services()
        env = bench_env(stack.redis_url, stack.database_url)
        stack.seed_tenant(env)
        from scripts import devservices

        for _ in range(args.rounds):
            for tree in trees:
                memory[tree].append(gunicorn_rss_once(stack, tree, env, devservices.free_port()))
    rows = []
    for tree in trees:
        seconds = statistics.median(r[0] for r in imports[tree])
        spacy, bot, modules = imports[tree][0][1:]
        worker = statistics.median(m[0] for m in memory[tree]) / 1024
        master = statistics.median(m[1] for m in memory[tree]) / 1024
        rows.append({"tree": str(tree), "module": wsgi_module(tree), "import_s": round(seconds, 3),
                     "import_s_all": [round(r[0], 3) for r in imports[tree]], "spacy": spacy, "chatbot": bot,
                     "project_modules": modules, "worker_rss_mib": round(worker, 1),
                     "worker_rss_mib_all": [round(m[0] / 1024, 1) for m in memory[tree]],
                     "master_rss_mib": round(master, 1)})
    print(json.dumps(rows, indent=2))
    print("| tree | import of the WSGI module (median) | spaCy / bot loaded | project modules | "
          "gunicorn worker RSS (median) | master RSS |")
    print("| --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {Path(r['tree']).name} | {r['import_s']:.2f} s | {r['spacy']} / {r['chatbot']} | "
              f"{r['project_modules']} | {r['worker_rss_mib']:.0f} MiB | {r['master_rss_mib']:.0f} MiB |")


if __name__ == "__main__":
    main()
