"""The escalation-analysis prompt of the design's Anexo B, as a job over escalated conversations.

For each escalation with no analysis yet (and at least `MIN_AGE_S` old, so
the hand-over has happened), the model reads the conversation and returns
the JSON of Anexo B (escalation reason, category, whether it was necessary, a
suggestion, a priority and an example query), constrained by a JSON schema.
The result is stored in `escalation_analyses` (one row per escalation) for
the analytics; the call's cost in `llm_calls`. Phone numbers in the example
query are masked. A conversation whose analysis fails is tried again on the
next runs, at most `MAX_ATTEMPTS` times (counter in Redis
`llm:analysis:attempts:{escalation_id}`).

Each conversation is read by its company's own model (`llm.tenant_models`:
its settings or the deployment's) when its plan allows the model
(`runtime.plan_terms`); a company without one is skipped. `register_jobs` adds the
job to the scheduler (leader only). Failure policy: `analyze_pending` never raises for one
conversation (logged, counted); database errors propagate to the scheduler.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

import redis
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool

from config import Settings
from llm import costs
from llm.prompts import load
from llm.session import LlmSession
from llm.summary import transcript_text
from llm.tenant_models import TenantModels
from llm.types import LlmError, Message
from runtime.model_access import model_access_cache
from runtime.plan_terms import PlanTerms
from storage.crypto import Vault

log = logging.getLogger(__name__)

PURPOSE = "analysis"
MIN_AGE_S = 600
MAX_ATTEMPTS = 3
BATCH = 10
INTERVAL_S = 600
ATTEMPTS_KEY = "llm:analysis:attempts:{escalation_id}"
ATTEMPTS_TTL_S = 7 * 86400
BUDGET_S = 30.0
REASONS = ("bot_no_entendio", "fuera_de_capacidad", "pidio_humano", "palabra_urgente", "respuesta_incorrecta", "otro")
CATEGORIES = ("rastreo", "informacion_general", "reclamo", "cambio_de_datos", "servicio_especial", "otro")
PRIORITIES = ("alta", "media", "baja")
_PHONE = re.compile(r"\+?\d[\d\s-]{6,}\d")

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "conversation_id": {"type": "string"},
        "escalation_reason": {"type": "string", "enum": list(REASONS)},
        "category": {"type": "string", "enum": list(CATEGORIES)},
        "was_necessary": {"type": "boolean"},
        "suggestion": {"type": "string"},
        "priority": {"type": "string", "enum": list(PRIORITIES)},
        "example_query": {"type": "string"},
    },
    "required": ["conversation_id", "escalation_reason", "category", "was_necessary", "suggestion", "priority",
                 "example_query"],
    "additionalProperties": False,
}


def parse(raw: str, conversation_id: int) -> dict[str, Any] | None:
    """The model's JSON checked against Anexo B's shape; None when unusable."""
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, TypeError):
        return None
    if not isinstance(data, dict):
        return None
    checks = (data.get("escalation_reason") in REASONS, data.get("category") in CATEGORIES,
              isinstance(data.get("was_necessary"), bool), data.get("priority") in PRIORITIES,
              isinstance(data.get("suggestion"), str) and data["suggestion"].strip(),
              isinstance(data.get("example_query"), str))
    if not all(checks):
        return None
    return {"conversation_id": f"conv_{conversation_id}", "escalation_reason": data["escalation_reason"],
            "category": data["category"], "was_necessary": data["was_necessary"],
            "suggestion": data["suggestion"].strip()[:500], "priority": data["priority"],
            "example_query": _PHONE.sub("[teléfono]", data["example_query"]).strip()[:300]}


_PENDING = ("FROM escalations e JOIN tenants t ON t.id = e.tenant_id"
            " WHERE NOT EXISTS (SELECT 1 FROM escalation_analyses a WHERE a.escalation_id = e.id)"
            " AND e.created_at <= now() - make_interval(secs => %(age)s)")


def pending(pool: ConnectionPool, limit: int = BATCH, min_age_s: int = MIN_AGE_S,
            tenant_ids: list[int] | None = None) -> list[dict[str, Any]]:
    """Escalations without an analysis, oldest first (only those of `tenant_ids` when given)."""
    with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT e.id, e.tenant_id, e.conversation_id, e.reason, t.name AS company " + _PENDING
            + " AND (%(tenants)s::int[] IS NULL OR e.tenant_id = ANY(%(tenants)s)) ORDER BY e.id LIMIT %(limit)s",
            {"age": min_age_s, "limit": limit, "tenants": tenant_ids},
        ).fetchall()


def _pending_tenants(pool: ConnectionPool, min_age_s: int) -> list[int]:
    with pool.connection() as conn:
        return [int(r["tenant_id"]) for r in conn.execute(  # type: ignore[call-overload]
            "SELECT DISTINCT e.tenant_id " + _PENDING, {"age": min_age_s}).fetchall()]


def _transcript(pool: ConnectionPool, conversation_id: int) -> list[tuple[str, str]]:
    with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        found = cur.execute("SELECT direction, body FROM messages WHERE conversation_id = %s AND body IS NOT NULL"
                            " ORDER BY id", (conversation_id,)).fetchall()
    return [("cliente" if r["direction"] == "in" else "bot", str(r["body"])) for r in found]


def analyze_pending(settings: Settings, pool: ConnectionPool, conn: redis.Redis, *, limit: int = BATCH,
                    min_age_s: int = MIN_AGE_S, models: TenantModels | None = None,
                    terms: PlanTerms | None = None) -> int:
    """Analyse escalated conversations that have no analysis yet; returns how many were stored.

    Each with its company's own model (`llm.tenant_models`), when its plan allows the model now
    (`runtime.plan_terms`); a company without one is skipped."""
    models = models or TenantModels(settings, model_access_cache(
        settings, pool, conn, Vault(settings.phone_encryption_keys, settings.phone_hash_key)))
    terms = terms or PlanTerms(pool, conn)
    # only the companies that have a model now: the others' cases must not fill every batch
    with_model = {tenant_id: model for tenant_id in _pending_tenants(pool, min_age_s)
                  if terms.terms(tenant_id).model_allowed(None) and (model := models.model(tenant_id)) is not None}
    if not with_model:
        return 0
    stored = 0
    opened: set[str] = set()  # circuits that opened during this run: their companies' cases wait for the next
    prompt = load("analysis")
    for case in pending(pool, limit, min_age_s, sorted(with_model)):
        key = ATTEMPTS_KEY.format(escalation_id=case["id"])
        attempts = int(conn.get(key) or 0)
        model = with_model[case["tenant_id"]]
        if attempts >= MAX_ATTEMPTS or model.circuit in opened:
            continue
        session = LlmSession(model.provider, settings, conn, budget_s=BUDGET_S, circuit=model.circuit)
        lines = transcript_text(_transcript(pool, case["conversation_id"]))
        result = None
        try:
            system = prompt.render(company=case["company"], conversation_id=f"conv_{case['conversation_id']}",
                                   reason=case["reason"])
            completion = session.complete(PURPOSE, prompt.version, system, [Message("user", lines or "(vacía)")],
                                          json_schema=SCHEMA, max_output_tokens=400)
            result = parse(completion.text, case["conversation_id"])
            if result is None:
                session.mark_last("bad_output")
        except LlmError:
            result = None
        with pool.connection() as db, db.transaction():
            costs.store(db, tenant_id=case["tenant_id"], conversation_id=case["conversation_id"], calls=session.calls)
            if result is not None:
                db.execute("INSERT INTO escalation_analyses (tenant_id, escalation_id, conversation_id, prompt_version,"
                           " analysis) VALUES (%s, %s, %s, %s, %s) ON CONFLICT (escalation_id) DO NOTHING",
                           (case["tenant_id"], case["id"], case["conversation_id"], prompt.version, Jsonb(result)))
                stored += 1
        if result is None:
            conn.set(key, attempts + 1, ex=ATTEMPTS_TTL_S)
            log.warning("escalation analysis failed (escalation %s, attempt %s)", case["id"], attempts + 1)
        if not session.available():  # this company's circuit opened: its other cases next time
            opened.add(model.circuit)
    return stored


def register_jobs(scheduler: Any, rt: Any, leader: Any) -> None:
    """Every INTERVAL_S on the leader: analyse new escalations (of the companies that have a model)."""
    models = TenantModels(rt.settings, rt.model_access)
    terms = rt.plans

    def analyze() -> None:
        if leader.holds():
            analyze_pending(rt.settings, rt.pool, rt.redis, models=models, terms=terms)

    scheduler.add_job(analyze, "interval", seconds=INTERVAL_S, id="llm_escalation_analysis", max_instances=1,
                      coalesce=True)
