"""Figures of the conversation scenarios: how many were resolved without a person, how many got "no entendí".

    python scripts/conversation_figures.py [FILE ...] [--json]

Without files it takes every tests/scenarios/*.yaml. Each conversation is replayed through the whole
pipeline exactly as scripts/converse.py does (one set of throw-away services for all files, or the given
DATABASE_URL/REDIS_URL), and counted as follows:

resolved without a person
    after none of its turns did the conversation wait for or sit with a person: no case was opened. This is
    the design's "tasa de resolución automática" (section 11.1.2: conversations not escalated / all
    conversations; target > 75 %).
sent to a person by request or by rule
    an escalated conversation whose first case has one of REQUESTED_OR_RULED as its reason: the customer
    asked for a person (in words, the menu's option, the "Hablar con asesor" button after a package was
    not found), or the design hands the topic to people (complaints, sales leads, changes of delivery).
    The figure "of the conversations the bot may resolve" leaves these out of the count; every other
    escalation (after "no entendí", after the same message again and again) counts against the bot.
"no entendí" at least once
    the bot recorded a `not_understood` event in the conversation: it answered "Perdón, no entendí", its
    foreign-language or too-long variant, or offered a person because it did not understand (the design's
    "tasa de no entiendo", section 11.3.1, target < 10 %). Also given per customer message.

Whether the conversations' expectations passed is reported beside the figures, not mixed into them.
Exit status: 0 when the figures were computed, 2 on a bad file or when the pipeline cannot run.
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

SCENARIOS = ROOT / "tests" / "scenarios"
REQUESTED_OR_RULED = frozenset({"customer_request", "package_not_found", "complaint", "sales_lead",
                                "change_delivery"})
RESOLUTION_TARGET, NOT_UNDERSTOOD_TARGET = 75.0, 10.0  # percent, design sections 11.1.2 and 11.3.1


def share(part: int, whole: int) -> float:
    return round(100.0 * part / whole, 1) if whole else 0.0


def figures(results: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """The figures of replayed conversations, by file name (each a list of run_conversation reports)."""
    every = [(name, r) for name, reports in results.items() for r in reports]
    escalated = [(name, r) for name, r in every if r["escalated"]]
    requested = [(name, r) for name, r in escalated if r["escalation_reason"] in REQUESTED_OR_RULED]
    confused = [(name, r) for name, r in every if r["not_understood"] > 0]
    messages = sum(len(r["turns"]) for _, r in every)
    events = sum(r["not_understood"] for _, r in every)
    resolved = len(every) - len(escalated)
    may_resolve = len(every) - len(requested)
    return {
        "files": {name: {"conversations": len(reports), "passed": sum(r["passed"] for r in reports)}
                  for name, reports in results.items()},
        "conversations": len(every),
        "expectations_passed": sum(r["passed"] for _, r in every),
        "resolved": resolved,
        "resolved_pct": share(resolved, len(every)),
        "requested_or_ruled": len(requested),
        "may_resolve": may_resolve,
        "resolved_of_may_resolve_pct": share(resolved, may_resolve),
        "not_understood_conversations": len(confused),
        "not_understood_pct": share(len(confused), len(every)),
        "messages": messages,
        "not_understood_events": events,
        "not_understood_per_message_pct": share(events, messages),
        "escalated": [{"file": name, "name": r["name"], "reason": r["escalation_reason"],
                       "requested_or_ruled": r["escalation_reason"] in REQUESTED_OR_RULED} for name, r in escalated],
        "not_understood": [{"file": name, "name": r["name"], "count": r["not_understood"]} for name, r in confused],
    }


def report(f: dict[str, Any]) -> str:
    """The figures as the lines docs/NLU.md quotes."""
    n = f["conversations"]
    by_file = ", ".join(f"{name} {v['passed']}/{v['conversations']}" for name, v in f["files"].items())
    lines = [
        f"Conversations: {n} in {len(f['files'])} file{'' if len(f['files']) == 1 else 's'}"
        f"; expectations passed in {f['expectations_passed']} ({by_file})",
        f"Resolved without a person: {f['resolved']} of {n} ({f['resolved_pct']}%)"
        f" [design target > {RESOLUTION_TARGET:g}%]",
        f"  sent to a person by request or by rule: {f['requested_or_ruled']}",
        f"  resolved of the {f['may_resolve']} the bot may resolve: {f['resolved']}"
        f" ({f['resolved_of_may_resolve_pct']}%)",
        f"'No entendi' at least once: {f['not_understood_conversations']} of {n} ({f['not_understood_pct']}%)"
        f" [design target < {NOT_UNDERSTOOD_TARGET:g}%]",
        f"  'no entendi' per customer message: {f['not_understood_events']} of {f['messages']}"
        f" ({f['not_understood_per_message_pct']}%)",
        "",
        "Sent to a person (count against the resolution; * = by request or by rule):",
    ]
    lines += [f"  {'*' if e['requested_or_ruled'] else ' '} {e['file']} · {e['name']} ({e['reason']})"
              for e in f["escalated"]] or ["  (none)"]
    lines += ["", "Got 'no entendi' at least once:"]
    lines += [f"    {e['file']} · {e['name']} ({e['count']})" for e in f["not_understood"]] or ["  (none)"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="figures of the conversation scenarios")
    parser.add_argument("files", type=Path, nargs="*", help="scenario YAML files (default: tests/scenarios/*.yaml)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    files = args.files or sorted(SCENARIOS.glob("*.yaml"))
    try:
        scenarios = {path.name: load_scenarios(path) for path in files}
    except ScenarioError as exc:
        print(f"conversation_figures: {exc}", file=sys.stderr)
        return 2
    results = replay(scenarios, "conversation_figures")
    if results is None:
        return 2
    found = figures(results)
    print(json.dumps(found, ensure_ascii=False, indent=2) if args.json else report(found))
    return 0


if __name__ == "__main__":
    sys.exit(main())
