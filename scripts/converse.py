"""Replay conversation scenarios through the whole pipeline and check what the customer would see.

    python scripts/converse.py tests/scenarios/examples.yaml [--json] [--verbose]

A scenario file is a YAML list of conversations (format: tests/scenarios/FORMAT.md):

    - name: short description
      from: "+50370000001"            # the customer's number (or from_user: "US.1349..." without a phone)
      at: "2026-01-06T10:30:00-06:00" # the clock of the first turn
      turns:
        - user: "Hola"
          after: "45s"                # optional: time since the previous turn (s, m, h)
          expect: {intent: greeting, reply_contains: ["rastrear"], escalated: false, ...}

Each turn is posted as a signed Meta webhook at the scenario clock and that
turn's replies are read back from the messages table. Throw-away Redis and
PostgreSQL are started unless DATABASE_URL and REDIS_URL are set; with given
ones only the scenario's number is forgotten between conversations.

Prints one line per failed expectation and, last, `N passed, N failed`
(conversations); `--json` prints a report instead.
Exit status: 0 when every conversation passed, 1 otherwise, 2 on a bad file.

This module is the command line and the report; the parts live in
    scripts/converse_scenarios.py  the scenario file: format, loading, validation
    scripts/converse_pipeline.py   services, app, sandbox core and worker; one conversation replayed
    scripts/converse_checks.py     what a turn showed the customer, matched against its expectations
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a file: make the project importable
    sys.path.insert(0, str(ROOT))


from scripts.converse_pipeline import replay  # noqa: E402
from scripts.converse_scenarios import ScenarioError, load_scenarios  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="replay conversation scenarios through the pipeline")
    parser.add_argument("file", type=Path, help="scenario YAML (see tests/scenarios/FORMAT.md)")
    parser.add_argument("--json", action="store_true", help="print a machine-readable report")
    parser.add_argument("--verbose", "-v", action="store_true", help="print every conversation's transcript")
    args = parser.parse_args(argv)
    try:
        conversations = load_scenarios(args.file)
    except ScenarioError as exc:
        print(f"converse: {exc}", file=sys.stderr)
        return 2
    replayed = replay({str(args.file): conversations}, "converse")
    if replayed is None:
        return 2
    results = replayed[str(args.file)]
    passed = sum(r["passed"] for r in results)
    failed = len(results) - passed
    if args.json:
        print(json.dumps({"file": str(args.file), "passed": passed, "failed": failed, "conversations": results},
                         ensure_ascii=False, indent=2))
        return 0 if failed == 0 else 1
    for result in results:
        if args.verbose:
            _print_transcript(result)
        for failure in result["failures"]:
            user = failure["user"] if len(failure["user"]) <= 60 else failure["user"][:57] + "..."
            print(f"FAIL {result['name']} · turn {failure['turn']} ({user!r}): {failure['failure']}")
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


def _print_transcript(result: dict[str, Any]) -> None:
    print(f"=== {result['name']} ({result['from']}) {'ok' if result['passed'] else 'FAILED'}")
    for turn in result["turns"]:
        print(f"> {turn['user'][:200]}   [{turn['intent']}{' · escalated' if turn['escalated'] else ''}]")
        for reply in turn["replies"]:
            print("  < " + reply.replace("\n", "\n    "))
    print()


if __name__ == "__main__":
    sys.exit(main())
