"""Score the message router (rules only: no dialog context, no LLM) on a JSONL file of labelled messages.

    python scripts/eval_nlu.py tests/nlu/dev.jsonl [--json]

Each line: {"text": ..., "intent": ..., "entities": {...}} (docs/NLU.md); a row may add "context":
{"expecting": ..., "last_intent": ..., "options": [...]}, what the bot had just asked (chatbot/routing.py's
DialogContext; "expecting": "name" reads a name given when asked). Reports intent accuracy,
per-intent precision/recall/support, entity accuracy (every entity a row lists must be found with that
value, numbers compared as floats; entities the router adds are not counted against it; rows without
entities do not count), cue accuracy (rows with "cues": [...] must carry each listed cue, and none of
"not_cues": [...]; chatbot/cues.py), language accuracy (rows with "foreign": true/false: whether
chatbot/guard.py's `clean` reads the message as English), the share of messages that would go to the LLM
(stage "fallback" or confidence below the router's threshold), the share answered wrongly with confidence
(no LLM would be asked) and the confusion pairs. The last line is always "N passed, N failed" (a row passes
when its intent, its listed entities, its listed cues and its language are right). Exit code 0 whenever it ran.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `python scripts/eval_nlu.py` puts scripts/, not the root, on sys.path
    sys.path.insert(0, str(ROOT))

from chatbot.cues import cues_in  # noqa: E402 - needs the path set above
from chatbot.guard import clean  # noqa: E402
from chatbot.router import LLM_THRESHOLD, route  # noqa: E402
from chatbot.routing import DialogContext  # noqa: E402


def same_value(expected: Any, got: Any) -> bool:
    if isinstance(expected, int | float) and not isinstance(expected, bool):
        try:
            return abs(float(got) - float(expected)) < 1e-6
        except (TypeError, ValueError):
            return False
    return bool(got == expected)


def context_of(row: dict[str, Any]) -> DialogContext | None:
    """The row's "context" (what the bot had just asked), if it has one."""
    given = row.get("context")
    if not given:
        return None
    options = tuple(given.get("options") or ())
    return DialogContext(given.get("expecting"), options, tuple(given.get("option_titles") or options),
                         given.get("last_intent"))


def evaluate(rows: list[dict[str, Any]]) -> dict[str, Any]:
    intents_ok = entity_rows = entity_ok = cue_rows = cue_ok = passed = to_llm = confident_wrong = 0
    language_rows = language_ok = 0
    confusion: Counter[tuple[str, str]] = Counter()
    true_pos: Counter[str] = Counter()
    predicted: Counter[str] = Counter()
    support: Counter[str] = Counter()
    failures: list[dict[str, Any]] = []
    for row in rows:
        result = route(row["text"], context_of(row))
        expected_entities = row.get("entities") or {}
        intent_right = result.intent == row["intent"]
        entities_right = all(same_value(v, result.entities.get(k)) for k, v in expected_entities.items())
        cues, not_cues = set(row.get("cues") or ()), set(row.get("not_cues") or ())
        found_cues = cues_in(row["text"]) if cues or not_cues else frozenset()
        cues_right = cues <= found_cues and not not_cues & found_cues
        if cues or not_cues:
            cue_rows += 1
            cue_ok += cues_right
        foreign = clean(row["text"]).foreign if "foreign" in row else None
        language_right = foreign == row["foreign"] if "foreign" in row else True
        if "foreign" in row:
            language_rows += 1
            language_ok += language_right
        support[row["intent"]] += 1
        predicted[result.intent] += 1
        if intent_right:
            intents_ok += 1
            true_pos[result.intent] += 1
        else:
            confusion[(row["intent"], result.intent)] += 1
        if expected_entities:
            entity_rows += 1
            entity_ok += entities_right
        if result.stage == "fallback" or result.confidence < LLM_THRESHOLD:
            to_llm += 1
        elif not intent_right:
            confident_wrong += 1
        if intent_right and entities_right and cues_right and language_right:
            passed += 1
        else:
            failures.append({"text": row["text"], "expected": row["intent"], "got": result.intent,
                             "expected_entities": expected_entities, "got_entities": result.entities,
                             "expected_cues": sorted(cues), "got_cues": sorted(found_cues),
                             "expected_foreign": row.get("foreign"), "got_foreign": foreign,
                             "confidence": result.confidence})
    total = len(rows)
    per_intent = {
        intent: {"precision": round(true_pos[intent] / predicted[intent], 3) if predicted[intent] else 0.0,
                 "recall": round(true_pos[intent] / support[intent], 3) if support[intent] else 0.0,
                 "support": support[intent]}
        for intent in sorted(set(support) | set(predicted))
    }
    return {
        "rows": total,
        "intent_accuracy": round(intents_ok / total, 4) if total else 0.0,
        "entity_accuracy": round(entity_ok / entity_rows, 4) if entity_rows else 1.0,
        "entity_rows": entity_rows,
        "cue_accuracy": round(cue_ok / cue_rows, 4) if cue_rows else 1.0,
        "cue_rows": cue_rows,
        "language_accuracy": round(language_ok / language_rows, 4) if language_rows else 1.0,
        "language_rows": language_rows,
        "llm_share": round(to_llm / total, 4) if total else 0.0,
        "confident_errors": round(confident_wrong / total, 4) if total else 0.0,
        "per_intent": per_intent,
        "confusion": [{"expected": e, "got": g, "count": n} for (e, g), n in confusion.most_common()],
        "failures": failures,
        "passed": passed,
        "failed": total - passed,
    }


def report(result: dict[str, Any]) -> str:
    lines = [f"rows: {result['rows']}",
             f"intent accuracy: {result['intent_accuracy']:.3f}",
             f"entity accuracy: {result['entity_accuracy']:.3f} (over {result['entity_rows']} rows with entities)",
             f"cue accuracy: {result['cue_accuracy']:.3f} (over {result['cue_rows']} rows with cues)",
             f"language accuracy: {result['language_accuracy']:.3f} (over {result['language_rows']} rows with"
             " \"foreign\")",
             f"would need the LLM: {result['llm_share']:.1%} (stage fallback or confidence < {LLM_THRESHOLD})",
             f"wrong intent with confidence >= {LLM_THRESHOLD}: {result['confident_errors']:.1%}",
             "", f"{'intent':<18} {'precision':>9} {'recall':>7} {'support':>7}"]
    for intent, m in result["per_intent"].items():
        lines.append(f"{intent:<18} {m['precision']:>9.3f} {m['recall']:>7.3f} {m['support']:>7}")
    if result["confusion"]:
        lines += ["", "confusions (expected -> got: count)"]
        lines += [f"  {c['expected']} -> {c['got']}: {c['count']}" for c in result["confusion"]]
    if result["failures"]:
        lines += ["", "failed rows"]
        lines += [f"  {f['text']!r}: expected {f['expected']} {f['expected_entities']} {f['expected_cues']}"
                  f"{_language(f['expected_foreign'])}, got {f['got']} {f['got_entities']} {f['got_cues']}"
                  f"{_language(f['got_foreign'])} ({f['confidence']:.2f})"
                  for f in result["failures"]]
    return "\n".join(lines)


def _language(foreign: bool | None) -> str:
    return "" if foreign is None else " english" if foreign else " spanish"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Score the message router on a JSONL file.")
    parser.add_argument("file", type=Path)
    parser.add_argument("--json", action="store_true", help="print one JSON object (then the summary line)")
    args = parser.parse_args(argv)
    rows = [json.loads(line) for line in args.file.read_text(encoding="utf-8").splitlines() if line.strip()]
    result = evaluate(rows)
    print(json.dumps(result, ensure_ascii=False) if args.json else report(result))
    print(f"{result['passed']} passed, {result['failed']} failed")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
