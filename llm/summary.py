"""A short Spanish summary of a conversation for the agent who takes it over.

`summarize` has the console's `Summarizer` shape (console/summary.py):
transcript as (who, text) pairs oldest first, and the facts the console
gathered; it returns None when no provider is configured or the model fails,
and the console then builds its rules-based summary. The model's summary
goes through the output guard with the transcript and facts as evidence (it
may not add a number, code or name that is not in them). `summarizer_for`
binds the settings, Redis and the database pool: each case is summarised by
its company's own model (`llm.tenant_models`) when its plan allows the model
(`runtime.plan_terms`), and the call's cost is recorded against the case's
conversation and tenant.

Failure policy: never raises.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from typing import Any

import redis
from psycopg_pool import ConnectionPool

from config import Settings
from llm import costs, output_guard
from llm.prompts import load
from llm.session import LlmSession
from llm.settings import provider_for
from llm.tenant_models import TenantModel, TenantModels
from llm.types import LlmError, Message
from runtime.model_access import model_access_cache
from runtime.plan_terms import PlanTerms
from storage.crypto import Vault

log = logging.getLogger(__name__)

PURPOSE = "summary"
MAX_LINES = 40
MAX_LINE_CHARS = 300
BUDGET_S = 15.0

Summarizer = Callable[[Sequence[tuple[str, str]], dict[str, Any]], str | None]


def transcript_text(transcript: Sequence[tuple[str, str]]) -> str:
    """The last lines of a conversation as "who: text", each cut short."""
    return "\n".join(f"{who}: {' '.join(text.split())[:MAX_LINE_CHARS]}" for who, text in transcript[-MAX_LINES:])


def summarize(settings: Settings, conn: redis.Redis, transcript: Sequence[tuple[str, str]],
              facts: dict[str, Any], *, company_name: str | None = None,
              record: Callable[[list[costs.LlmCall]], None] | None = None,
              model: TenantModel | None = None) -> str | None:
    """The model's summary of the conversation, or None (no provider, failure, or refused by the guard).

    `model` is the case's company's model (`llm.tenant_models`); without one, the deployment's provider."""
    if model is None:
        provider = provider_for(settings)
        model = TenantModel(provider, provider.name) if provider is not None else None
    if model is None or not transcript:
        return None
    session = LlmSession(model.provider, settings, conn, budget_s=BUDGET_S, circuit=model.circuit)
    prompt = load("summary")
    lines = transcript_text(transcript)
    known = json.dumps(facts, ensure_ascii=False, default=str)
    text: str | None = None
    try:
        system = prompt.render(company=company_name or settings.tenant_name)
        completion = session.complete(PURPOSE, prompt.version, system,
                                      [Message("user", f"Datos del caso: {known}\n\nConversación:\n{lines}")],
                                      max_output_tokens=250)
        verdict = output_guard.check(completion.text, output_guard.Evidence((lines, known)))
        if verdict.ok:
            text = verdict.text
        else:
            session.mark_last("guard" if completion.text else "bad_output")
            log.warning("llm summary refused by the output guard: %s", verdict.reason)
    except LlmError:
        text = None
    if record is not None:
        try:
            record(session.calls)
        except Exception as exc:  # noqa: BLE001 - the cost row must not cost the agent the summary
            log.warning("llm summary cost not recorded: %s", type(exc).__name__)
    return text


def summarizer_for(settings: Settings, conn: redis.Redis, pool: ConnectionPool,
                   models: TenantModels | None = None) -> Summarizer:
    """The console's summarizer: each case's company's own model when its plan allows one now
    (`runtime.plan_terms`); None from it (no model, or a failure) and the console summarises by rules."""
    models = models or TenantModels(settings, model_access_cache(
        settings, pool, conn, Vault(settings.phone_encryption_keys, settings.phone_hash_key)))
    terms = PlanTerms(pool, conn)

    def summarizer(transcript: Sequence[tuple[str, str]], facts: dict[str, Any]) -> str | None:
        with pool.connection() as db:  # the case's company: its name in the prompt, its calls on its account
            found = db.execute("SELECT e.tenant_id, e.conversation_id, t.name FROM escalations e"
                               " JOIN tenants t ON t.id = e.tenant_id WHERE e.case_number = %s",
                               (str(facts.get("case_number", "")),)).fetchone()
        tenant_id, conversation_id = _ids(found)
        if tenant_id is None or not terms.terms(tenant_id).model_allowed(None):
            return None
        model = models.model(tenant_id)
        if model is None:
            return None
        company_name = _name(found)

        def record(calls: list[costs.LlmCall]) -> None:
            with pool.connection() as db:
                costs.store(db, tenant_id=tenant_id, conversation_id=conversation_id, calls=calls)
        return summarize(settings, conn, transcript, facts, company_name=company_name, record=record, model=model)

    return summarizer


def _name(row: Any) -> str | None:
    if row is None:
        return None
    return str(row["name"] if isinstance(row, dict) else row[2])


def _ids(row: Any) -> tuple[int | None, int | None]:
    if row is None:
        return None, None
    if isinstance(row, dict):
        return row["tenant_id"], row["conversation_id"]
    return row[0], row[1]
