"""LLM cost benchmark: how many customer messages reach the model, and what it costs per conversation.

    python bench/llm_cost.py [--json] [--price-in 0.15] [--price-out 0.60]

Two measures over a realistic mix:
1. Messages alone: tests/nlu/dev.jsonl + extra.jsonl through the router (no context); a message reaches
   the model when the rules' confidence is below chatbot.router.LLM_THRESHOLD (what the engine asks it).
2. Whole conversations: tests/scenarios/*.yaml (every flow of the design and Anexo A) plus bench/llm_mix.yaml
   (vague and slangy conversations written for this), replayed through the real pipeline of
   scripts/converse_pipeline.py (webhook -> worker -> engine) with LLM_PROVIDER=openai pointed at a stand-in
   model on loopback. The stand-in speaks the chat-completions wire format through the real `openai` SDK and reads
   messages like a good model would: the gold intent of the NLU sets and of the scenarios' expectations
   (out_of_scope when unknown); a free answer costs two calls (a `get_policy` tool call, then the text).
   Tokens are counted as characters / 4 of each whole request (system prompt, history, tool schemas) and
   reply, which over-counts Spanish JSON slightly. Costs are the `llm_calls` rows the worker wrote, at the
   configured prices (gpt-4o-mini's by default). Scenario expectations are checked as well, so the run
   also shows whether the rules' behaviour survives with a model configured.

Goals (issue 5): < 15 % of messages reach the model; < $0.002 per conversation at gpt-4o-mini-class prices.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import unicodedata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `python bench/llm_cost.py` puts bench/, not the root, on sys.path
    sys.path.insert(0, str(ROOT))

from bench.common import machine_info, table, write_results  # noqa: E402
from tests.fakes.openai_api import DEFAULT_KEY, FakeOpenAI, Reply, json_reply  # noqa: E402

NLU_DIR = ROOT / "tests" / "nlu"
SCENARIOS = [ROOT / "tests" / "scenarios" / "flows.yaml", ROOT / "tests" / "scenarios" / "examples.yaml",
             ROOT / "bench" / "llm_mix.yaml"]
FREE_ANSWER = "Te cuento lo que tenemos sobre eso 📦 Si necesitas más detalle, te conecto con un asesor."


def key(text: str) -> str:
    folded = unicodedata.normalize("NFKD", text.casefold())
    return " ".join("".join(ch for ch in folded if not unicodedata.combining(ch)).split())


def nlu_rows() -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for name in ("dev.jsonl", "extra.jsonl"):
        path = NLU_DIR / name
        if path.exists():
            found += [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return found


class StandInModel(FakeOpenAI):
    """The OpenAI fake of the tests, answering every request on the fly instead of from a script."""

    def __init__(self, gold: dict[str, str]) -> None:
        super().__init__(api_key=DEFAULT_KEY)
        self.gold = gold

    def handle(self, path: str, headers: dict[str, str], body: bytes
               ) -> tuple[int, dict[str, Any], bytes | None, float]:
        request = json.loads(body)
        size = len(json.dumps(request, ensure_ascii=False)) // 4
        kind = "json" if request.get("response_format") else "tools" if request.get("tools") else "text"
        user = next((m["content"] for m in reversed(request["messages"]) if m["role"] == "user"), "")
        if kind == "json":
            intent = self.gold.get(key(user), "out_of_scope")
            reply = json_reply({"intent": intent, "confidence": 0.85, "tracking_code": None, "point": None,
                                "weight_lbs": None}, tokens_in=size)
        elif any(m["role"] == "tool" for m in request["messages"]):
            reply = Reply(content=FREE_ANSWER, tokens_in=size)
        elif kind == "tools":
            reply = Reply(tool_calls=[("get_policy", {"topic": "other", "question": user})], tokens_in=size)
        else:
            reply = Reply(content="Resumen.", tokens_in=size)
        reply.tokens_out = max(1, len(json.dumps([reply.content, reply.tool_calls], ensure_ascii=False)) // 4)
        self.script(kind, reply)
        return super().handle(path, headers, body)


def messages_alone(rows: list[dict[str, Any]]) -> dict[str, Any]:
    from chatbot.router import LLM_THRESHOLD, route

    asked: list[str] = []

    def llm(text: str, _context: Any) -> None:
        asked.append(text)

    for row in rows:
        route(row["text"], llm=llm)
    return {"messages": len(rows), "reach_llm": len(asked), "share": len(asked) / len(rows) if rows else 0.0,
            "threshold": LLM_THRESHOLD}


def conversations(price_in: float, price_out: float, gold: dict[str, str]) -> dict[str, Any]:
    from runtime.resources import build_runtime
    from scripts.converse_pipeline import pipeline, run_conversation
    from scripts.converse_scenarios import load_scenarios

    convs = [c for path in SCENARIOS for c in load_scenarios(path)]
    for conv in convs:
        for turn in conv.turns:
            intent = turn.expect.get("intent")
            if isinstance(intent, list):
                intent = intent[0] if intent else None
            if intent:
                gold.setdefault(key(turn.user), str(intent))
    per: list[dict[str, Any]] = []
    with StandInModel(gold) as model, pipeline(dict(os.environ)) as pipe:
        settings = pipe.settings.with_overrides(
            llm_provider="openai", llm_api_key=DEFAULT_KEY, llm_base_url=model.base_url, llm_model="gpt-4o-mini",
            llm_max_retries=0, llm_price_in_per_mtok=price_in, llm_price_out_per_mtok=price_out)
        previous, pipe.runtime = pipe.runtime, build_runtime(settings, pool_size=2)
        try:
            for conv in convs:
                result = run_conversation(pipe, conv)
                with pipe.pool.connection() as conn:
                    found = conn.execute(
                        "SELECT count(*) FILTER (WHERE purpose = 'route') AS routed, count(*) AS calls,"
                        " coalesce(sum(tokens_in), 0) AS tin, coalesce(sum(tokens_out), 0) AS tout,"
                        " coalesce(sum(cost_usd), 0) AS cost FROM llm_calls").fetchone()
                per.append({"name": conv.name, "messages": len(conv.turns), "routed": int(found["routed"]),
                            "calls": int(found["calls"]), "tokens_in": int(found["tin"]),
                            "tokens_out": int(found["tout"]), "cost_usd": float(found["cost"]),
                            "passed": result["passed"], "failures": result["failures"]})
        finally:
            pipe.runtime.close()
            pipe.runtime = previous
    messages = sum(c["messages"] for c in per)
    routed = sum(c["routed"] for c in per)
    cost = sum(c["cost_usd"] for c in per)
    return {"conversations": len(per), "messages": messages, "reach_llm": routed,
            "share": routed / messages if messages else 0.0, "calls": sum(c["calls"] for c in per),
            "tokens_in": sum(c["tokens_in"] for c in per), "tokens_out": sum(c["tokens_out"] for c in per),
            "cost_usd": cost, "cost_per_conversation": cost / len(per) if per else 0.0,
            "max_conversation_cost": max((c["cost_usd"] for c in per), default=0.0),
            "expectations_passed": sum(c["passed"] for c in per), "per_conversation": per}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--price-in", type=float, default=0.15, help="USD per million input tokens")
    parser.add_argument("--price-out", type=float, default=0.60, help="USD per million output tokens")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    rows = nlu_rows()
    gold = {key(r["text"]): str(r["intent"]) for r in rows}
    alone = messages_alone(rows)
    convs = conversations(args.price_in, args.price_out, gold)
    data = {"machine": machine_info(), "prices": {"in_per_mtok": args.price_in, "out_per_mtok": args.price_out},
            "messages_alone": alone, "conversations": convs, "elapsed_s": round(time.perf_counter() - started, 1)}
    write_results("llm_cost", data)
    if args.json:
        print(json.dumps(data, indent=2, default=str))  # noqa: T201 - the report
        return 0
    print(table(["mix", "messages", "reach the model", "share"], [  # noqa: T201 - the report
        ["NLU sets, one message alone", alone["messages"], alone["reach_llm"], f"{alone['share']:.1%}"],
        ["conversations (scenarios + llm_mix)", convs["messages"], convs["reach_llm"], f"{convs['share']:.1%}"],
    ]))
    print()  # noqa: T201
    print(table(["conversations", "model calls", "tokens in", "tokens out", "cost / conversation",  # noqa: T201
                 "most expensive", "expectations kept"], [[
        convs["conversations"], convs["calls"], convs["tokens_in"], convs["tokens_out"],
        f"${convs['cost_per_conversation']:.6f}", f"${convs['max_conversation_cost']:.6f}",
        f"{convs['expectations_passed']}/{convs['conversations']}"]]))
    for c in convs["per_conversation"]:
        if c["failures"]:
            print(f"  with a model, '{c['name']}': {c['failures'][0]}")  # noqa: T201
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
