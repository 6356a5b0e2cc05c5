"""Grounded free answers: the model answers a question the rules could not place, from tool results only.

The system prompt (llm/prompts/answer.v<N>.txt, the design's Anexo B
adapted) gets the company's data from the core (points, addresses, phones,
hours) and the policy topics of faq_data/; prices, policies, FAQ entries and
packages come only through tools (`chatbot.llm.tools`), which the FAQ
retrieval narrows to the few relevant entries. The model may call tools for
up to `MAX_ROUNDS` rounds; its final text goes through the output guard. An
`escalate` call hands over to the rules' escalation.

Identical questions answered from public tools only (prices, delivery times,
policies, the list of points, or no tool) are cached for `CACHE_TTL_S`, per
tenant, prompt version and model, when the conversation has no history (the model is not told the
customer's name, so such an answer fits anyone).

Failure policy: never raises; None means "no answer": the caller gives the
rules' reply (the menu). Refusals and failures are recorded on the session's
calls (outcome guard / bad_output / timeout...).
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass

import redis

from chatbot.llm import tools
from core_api_client import CoreError
from llm import output_guard
from llm.prompts import load
from llm.session import LlmSession
from llm.types import LlmError, Message
from services import ServiceContext, business, catalog, faq
from services.normalize import fold_words

log = logging.getLogger(__name__)

PURPOSE = "answer"
MAX_ROUNDS = 3
MAX_CALLS_PER_ROUND = 3
CACHE_KEY = "llm:answer:{tenant}:{version}:{model}:{digest}"
CACHE_TTL_S = 3600
CACHEABLE_TOOLS = frozenset({"get_policy", "quote_price", "delivery_time", "list_points"})


@dataclass(frozen=True)
class FreeAnswer:
    """What the model concluded: a checked text to send, or a hand-over (the rules word it)."""

    text: str | None = None
    escalate: str | None = None  # complaint | customer_request | not_understood
    codes: tuple[str, ...] = ()  # packages looked up (the session remembers them)
    cached: bool = False
    grounded: bool = False  # a tool returned facts (False: a decline or a clarifying question)


@dataclass(frozen=True)
class Question:
    text: str
    writer_phone: str | None
    first_name: str | None
    history: tuple[tuple[str, str], ...] = ()
    packages: tuple[str, ...] = ()  # codes already shown in this conversation


def company_data(ctx: ServiceContext) -> str:
    """The company's points as the core describes them now (one line each)."""
    try:
        points = catalog.points(ctx)
    except CoreError as exc:
        log.warning("company data unavailable for the llm: %s", type(exc).__name__)
        return "(Los datos de los puntos no están disponibles ahora.)"
    lines = [f"Empresa: {ctx.company_name}.", "Puntos de servicio:"]
    for p in points:
        lines.append(f"• {p.name} ({p.city}, {p.department}): {p.address}. {p.reference}. Tel. {p.phone}. "
                     f"Horario: {business.schedule_summary(p.hours)}.")
    return "\n".join(lines)


def _session_line(question: Question) -> str:
    parts = []
    if question.packages:
        parts.append("Códigos que el cliente ya consultó en esta conversación: " + ", ".join(question.packages) + ".")
    parts.append("El cliente " + ("escribe desde su número de WhatsApp." if question.writer_phone
                                  else "no comparte número de teléfono."))
    return "\nSESIÓN\n" + "\n".join(parts)


def answer(session: LlmSession, ctx: ServiceContext, question: Question) -> FreeAnswer | None:
    """The model's grounded answer to `question`, checked by the output guard; None when there is none."""
    prompt = load("answer")
    cache_key = _cache_key(ctx, prompt.version, session.provider.model, question)
    if cache_key is not None and (hit := _cached(ctx.redis, cache_key)) is not None:
        return FreeAnswer(text=hit[0], cached=True, grounded=hit[1])
    data = company_data(ctx)
    try:
        topics = ", ".join(faq.POLICY_TOPICS) if faq.data(ctx).policies else "ninguno"
    except faq.FaqDataError:
        topics = "ninguno"
    system = prompt.render(company=ctx.company_name, company_data=data, policy_topics=topics,
                           session=_session_line(question))
    instructions = prompt.template.split("$company_data")[0]
    messages: list[Message] = []
    for customer, bot in question.history:
        messages += [Message("user", customer), Message("assistant", bot)]
    messages.append(Message("user", question.text[:1000]))
    box = tools.Toolbox(ctx, question.writer_phone)
    for _round in range(MAX_ROUNDS):
        try:
            completion = session.complete(PURPOSE, prompt.version, system, messages, tools=list(tools.SPECS),
                                          max_output_tokens=350)
        except LlmError:
            return None
        calls = completion.tool_calls[:MAX_CALLS_PER_ROUND]
        if calls:
            wanted = next((c for c in calls if c.name == "escalate"), None)
            if wanted is not None:
                reason = wanted.arguments.get("reason")
                return FreeAnswer(escalate=reason if reason in tools.ESCALATION_REASONS else "customer_request",
                                  codes=tuple(box.codes))
            messages.append(Message("assistant", completion.text, tool_calls=calls))
            messages += [Message("tool", box.run(c), tool_call_id=c.id, tool_name=c.name) for c in calls]
            continue
        evidence = output_guard.Evidence(
            texts=(data, *box.results, question.first_name or "", " ".join(question.packages)),
            instructions=instructions)
        verdict = output_guard.check(completion.text, evidence)
        if not verdict.ok:
            session.mark_last("guard" if completion.text else "bad_output")
            log.warning("llm answer refused by the output guard: %s", verdict.reason or "empty")
            return None
        if cache_key is not None and set(box.used) <= CACHEABLE_TOOLS:
            _store(ctx.redis, cache_key, verdict.text, box.informed)
        return FreeAnswer(text=verdict.text, codes=tuple(box.codes), grounded=box.informed)
    log.warning("llm answer gave up after %s rounds of tool calls", MAX_ROUNDS)
    return None


def _cache_key(ctx: ServiceContext, version: str, model: str, question: Question) -> str | None:
    """Only a first question (no history, no packages looked at) can share its answer with others."""
    if question.history or question.packages:
        return None
    digest = hashlib.sha256(fold_words(question.text).encode()).hexdigest()[:32]
    return CACHE_KEY.format(tenant=ctx.tenant_slug, version=version, model=model, digest=digest)


def _cached(conn: redis.Redis, key: str) -> tuple[str, bool] | None:
    try:
        raw = conn.get(key)
    except redis.RedisError:
        return None
    if raw is None:
        return None
    try:
        data = json.loads(raw)
        return str(data["text"]), bool(data.get("grounded"))
    except (ValueError, KeyError, TypeError):
        return None


def _store(conn: redis.Redis, key: str, text: str, grounded: bool) -> None:
    try:
        conn.set(key, json.dumps({"text": text, "grounded": grounded}, ensure_ascii=False), ex=CACHE_TTL_S)
    except redis.RedisError as exc:
        log.warning("llm answer not cached: %s", type(exc).__name__)
